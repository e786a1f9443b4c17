"""SQLAlchemy 2.0 typed ORM schema. The schema itself is owned by Alembic
(``storage/alembic/versions``); a test checks the two never drift apart."""
from __future__ import annotations

from datetime import datetime, timezone
from enum import StrEnum
from typing import Any

from sqlalchemy import (JSON, Boolean, CheckConstraint, DateTime, Float, ForeignKey,
                        ForeignKeyConstraint, Index, Integer, LargeBinary, MetaData, String, Text,
                        UniqueConstraint, text)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common import splits

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SPLITS = splits.SPLITS   # owned by common.splits (the app's split rule)
ANNOTATION_STATUSES = ("draft", "submitted")
JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")


class Role(StrEnum):
    """What a user may do (enforced by the app's Studio layer): an annotator labels,
    saves and submits; a reviewer also accepts or rejects; an admin also manages label
    sets, model versions, fine-tuning, export and users, and sees every project."""
    ADMIN = "admin"
    REVIEWER = "reviewer"
    ANNOTATOR = "annotator"


class ReviewDecision(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class ReviewState(StrEnum):
    """An image's review state: the latest decision on its latest submitted revision,
    ``pending`` while that revision has none (None: nothing submitted yet)."""
    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class TrainingSource(StrEnum):
    """Which annotations jobs and exports use: each image's latest *accepted*
    revision, or its latest *submitted* one."""
    ACCEPTED = "accepted"
    SUBMITTED = "submitted"


class Action(StrEnum):
    """Kinds of activity records. Storage records ``revision_saved`` (save_annotation),
    ``review`` (review), ``model_activated`` (activate_model_version) and
    ``model_promoted`` (finish_job with activate=True) itself; callers record the rest."""
    REVISION_SAVED = "revision_saved"
    REVIEW = "review"
    JOB_STARTED = "job_started"
    JOB_FINISHED = "job_finished"
    JOB_CANCELLED = "job_cancelled"
    MODEL_PROMOTED = "model_promoted"
    MODEL_ACTIVATED = "model_activated"
    EXPORT = "export"
    IMPORT = "import"
    PROJECT_CREATED = "project_created"
    CLASSES_CHANGED = "classes_changed"
    TRAINING_SOURCE_CHANGED = "training_source_changed"
    USER_ADDED = "user_added"
    ROLE_CHANGED = "role_changed"
    USER_DISABLED = "user_disabled"
    USER_ENABLED = "user_enabled"
    PASSWORD_CHANGED = "password_changed"
    MEMBER_ADDED = "member_added"
    MEMBER_REMOVED = "member_removed"
    IMAGE_REMOVED = "image_removed"
    IMAGE_RESTORED = "image_restored"
    PROJECT_RENAMED = "project_renamed"
    PROJECT_REMOVED = "project_removed"
    PROJECT_RESTORED = "project_restored"


def one_of(column: str, values) -> str:
    """The SQL of a CHECK that ``column`` holds one of ``values`` (an enum's)."""
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({quoted})"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Project(Base):
    __tablename__ = "projects"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    ignore_index: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # TrainingSource for jobs and exports; None = automatic (see Store.effective_training_source)
    training_source: Mapped[str | None] = mapped_column(String(12))
    # a reviewer may accept their own submission (one-person projects); default: refused
    allow_self_review: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # the app queues a fine-tuning job every N submitted annotations; None = off (the default)
    auto_finetune_every: Mapped[int | None] = mapped_column(Integer)
    # pixels that are none of the classes are predicted unlabelled (models.open_set); default off
    others_unlabelled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # taken out of every list (Store.remove_project); None = in use. Nothing of it is deleted
    removed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    __table_args__ = (CheckConstraint("ignore_index >= 0 AND ignore_index <= 255", name="ignore_range"),
                      CheckConstraint(one_of("training_source", TrainingSource), name="training_source"))


class LabelClass(Base):
    __tablename__ = "label_classes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    index: Mapped[int] = mapped_column("class_index", Integer)
    name: Mapped[str] = mapped_column(String(200))
    color: Mapped[str] = mapped_column(String(7))  # "#rrggbb"
    __table_args__ = (
        UniqueConstraint("project_id", "class_index", name="uq_label_classes_project_index"),
        UniqueConstraint("project_id", "name", name="uq_label_classes_project_name"),
        CheckConstraint("class_index >= 0 AND class_index <= 255", name="index_range"),
    )


class Image(Base):
    """One image of a project. ``revision``/``status``/``annotated_*`` mirror the
    latest annotation and ``uncertainty`` the latest prediction, so listing 10,000
    images is one indexed query. ``revision`` is also the optimistic lock: a save
    is a conditional ``UPDATE ... WHERE revision = base_revision``."""
    __tablename__ = "images"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    sha256: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(1000))
    format: Mapped[str] = mapped_column(String(16))
    normalised: Mapped[bool] = mapped_column(Boolean, default=False)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    split: Mapped[str] = mapped_column(String(8), default="none")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revision: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(12), default="unlabelled")
    annotated_by: Mapped[str | None] = mapped_column(String(200))
    annotated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    uncertainty: Mapped[float | None] = mapped_column(Float)
    # ReviewState of the latest submitted revision (None: nothing submitted); kept by
    # save_annotation (a submission -> pending) and review (the decision)
    review: Mapped[str | None] = mapped_column(String(8))
    # how much the model confidently disagreed with the latest submitted revision
    # (models.review; 0..1, higher = review first); NULL: not scored. A submission clears it.
    review_score: Mapped[float | None] = mapped_column(Float)
    # what the score was computed from (models.review.Evidence as JSON), so the queue can
    # be scored again among itself; cleared with the score
    review_evidence: Mapped[dict | None] = mapped_column(JSON(none_as_null=True))
    # when it was taken out of the project (0008); NULL: in it. A removed image keeps its
    # file, annotations and reviews, and leaves every list, queue, count, export and job
    # until it is restored (Store.remove_image / restore_image)
    removed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    __table_args__ = (
        UniqueConstraint("project_id", "sha256", name="uq_images_project_sha256"),
        CheckConstraint("split IN ('train', 'val', 'none')", name="split"),
        CheckConstraint("status IN ('unlabelled', 'draft', 'submitted')", name="status"),
        CheckConstraint(one_of("review", ReviewState), name="review"),
        Index("ix_images_project_status", "project_id", "status"),
        Index("ix_images_project_review", "project_id", "review"),
        Index("ix_images_project_uncertainty", "project_id", "uncertainty"),
        Index("ix_images_sha256", "sha256"),
        # the Explore screen's sort keys (0006)
        Index("ix_images_project_split", "project_id", "split"),
        Index("ix_images_project_annotated_by", "project_id", "annotated_by"),
        Index("ix_images_project_annotated_at", "project_id", "annotated_at"),
        Index("ix_images_project_review_score", "project_id", "review_score"),
    )


