"""What :class:`storage.Store` hands out: frozen dataclasses (projects, classes, images,
annotations, predictions, model versions, jobs, users, reviews, activity) and the
helpers that turn ORM rows (or raw listing rows) into them. Never ORM objects.
"""
from __future__ import annotations

import gc
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
from sqlalchemy import String, type_coerce

from .models import Activity, Image, ModelVersion, Review, Role, TrainingJob, User


@dataclass(frozen=True)
class ExploreRow:
    """One image of an Explore page (``Store.explore_images``): the image's columns,
    its stored metrics (None where not computed; ``metrics_version`` / ``metrics_revision``
    say what they were computed from), both thumbnails (JPEG bytes) and, for a
    confusion cell, the cell's ``pixels`` in the image."""
    id: int
    filename: str
    status: str
    split: str
    review: str | None
    annotated_by: str | None
    annotated_at: datetime | None
    created_at: datetime | None
    review_score: float | None
    revision: int
    width: int
    height: int
    entropy: float | None
    iou: float | None
    accuracy: float | None
    metrics_version: int | None
    metrics_revision: int | None
    thumb_pred: bytes | None = field(default=None, repr=False)
    thumb_ann: bytes | None = field(default=None, repr=False)
    pixels: int | None = None


@dataclass(frozen=True)
class ClassInfo:
    index: int
    name: str
    color: tuple[int, int, int]


