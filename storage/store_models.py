"""Predictions (one per image and model version, driving the active-learning queue)
and model versions (the weights folders, which one is active)."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import delete, select, update

from . import imaging
from .errors import ValidationError
from .info import ModelVersionInfo, PredictionInfo, _mv_info, _utc
from .models import Action, Image, ModelVersion, Prediction, utcnow
from .store_base import StoreBase


class ModelsMixin(StoreBase):
    """Predictions and model versions."""

    # ------------------------------------------------------------------ predictions

    def save_prediction(self, image_id: int, model_version_id: int, class_map: np.ndarray,
                        uncertainty: float, entropy: float | None = None) -> PredictionInfo:
        """Store (or replace) the prediction of one model version for one image;
        the image's ``uncertainty`` becomes this one (drives ``next_image``).
        ``entropy``: the prediction's mean normalised entropy, 0..1 (None: not known)."""
        u = float(uncertainty)
        if not np.isfinite(u):
            raise ValidationError(f"uncertainty must be a finite number, got {uncertainty!r}")
        if entropy is not None:
            entropy = float(entropy)
            if not (np.isfinite(entropy) and -1e-6 <= entropy <= 1 + 1e-6):
                raise ValidationError(f"entropy must be a number in [0, 1], got {entropy!r}")
            entropy = min(1.0, max(0.0, entropy))
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
                                 uncertainty=u, entropy=entropy, created_at=now))
            else:
                row.png, row.uncertainty, row.entropy, row.created_at = png, u, entropy, now
            im.uncertainty = u
            return PredictionInfo(image_id, model_version_id, u, now, cm.copy(), entropy)

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
                                  _utc(row.created_at), imaging.decode_class_map(row.png), row.entropy)

    def delete_predictions(self, project: str | int) -> int:
        """Forget every stored prediction of the project's images (all model versions):
        they were made for a label set that has changed, so they would never show a new
        class. Annotations are untouched. -> how many were deleted."""
        with self._session() as s, s.begin():
            p = self._project_row(s, project)
            images = select(Image.id).where(Image.project_id == p.id).scalar_subquery()
            res = s.execute(delete(Prediction).where(Prediction.image_id.in_(images))
                            .execution_options(synchronize_session=False))
            return int(res.rowcount or 0)

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
                              weights_dir=self._stored_weights_dir(weights_dir), metrics=metrics,
                              is_active=bool(activate), created_at=utcnow())
            s.add(mv)
            s.flush()
            return self._mv_info(mv)

    def _stored_weights_dir(self, weights_dir: str | Path) -> str:
        """How a version's folder is written down: relative to the data folder when it lies
        in it (a job's model), so that the data folder can be moved, restored from a backup
        elsewhere, or mounted at another path by a worker; else its absolute path."""
        path = Path(weights_dir).resolve()
        try:
            return path.relative_to(self.data_dir.resolve()).as_posix()
        except ValueError:
            return str(path)

    def _mv_info(self, m: ModelVersion) -> ModelVersionInfo:
        """The version's info with its folder as a path that exists here: a relative one is
        under the data folder (or, as versions written before 2026-12-08 were, relative to the
        working directory)."""
        info = _mv_info(m)
        path = Path(info.weights_dir)
        if not path.is_absolute():
            under = self.data_dir.resolve() / path
            path = under if under.exists() or not path.exists() else path
            info = dataclasses.replace(info, weights_dir=str(path))
        return info

    def move_model_version(self, version_id: int, weights_dir: str | Path) -> ModelVersionInfo:
        """Point a version at its folder's new place (the same weights, moved: the code
        folder holding the shipped model moved, or a backup was restored elsewhere)."""
        with self._session() as s, s.begin():
            mv = self._model_version_row(s, version_id)
            mv.weights_dir = self._stored_weights_dir(weights_dir)
            s.flush()
            return self._mv_info(mv)

    def get_model_version(self, version_id: int) -> ModelVersionInfo:
        with self._session() as s:
            return self._mv_info(self._model_version_row(s, version_id))

    def list_model_versions(self, project: str | int) -> list[ModelVersionInfo]:
        with self._session() as s:
            pid = self._project_row(s, project).id
            return [self._mv_info(m) for m in s.scalars(select(ModelVersion).where(
                ModelVersion.project_id == pid).order_by(ModelVersion.id))]

    def active_model_version(self, project: str | int) -> ModelVersionInfo | None:
        with self._session() as s:
            pid = self._project_row(s, project).id
            m = s.scalar(select(ModelVersion).where(ModelVersion.project_id == pid,
                                                    ModelVersion.is_active.is_(True)))
            return self._mv_info(m) if m is not None else None

    def activate_model_version(self, version_id: int, by: str | None = None) -> ModelVersionInfo:
        """Make ``version_id`` its project's active version; a change is recorded in the
        activity log (``model_activated`` by ``by``) in the same transaction."""
        with self._session() as s, s.begin():
            mv, previous = self._activate(s, version_id)
            if previous != mv.id:
                self._record(s, Action.MODEL_ACTIVATED, by, mv.project_id, self._version_subject(mv),
                             {"version_id": mv.id, "previous_version_id": previous})
            return self._mv_info(mv)
