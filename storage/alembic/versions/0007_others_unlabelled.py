"""Pixels that are none of a project's classes (projects.others_unlabelled).

When set, the app asks the model for the project's words and some hidden scene words
(``models.open_set``) and leaves the pixels a hidden word wins unlabelled, instead of
painting them with the nearest class. Off (false) for every existing project: nothing a
project shows changes until an admin turns it on.

A column with a server default (ALTER TABLE ... ADD COLUMN): no table is rebuilt.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 02:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('projects', sa.Column('others_unlabelled', sa.Boolean(), nullable=False,
                                        server_default=sa.false()))


def downgrade() -> None:
    op.drop_column('projects', 'others_unlabelled')
