"""The narrow storage API used by the app and the fine-tuning jobs.

Every public method opens exactly one ``Session`` for its operation and returns
frozen dataclasses and numpy arrays, never ORM objects or sessions.
"""
from __future__ import annotations

import gc
import json
import secrets
import time
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import String, delete, exists, func, select, type_coerce, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased, sessionmaker

from common import colors, labels

from . import db, imaging
from .errors import (ConflictError, InvalidImageError, JobStateError,
                     NotFoundError, ReviewError, StorageError)
from .files import BlobStore
from .models import (SPLITS, Action, Activity, Annotation, Image, LabelClass, ModelVersion,
                     Prediction, Project, ProjectMember, Review, ReviewDecision, ReviewState, Role,
                     TrainingJob, TrainingSource, User, utcnow)


class ValidationError(StorageError, ValueError):
    """Invalid argument (empty/duplicate class names, unknown split, ...)."""


# --------------------------------------------------------------------------- dataclasses

# The queue filters people pick (the app's filter menu, Store.next_image): each names the
# image statuses it shows; "rejected" is the review state (back to the annotator) and
# "review" the reviewer's queue, so neither is a status set.
FILTER_STATUSES: dict[str, tuple[str, ...]] = {
    "unlabelled": ("unlabelled",), "draft": ("draft",), "unsubmitted": ("unlabelled", "draft"),
    "submitted": ("submitted",), "any": ("unlabelled", "draft", "submitted"),
}
QUEUE_FILTERS = ("unlabelled", "draft", "unsubmitted", "submitted", "rejected", "review", "any")

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


# --------------------------------------------------------------------------- helpers

LOG_TAIL_LINES = 200
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024     # argon2 takes any length; this bounds the work per login