@dataclass(frozen=True)
class ProjectInfo:
    id: int
    name: str
    ignore_index: int
    classes: tuple[ClassInfo, ...]   # ordered by index
    created_at: datetime
    # the explicit training source ("accepted" / "submitted"); None = automatic, see
    # Store.effective_training_source
    training_source: str | None = None
    # a reviewer may accept their own submission (one-person projects); default False
    allow_self_review: bool = False
    # the app queues a fine-tuning job every N submitted annotations; None = off
    auto_finetune_every: int | None = None
    # pixels that are none of the classes are predicted unlabelled (models.open_set); default False
    others_unlabelled: bool = False
    # taken out of every list (Store.remove_project); Store.restore_project puts it back
    removed: bool = False

    @property
    def class_names(self) -> list[str]:
        return [c.name for c in self.classes]

    @property
    def class_indices(self) -> list[int]:
        return [c.index for c in self.classes]

    @property
    def palette(self) -> np.ndarray:
        """(K, 3) uint8 colours in class order."""
        return np.array([c.color for c in self.classes], dtype=np.uint8).reshape(-1, 3)

    def color_lut(self, ignore_color: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
        """(256, 3) uint8 lookup table: ``lut[class_map]`` is the colour image."""
        lut = np.zeros((256, 3), dtype=np.uint8)
        lut[self.ignore_index] = ignore_color
        for c in self.classes:
            lut[c.index] = c.color
        return lut

    def valid_values(self) -> np.ndarray:
        v = np.zeros(256, dtype=bool)
        v[self.class_indices] = True
        v[self.ignore_index] = True
        return v


@dataclass(frozen=True)
class ImageInfo:
    id: int
    project_id: int
    sha256: str
    filename: str
    width: int
    height: int
    split: str
    format: str
    status: str                     # unlabelled / draft / submitted (latest revision)
    revision: int                   # latest annotation revision, 0 when none
    annotated_by: str | None
    annotated_at: datetime | None
    uncertainty: float | None       # of the latest saved prediction
    created_at: datetime
    normalised: bool = False        # EXIF rotation / mode conversion was applied on decode
    duplicate: bool = False         # add_image found the same bytes already in the project
    # review state of the latest submitted revision: "pending" / "accepted" / "rejected",
    # None when nothing was submitted (a later draft does not change it)
    review: str | None = None
    # the model's confident disagreement with that revision (models.review), None: not scored
    review_score: float | None = None
    # taken out of the project (Store.remove_image): only get_image, add_image and
    # removed_images return such an image; lists and queues leave it out
    removed: bool = False


@dataclass(frozen=True, eq=False)
class AnnotationInfo:
    image_id: int
    revision: int                   # 0 when the image has no annotation
    author: str | None
    status: str                     # unlabelled / draft / submitted
    saved_at: datetime | None
    class_map: np.ndarray | None = field(default=None, repr=False)


@dataclass(frozen=True, eq=False)
class PredictionInfo:
    image_id: int
    model_version_id: int
    uncertainty: float
    created_at: datetime
    class_map: np.ndarray = field(repr=False)
    entropy: float | None = None   # mean normalised entropy (None: not recorded)


@dataclass(frozen=True)
class ModelVersionInfo:
    id: int
    project_id: int
    parent_id: int | None
    name: str | None
    weights_dir: str
    metrics: dict[str, Any] | None
    is_active: bool
    created_at: datetime


@dataclass(frozen=True)
class UserInfo:
    """An account, without its password hash."""
    id: int
    name: str
    role: str                       # "admin" / "reviewer" / "annotator" (models.Role)
    disabled: bool
    created_at: datetime
    locked: bool = False            # too many wrong passwords: an admin unlocks (issue 17)
    failed_logins: int = 0          # consecutive wrong passwords
    session_epoch: int = 0          # sessions logged in under an older epoch have ended

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN


@dataclass(frozen=True)
class ReviewInfo:
    id: int
    image_id: int
    revision: int                   # the submitted annotation revision decided on
    decision: str                   # "accepted" / "rejected"
    comment: str                    # "" for an acceptance without a comment
    reviewer: str
    created_at: datetime


@dataclass(frozen=True)
class ActivityInfo:
    id: int
    project_id: int | None          # None: user administration
    user: str | None                # who; None: the system (a job's promotion)
    action: str                     # models.Action
    subject: str                    # e.g. "image 12 revision 3"
    details: dict[str, Any] | None
    created_at: datetime


@dataclass(frozen=True)
class CorrectionInfo:
    """What a labeller changed of the prediction they started from, recorded with a save."""
    image_id: int
    revision: int
    author: str | None
    saved_at: datetime
    changed: float                  # share of the image's labelled pixels changed (0..1)
    fixes: int                      # separate changed regions of >= 20 px
    model_version: int | None       # the version whose prediction was shown


@dataclass(frozen=True)
class JobInfo:
    id: int
    project_id: int
    status: str
    progress: float
    step: int
    params: dict[str, Any]
    metrics: dict[str, Any] | None
    log_tail: tuple[str, ...]
    error: str | None
    base_version_id: int | None
    result_version_id: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None


# --------------------------------------------------------------------------- row -> info

def _utc(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def _image_info(im: Image, duplicate: bool = False) -> ImageInfo:
    return ImageInfo(im.id, im.project_id, im.sha256, im.filename, im.width, im.height, im.split,
                     im.format, im.status, im.revision, im.annotated_by, _utc(im.annotated_at),
                     im.uncertainty, _utc(im.created_at), im.normalised, duplicate, im.review,
                     im.review_score, im.removed_at is not None)


def _user_info(u: User) -> UserInfo:
    return UserInfo(u.id, u.name, u.role, bool(u.disabled), _utc(u.created_at), bool(u.locked),
                    int(u.failed_logins or 0), int(u.session_epoch or 0))


def _review_info(r: Review) -> ReviewInfo:
    return ReviewInfo(r.id, r.image_id, r.revision, r.decision, r.comment, r.reviewer,
                      _utc(r.created_at))


def _activity_info(a: Activity) -> ActivityInfo:
    return ActivityInfo(a.id, a.project_id, a.user_name, a.action, a.subject, a.details,
                        _utc(a.created_at))


def _mv_info(m: ModelVersion) -> ModelVersionInfo:
    return ModelVersionInfo(m.id, m.project_id, m.parent_id, m.name, m.weights_dir, m.metrics,
                            bool(m.is_active), _utc(m.created_at))


def _job_info(j: TrainingJob) -> JobInfo:
    return JobInfo(j.id, j.project_id, j.status, float(j.progress), int(j.step), dict(j.params or {}),
                   j.metrics, tuple(j.log_tail or ()), j.error, j.base_version_id,
                   j.result_version_id, _utc(j.created_at), _utc(j.started_at),
                   _utc(j.finished_at), _utc(j.heartbeat_at))


_IMAGE_COLS = (Image.id, Image.project_id, Image.sha256, Image.filename, Image.width, Image.height,
               Image.split, Image.format, Image.status, Image.revision, Image.annotated_by,
               Image.annotated_at, Image.uncertainty, Image.created_at, Image.normalised, Image.review,
               Image.review_score)


def _list_columns(dialect: str) -> tuple:
    """Image columns for listing; on SQLite the two timestamps come back as their raw
    ISO text (SQLAlchemy's storage format, always UTC here) to be parsed in C."""
    if dialect != "sqlite":
        return _IMAGE_COLS
    cols = list(_IMAGE_COLS)
    cols[11] = type_coerce(Image.annotated_at, String)
    cols[13] = type_coerce(Image.created_at, String)
    return tuple(cols)


_IMAGE_FIELDS = ("id", "project_id", "sha256", "filename", "width", "height", "split", "format",
                 "status", "revision", "annotated_by", "annotated_at", "uncertainty", "created_at",
                 "normalised", "review", "review_score")


def _rows_to_image_infos(rows: Iterable[Any]) -> list[ImageInfo]:
    """Fast path for listing 10,000 images: fill the frozen dataclasses' ``__dict__``
    directly (a frozen ``__init__`` costs one ``object.__setattr__`` per field)."""
    utc = timezone.utc
    fromiso = datetime.fromisoformat
    new = object.__new__
    fields = _IMAGE_FIELDS
    out = []
    # 10,000 new objects trigger many needless gen-0 collections (~25 ms here)
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for r in rows:
            d = dict(zip(fields, r))
            a, c = r[11], r[13]
            # SQLite: raw "YYYY-MM-DD HH:MM:SS.ffffff" UTC strings (see _list_columns),
            # parsed in C; 4x cheaper than datetime.replace(tzinfo=...)
            if a is not None:
                if a.__class__ is str:
                    d["annotated_at"] = fromiso(a + "+00:00")
                elif a.tzinfo is None:
                    d["annotated_at"] = a.replace(tzinfo=utc)
            if c.__class__ is str:
                d["created_at"] = fromiso(c + "+00:00")
            elif c.tzinfo is None:
                d["created_at"] = c.replace(tzinfo=utc)
            d["normalised"] = bool(r[14])
            d["duplicate"] = False
            obj = new(ImageInfo)
            obj.__dict__.update(d)
            out.append(obj)
    finally:
        if was_enabled:
            gc.enable()
    return out


def _row_to_image_info(r: Any) -> ImageInfo:
    return _rows_to_image_infos([r])[0]
