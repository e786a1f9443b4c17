"""Projects renamed, taken out of every list and put back (projects.removed_at), and
the three activity actions that record it (project_renamed, project_removed,
project_restored).

``removed_at`` is a new nullable column: every existing project stays in use. The
activity CHECK lists the new actions, as in 0008 (PostgreSQL re-creates the constraint,
SQLite rebuilds ``activity``). The CHECK values are frozen here; a test compares them
with the enum.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 21:30:00
"""
from importlib import import_module

from alembic import op
import sqlalchemy as sa

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

_0008 = import_module("storage.alembic.versions.0008_image_removed")
ACTIONS_0008 = _0008.ACTIONS
ACTIONS = ACTIONS_0008 + ('project_renamed', 'project_removed', 'project_restored')


def upgrade() -> None:
    op.add_column('projects', sa.Column('removed_at', sa.DateTime(timezone=True), nullable=True))
    _0008._activity_check(ACTIONS)


def downgrade() -> None:
    # the records go with the actions that name them; removed projects come back, renamed
    # ones keep their new name
    op.execute("DELETE FROM activity WHERE action IN ('project_renamed', 'project_removed', 'project_restored')")
    _0008._activity_check(ACTIONS_0008)
    op.drop_column('projects', 'removed_at')