# the images a project shows: not taken out of it (Store.remove_image). Every query that
# lists, counts, queues, exports or trains on a project's images adds this condition.
IN_PROJECT = Image.removed_at.is_(None)


class Annotation(Base):
    """Every saved revision of an image's class map (PNG, mode L, lossless).
    The PNG lives in the row so a save is one transaction: a losing concurrent
    writer or a crash leaves nothing behind."""
    __tablename__ = "annotations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    revision: Mapped[int] = mapped_column(Integer)
    author: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(12))
    png: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    __table_args__ = (
        UniqueConstraint("image_id", "revision", name="uq_annotations_image_revision"),
        CheckConstraint("status IN ('draft', 'submitted')", name="status"),
        CheckConstraint("revision >= 1", name="revision_positive"),
    )


class ModelVersion(Base):
    __tablename__ = "model_versions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    name: Mapped[str | None] = mapped_column(String(200))
    weights_dir: Mapped[str] = mapped_column(String(1000))
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    is_active: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    __table_args__ = (
        # at most one active version per project, enforced by the database
        Index("uq_model_versions_active", "project_id", unique=True,
              sqlite_where=text("is_active"), postgresql_where=text("is_active")),
    )


class Prediction(Base):
    __tablename__ = "predictions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    png: Mapped[bytes] = mapped_column(LargeBinary)
    uncertainty: Mapped[float] = mapped_column(Float)
    # mean normalised entropy of the softmax over the label set (0 sure .. 1 all classes
    # alike); NULL for predictions made without it (before 0006, instant adaptation)
    entropy: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    __table_args__ = (
        UniqueConstraint("image_id", "model_version_id", name="uq_predictions_image_model"),
    )


class TrainingJob(Base):
    __tablename__ = "training_jobs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(12), default="queued")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    step: Mapped[int] = mapped_column(Integer, default=0)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    log_tail: Mapped[list[str]] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    base_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    result_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    __table_args__ = (
        CheckConstraint("status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')",
                        name="status"),
        # one queued-or-running job per project, enforced by the database
        Index("uq_training_jobs_active", "project_id", unique=True,
              sqlite_where=text("status IN ('queued', 'running')"),
              postgresql_where=text("status IN ('queued', 'running')")),
        Index("ix_training_jobs_status", "status"),
    )


