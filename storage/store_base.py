"""What every domain of :class:`storage.Store` shares: the argument rules (names,
splits, enum values), the session factory, and the row helpers more than one domain
uses (a project, image or model version by id, a project's info, a validated class
map, activating a version, an activity record).

Each domain is a mixin over :class:`StoreBase` (``store_images``, ``store_models``,
``store_jobs``, ``store_accounts``, ``store_reviews``); :class:`storage.store.Store`
assembles them and owns construction. A mixin may call another domain's public
methods through ``self`` (``Store`` has them all).
"""
from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, sessionmaker

from common import colors, labels

from . import imaging
from .errors import NotFoundError, ValidationError
from .files import BlobStore
from .info import ClassInfo, ProjectInfo, _utc
from .models import SPLITS, Activity, Image, LabelClass, ModelVersion, Project, utcnow

# --------------------------------------------------------------------------- argument rules


@contextmanager
def _label_rule():
    """Label-set rule violations (common.labels) surface as storage's ValidationError."""
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


def _hex_to_rgb(h: str) -> tuple[int, int, int]:
    return colors.as_rgb(h)


# --------------------------------------------------------------------------- the base

class StoreBase:
    """The session factory and the row helpers; no public methods of its own."""

    engine: Engine
    blobs: BlobStore
    data_dir: Path
    _session: sessionmaker[Session]   # one per public operation; never handed out

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    # ------------------------------------------------------------------ shared row helpers

    @staticmethod
    def _project_row(s: Session, project: str | int, lock: bool = False) -> Project:
        """The project's row, or NotFoundError. ``lock``: held for this transaction
        (PostgreSQL's ``FOR UPDATE``; SQLite serialises writers itself), so a check on the
        project and the write that depends on it see no change in between."""
        if isinstance(project, int):
            row = s.get(Project, project, with_for_update=lock or None)
        else:
            q = select(Project).where(Project.name == project)
            row = s.scalar(q.with_for_update() if lock else q)
        if row is None:
            raise NotFoundError(f"project {project!r} does not exist")
        return row

    def _set_project(self, project: str | int, **values) -> ProjectInfo:
        """Write validated settings (column=value) of one project; -> its info."""
        with self._session() as s, s.begin():
            p = self._project_row(s, project)
            for column, value in values.items():
                setattr(p, column, value)
            s.flush()
            return self._project_info(s, p)

    @staticmethod
    def _project_info(s: Session, p: Project) -> ProjectInfo:
        classes = s.scalars(select(LabelClass).where(LabelClass.project_id == p.id)
                            .order_by(LabelClass.index)).all()
        return ProjectInfo(p.id, p.name, p.ignore_index,
                           tuple(ClassInfo(c.index, c.name, _hex_to_rgb(c.color)) for c in classes),
                           _utc(p.created_at), p.training_source,
                           bool(p.allow_self_review), p.auto_finetune_every, bool(p.others_unlabelled),
                           p.removed_at is not None)

    @staticmethod
    def _model_version_row(s: Session, version_id: int) -> ModelVersion:
        mv = s.get(ModelVersion, version_id)
        if mv is None:
            raise NotFoundError(f"model version {version_id} does not exist")
        return mv

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

    def _validated_map(self, s: Session, im: Image, class_map: Any) -> np.ndarray:
        p = s.get(Project, im.project_id)
        info = self._project_info(s, p)
        return imaging.validate_class_map(class_map, im.height, im.width, info.valid_values())

    @staticmethod
    def _version_subject(mv: ModelVersion) -> str:
        return f"model version {mv.id}" + (f" ({mv.name})" if mv.name else "")

    @staticmethod
    def _activate(s: Session, version_id: int) -> tuple[ModelVersion, int | None]:
        """Activate; returns the version and the previously active version's id."""
        mv = StoreBase._model_version_row(s, version_id)
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

    @staticmethod
    def _record(s: Session, action: str, user: str | None, project_id: int | None, subject: str,
                details: dict[str, Any] | None = None, when: datetime | None = None) -> Activity:
        a = Activity(project_id=project_id, user_name=user, action=str(action), subject=subject,
                     details=details, created_at=when or utcnow())
        s.add(a)
        return a
