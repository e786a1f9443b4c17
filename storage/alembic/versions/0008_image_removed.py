"""Images taken out of a project and put back (images.removed_at), and the two
activity actions that record it (image_removed, image_restored).

``removed_at`` is a new nullable column (ALTER TABLE ... ADD COLUMN): every existing
image stays in its project. The activity CHECK lists the new actions: PostgreSQL drops
and re-creates the constraint; SQLite cannot alter a CHECK, so ``activity`` is rebuilt
(copy, drop, rename). No table references ``activity``, so with foreign keys on nothing
cascades. The CHECK values are frozen here; a test compares them with the enum.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 05:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

ACTIONS_0002 = ('revision_saved', 'review', 'job_started', 'job_finished', 'job_cancelled',
                'model_promoted', 'model_activated', 'export', 'import', 'project_created',
                'classes_changed', 'training_source_changed', 'user_added', 'role_changed',
                'user_disabled', 'user_enabled', 'password_changed', 'member_added', 'member_removed')
ACTIONS = ACTIONS_0002 + ('image_removed', 'image_restored')


def one_of(column, values):
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({quoted})"


def _activity_check(actions) -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint(op.f('ck_activity_action'), 'activity', type_='check')
        op.create_check_constraint(op.f('ck_activity_action'), 'activity', one_of('action', actions))
        return
    op.create_table('activity_new',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=True),
    sa.Column('user_name', sa.String(length=200), nullable=True),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('details', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint(one_of('action', actions), name=op.f('ck_activity_action')),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_activity_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_activity'))
    )
    cols = "id, project_id, user_name, action, subject, details, created_at"
    op.execute(f"INSERT INTO activity_new ({cols}) SELECT {cols} FROM activity")
    op.drop_index('ix_activity_project_id', table_name='activity')
    op.drop_table('activity')
    op.rename_table('activity_new', 'activity')
    op.create_index('ix_activity_project_id', 'activity', ['project_id', 'id'], unique=False)


def upgrade() -> None:
    op.add_column('images', sa.Column('removed_at', sa.DateTime(timezone=True), nullable=True))
    _activity_check(ACTIONS)


def downgrade() -> None:
    # the records of removals go with the actions that name them; removed images come back
    op.execute("DELETE FROM activity WHERE action IN ('image_removed', 'image_restored')")
    _activity_check(ACTIONS_0002)
    op.drop_column('images', 'removed_at')
