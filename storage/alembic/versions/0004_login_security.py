"""Security (issue 17): login throttling, ending sessions, self-review.

users.failed_logins / users.last_failed_login_at: consecutive wrong passwords and when
the last was (a right one resets them), so every app process applies the same backoff;
users.locked: too many failures, until an admin unlocks the account
(``python -m storage users unlock NAME``); users.session_epoch: bumped when the password
changes or the account is disabled, so the sessions logged in before end.
projects.allow_self_review: a reviewer may accept their own submission (one-person
projects); default false.

New columns with server defaults (ALTER TABLE ... ADD COLUMN): no table is rebuilt.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 21:50:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('users', sa.Column('failed_logins', sa.Integer(), nullable=False, server_default='0'))
    op.add_column('users', sa.Column('last_failed_login_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('users', sa.Column('locked', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column('users', sa.Column('session_epoch', sa.Integer(), nullable=False, server_default='0'))
    op.add_column('projects', sa.Column('allow_self_review', sa.Boolean(), nullable=False,
                                        server_default=sa.false()))


def downgrade() -> None:
    op.drop_column('projects', 'allow_self_review')
    op.drop_column('users', 'session_epoch')
    op.drop_column('users', 'locked')
    op.drop_column('users', 'last_failed_login_at')
    op.drop_column('users', 'failed_logins')
