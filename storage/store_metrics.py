"""Per-image metrics for the Explore screen (issue 19, migration 0006): what the
background computation stores (metrics, class areas, confusion counts, thumbnails),
which images need it again, and the pages, counts and confusion matrix the screen
asks for, each one SQL query over indexed columns (nothing is recomputed to show a page).
"""
from __future__ import annotations

import gc
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import and_, delete, func, insert, or_, select

from .errors import ValidationError
from .info import ExploreRow, _utc
from .models import IN_PROJECT, Image, ImageClassArea, ImageConfusion, ImageMetrics, Prediction, ReviewState, utcnow
from .store_base import StoreBase, _check_split, _enum_value

# sort key -> what it orders by (the Explore screen's menu); NULLs always last
EXPLORE_SORTS = {
    "id": Image.id, "added": Image.created_at, "date": Image.annotated_at, "status": Image.status,
    "split": Image.split, "author": Image.annotated_by, "uncertainty": ImageMetrics.entropy,
    "iou": ImageMetrics.iou, "accuracy": ImageMetrics.accuracy, "disagreement": Image.review_score,
}
EXPLORE_STATUSES = ("unlabelled", "draft", "submitted")
AREA_SOURCES = {"prediction": "p", "annotation": "a"}
CONFUSION_SCOPES = ("val", "annotated")
MAX_PAGE = 200
THUMB_MAX_BYTES = 256 * 1024


def _range(value, what: str) -> tuple[float | None, float | None]:
    lo, hi = (None, None) if value is None else value
    out = []
    for v in (lo, hi):
        if v is None:
            out.append(None)
            continue
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise ValidationError(f"{what}: a number, got {v!r}") from None
        if not np.isfinite(f):
            raise ValidationError(f"{what}: a finite number, got {v!r}")
        out.append(f)
    return out[0], out[1]