def _utc(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def _color_to_hex(color: Any) -> str:
    try:
        return colors.as_hex(color)
    except ValueError as e:
        raise ValidationError(str(e)) from None


def _hex_to_rgb(h: str) -> tuple[int, int, int]:
    return colors.as_rgb(h)


@contextmanager
def _label_rule():
    """Label-set rule violations (common.labels) surface as this module's ValidationError."""
    try:
        yield
    except labels.LabelSetError as e:
        raise ValidationError(str(e)) from None


def _clean_name(name: Any, what: str = "class name") -> str:
    with _label_rule():
        return labels.clean_class_name(name, what=what)


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValidationError(f"split must be one of {SPLITS}, got {split!r}")
    return split


def _enum_value(enum: type, value: Any, what: str) -> str:
    try:
        return enum(value).value
    except ValueError:
        raise ValidationError(f"{what} must be one of {', '.join(enum)}, got {value!r}") from None


def _check_password(password: Any) -> str:
    """The password as given, or ValidationError; messages never contain it."""
    if not isinstance(password, str):
        raise ValidationError(f"a password must be text, got {type(password).__name__}")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValidationError(f"a password has at most {MAX_PASSWORD_LENGTH} characters")
    return password


def _image_info(im: Image, duplicate: bool = False) -> ImageInfo:
    return ImageInfo(im.id, im.project_id, im.sha256, im.filename, im.width, im.height, im.split,
                     im.format, im.status, im.revision, im.annotated_by, _utc(im.annotated_at),
                     im.uncertainty, _utc(im.created_at), im.normalised, duplicate, im.review,
                     im.review_score)


def _user_info(u: User) -> UserInfo:
    return UserInfo(u.id, u.name, u.role, bool(u.disabled), _utc(u.created_at))


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


JOB_TRANSITIONS = {
    "queued": ("running", "cancelled"),
    "running": ("succeeded", "failed", "cancelled"),
    "succeeded": (), "failed": (), "cancelled": (),
}


# --------------------------------------------------------------------------- the store

class Store:
    """All persistent state of the studio.

    ``url=None`` uses ``sqlite:///<data_dir>/studio.db``; any SQLAlchemy URL works
    (``postgresql+psycopg://user:pw@host/db``). Image files live under
    ``<data_dir>/images`` (content-addressed by sha256) whatever the database is.
    The schema is upgraded to the latest Alembic revision on construction.
    ``password_hasher``: an ``argon2.PasswordHasher`` for account passwords (default:
    argon2-cffi's defaults; a login rehashes a hash made with other parameters).
    """

    def __init__(self, url: str | None = None, data_dir: str | Path = "data", *,
                 max_image_megapixels: float = imaging.DEFAULT_MAX_MEGAPIXELS,
                 min_image_side: int = imaging.MIN_IMAGE_SIDE,
                 sqlite_synchronous: str = "FULL", migrate: bool = True,
                 password_hasher: PasswordHasher | None = None):
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.url = url or f"sqlite:///{(self.data_dir / 'studio.db').resolve()}"
        self.max_image_megapixels = float(max_image_megapixels)
        self.min_image_side = int(min_image_side)   # px; add_image refuses narrower/shorter images
        self.engine = db.make_engine(self.url, sqlite_synchronous=sqlite_synchronous)
        if migrate:
            db.upgrade(self.engine)
        self._session = sessionmaker(self.engine, expire_on_commit=False)
        self.blobs = BlobStore(self.data_dir / "images")
        # argon2id with argon2-cffi's defaults (RFC 9106 low-memory profile) unless given
        self.password_hasher = password_hasher or PasswordHasher()
        self._dummy_hash: str | None = None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ internals

    @staticmethod
    def _project_row(s: Session, project: str | int) -> Project:
        if isinstance(project, int):
            row = s.get(Project, project)
        else:
            row = s.scalar(select(Project).where(Project.name == project))
        if row is None:
            raise NotFoundError(f"project {project!r} does not exist")
        return row

    @staticmethod
    def _project_info(s: Session, p: Project) -> ProjectInfo:
        classes = s.scalars(select(LabelClass).where(LabelClass.project_id == p.id)
                            .order_by(LabelClass.index)).all()
        return ProjectInfo(p.id, p.name, p.ignore_index,
                           tuple(ClassInfo(c.index, c.name, _hex_to_rgb(c.color)) for c in classes),
                           _utc(p.created_at), p.training_source)

    @staticmethod
    def _version_row(s: Session, version_id: int, project_id: int | None, label: str, where: str) -> ModelVersion:
        """The model version, which must belong to ``project_id`` (None: any project)."""
        mv = s.get(ModelVersion, version_id)
        if mv is None or (project_id is not None and mv.project_id != project_id):
            raise NotFoundError(f"{label} {version_id} does not exist in {where}")
        return mv

    @staticmethod
    def _image_row(s: Session, image_id: int) -> Image:
        row = s.get(Image, image_id)
        if row is None:
            raise NotFoundError(f"image {image_id} does not exist")
        return row

    # ------------------------------------------------------------------ projects

    def create_project(self, name: str, classes: Sequence[str | dict[str, Any]],
                       ignore_index: int = 255) -> ProjectInfo:
        """Create a project. ``classes``: names, or dicts with ``name`` and optional
        ``color`` ('#rrggbb' or (r, g, b)) and ``index``. Without indices, classes are
        numbered 0, 1, ... in order, skipping ``ignore_index``."""
        name = _clean_name(name, "project name")
        if not isinstance(ignore_index, int) or not 0 <= ignore_index <= 255:
            raise ValidationError(f"ignore_index must be an integer in 0..255, got {ignore_index!r}")
        if not classes:
            raise ValidationError("a project needs at least one class")
        specs = [{"name": c} if isinstance(c, str) else dict(c) for c in classes]
        for i, (spec, c) in enumerate(zip(specs, classes)):
            if "name" not in spec:
                raise ValidationError(f"class #{i} has no name: {c!r}")
        with _label_rule():
            names = labels.validate_class_names([spec["name"] for spec in specs])
        indices: list[int] = []
        next_index = 0
        for spec in specs:
            if spec.get("index") is not None:
                idx = int(spec["index"])
            else:
                idx = next_index
                if idx == ignore_index:
                    idx += 1
            next_index = idx + 1
            indices.append(idx)
        given = [_color_to_hex(spec["color"]) if spec.get("color") is not None else None for spec in specs]
        rows = list(zip(indices, names, colors.fill_colors(names, given)))
        self._check_indices(rows, ignore_index)
        with self._session() as s, s.begin():
            if s.scalar(select(Project.id).where(Project.name == name)) is not None:
                raise ValidationError(f"project {name!r} already exists")
            p = Project(name=name, ignore_index=ignore_index, created_at=utcnow())
            s.add(p)
            s.flush()
            s.add_all(LabelClass(project_id=p.id, index=i, name=n, color=c) for i, n, c in rows)
            try:
                s.flush()
            except IntegrityError as e:
                raise ValidationError(f"project {name!r} could not be created: {e.orig}") from None
            return self._project_info(s, p)

    @staticmethod
    def _check_indices(rows: list[tuple[int, str, str]], ignore_index: int) -> None:
        seen_idx: set[int] = set()
        for idx, cname, _ in rows:
            if not 0 <= idx <= 255:
                raise ValidationError(f"class {cname!r}: index {idx} outside 0..255")
            if idx == ignore_index:
                raise ValidationError(f"class {cname!r}: index {idx} is the ignore index")
            if idx in seen_idx:
                raise ValidationError(f"duplicate class index {idx}")
            seen_idx.add(idx)

    def get_project(self, project: str | int) -> ProjectInfo:
        with self._session() as s:
            return self._project_info(s, self._project_row(s, project))

    def list_projects(self) -> list[ProjectInfo]:
        with self._session() as s:
            return [self._project_info(s, p) for p in s.scalars(select(Project).order_by(Project.id))]

    def add_class(self, project: str | int, name: str, color: Any = None) -> ProjectInfo:
        """Append a class with the next free index (never the ignore index)."""
        cname = _clean_name(name)
        hexc = _color_to_hex(color) if color is not None else None
        with self._session() as s, s.begin():
            p = self._project_row(s, project)
            existing = s.execute(select(LabelClass.index, LabelClass.name, LabelClass.color)
                                 .where(LabelClass.project_id == p.id)).all()
            with _label_rule():
                labels.check_new_class_name(cname, [n for _, n, _ in existing])
            used = {i for i, _, _ in existing} | {p.ignore_index}
            idx = next((i for i in range(max((i for i, _, _ in existing), default=-1) + 1, 256)
                        if i not in used), None)
            if idx is None:
                idx = next((i for i in range(256) if i not in used), None)
            if idx is None:
                raise ValidationError("no free class index left (0..255)")
            s.add(LabelClass(project_id=p.id, index=idx, name=cname,
                             color=hexc or colors.default_color_for(cname, [c for _, _, c in existing])))
            try:
                s.flush()
            except IntegrityError:
                raise ValidationError(f"class {cname!r} was added concurrently") from None
            return self._project_info(s, p)

    def rename_class(self, project: str | int, index: int, new_name: str) -> ProjectInfo:
        cname = _clean_name(new_name)
        with self._session() as s, s.begin():
            p = self._project_row(s, project)
            rows = s.scalars(select(LabelClass).where(LabelClass.project_id == p.id)).all()
            target = next((c for c in rows if c.index == index), None)
            if target is None:
                raise NotFoundError(f"project {p.name!r} has no class with index {index}")
            with _label_rule():
                labels.check_new_class_name(cname, [c.name for c in rows if c.index != index])
            target.name = cname
            s.flush()
            return self._project_info(s, p)

    def set_class_color(self, project: str | int, index: int, color: Any) -> ProjectInfo:
        hexc = _color_to_hex(color)
        with self._session() as s, s.begin():
            p = self._project_row(s, project)
            n = s.execute(update(LabelClass).where(LabelClass.project_id == p.id,
                                                   LabelClass.index == index).values(color=hexc)).rowcount
            if n != 1:
                raise NotFoundError(f"project {p.name!r} has no class with index {index}")
            return self._project_info(s, p)

    # ------------------------------------------------------------------ images

    def add_image(self, project: str | int, data: bytes | str | Path, filename: str | None = None,
                  split: str = "none") -> ImageInfo:
        """Validate, normalise-check and store an image. Invalid input (not an allowed
        format, over ``max_image_megapixels``, a side under ``min_image_side`` px) raises
        :class:`InvalidImageError` before anything is written. The same bytes added
        twice to one project return the existing image with ``duplicate=True``."""
        _check_split(split)
        if isinstance(data, (str, Path)):
            path = Path(data)
            filename = filename or path.name
            data = path.read_bytes()
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise InvalidImageError(f"image data must be bytes or a path, got {type(data).__name__}")
        data = bytes(data)
        filename = (filename or "image").strip() or "image"
        decoded = imaging.decode_image(data, max_megapixels=self.max_image_megapixels,
                                       min_side=self.min_image_side)
        h, w = decoded.rgb.shape[:2]
        sha = BlobStore.digest(data)
        with self._session() as s:
            pid = self._project_row(s, project).id
            existing = s.scalar(select(Image).where(Image.project_id == pid, Image.sha256 == sha))
            if existing is not None:
                return _image_info(existing, duplicate=True)
            # file first (temp + rename), row second: a crash in between leaves an
            # orphan file for sweep_orphans(), never a row without its file
            self.blobs.write(sha, data)
            im = Image(project_id=pid, sha256=sha, filename=filename[:1000], format=decoded.format,
                       normalised=decoded.normalised, width=w, height=h, split=split,
                       created_at=utcnow(), revision=0, status="unlabelled")
            s.add(im)
            try:
                s.commit()
                return _image_info(im)
            except IntegrityError:
                # lost a race against a concurrent add of the same bytes: unique
                # (project_id, sha256) kept it to one row; the file is shared
                s.rollback()
                existing = s.scalar(select(Image).where(Image.project_id == pid, Image.sha256 == sha))
                if existing is None:
                    raise
                return _image_info(existing, duplicate=True)

    def get_image(self, image_id: int) -> ImageInfo:
        with self._session() as s:
            return _image_info(self._image_row(s, image_id))

    def image_bytes(self, image_id: int) -> bytes:
        """The original file bytes, verified against their sha256."""
        with self._session() as s:
            sha = self._image_row(s, image_id).sha256
        data = self.blobs.read(sha)
        if BlobStore.digest(data) != sha:
            raise StorageError(f"image {image_id}: file {self.blobs.path(sha)} is corrupt (sha256 mismatch)")
        return data

    def load_image(self, image_id: int) -> np.ndarray:
        """(H, W, 3) uint8 RGB, EXIF orientation applied."""
        data = self.image_bytes(image_id)
        return imaging.decode_image(data, max_megapixels=float("inf"), min_side=1).rgb

    def list_images(self, project: str | int, status: str | None = None, split: str | None = None,
                    order: str = "id", limit: int | None = None, offset: int = 0,
                    review: str | None = None) -> list[ImageInfo]:
        """Images with their annotation status, review state and latest uncertainty, in
        one query. ``order``: "id", "uncertainty" (most uncertain first) or
        "review_score" (the model's strongest disagreement first, unscored last);
        ``review``: only images in that review state ("pending" / "accepted" / "rejected")."""
        with self._session() as s:
            pid = self._project_row(s, project).id
            q = select(*_list_columns(self.dialect)).where(Image.project_id == pid)
            if status is not None:
                q = q.where(Image.status == status)
            if review is not None:
                q = q.where(Image.review == _enum_value(ReviewState, review, "review"))
            if split is not None:
                q = q.where(Image.split == _check_split(split))
            if order == "uncertainty":
                q = q.order_by(Image.uncertainty.desc().nulls_last(), Image.id)
            elif order == "review_score":
                q = q.order_by(Image.review_score.desc().nulls_last(), Image.id)
            elif order == "id":
                q = q.order_by(Image.id)
            else:
                raise ValidationError(f"order must be 'id', 'uncertainty' or 'review_score', got {order!r}")
            if limit is not None:
                q = q.limit(limit)
            if offset:
                q = q.offset(offset)
            was_enabled = gc.isenabled()
            gc.disable()   # fetching 10,000 rows allocates ~200k objects: skip needless GC passes
            try:
                return _rows_to_image_infos(s.connection().execute(q).fetchall())
            finally:
                if was_enabled:
                    gc.enable()

    def count_images(self, project: str | int) -> dict[str, int]:
        with self._session() as s:
            pid = self._project_row(s, project).id
            rows = s.execute(select(Image.status, func.count()).where(Image.project_id == pid)
                             .group_by(Image.status)).all()
        out = {"unlabelled": 0, "draft": 0, "submitted": 0}
        out.update({k: int(v) for k, v in rows})
        out["total"] = sum(out.values())
        return out

    def set_split(self, image_id: int, split: str) -> ImageInfo:
        _check_split(split)
        with self._session() as s, s.begin():
            im = self._image_row(s, image_id)
            im.split = split
            return _image_info(im)

    def next_image(self, project: str | int, filter: str | None = None,
                   split: str | None = None, exclude: Iterable[int] = ()) -> ImageInfo | None:
        """Active-learning queue: the most uncertain image first (images without a
        prediction last, then by id). ``filter``: "unlabelled" (default), "draft",
        "unsubmitted" (unlabelled or draft), "rejected" (review state rejected: back to
        the annotator) or "any"."""
        statuses = FILTER_STATUSES.get(filter or "unlabelled") if filter != "submitted" else None
        if filter == "rejected":
            cond = Image.review == ReviewState.REJECTED.value
        elif statuses is None:
            raise ValidationError(f"filter must be unlabelled/draft/unsubmitted/rejected/any, got {filter!r}")
        else:
            cond = Image.status.in_(statuses)
        with self._session() as s:
            pid = self._project_row(s, project).id
            q = (select(*_list_columns(self.dialect)).where(Image.project_id == pid, cond)
                 .order_by(Image.uncertainty.desc().nulls_last(), Image.id).limit(1))
            if split is not None:
                q = q.where(Image.split == _check_split(split))
            ex = list(exclude)
            if ex:
                q = q.where(Image.id.not_in(ex))
            r = s.execute(q).first()
            return _row_to_image_info(r) if r is not None else None

    def sweep_orphans(self, min_age_s: float = 3600.0) -> list[Path]:
        """Delete image files (and stale temp files) that no row references and that
        are older than ``min_age_s`` (the age guards files of adds in progress)."""
        cutoff = time.time() - min_age_s
        with self._session() as s:
            referenced = set(s.scalars(select(Image.sha256).distinct()))
        removed = []
        for path, sha, mtime in list(self.blobs.iter_files()):
            if mtime > cutoff or (sha is not None and sha in referenced):
                continue
            path.unlink(missing_ok=True)
            removed.append(path)
        return removed

    # ------------------------------------------------------------------ annotations

    def _validated_map(self, s: Session, im: Image, class_map: Any) -> np.ndarray:
        p = s.get(Project, im.project_id)
        info = self._project_info(s, p)
        return imaging.validate_class_map(class_map, im.height, im.width, info.valid_values())

    def save_annotation(self, image_id: int, class_map: np.ndarray, author: str,
                        status: str = "draft", base_revision: int = 0) -> AnnotationInfo:
        """Save a new revision (``base_revision + 1``). Raises :class:`ConflictError`
        naming who saved and when if the latest revision is not ``base_revision``;
        nothing is overwritten. Every revision stays readable. A submitted revision
        makes the image's review state "pending" (a draft leaves it as it is); the save
        is recorded in the activity log (``revision_saved``, by ``author``) in the same
        transaction."""
        if status not in ("draft", "submitted"):
            raise ValidationError(f"status must be 'draft' or 'submitted', got {status!r}")
        author = _clean_name(author, "author")
        if not isinstance(base_revision, int) or base_revision < 0:
            raise ValidationError(f"base_revision must be an integer >= 0, got {base_revision!r}")
        with self._session() as s:
            im = self._image_row(s, image_id)
            cm = self._validated_map(s, im, class_map)
            png = imaging.encode_class_map(cm)
            new_rev = base_revision + 1
            now = utcnow()
            # The optimistic lock: a conditional UPDATE is atomic on SQLite (one writer)
            # and PostgreSQL (row lock, WHERE re-checked after the other commit), so only
            # one writer moves revision base -> base+1; unique (image_id, revision) backs it up.
            values: dict[str, Any] = dict(revision=new_rev, status=status, annotated_by=author,
                                          annotated_at=now)
            if status == "submitted":
                values["review"] = ReviewState.PENDING.value   # a new submission awaits review
                values["review_score"] = None                   # and a new score
                values["review_evidence"] = None
            try:
                n = s.execute(
                    update(Image).where(Image.id == image_id, Image.revision == base_revision)
                    .values(**values)
                    .execution_options(synchronize_session=False)).rowcount
                if n == 1:
                    s.add(Annotation(image_id=image_id, revision=new_rev, author=author,
                                     status=status, png=png, created_at=now))
                    self._record(s, Action.REVISION_SAVED, author, im.project_id,
                                 f"image {image_id} revision {new_rev}",
                                 {"image_id": image_id, "revision": new_rev, "status": status}, now)
                    s.flush()
            except IntegrityError:
                n = 0
            if n != 1:
                s.rollback()
                latest = s.get(Image, image_id, populate_existing=True)
                if latest is None:
                    raise NotFoundError(f"image {image_id} does not exist")
                raise ConflictError(image_id, base_revision, latest.revision, latest.annotated_by,
                                    _utc(latest.annotated_at))
            s.commit()
            return AnnotationInfo(image_id, new_rev, author, status, now, cm.copy())

    def get_annotation(self, image_id: int, revision: int | None = None) -> AnnotationInfo:
        """The latest (or the given) revision with its class map; ``revision == 0`` and
        ``class_map is None`` when the image has no annotation yet."""
        with self._session() as s:
            im = self._image_row(s, image_id)
            rev = im.revision if revision is None else revision
            if rev == 0 and revision is None:
                return AnnotationInfo(image_id, 0, None, "unlabelled", None, None)
            a = s.scalar(select(Annotation).where(Annotation.image_id == image_id,
                                                  Annotation.revision == rev))
            if a is None:
                raise NotFoundError(f"image {image_id} has no annotation revision {rev}")
            return AnnotationInfo(image_id, a.revision, a.author, a.status, _utc(a.created_at),
                                  imaging.decode_class_map(a.png))

    def list_annotation_revisions(self, image_id: int) -> list[AnnotationInfo]:
        """All revisions, oldest first, without class maps (use get_annotation)."""
        with self._session() as s:
            self._image_row(s, image_id)
            rows = s.execute(select(Annotation.revision, Annotation.author, Annotation.status,
                                    Annotation.created_at).where(Annotation.image_id == image_id)
                             .order_by(Annotation.revision)).all()
            return [AnnotationInfo(image_id, r, a, st, _utc(t)) for r, a, st, t in rows]

    # ------------------------------------------------------------------ predictions

    def save_prediction(self, image_id: int, model_version_id: int, class_map: np.ndarray,
                        uncertainty: float) -> PredictionInfo:
        """Store (or replace) the prediction of one model version for one image;
        the image's ``uncertainty`` becomes this one (drives ``next_image``)."""
        u = float(uncertainty)
        if not np.isfinite(u):
            raise ValidationError(f"uncertainty must be a finite number, got {uncertainty!r}")
        with self._session() as s, s.begin():
            im = self._image_row(s, image_id)
            self._version_row(s, model_version_id, im.project_id, "model version", "the image's project")
            cm = self._validated_map(s, im, class_map)
            png = imaging.encode_class_map(cm)
            now = utcnow()
            row = s.scalar(select(Prediction).where(Prediction.image_id == image_id,
                                                    Prediction.model_version_id == model_version_id))
            if row is None:
                s.add(Prediction(image_id=image_id, model_version_id=model_version_id, png=png,
                                 uncertainty=u, created_at=now))
            else:
                row.png, row.uncertainty, row.created_at = png, u, now
            im.uncertainty = u
            return PredictionInfo(image_id, model_version_id, u, now, cm.copy())

    def get_prediction(self, image_id: int, model_version_id: int | None = None) -> PredictionInfo | None:
        """The prediction of ``model_version_id``, or the most recent one; None if none."""
        with self._session() as s:
            self._image_row(s, image_id)
            q = select(Prediction).where(Prediction.image_id == image_id)
            if model_version_id is not None:
                q = q.where(Prediction.model_version_id == model_version_id)
            row = s.scalar(q.order_by(Prediction.created_at.desc(), Prediction.id.desc()).limit(1))
            if row is None:
                return None
            return PredictionInfo(image_id, row.model_version_id, row.uncertainty,
                                  _utc(row.created_at), imaging.decode_class_map(row.png))

    # ------------------------------------------------------------------ model versions

    def add_model_version(self, project: str | int, weights_dir: str | Path, parent_id: int | None = None,
                          metrics: dict[str, Any] | None = None, activate: bool = False,
                          name: str | None = None) -> ModelVersionInfo:
        with self._session() as s, s.begin():
            p = self._project_row(s, project)
            if parent_id is not None:
                self._version_row(s, parent_id, p.id, "parent model version", repr(p.name))
            if activate:
                s.execute(update(ModelVersion).where(ModelVersion.project_id == p.id,
                                                     ModelVersion.is_active.is_(True))
                          .values(is_active=False).execution_options(synchronize_session=False))
            mv = ModelVersion(project_id=p.id, parent_id=parent_id, name=name,
                              weights_dir=str(weights_dir), metrics=metrics, is_active=bool(activate),
                              created_at=utcnow())
            s.add(mv)
            s.flush()
            return _mv_info(mv)

    def get_model_version(self, version_id: int) -> ModelVersionInfo:
        with self._session() as s:
            mv = s.get(ModelVersion, version_id)
            if mv is None:
                raise NotFoundError(f"model version {version_id} does not exist")
            return _mv_info(mv)

    def list_model_versions(self, project: str | int) -> list[ModelVersionInfo]:
        with self._session() as s:
            pid = self._project_row(s, project).id
            return [_mv_info(m) for m in s.scalars(select(ModelVersion).where(
                ModelVersion.project_id == pid).order_by(ModelVersion.id))]

    def active_model_version(self, project: str | int) -> ModelVersionInfo | None:
        with self._session() as s:
            pid = self._project_row(s, project).id
            m = s.scalar(select(ModelVersion).where(ModelVersion.project_id == pid,
                                                    ModelVersion.is_active.is_(True)))
            return _mv_info(m) if m is not None else None

    def activate_model_version(self, version_id: int, by: str | None = None) -> ModelVersionInfo:
        """Make ``version_id`` its project's active version; a change is recorded in the
        activity log (``model_activated`` by ``by``) in the same transaction."""
        with self._session() as s, s.begin():
            mv, previous = self._activate(s, version_id)
            if previous != mv.id:
                self._record(s, Action.MODEL_ACTIVATED, by, mv.project_id, self._version_subject(mv),
                             {"version_id": mv.id, "previous_version_id": previous})
            return _mv_info(mv)

    @staticmethod
    def _version_subject(mv: ModelVersion) -> str:
        return f"model version {mv.id}" + (f" ({mv.name})" if mv.name else "")

    @staticmethod
    def _activate(s: Session, version_id: int) -> tuple[ModelVersion, int | None]:
        """Activate; returns the version and the previously active version's id."""
        mv = s.get(ModelVersion, version_id)
        if mv is None:
            raise NotFoundError(f"model version {version_id} does not exist")
        previous = s.scalar(select(ModelVersion.id).where(ModelVersion.project_id == mv.project_id,
                                                          ModelVersion.is_active.is_(True)))
        s.execute(update(ModelVersion).where(ModelVersion.project_id == mv.project_id,
                                             ModelVersion.id != version_id,
                                             ModelVersion.is_active.is_(True))
                  .values(is_active=False).execution_options(synchronize_session=False))
        s.flush()
        mv.is_active = True
        s.flush()
        return mv, previous

    # ------------------------------------------------------------------ training jobs

    def create_job(self, project: str | int, params: dict[str, Any] | None = None,
                   base_version_id: int | None = None) -> JobInfo:
        """Queue a fine-tuning job. A project has at most one queued-or-running job
        (a partial unique index enforces it); a second raises :class:`JobStateError`."""
        with self._session() as s, s.begin():
            p = self._project_row(s, project)
            if base_version_id is not None:
                self._version_row(s, base_version_id, p.id, "base model version", repr(p.name))
            active = s.scalar(select(TrainingJob).where(TrainingJob.project_id == p.id,
                                                        TrainingJob.status.in_(("queued", "running"))))
            if active is not None:
                raise JobStateError(f"project {p.name!r} already has job {active.id} ({active.status}); "
                                    "cancel it or wait for it to finish")
            job = TrainingJob(project_id=p.id, status="queued", progress=0.0, step=0,
                              params=dict(params or {}), metrics=None, log_tail=[],
                              base_version_id=base_version_id, created_at=utcnow())
            s.add(job)
            try:
                s.flush()
            except IntegrityError:
                raise JobStateError(f"project {p.name!r} already has a queued or running job") from None
            return _job_info(job)

    def _transition(self, job_id: int, to: str, *, activate_version: int | None = None,
                    **values: Any) -> JobInfo:
        allowed_from = tuple(k for k, v in JOB_TRANSITIONS.items() if to in v)
        with self._session() as s, s.begin():
            n = s.execute(update(TrainingJob).where(TrainingJob.id == job_id,
                                                    TrainingJob.status.in_(allowed_from))
                          .values(status=to, **values)
                          .execution_options(synchronize_session=False)).rowcount
            job = s.get(TrainingJob, job_id, populate_existing=True)
            if job is None:
                raise NotFoundError(f"job {job_id} does not exist")
            if n != 1:
                raise JobStateError(f"job {job_id} is {job.status}; cannot move to {to} "
                                    f"(allowed only from {' or '.join(allowed_from)})")
            if activate_version is not None:   # in the same transaction as the transition
                mv, previous = self._activate(s, activate_version)
                self._record(s, Action.MODEL_PROMOTED, None, mv.project_id, self._version_subject(mv),
                             {"version_id": mv.id, "previous_version_id": previous, "job_id": job_id})
            return _job_info(job)

    def start_job(self, job_id: int) -> JobInfo:
        now = utcnow()
        return self._transition(job_id, "running", started_at=now, heartbeat_at=now)

    def claim_job(self, project: str | int | None = None) -> JobInfo | None:
        """Atomically take the oldest queued job (optionally of one project) and mark
        it running; None when nothing is queued. Each queued job is claimed at most once,
        whatever the number of workers.

        PostgreSQL: one transaction, ``SELECT ... FOR UPDATE SKIP LOCKED`` then the
        update, so concurrent workers never wait on, nor take, a row another worker is
        claiming. SQLite (no row locks): read the oldest queued id, then a conditional
        ``UPDATE ... WHERE status = 'queued'``; a worker that loses the race tries the
        next one. SQLite serialises writers, so it suits one worker (the app's local one)."""
        if self.dialect == "postgresql":
            with self._session() as s, s.begin():
                q = select(TrainingJob).where(TrainingJob.status == "queued")
                if project is not None:
                    q = q.where(TrainingJob.project_id == self._project_row(s, project).id)
                job = s.scalar(q.order_by(TrainingJob.id).limit(1).with_for_update(skip_locked=True))
                if job is None:
                    return None
                now = utcnow()
                job.status, job.started_at, job.heartbeat_at = "running", now, now
                s.flush()
                return _job_info(job)
        for _ in range(20):
            with self._session() as s:
                q = select(TrainingJob.id).where(TrainingJob.status == "queued")
                if project is not None:
                    q = q.where(TrainingJob.project_id == self._project_row(s, project).id)
                job_id = s.scalar(q.order_by(TrainingJob.id).limit(1))
            if job_id is None:
                return None
            try:
                return self.start_job(job_id)
            except JobStateError:
                continue  # another worker claimed it first
        return None

    def update_job(self, job_id: int, progress: float | None = None, step: int | None = None,
                   metrics: dict[str, Any] | None = None, log_line: str | Sequence[str] | None = None
                   ) -> JobInfo:
        """Report progress of a running job (also the heartbeat). Raises
        :class:`JobStateError` if the job is no longer running (e.g. cancelled):
        the worker should stop then."""
        with self._session() as s, s.begin():
            job = s.get(TrainingJob, job_id, with_for_update=True)
            if job is None:
                raise NotFoundError(f"job {job_id} does not exist")
            if job.status != "running":
                raise JobStateError(f"job {job_id} is {job.status}, not running; stop working on it")
            if progress is not None:
                if not 0.0 <= float(progress) <= 1.0:
                    raise ValidationError(f"progress must be in 0..1, got {progress!r}")
                job.progress = float(progress)
            if step is not None:
                job.step = int(step)
            if metrics is not None:
                job.metrics = dict(metrics)
            if log_line is not None:
                lines = [log_line] if isinstance(log_line, str) else list(log_line)
                job.log_tail = (list(job.log_tail or []) + [str(x) for x in lines])[-LOG_TAIL_LINES:]
            job.heartbeat_at = utcnow()
            s.flush()
            return _job_info(job)

    def finish_job(self, job_id: int, status: str, result_version_id: int | None = None,
                   error: str | None = None, metrics: dict[str, Any] | None = None,
                   activate: bool = False) -> JobInfo:
        """running -> succeeded / failed / cancelled. ``activate=True`` (with
        ``status="succeeded"`` and a result version) makes the result the active version
        in the same transaction: a job cancelled or failed meanwhile (JobStateError)
        never changes the active model. The promotion is recorded in the activity log
        (``model_promoted``, user None: the system) in that transaction too."""
        if status not in ("succeeded", "failed", "cancelled"):
            raise JobStateError(f"finish_job status must be succeeded/failed/cancelled, got {status!r}")
        if activate and (status != "succeeded" or result_version_id is None):
            raise JobStateError("only a succeeded job with a result version can activate it")
        values: dict[str, Any] = {"finished_at": utcnow(), "error": error}
        if status == "succeeded":
            values["progress"] = 1.0
        if result_version_id is not None:
            with self._session() as s:
                job = s.get(TrainingJob, job_id)
                self._version_row(s, result_version_id, job.project_id if job is not None else None,
                                  "result model version", "the job's project")
            values["result_version_id"] = result_version_id
        if metrics is not None:
            values["metrics"] = dict(metrics)
        if status == "cancelled":
            # the worker acknowledging a cancel it noticed: running -> cancelled
            return self._transition(job_id, "cancelled", **values)
        return self._transition(job_id, status, activate_version=result_version_id if activate else None,
                                **values)

    def cancel_job(self, job_id: int) -> JobInfo:
        """queued or running -> cancelled (a running worker sees it on its next update_job)."""
        return self._transition(job_id, "cancelled", finished_at=utcnow())

    def get_job(self, job_id: int) -> JobInfo:
        with self._session() as s:
            job = s.get(TrainingJob, job_id)
            if job is None:
                raise NotFoundError(f"job {job_id} does not exist")
            return _job_info(job)

    def list_jobs(self, project: str | int, status: str | None = None) -> list[JobInfo]:
        with self._session() as s:
            pid = self._project_row(s, project).id
            q = select(TrainingJob).where(TrainingJob.project_id == pid)
            if status is not None:
                q = q.where(TrainingJob.status == status)
            return [_job_info(j) for j in s.scalars(q.order_by(TrainingJob.id.desc()))]

    def mark_stale_jobs(self, timeout_s: float) -> list[int]:
        """Running jobs whose last heartbeat is older than ``timeout_s`` -> failed."""
        cutoff = utcnow() - timedelta(seconds=timeout_s)
        now = utcnow()
        with self._session() as s, s.begin():
            beat = func.coalesce(TrainingJob.heartbeat_at, TrainingJob.started_at, TrainingJob.created_at)
            ids = list(s.scalars(select(TrainingJob.id).where(TrainingJob.status == "running", beat < cutoff)))
            if ids:
                s.execute(update(TrainingJob).where(TrainingJob.id.in_(ids), TrainingJob.status == "running",
                                                    beat < cutoff)
                          .values(status="failed", finished_at=now,
                                  error=f"no heartbeat for more than {timeout_s:g} s (worker died?)")
                          .execution_options(synchronize_session=False))
            return ids

    # ------------------------------------------------------------------ training data

    def submitted_annotations(self, project: str | int, split: str | None = "train",
                              source: str | None = None) -> list[tuple[int, int]]:
        """(image_id, revision) of the annotation jobs and exports use for each image, by
        image id. ``source`` (default: :meth:`effective_training_source`): "submitted" =
        the latest submitted revision (later drafts ignored); "accepted" = the latest
        revision whose latest review decision is an acceptance (pending and rejected
        submissions after it are ignored; images with none are left out)."""
        with self._session() as s:
            p = self._project_row(s, project)
            src = (self._effective_source(s, p) if source is None
                   else _enum_value(TrainingSource, source, "training source"))
            if src == TrainingSource.SUBMITTED:
                q = (select(Annotation.image_id, func.max(Annotation.revision))
                     .join(Image, Image.id == Annotation.image_id)
                     .where(Image.project_id == p.id, Annotation.status == "submitted")
                     .group_by(Annotation.image_id).order_by(Annotation.image_id))
            else:
                later = aliased(Review)
                q = (select(Review.image_id, func.max(Review.revision))
                     .join(Image, Image.id == Review.image_id)
                     .where(Image.project_id == p.id, Review.decision == ReviewDecision.ACCEPTED.value,
                            ~exists().where(later.image_id == Review.image_id,
                                            later.revision == Review.revision, later.id > Review.id))
                     .group_by(Review.image_id).order_by(Review.image_id))
            if split is not None:
                q = q.where(Image.split == _check_split(split))
            return [(int(i), int(r)) for i, r in s.execute(q)]

    def training_examples(self, project: str | int, split: str | None = "train",
                          source: str | None = None) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """(image_id, (H,W,3) uint8 image, (H,W) uint8 class map) for every image with an
        annotation from the project's training source (see :meth:`submitted_annotations`)."""
        return list(self.iter_training_examples(project, split, source))

    def iter_training_examples(self, project: str | int, split: str | None = "train",
                               source: str | None = None):
        for image_id, rev in self.submitted_annotations(project, split, source):
            ann = self.get_annotation(image_id, revision=rev)
            yield image_id, self.load_image(image_id), ann.class_map

    # ------------------------------------------------------------------ training source

    @staticmethod
    def _effective_source(s: Session, p: Project) -> str:
        if p.training_source is not None:
            return p.training_source
        reviewer = s.scalar(select(ProjectMember.user_id).join(User, User.id == ProjectMember.user_id)
                            .where(ProjectMember.project_id == p.id, User.role == Role.REVIEWER.value,
                                   User.disabled.is_(False)).limit(1))
        return (TrainingSource.ACCEPTED if reviewer is not None else TrainingSource.SUBMITTED).value

    def effective_training_source(self, project: str | int) -> str:
        """What jobs and exports use: the project's explicit setting, else (automatic)
        "accepted" once the project has an enabled member with role reviewer, else
        "submitted"."""
        with self._session() as s:
            return self._effective_source(s, self._project_row(s, project))

    def set_training_source(self, project: str | int, value: str | None) -> ProjectInfo:
        """"accepted" / "submitted", or None for automatic (see effective_training_source)."""
        if value is not None:
            value = _enum_value(TrainingSource, value, "training source")
        with self._session() as s, s.begin():
            p = self._project_row(s, project)
            p.training_source = value
            s.flush()
            return self._project_info(s, p)

    # ------------------------------------------------------------------ users

    @staticmethod
    def _user_row(s: Session, user: str | int, *, for_update: bool = False) -> User:
        if isinstance(user, int):
            q = select(User).where(User.id == user)
        elif isinstance(user, str) and user.strip():
            q = select(User).where(User.name_key == labels.name_key(user))
        else:
            raise NotFoundError(f"user {user!r} does not exist")
        row = s.scalar(q.with_for_update() if for_update else q)
        if row is None:
            raise NotFoundError(f"user {user!r} does not exist")
        return row

    def _hash(self, password: str) -> str:
        return self.password_hasher.hash(_check_password(password))

    def add_user(self, name: str, password: str, role: str = "annotator") -> UserInfo:
        """Create an account. ``name``: whitespace collapsed, unique ignoring case;
        ``role``: admin / reviewer / annotator; the password (at least
        ``MIN_PASSWORD_LENGTH`` characters) is stored only as an argon2id hash."""
        name = _clean_name(name, "user name")
        role = _enum_value(Role, role, "role")
        pw_hash = self._hash(password)
        with self._session() as s, s.begin():
            other = s.scalar(select(User.name).where(User.name_key == labels.name_key(name)))
            if other is not None:
                same = "" if other == name else f" (as {other!r}: user names ignore case)"
                raise ValidationError(f"user {name!r} already exists{same}")
            u = User(name=name, name_key=labels.name_key(name), password_hash=pw_hash, role=role,
                     disabled=False, created_at=utcnow())
            s.add(u)
            try:
                s.flush()
            except IntegrityError:
                raise ValidationError(f"user {name!r} already exists (added concurrently)") from None
            return _user_info(u)

    def get_user(self, name: str | int) -> UserInfo:
        with self._session() as s:
            return _user_info(self._user_row(s, name))

    def list_users(self) -> list[UserInfo]:
        with self._session() as s:
            return [_user_info(u) for u in s.scalars(select(User).order_by(User.name_key))]

    def has_users(self) -> bool:
        """Whether any account exists (without accounts the app runs as one person)."""
        with self._session() as s:
            return s.scalar(select(User.id).limit(1)) is not None

    def verify_user(self, name: str, password: str) -> UserInfo | None:
        """The account when ``password`` is right and the user is enabled, else None
        (wrong password, unknown or disabled user: the caller cannot tell which). An
        unknown name still costs one argon2 verification, so timing does not reveal
        which names exist. A hash made with older parameters is replaced on success."""
        hasher = self.password_hasher
        u = None
        if isinstance(name, str) and name.strip() and len(name) <= 4 * labels.MAX_NAME_LENGTH:
            with self._session() as s:
                u = s.scalar(select(User).where(User.name_key == labels.name_key(name)))
        stored = u.password_hash if u is not None else self._dummy()
        try:
            ok = isinstance(password, str) and hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            ok = False
        if not ok or u is None or u.disabled:
            return None
        if hasher.check_needs_rehash(stored):
            with self._session() as s, s.begin():
                # conditional: a password changed meanwhile is not overwritten
                s.execute(update(User).where(User.id == u.id, User.password_hash == stored)
                          .values(password_hash=hasher.hash(password))
                          .execution_options(synchronize_session=False))
        return _user_info(u)

    def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = self.password_hasher.hash(secrets.token_urlsafe(16))
        return self._dummy_hash

    def set_password(self, name: str | int, password: str) -> UserInfo:
        pw_hash = self._hash(password)
        with self._session() as s, s.begin():
            u = self._user_row(s, name)
            u.password_hash = pw_hash
            s.flush()
            return _user_info(u)

    def _check_not_last_admin(self, s: Session, u: User, doing: str) -> None:
        if u.role != Role.ADMIN or u.disabled:
            return
        others = s.scalar(select(func.count()).select_from(User).where(
            User.role == Role.ADMIN.value, User.disabled.is_(False), User.id != u.id))
        if not others:
            raise ValidationError(f"cannot {doing} {u.name!r}: the last enabled admin "
                                  "(add or enable another admin first)")

    def set_role(self, name: str | int, role: str) -> UserInfo:
        """Change a user's role; the last enabled admin cannot be demoted."""
        role = _enum_value(Role, role, "role")
        with self._session() as s, s.begin():
            u = self._user_row(s, name, for_update=True)
            if role != u.role:
                self._check_not_last_admin(s, u, f"make {role}")
                u.role = role
                s.flush()
            return _user_info(u)

    def disable_user(self, name: str | int) -> UserInfo:
        """A disabled user cannot log in (verify_user returns None) and sees no project;
        their revisions and reviews stay. The last enabled admin cannot be disabled."""
        with self._session() as s, s.begin():
            u = self._user_row(s, name, for_update=True)
            if not u.disabled:
                self._check_not_last_admin(s, u, "disable")
                u.disabled = True
                s.flush()
            return _user_info(u)

    def enable_user(self, name: str | int) -> UserInfo:
        with self._session() as s, s.begin():
            u = self._user_row(s, name)
            u.disabled = False
            s.flush()
            return _user_info(u)

    # ------------------------------------------------------------------ project members

    def add_member(self, project: str | int, user: str | int) -> bool:
        """Make ``user`` a member of ``project``; False when they already were."""
        with self._session() as s:
            p = self._project_row(s, project)
            u = self._user_row(s, user)
            if s.get(ProjectMember, (p.id, u.id)) is not None:
                return False
            s.add(ProjectMember(project_id=p.id, user_id=u.id, created_at=utcnow()))
            try:
                s.commit()
                return True
            except IntegrityError:      # added concurrently
                s.rollback()
                return False

    def remove_member(self, project: str | int, user: str | int) -> bool:
        """False when ``user`` was not a member."""
        with self._session() as s, s.begin():
            p = self._project_row(s, project)
            u = self._user_row(s, user)
            return s.execute(delete(ProjectMember).where(ProjectMember.project_id == p.id,
                                                         ProjectMember.user_id == u.id)
                             .execution_options(synchronize_session=False)).rowcount > 0

    def list_members(self, project: str | int) -> list[UserInfo]:
        """The project's members (admins see every project without being members)."""
        with self._session() as s:
            p = self._project_row(s, project)
            return [_user_info(u) for u in s.scalars(
                select(User).join(ProjectMember, ProjectMember.user_id == User.id)
                .where(ProjectMember.project_id == p.id).order_by(User.name_key))]

    def projects_for(self, user: str | int) -> list[ProjectInfo]:
        """The projects ``user`` sees: every project for an admin, the projects they
        are a member of otherwise, none for a disabled user."""
        with self._session() as s:
            u = self._user_row(s, user)
            if u.disabled:
                return []
            q = select(Project).order_by(Project.id)
            if u.role != Role.ADMIN:
                q = q.join(ProjectMember, ProjectMember.project_id == Project.id).where(
                    ProjectMember.user_id == u.id)
            return [self._project_info(s, p) for p in s.scalars(q)]

    def can_access(self, user: str | int, project: str | int) -> bool:
        """Whether ``user`` (enabled) sees ``project``: an admin, or a member."""
        with self._session() as s:
            u = self._user_row(s, user)
            p = self._project_row(s, project)
            if u.disabled:
                return False
            return u.role == Role.ADMIN or s.get(ProjectMember, (p.id, u.id)) is not None

    # ------------------------------------------------------------------ reviews

    def review(self, image_id: int, revision: int, decision: str, comment: str = "",
               reviewer: str = "") -> ReviewInfo:
        """Accept or reject the image's latest submitted revision ``revision``. A
        rejection needs a comment (it goes back to the annotator). Raises
        :class:`ReviewError` for a draft revision or one that is no longer the latest
        submitted one, :class:`NotFoundError` for an unknown image or revision. Every
        decision is kept (a later one on the same revision replaces the state); the
        image's review state and the activity log (``review``, by ``reviewer``) change
        in the same transaction."""
        decision = _enum_value(ReviewDecision, decision, "decision")
        if comment is None:
            comment = ""
        if not isinstance(comment, str):
            raise ValidationError(f"comment must be text, got {type(comment).__name__}")
        comment = comment.strip()
        if decision == ReviewDecision.REJECTED and not comment:
            raise ValidationError("a rejection needs a comment saying what to fix")
        reviewer = _clean_name(reviewer, "reviewer")
        if not isinstance(revision, int) or revision < 1:
            raise ValidationError(f"revision must be an integer >= 1, got {revision!r}")
        with self._session() as s:
            # Lock the image first (SQLite: this write takes the database's write lock;
            # PostgreSQL: the row lock save_annotation's UPDATE also takes), so a
            # submission cannot slip in between the checks below and the decision.
            n = s.execute(update(Image).where(Image.id == image_id).values(review=Image.review)
                          .execution_options(synchronize_session=False)).rowcount
            if n != 1:
                raise NotFoundError(f"image {image_id} does not exist")
            im = s.get(Image, image_id, populate_existing=True)
            ann = s.execute(select(Annotation.status, Annotation.author).where(
                Annotation.image_id == image_id, Annotation.revision == revision)).first()
            if ann is None:
                raise NotFoundError(f"image {image_id} has no annotation revision {revision}")
            if ann.status != "submitted":
                raise ReviewError(f"image {image_id} revision {revision} is a draft: only "
                                  "submitted revisions can be reviewed")
            latest = s.execute(select(Annotation.revision, Annotation.author, Annotation.created_at)
                               .where(Annotation.image_id == image_id, Annotation.status == "submitted")
                               .order_by(Annotation.revision.desc()).limit(1)).first()
            if latest.revision != revision:
                when = _utc(latest.created_at).isoformat(timespec="seconds")
                raise ReviewError(f"image {image_id}: revision {revision} is no longer the latest "
                                  f"submitted revision; {latest.author!r} submitted revision "
                                  f"{latest.revision} at {when}: review that one")
            now = utcnow()
            r = Review(image_id=image_id, revision=revision, decision=decision, comment=comment,
                       reviewer=reviewer, created_at=now)
            s.add(r)
            im.review = decision
            self._record(s, Action.REVIEW, reviewer, im.project_id, f"image {image_id} revision {revision}",
                         {"image_id": image_id, "revision": revision, "decision": decision,
                          "comment": comment, "author": ann.author}, now)
            s.flush()
            info = _review_info(r)
            s.commit()
            return info

    def get_review(self, image_id: int) -> ReviewInfo | None:
        """The latest decision on the image's latest submitted revision; None when that
        revision awaits review or nothing was submitted."""
        with self._session() as s:
            self._image_row(s, image_id)
            latest = s.scalar(select(func.max(Annotation.revision)).where(
                Annotation.image_id == image_id, Annotation.status == "submitted"))
            if latest is None:
                return None
            r = s.scalar(select(Review).where(Review.image_id == image_id, Review.revision == latest)
                         .order_by(Review.id.desc()).limit(1))
            return _review_info(r) if r is not None else None

    def list_reviews(self, image_id: int) -> list[ReviewInfo]:
        """Every decision on the image, oldest first."""
        with self._session() as s:
            self._image_row(s, image_id)
            return [_review_info(r) for r in s.scalars(
                select(Review).where(Review.image_id == image_id).order_by(Review.id))]

    def review_queue(self, project: str | int, split: str | None = None, limit: int | None = None,
                     offset: int = 0, order: str = "id") -> list[ImageInfo]:
        """Images whose latest submitted revision awaits review, by id, or with
        ``order="review_score"`` the model's strongest disagreement first."""
        return self.list_images(project, split=split, review=ReviewState.PENDING.value, order=order,
                                limit=limit, offset=offset)

    def set_review_score(self, image_id: int, revision: int, score: float,
                         evidence: dict[str, Any] | None = None) -> bool:
        """Record the model's disagreement ``score`` with submitted revision ``revision``
        (and, when given, the JSON ``evidence`` it was computed from); False (nothing
        stored) when that is no longer the image's latest revision or it is not
        submitted (a newer save came first: its own score will follow)."""
        try:
            score = float(score)
        except (TypeError, ValueError):
            raise ValidationError(f"score must be a number, got {score!r}") from None
        if not (0.0 <= score <= 1.0):
            raise ValidationError(f"score must be in [0, 1], got {score}")
        values: dict[str, Any] = {"review_score": score}
        if evidence is not None:
            if not isinstance(evidence, dict):
                raise ValidationError(f"evidence must be a dict, got {type(evidence).__name__}")
            try:
                values["review_evidence"] = json.loads(json.dumps(evidence))
            except (TypeError, ValueError) as e:
                raise ValidationError(f"evidence must be JSON-serialisable: {e}") from None
        with self._session() as s, s.begin():
            self._image_row(s, image_id)
            return s.execute(update(Image).where(
                Image.id == image_id, Image.revision == int(revision), Image.status == "submitted")
                .values(**values).execution_options(synchronize_session=False)).rowcount == 1

    def set_review_scores(self, scores: Sequence[tuple[int, int, float]]) -> int:
        """Many :meth:`set_review_score` (image id, revision, score) in one transaction
        (a review queue scored again); returns how many were stored."""
        rows = []
        for image_id, revision, score in scores:
            score = float(score)
            if not (0.0 <= score <= 1.0):
                raise ValidationError(f"score must be in [0, 1], got {score}")
            rows.append((int(image_id), int(revision), score))
        n = 0
        with self._session() as s, s.begin():
            for image_id, revision, score in rows:
                n += s.execute(update(Image).where(
                    Image.id == image_id, Image.revision == revision, Image.status == "submitted")
                    .values(review_score=score).execution_options(synchronize_session=False)).rowcount
        return n

    def review_evidence(self, project: str | int) -> list[tuple[int, int, float | None, dict[str, Any]]]:
        """(image id, revision, score, evidence) of every submitted image of the project
        whose latest revision has stored evidence, by id."""
        with self._session() as s:
            pid = self._project_row(s, project).id
            rows = s.execute(select(Image.id, Image.revision, Image.review_score, Image.review_evidence).where(
                Image.project_id == pid, Image.status == "submitted", Image.review_evidence.is_not(None))
                .order_by(Image.id)).all()
            return [(int(i), int(r), sc, ev) for i, r, sc, ev in rows]

    def count_reviews(self, project: str | int) -> dict[str, int]:
        """Images per review state: {"pending": n, "accepted": n, "rejected": n}."""
        with self._session() as s:
            pid = self._project_row(s, project).id
            rows = s.execute(select(Image.review, func.count()).where(
                Image.project_id == pid, Image.review.is_not(None)).group_by(Image.review)).all()
        out = {st.value: 0 for st in ReviewState}
        out.update({k: int(v) for k, v in rows})
        return out

    # ------------------------------------------------------------------ activity

    @staticmethod
    def _record(s: Session, action: str, user: str | None, project_id: int | None, subject: str,
                details: dict[str, Any] | None = None, when: datetime | None = None) -> Activity:
        a = Activity(project_id=project_id, user_name=user, action=str(action), subject=subject,
                     details=details, created_at=when or utcnow())
        s.add(a)
        return a

    def record_activity(self, action: str, user: str | None = None, project: str | int | None = None,
                        subject: str = "", details: dict[str, Any] | None = None) -> ActivityInfo:
        """Record that ``user`` did ``action`` (a :class:`storage.models.Action` value) on
        ``subject`` (free text, e.g. "job 7") in ``project`` (None: user administration).
        ``details``: JSON-serialisable. Storage records revision_saved, review,
        model_activated and model_promoted itself; callers record the rest."""
        action = _enum_value(Action, action, "action")
        if user is not None:
            user = _clean_name(user, "user")
        if not isinstance(subject, str):
            raise ValidationError(f"subject must be text, got {type(subject).__name__}")
        if details is not None:
            if not isinstance(details, dict):
                raise ValidationError(f"details must be a dict, got {type(details).__name__}")
            try:
                details = json.loads(json.dumps(details))
            except (TypeError, ValueError) as e:
                raise ValidationError(f"details must be JSON-serialisable: {e}") from None
        with self._session() as s, s.begin():
            pid = self._project_row(s, project).id if project is not None else None
            a = self._record(s, action, user, pid, subject, details)
            s.flush()
            return _activity_info(a)

    def list_activity(self, project: str | int | None = None, limit: int = 100, offset: int = 0,
                      action: str | Sequence[str] | None = None, user: str | None = None
                      ) -> list[ActivityInfo]:
        """Activity records, newest first. ``project``: that project's records; None:
        every record (user administration included). ``action``: one action or several;
        ``user``: one user's (exact name)."""
        with self._session() as s:
            q = select(Activity)
            if project is not None:
                q = q.where(Activity.project_id == self._project_row(s, project).id)
            if action is not None:
                acts = [action] if isinstance(action, str) else list(action)
                q = q.where(Activity.action.in_([_enum_value(Action, a, "action") for a in acts]))
            if user is not None:
                q = q.where(Activity.user_name == user)
            q = q.order_by(Activity.id.desc()).limit(int(limit)).offset(int(offset))
            return [_activity_info(a) for a in s.scalars(q)]
