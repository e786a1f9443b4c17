"""Teams: users (argon2 password hashes, roles), project members, review decisions
(images.review mirrors the latest one), the project's training source, activity.

Only new tables, new nullable columns (ALTER TABLE ... ADD COLUMN, with their CHECKs)
and new indexes: no table is rebuilt, which on SQLite with foreign keys on would
cascade-delete the rows that reference it. The CHECK values are frozen here; the
enums in storage/models.py must list the same ones (a test compares them).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 10:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

ROLES = ('admin', 'reviewer', 'annotator')
REVIEW_STATES = ('pending', 'accepted', 'rejected')
DECISIONS = ('accepted', 'rejected')
TRAINING_SOURCES = ('accepted', 'submitted')
ACTIONS = ('revision_saved', 'review', 'job_started', 'job_finished', 'job_cancelled',
           'model_promoted', 'model_activated', 'export', 'import', 'project_created',
           'classes_changed', 'training_source_changed', 'user_added', 'role_changed',
           'user_disabled', 'user_enabled', 'password_changed', 'member_added', 'member_removed')


def one_of(column, values):
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({quoted})"


def upgrade() -> None:
    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('name_key', sa.String(length=800), nullable=False),
    sa.Column('password_hash', sa.String(length=500), nullable=False),
    sa.Column('role', sa.String(length=12), nullable=False),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint(one_of('role', ROLES), name=op.f('ck_users_role')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('name_key', name=op.f('uq_users_name_key'))
    )
    op.create_table('project_members',
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_project_members_project_id_projects'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_project_members_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('project_id', 'user_id', name=op.f('pk_project_members'))
    )
    op.create_index('ix_project_members_user_id', 'project_members', ['user_id'], unique=False)
    op.create_table('reviews',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('decision', sa.String(length=8), nullable=False),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('reviewer', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint(one_of('decision', DECISIONS), name=op.f('ck_reviews_decision')),
    sa.CheckConstraint("decision = 'accepted' OR length(trim(comment)) > 0", name=op.f('ck_reviews_rejection_comment')),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_reviews_image_id_images'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['image_id', 'revision'], ['annotations.image_id', 'annotations.revision'], name='fk_reviews_annotation', ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reviews'))
    )
    op.create_index('ix_reviews_image_revision', 'reviews', ['image_id', 'revision', 'id'], unique=False)
    op.create_table('activity',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=True),
    sa.Column('user_name', sa.String(length=200), nullable=True),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('details', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint(one_of('action', ACTIONS), name=op.f('ck_activity_action')),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_activity_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_activity'))
    )
    op.create_index('ix_activity_project_id', 'activity', ['project_id', 'id'], unique=False)

    # plain ALTER TABLE ... ADD COLUMN (no batch rebuild, see the docstring)
    op.add_column('projects', sa.Column('training_source', sa.String(length=12), sa.CheckConstraint(
        one_of('training_source', TRAINING_SOURCES), name=op.f('ck_projects_training_source')), nullable=True))
    op.add_column('images', sa.Column('review', sa.String(length=8), sa.CheckConstraint(
        one_of('review', REVIEW_STATES), name=op.f('ck_images_review')), nullable=True))
    op.create_index('ix_images_project_review', 'images', ['project_id', 'review'], unique=False)
    # images submitted before reviews existed wait for one
    op.execute("UPDATE images SET review = 'pending' WHERE EXISTS (SELECT 1 FROM annotations a "
               "WHERE a.image_id = images.id AND a.status = 'submitted')")


def downgrade() -> None:
    op.drop_index('ix_images_project_review', table_name='images')
    op.drop_column('images', 'review')
    op.drop_column('projects', 'training_source')
    op.drop_index('ix_activity_project_id', table_name='activity')
    op.drop_table('activity')
    op.drop_index('ix_reviews_image_revision', table_name='reviews')
    op.drop_table('reviews')
    op.drop_index('ix_project_members_user_id', table_name='project_members')
    op.drop_table('project_members')
    op.drop_table('users')