class MetricsMixin(StoreBase):
    """Explore's per-image metrics: stored by the background computation, paged here."""

    # ------------------------------------------------------------------ writing

    def save_image_metrics(self, image_id: int, model_version_id: int | None, prediction_at: datetime | None,
                           revision: int, palette: str, *, entropy: float | None = None,
                           iou: float | None = None, accuracy: float | None = None,
                           thumb_pred: bytes | None = None, thumb_ann: bytes | None = None,
                           areas: Mapping[tuple[str, int], float] | None = None,
                           confusion: Mapping[tuple[int, int], int] | None = None) -> None:
        """Replace image ``image_id``'s metrics, class areas (``(source "p"/"a", class
        index) -> share``) and confusion counts (``(annotated, predicted) -> pixels``),
        in one transaction. The model version must belong to the image's project."""
        for name, v in (("entropy", entropy), ("iou", iou), ("accuracy", accuracy)):
            if v is not None and not (np.isfinite(v) and -1e-6 <= v <= 1 + 1e-6):
                raise ValidationError(f"{name} must be in [0, 1], got {v!r}")
        for t in (thumb_pred, thumb_ann):
            if t is not None and len(t) > THUMB_MAX_BYTES:
                raise ValidationError(f"a thumbnail is at most {THUMB_MAX_BYTES} bytes")
        if not isinstance(revision, int) or revision < 0:
            raise ValidationError(f"revision must be an integer >= 0, got {revision!r}")
        area_rows = []
        for (src, idx), share in (areas or {}).items():
            if src not in ("p", "a") or not 0 <= int(idx) <= 255 or not 0 <= float(share) <= 1 + 1e-6:
                raise ValidationError(f"class area ({src!r}, {idx!r}) = {share!r} is not a share of a class")
            area_rows.append({"image_id": image_id, "source": src, "class_index": int(idx),
                              "share": min(1.0, float(share))})
        conf_rows = []
        for (t, p), n in (confusion or {}).items():
            if not (0 <= int(t) <= 255 and 0 <= int(p) <= 255) or int(n) < 0:
                raise ValidationError(f"confusion ({t!r}, {p!r}) = {n!r} is not a pixel count of two classes")
            if int(n):
                conf_rows.append({"image_id": image_id, "true_class": int(t), "pred_class": int(p),
                                  "pixels": int(n)})
        with self._session() as s, s.begin():
            im = self._image_row(s, image_id)
            if model_version_id is not None:
                self._version_row(s, model_version_id, im.project_id, "model version", "the image's project")
            for r in area_rows + conf_rows:
                r["project_id"] = im.project_id
            s.execute(delete(ImageClassArea).where(ImageClassArea.image_id == image_id))
            s.execute(delete(ImageConfusion).where(ImageConfusion.image_id == image_id))
            row = s.get(ImageMetrics, image_id)
            values = dict(project_id=im.project_id, model_version_id=model_version_id, prediction_at=prediction_at,
                          revision=revision, entropy=entropy, iou=iou, accuracy=accuracy, palette=str(palette)[:64],
                          thumb_pred=thumb_pred, thumb_ann=thumb_ann, computed_at=utcnow())
            if row is None:
                s.add(ImageMetrics(image_id=image_id, **values))
            else:
                for k, v in values.items():
                    setattr(row, k, v)
            s.flush()
            if area_rows:
                s.execute(insert(ImageClassArea), area_rows)
            if conf_rows:
                s.execute(insert(ImageConfusion), conf_rows)

    # ------------------------------------------------------------------ what needs computing

    @staticmethod
    def _stale_condition(version_id: int, palette: str):
        p = Prediction
        return or_(ImageMetrics.image_id.is_(None), ImageMetrics.model_version_id.is_(None),
                   ImageMetrics.model_version_id != version_id, ImageMetrics.revision != Image.revision,
                   ImageMetrics.palette != palette,
                   and_(p.id.is_not(None), or_(ImageMetrics.prediction_at.is_(None),
                                               p.created_at > ImageMetrics.prediction_at)))

    def _stale_query(self, pid: int, version_id: int, palette: str, what):
        return (select(what).select_from(Image)
                .outerjoin(ImageMetrics, ImageMetrics.image_id == Image.id)
                .outerjoin(Prediction, and_(Prediction.image_id == Image.id,
                                            Prediction.model_version_id == version_id))
                .where(Image.project_id == pid, IN_PROJECT, self._stale_condition(version_id, palette)))

    def stale_metric_images(self, project: str | int, version_id: int, palette: str, limit: int = 32,
                            exclude: tuple[int, ...] = ()) -> list[int]:
        """Images of ``project`` whose metrics are missing or out of date for model
        version ``version_id`` and class colours ``palette`` (another version, another
        annotation revision, a newer prediction, other colours): val images first, then
        annotated ones, then by id."""
        with self._session() as s:
            pid = self._project_row(s, project).id
            q = self._stale_query(pid, version_id, palette, Image.id)
            if exclude:
                q = q.where(Image.id.not_in(list(exclude)))
            q = q.order_by((Image.split == "val").desc(), (Image.revision > 0).desc(), Image.id).limit(int(limit))
            return [int(i) for i in s.scalars(q)]

    def metric_counts(self, project: str | int, version_id: int, palette: str) -> dict[str, int]:
        """``{"images", "stale"}``: how many images the project has and how many of them
        still wait for their metrics."""
        with self._session() as s:
            pid = self._project_row(s, project).id
            total = s.scalar(select(func.count()).select_from(Image).where(Image.project_id == pid, IN_PROJECT))
            stale = s.scalar(self._stale_query(pid, version_id, palette, func.count()))
            return {"images": int(total or 0), "stale": int(stale or 0)}

    def metrics_signature(self, project: str | int) -> tuple:
        """Changes whenever a confusion matrix of the project could: metrics stored, an
        annotation saved, a split or status changed (a cache key for the app)."""
        from sqlalchemy import case
        with self._session() as s:
            pid = self._project_row(s, project).id
            row = s.execute(select(func.count(ImageMetrics.image_id), func.max(ImageMetrics.computed_at),
                                   func.sum(Image.revision),
                                   func.sum(case((Image.split == "val", Image.id), else_=0)),
                                   func.sum(case((Image.status == "submitted", Image.id), else_=0)),
                                   func.count(Image.id))
                            .select_from(Image).outerjoin(ImageMetrics, ImageMetrics.image_id == Image.id)
                            .where(Image.project_id == pid, IN_PROJECT)).one()
            return tuple(str(v) for v in row)

    def image_metrics_of(self, image_id: int) -> dict[str, Any] | None:
        """The stored metrics row of one image (tests, the benchmark), None if none."""
        with self._session() as s:
            m = s.get(ImageMetrics, image_id)
            if m is None:
                return None
            areas = {(a.source, a.class_index): a.share for a in s.scalars(
                select(ImageClassArea).where(ImageClassArea.image_id == image_id))}
            conf = {(c.true_class, c.pred_class): c.pixels for c in s.scalars(
                select(ImageConfusion).where(ImageConfusion.image_id == image_id))}
            return {"model_version_id": m.model_version_id, "prediction_at": _utc(m.prediction_at),
                    "revision": m.revision, "entropy": m.entropy, "iou": m.iou, "accuracy": m.accuracy,
                    "palette": m.palette, "thumb_pred": m.thumb_pred, "thumb_ann": m.thumb_ann,
                    "areas": areas, "confusion": conf}

    # ------------------------------------------------------------------ reading: pages

    def explore_images(self, project: str | int, *, sort: str = "id", descending: bool = False,
                       status: str | None = None, review: str | None = None, split: str | None = None,
                       author: str | None = None, name: str | None = None, date_from: datetime | None = None,
                       date_to: datetime | None = None, uncertainty=None, iou=None,
                       min_disagreement: float | None = None, class_index: int | None = None,
                       class_min_share: float = 0.0, class_source: str = "prediction",
                       cell: tuple[int, int] | None = None, cell_scope: str = "val", version_id: int | None = None,
                       offset: int = 0, limit: int = 60) -> tuple[int, list[ExploreRow]]:
        """One page of the project's images, sorted and filtered, and how many match.

        ``sort``: a key of :data:`EXPLORE_SORTS` (NULLs last either way, then by id);
        ``status`` / ``review`` / ``split`` / ``author`` (case-insensitive) match exactly;
        ``name``: the file name contains it (case-insensitive; ``%`` and ``_`` are plain
        characters);
        ``date_from`` / ``date_to``: the latest annotation's time, to inclusive;
        ``uncertainty`` / ``iou``: (min, max), either None; ``min_disagreement``: the
        model's review score; ``class_index`` with ``class_min_share``: the class covers at
        least that share of the ``class_source`` mask ("prediction" / "annotation").
        ``cell`` = (annotated, predicted) class: the images of the confusion matrix's
        cell (``cell_scope`` "val" / "annotated", metrics of ``version_id`` and the
        current revision) where that confusion is largest, most pixels first (``sort``
        ignored). Rows carry both thumbnails."""
        sort_col = EXPLORE_SORTS.get(sort)
        if sort_col is None:
            raise ValidationError(f"sort must be one of {', '.join(EXPLORE_SORTS)}, got {sort!r}")
        offset, limit = int(offset), int(limit)
        if offset < 0 or not 1 <= limit <= MAX_PAGE:
            raise ValidationError(f"offset >= 0 and a page of 1..{MAX_PAGE} images, got {offset}, {limit}")
        unc_lo, unc_hi = _range(uncertainty, "uncertainty")
        iou_lo, iou_hi = _range(iou, "IoU")
        with self._session() as s:
            pid = self._project_row(s, project).id
            conds = [Image.project_id == pid, IN_PROJECT]
            if status is not None:
                if status not in EXPLORE_STATUSES:
                    raise ValidationError(f"status must be one of {', '.join(EXPLORE_STATUSES)}, got {status!r}")
                conds.append(Image.status == status)
            if review is not None:
                conds.append(Image.review == _enum_value(ReviewState, review, "review"))
            if split is not None:
                conds.append(Image.split == _check_split(split))
            if author:
                conds.append(func.lower(Image.annotated_by) == str(author).strip().lower())
            if name:
                conds.append(func.lower(Image.filename).contains(str(name).strip().lower(), autoescape=True))
            if date_from is not None:
                conds.append(Image.annotated_at >= date_from)
            if date_to is not None:
                conds.append(Image.annotated_at < date_to + timedelta(days=1)
                             if date_to.time() == datetime.min.time() else Image.annotated_at <= date_to)
            for col, lo, hi in ((ImageMetrics.entropy, unc_lo, unc_hi), (ImageMetrics.iou, iou_lo, iou_hi)):
                if lo is not None:
                    conds.append(col >= lo)
                if hi is not None:
                    conds.append(col <= hi)
            if min_disagreement is not None:
                conds.append(Image.review_score >= float(_range((min_disagreement, None), "disagreement")[0]))
            if class_index is not None:
                src = AREA_SOURCES.get(class_source)
                if src is None:
                    raise ValidationError(f"class area of 'prediction' or 'annotation', got {class_source!r}")
                a = ImageClassArea     # one range of the (project, source, class, share) index
                conds.append(Image.id.in_(select(a.image_id).where(
                    a.project_id == pid, a.source == src, a.class_index == int(class_index),
                    a.share >= max(0.0, float(class_min_share)), a.share > 0)))
            base = select().select_from(Image).outerjoin(ImageMetrics, ImageMetrics.image_id == Image.id)
            pixels = None
            if cell is not None:
                t, p = (int(cell[0]), int(cell[1]))
                if cell_scope not in CONFUSION_SCOPES:
                    raise ValidationError(f"scope must be one of {', '.join(CONFUSION_SCOPES)}, got {cell_scope!r}")
                c = ImageConfusion
                base = base.join(c, and_(c.image_id == Image.id, c.true_class == t, c.pred_class == p))
                conds += self._confusion_conditions(version_id, cell_scope)
                pixels = c.pixels
            where = and_(*conds)
            total = s.scalar(base.with_only_columns(func.count()).where(where))
            # two steps: the page's ids from narrow sorted rows (a deep offset then skips
            # ids, not thumbnails), then those rows with their thumbnails
            q = base.with_only_columns(Image.id, pixels if pixels is not None else Image.id).where(where)
            if pixels is not None:
                q = q.order_by(pixels.desc(), Image.id)
            else:
                key = sort_col.desc() if descending else sort_col.asc()
                q = q.order_by(key.nulls_last(), Image.id.desc() if descending else Image.id)
            page = s.execute(q.offset(offset).limit(limit)).all()
            order = {int(i): k for k, (i, _) in enumerate(page)}
            px = {int(i): n for i, n in page}
            cols = [Image.id, Image.filename, Image.status, Image.split, Image.review, Image.annotated_by,
                    Image.annotated_at, Image.created_at, Image.review_score, Image.revision, Image.width,
                    Image.height, ImageMetrics.entropy, ImageMetrics.iou, ImageMetrics.accuracy,
                    ImageMetrics.model_version_id, ImageMetrics.revision, ImageMetrics.thumb_pred,
                    ImageMetrics.thumb_ann]
            was = gc.isenabled()
            gc.disable()
            try:
                rows = s.execute(select(*cols).select_from(Image)
                                 .outerjoin(ImageMetrics, ImageMetrics.image_id == Image.id)
                                 .where(Image.id.in_(list(order)))).all() if order else []
            finally:
                if was:
                    gc.enable()
            rows = sorted(rows, key=lambda r: order[int(r[0])])
            out = [ExploreRow(id=r[0], filename=r[1], status=r[2], split=r[3], review=r[4], annotated_by=r[5],
                              annotated_at=_utc(r[6]), created_at=_utc(r[7]), review_score=r[8], revision=r[9],
                              width=r[10], height=r[11], entropy=r[12], iou=r[13], accuracy=r[14],
                              metrics_version=r[15], metrics_revision=r[16], thumb_pred=r[17], thumb_ann=r[18],
                              pixels=int(px[int(r[0])]) if pixels is not None else None) for r in rows]
            return int(total or 0), out

    @staticmethod
    def _confusion_conditions(version_id: int | None, scope: str) -> list:
        """The images a confusion matrix counts: submitted, metrics of ``version_id`` and
        of the image's current revision, in val (``scope`` "val") or any split."""
        conds = [Image.status == "submitted", ImageMetrics.model_version_id == version_id,
                 ImageMetrics.revision == Image.revision]
        if scope == "val":
            conds.append(Image.split == "val")
        return conds

    def confusion_counts(self, project: str | int, version_id: int, scope: str = "val") -> dict[str, Any]:
        """The confusion matrix of model version ``version_id`` over the project's
        submitted images (``scope`` "val": the val split; "annotated": all), from the
        stored per-image counts of that version's current metrics: ``{"cells":
        {(annotated, predicted): pixels}, "images": how many images it sums}``."""
        if scope not in CONFUSION_SCOPES:
            raise ValidationError(f"scope must be one of {', '.join(CONFUSION_SCOPES)}, got {scope!r}")
        with self._session() as s:
            pid = self._project_row(s, project).id
            self._version_row(s, version_id, pid, "model version", "this project")
            conds = [Image.project_id == pid, IN_PROJECT] + self._confusion_conditions(version_id, scope)
            joined = (select().select_from(Image).join(ImageMetrics, ImageMetrics.image_id == Image.id))
            n = s.scalar(joined.with_only_columns(func.count()).where(*conds))
            c = ImageConfusion
            rows = s.execute(joined.join(c, c.image_id == Image.id)
                             .with_only_columns(c.true_class, c.pred_class, func.sum(c.pixels))
                             .where(*conds).group_by(c.true_class, c.pred_class)).all()
            return {"cells": {(int(t), int(p)): int(v) for t, p, v in rows}, "images": int(n or 0)}
