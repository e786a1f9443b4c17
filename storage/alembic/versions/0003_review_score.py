"""The model as a second reviewer: images.review_score, how much the active model
confidently disagreed with the latest submitted revision (see models.review), so the
review queue can put the likeliest mistakes first, and images.review_evidence, what
that score was computed from (models.review.Evidence as JSON), so the queue can be
scored again among itself without running the model. NULL: not scored (yet).

New nullable columns (ALTER TABLE ... ADD COLUMN): no table is rebuilt.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 19:10:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('images', sa.Column('review_score', sa.Float(), nullable=True))
    op.add_column('images', sa.Column('review_evidence', sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column('images', 'review_evidence')
    op.drop_column('images', 'review_score')
