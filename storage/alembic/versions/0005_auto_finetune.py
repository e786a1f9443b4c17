"""Automatic fine-tuning (issue 20): projects.auto_finetune_every.

The app queues a fine-tuning job by itself every N submitted annotations (counted since
the project's newest job was created); NULL = off, the default, so nothing starts a job
that nobody asked for. ``python -m storage auto-finetune PROJECT N`` or the Model screen
sets it.

A nullable column without a default (ALTER TABLE ... ADD COLUMN): no table is rebuilt.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 22:10:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('projects', sa.Column('auto_finetune_every', sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column('projects', 'auto_finetune_every')
