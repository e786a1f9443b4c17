"""The Explore screen (issue 19): per-image metrics, class areas and confusion counts,
computed in the background and served in pages by SQL.

- ``image_metrics``: one row per image (the prediction and annotation revision it was
  computed from, mean normalised entropy, IoU and accuracy against the annotation, two
  thumbnails); indexed by (project, entropy) and (project, IoU) for sorting.
- ``image_class_areas``: each class's share of the prediction / annotation, indexed for
  "at least 1% bicyclist".
- ``image_confusion``: per-image (annotated, predicted) pixel counts, indexed by cell so
  a confusion-matrix cell opens the images where that confusion is largest.
- ``predictions.entropy``: the prediction's mean normalised entropy (nullable: older
  predictions have none).
- indexes on images for the other sort keys (split, author, date, review score).

New tables, a nullable column and indexes: no table is rebuilt, no data changes.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 23:45:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('image_class_areas',
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=1), nullable=False),
    sa.Column('class_index', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('share', sa.Float(), nullable=False),
    sa.CheckConstraint("source IN ('p', 'a')", name=op.f('ck_image_class_areas_source')),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_image_class_areas_image_id_images'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_image_class_areas_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('image_id', 'source', 'class_index', name=op.f('pk_image_class_areas'))
    )
    op.create_index('ix_image_class_areas_lookup', 'image_class_areas', ['project_id', 'source', 'class_index', 'share'], unique=False)
    op.create_table('image_confusion',
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('true_class', sa.Integer(), nullable=False),
    sa.Column('pred_class', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('pixels', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_image_confusion_image_id_images'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_image_confusion_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('image_id', 'true_class', 'pred_class', name=op.f('pk_image_confusion'))
    )
    op.create_index('ix_image_confusion_cell', 'image_confusion', ['project_id', 'true_class', 'pred_class', 'pixels'], unique=False)
    op.create_table('image_metrics',
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('model_version_id', sa.Integer(), nullable=True),
    sa.Column('prediction_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('entropy', sa.Float(), nullable=True),
    sa.Column('iou', sa.Float(), nullable=True),
    sa.Column('accuracy', sa.Float(), nullable=True),
    sa.Column('palette', sa.String(length=64), nullable=False),
    sa.Column('thumb_pred', sa.LargeBinary(), nullable=True),
    sa.Column('thumb_ann', sa.LargeBinary(), nullable=True),
    sa.Column('computed_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_image_metrics_image_id_images'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['model_version_id'], ['model_versions.id'], name=op.f('fk_image_metrics_model_version_id_model_versions'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_image_metrics_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('image_id', name=op.f('pk_image_metrics'))
    )
    op.create_index('ix_image_metrics_model_version_id', 'image_metrics', ['model_version_id'], unique=False)
    op.create_index('ix_image_metrics_project_entropy', 'image_metrics', ['project_id', 'entropy'], unique=False)
    op.create_index('ix_image_metrics_project_iou', 'image_metrics', ['project_id', 'iou'], unique=False)
    op.create_index('ix_images_project_annotated_at', 'images', ['project_id', 'annotated_at'], unique=False)
    op.create_index('ix_images_project_annotated_by', 'images', ['project_id', 'annotated_by'], unique=False)
    op.create_index('ix_images_project_review_score', 'images', ['project_id', 'review_score'], unique=False)
    op.create_index('ix_images_project_split', 'images', ['project_id', 'split'], unique=False)
    op.add_column('predictions', sa.Column('entropy', sa.Float(), nullable=True))


def downgrade() -> None:
    op.drop_column('predictions', 'entropy')
    op.drop_index('ix_images_project_split', table_name='images')
    op.drop_index('ix_images_project_review_score', table_name='images')
    op.drop_index('ix_images_project_annotated_by', table_name='images')
    op.drop_index('ix_images_project_annotated_at', table_name='images')
    op.drop_index('ix_image_metrics_project_iou', table_name='image_metrics')
    op.drop_index('ix_image_metrics_project_entropy', table_name='image_metrics')
    op.drop_index('ix_image_metrics_model_version_id', table_name='image_metrics')
    op.drop_table('image_metrics')
    op.drop_index('ix_image_confusion_cell', table_name='image_confusion')
    op.drop_table('image_confusion')
    op.drop_index('ix_image_class_areas_lookup', table_name='image_class_areas')
    op.drop_table('image_class_areas')