class User(Base):
    """An account. ``name`` as given (whitespace collapsed); ``name_key`` its
    case-insensitive identity (``common.labels.name_key``: collapsed, casefolded),
    unique, so "Alice" and "alice" are one user on SQLite and PostgreSQL alike.
    ``password_hash`` is an argon2id hash (argon2-cffi), never the password."""
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    name_key: Mapped[str] = mapped_column(String(800), unique=True)
    password_hash: Mapped[str] = mapped_column(String(500))
    role: Mapped[str] = mapped_column(String(12))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # login throttling (issue 17): consecutive wrong passwords, when the last one was,
    # and a lockout only an admin lifts (Store.unlock_user); shared by every app process
    failed_logins: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    last_failed_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    locked: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # bumped when the password changes or the account is disabled: sessions logged in
    # under an older epoch end (the app's session check compares it)
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    __table_args__ = (CheckConstraint(one_of("role", Role), name="role"),)


class ProjectMember(Base):
    """Who works on a project (admins see every project without membership)."""
    __tablename__ = "project_members"
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    __table_args__ = (Index("ix_project_members_user_id", "user_id"),)


class Review(Base):
    """A review decision on one submitted annotation revision. Every decision is kept;
    an image's state is the latest decision on its latest submitted revision."""
    __tablename__ = "reviews"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    revision: Mapped[int] = mapped_column(Integer)
    decision: Mapped[str] = mapped_column(String(8))
    comment: Mapped[str] = mapped_column(Text)
    reviewer: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    __table_args__ = (
        ForeignKeyConstraint(["image_id", "revision"], ["annotations.image_id", "annotations.revision"],
                             name="fk_reviews_annotation", ondelete="CASCADE"),
        CheckConstraint(one_of("decision", ReviewDecision), name="decision"),
        # a rejection goes back to the annotator with a reason
        CheckConstraint("decision = 'accepted' OR length(trim(comment)) > 0", name="rejection_comment"),
        Index("ix_reviews_image_revision", "image_id", "revision", "id"),
    )


class Activity(Base):
    """Who did what and when. ``project_id`` is None for user administration;
    ``user_name`` None for the system (a job's promotion)."""
    __tablename__ = "activity"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    user_name: Mapped[str | None] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    __table_args__ = (
        CheckConstraint(one_of("action", Action), name="action"),
        Index("ix_activity_project_id", "project_id", "id"),
    )


class ImageMetrics(Base):
    """Per-image figures for the Explore screen (0006), computed in the background from
    the image's stored prediction by ``model_version_id`` (made at ``prediction_at``)
    and its annotation revision ``revision`` (0: none), so that a page of 10,000 images
    is one indexed query and nothing is recomputed when it is shown. Current when the
    version is the project's active one, ``revision`` is the image's and no newer
    prediction of that version exists (``Store.stale_metric_images``).
    ``entropy``: the prediction's mean normalised entropy; ``iou``: mean IoU of the
    prediction against the annotation over the classes either has (NULL without an
    annotation); ``accuracy``: share of the annotation's labelled pixels predicted right.
    ``thumb_pred`` / ``thumb_ann``: small JPEGs of the photo with the prediction /
    annotation over it, in the colours ``palette`` names."""
    __tablename__ = "image_metrics"
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id", ondelete="SET NULL"))
    prediction_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revision: Mapped[int] = mapped_column(Integer, default=0)
    entropy: Mapped[float | None] = mapped_column(Float)
    iou: Mapped[float | None] = mapped_column(Float)
    accuracy: Mapped[float | None] = mapped_column(Float)
    palette: Mapped[str] = mapped_column(String(64))
    thumb_pred: Mapped[bytes | None] = mapped_column(LargeBinary)
    thumb_ann: Mapped[bytes | None] = mapped_column(LargeBinary)
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    __table_args__ = (
        Index("ix_image_metrics_project_entropy", "project_id", "entropy"),
        Index("ix_image_metrics_project_iou", "project_id", "iou"),
        Index("ix_image_metrics_model_version_id", "model_version_id"),
    )


class ImageClassArea(Base):
    """The share of an image each class covers in its prediction (``source`` "p") or
    annotation ("a"), for "at least 1% bicyclist" (0006); classes with no pixel have no row."""
    __tablename__ = "image_class_areas"
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    source: Mapped[str] = mapped_column(String(1), primary_key=True)
    class_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    share: Mapped[float] = mapped_column(Float)
    __table_args__ = (
        CheckConstraint("source IN ('p', 'a')", name="source"),
        Index("ix_image_class_areas_lookup", "project_id", "source", "class_index", "share"),
    )


class ImageConfusion(Base):
    """Per-image confusion counts (0006): pixels annotated ``true_class`` and predicted
    ``pred_class`` (the image metrics' prediction and revision; void pixels left out;
    pairs with no pixel have no row). Summed over a split they are the confusion
    matrix; ordered by ``pixels`` they are the images behind one cell."""
    __tablename__ = "image_confusion"
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    true_class: Mapped[int] = mapped_column(Integer, primary_key=True)
    pred_class: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    pixels: Mapped[int] = mapped_column(Integer)
    __table_args__ = (
        Index("ix_image_confusion_cell", "project_id", "true_class", "pred_class", "pixels"),
    )
