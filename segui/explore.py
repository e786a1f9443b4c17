"""The Explore screen's rules (issue 19): per-image metrics computed in the background,
served in pages; the active model's confusion matrix and the images behind a cell.

:class:`ExploreMixin` is the part of :class:`segui.handlers.Studio` that

- computes an image's metrics (:meth:`compute_image_metrics`): the active model's
  prediction (stored; predicted when missing, which stores its entropy), the mean
  normalised entropy, IoU and pixel accuracy against the latest annotation, the
  per-class areas of both masks, the per-image confusion counts and two 160x120 JPEG
  thumbnails (photo + prediction, photo + annotation), stored by
  ``Store.save_image_metrics``;
- keeps them current in the background (:meth:`start_explore_worker`: one daemon
  thread, started by ``app.py``; it asks the store which images are stale, val and
  annotated ones first, every few seconds; :meth:`explore_poke` wakes it at once),
  and synchronously for tests and benchmarks (:meth:`refresh_explore_metrics`);
- answers the screen: a page of images sorted and filtered (:meth:`explore_page`, one
  SQL query, thumbnails as data URLs), the confusion matrix of the val split or of all
  submitted images (:meth:`explore_confusion`, summed in SQL from the per-image
  counts) and a cell's images, where that confusion is largest, with those pixels
  outlined on the thumbnail (:meth:`explore_page` with ``cell``).

Who may: reviewers and admins who are members of the project (checked here as well as
by the app's guard); every image shown comes from a query on that project's id.
"""
from __future__ import annotations

import base64
import hashlib
import io
import logging
import threading
import time
from datetime import datetime, timezone
from typing import Any

import numpy as np
from PIL import Image as PILImage

from storage import NotFoundError, ValidationError
from storage.store_metrics import CONFUSION_SCOPES, EXPLORE_SORTS, EXPLORE_STATUSES, MAX_PAGE

from .access import Act, Forbidden, Principal
from .errors import UserError
from .imageops import resize_nearest

log = logging.getLogger(__name__)

THUMB_W, THUMB_H = 160, 120      # a thumbnail fits this box (aspect kept)
THUMB_QUALITY = 80
MASK_ALPHA = 0.5
OUTLINE = (255, 0, 255)          # a confusion cell's pixels on the thumbnail
PAGE = 32                        # images per page the grid asks for (a 1440x900 screen shows ~20)
CELL_PAGE = 24                   # a confusion cell's page (each thumbnail outlined on the fly)
POLL_S = 3.0                     # the background computation looks for stale images this often
TEXT_MAX = 200                   # characters of a text filter

SORT_LABELS = {"id": "image id", "added": "date added", "date": "date annotated", "status": "status",
               "split": "split", "author": "author", "uncertainty": "uncertainty (mean entropy)",
               "iou": "IoU (prediction vs annotation)", "accuracy": "pixel accuracy",
               "disagreement": "review disagreement (model's score)"}
assert set(SORT_LABELS) == set(EXPLORE_SORTS)


def _jpeg(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(rgb).save(buf, format="JPEG", quality=THUMB_QUALITY)
    return buf.getvalue()


def _data_url(jpeg: bytes | None) -> str | None:
    return None if jpeg is None else "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


def thumb_size(height: int, width: int) -> tuple[int, int]:
    s = min(THUMB_W / width, THUMB_H / height, 1.0)
    return max(1, round(height * s)), max(1, round(width * s))


def palette_key(p) -> str:
    """Names the class colours (and void) a thumbnail was drawn with, and the class words
    its prediction was made for (a renamed class: the predictions are made again,
    ``ModelMixin.label_set_changed``, so the metrics are out of date too)."""
    spec = f"{p.ignore_index};" + ";".join(f"{c.index}:{c.color}:{c.name}" for c in p.classes)
    return hashlib.sha1(spec.encode()).hexdigest()[:16]


def overlay(photo: np.ndarray, class_map: np.ndarray, p) -> np.ndarray:
    """The (thumbnail-sized) photo with the class map over it in the class colours (void clear)."""
    cm = resize_nearest(class_map, *photo.shape[:2])
    lut = p.color_lut().astype(np.float32)
    known = np.zeros(256, bool)
    known[p.class_indices] = True
    m = known[cm][..., None]
    out = np.where(m, photo * (1 - MASK_ALPHA) + lut[cm] * MASK_ALPHA, photo)
    return out.round().astype(np.uint8)


def image_scores(pred: np.ndarray, ann: np.ndarray, p) -> tuple[float | None, float | None, dict]:
    """(IoU, pixel accuracy, confusion counts) of a prediction against an annotation over
    the annotation's labelled pixels (void left out): IoU is the mean over the classes
    either has there; counts are ``{(annotated, predicted): pixels}``."""
    valid = ann != p.ignore_index
    n = int(valid.sum())
    if n == 0:
        return None, None, {}
    a, b = ann[valid].astype(np.int64), pred[valid].astype(np.int64)
    pairs = np.bincount(a * 256 + b, minlength=256 * 256).reshape(256, 256)
    nz = np.nonzero(pairs)
    counts = {(int(t), int(q)): int(pairs[t, q]) for t, q in zip(*nz)}
    inter = np.diag(pairs)
    union = pairs.sum(0) + pairs.sum(1) - inter
    present = union > 0
    iou = float((inter[present] / union[present]).mean())
    return iou, float(inter.sum() / n), counts


def areas(class_map: np.ndarray, p, source: str) -> dict:
    counts = np.bincount(class_map.ravel(), minlength=256)
    return {(source, int(c)): float(counts[c] / class_map.size) for c in p.class_indices if counts[c]}


def outline(thumb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``thumb`` in grey with the pixels of the full-size boolean ``mask`` tinted and
    outlined (a thin region keeps at least one thumbnail pixel: any-pooling, not sampling)."""
    h, w = thumb.shape[:2]
    grey = thumb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    thumb = np.repeat(grey[..., None] * 0.8, 3, axis=2)        # grey, so the outline stands out
    small = np.asarray(PILImage.fromarray(mask.astype(np.uint8) * 255).resize((w, h), PILImage.BOX)) > 0
    pad = np.pad(small, 1)
    inner = pad[:-2, 1:-1] & pad[2:, 1:-1] & pad[1:-1, :-2] & pad[1:-1, 2:] & small
    edge = small & ~inner
    grown = edge.copy()                                        # 2 px wide, easy to see
    grown[1:] |= edge[:-1]
    grown[:, 1:] |= edge[:, :-1]
    out = thumb.astype(np.float32)
    out[small] = out[small] * 0.5 + np.array(OUTLINE, np.float32) * 0.5
    out[grown] = OUTLINE
    return out.round().astype(np.uint8)


def _number(v, what: str, lo: float = 0.0, hi: float = 1.0) -> float | None:
    if v is None or v == "":
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise UserError(f"{what}: give a number") from None
    if not (np.isfinite(f) and lo <= f <= hi):
        raise UserError(f"{what}: a number from {lo:g} to {hi:g}")
    return f


def _date(v, what: str) -> datetime | None:
    if v in (None, ""):
        return None
    try:
        d = datetime.fromisoformat(str(v).strip()[:32])
    except ValueError:
        raise UserError(f"{what}: a date like 2026-12-04") from None
    return d.replace(tzinfo=timezone.utc) if d.tzinfo is None else d


def _text(v, what: str) -> str | None:
    """A text filter: stripped, at most TEXT_MAX characters; None when empty."""
    text = str(v or "").strip()
    if len(text) > TEXT_MAX:
        raise UserError(f"{what}: at most {TEXT_MAX} characters")
    return text or None


def _choice(v, allowed, what: str) -> str | None:
    if v in (None, "", "any"):
        return None
    if v not in allowed:
        raise UserError(f"{what} must be one of {', '.join(allowed)}")
    return v


class ExploreMixin:
    """Studio's Explore screen: background per-image metrics, pages, confusion."""

    # ------------------------------------------------------------------ access

    def _explorer(self, project, who: Principal | None = None):
        """The project, if the caller is a reviewer or admin who may see it."""
        who = self._who(who)
        if not who.can(Act.REVIEW):
            from .access import refusal
            raise Forbidden(refusal(who, Act.REVIEW))
        if project in (None, ""):
            raise UserError("pick a project first")
        self._check_member(who, project)
        try:
            return self.store.get_project(project)
        except NotFoundError:
            raise UserError(f"there is no project {project!r}") from None

    # ------------------------------------------------------------------ computing

    def compute_image_metrics(self, image_id: int, image: np.ndarray | None = None) -> dict:
        """Compute and store one image's Explore metrics for its project's active model
        (predicting it when the stored prediction is missing or has no entropy)."""
        info = self.store.get_image(int(image_id))
        p = self.store.get_project(info.project_id)
        mv = self.model_version(p.id)
        pred = self.store.get_prediction(info.id, mv.id)
        if pred is None or pred.entropy is None:
            if image is None:
                image = self.store.load_image(info.id)
            if p.classes:
                self.predict(p.id, info.id, image)
                pred = self.store.get_prediction(info.id, mv.id)
        ann = self.store.get_annotation(info.id) if info.revision else None
        if image is None:
            image = self.store.load_image(info.id)
        th, tw = thumb_size(*image.shape[:2])
        photo = np.asarray(PILImage.fromarray(image).resize((tw, th), PILImage.BILINEAR))
        out: dict[str, Any] = {"entropy": None, "iou": None, "accuracy": None, "areas": {}, "confusion": {}}
        thumb_pred = thumb_ann = None
        if pred is not None:
            out["entropy"] = pred.entropy
            out["areas"].update(areas(pred.class_map, p, "p"))
            thumb_pred = _jpeg(overlay(photo, pred.class_map, p))
        else:
            thumb_pred = _jpeg(photo)
        if ann is not None and ann.class_map is not None:
            out["areas"].update(areas(ann.class_map, p, "a"))
            thumb_ann = _jpeg(overlay(photo, ann.class_map, p))
            if pred is not None and pred.class_map.shape == ann.class_map.shape:
                out["iou"], out["accuracy"], out["confusion"] = image_scores(pred.class_map, ann.class_map, p)
        self.store.save_image_metrics(info.id, mv.id if pred is not None else None,
                                      pred.created_at if pred is not None else None,
                                      ann.revision if ann is not None else 0, palette_key(p),
                                      entropy=out["entropy"], iou=out["iou"], accuracy=out["accuracy"],
                                      thumb_pred=thumb_pred, thumb_ann=thumb_ann, areas=out["areas"],
                                      confusion=out["confusion"])
        return out

    def _explore_state(self):
        with self._cache_lock:
            if not hasattr(self, "_explore_wake"):
                self._explore_wake = threading.Event()
                self._explore_stop = threading.Event()
                self._explore_thread: threading.Thread | None = None
                self._explore_failed: dict[int, int] = {}     # image id -> version it failed on
                self._explore_conf: dict[tuple, tuple] = {}     # (project, version, scope, classes) -> (signature, matrix)
                self.explore_stats = {"computed": 0, "seconds": 0.0, "failed": 0}
            return self._explore_wake

    def refresh_explore_metrics(self, project, limit: int | None = None, stop: threading.Event | None = None) -> int:
        """Compute the stale metrics of ``project`` now (at most ``limit`` images);
        returns how many were computed. Images that fail are logged and skipped until the
        active model changes."""
        self._explore_state()
        p = self.store.get_project(project)
        mv = self.model_version(p.id)
        key = palette_key(p)
        done = 0
        while limit is None or done < limit:
            if stop is not None and stop.is_set():
                break
            skip = tuple(i for i, v in self._explore_failed.items() if v == mv.id)
            batch = self.store.stale_metric_images(p.id, mv.id, key, limit=16, exclude=skip)
            if not batch:
                break
            for iid in batch:
                if (limit is not None and done >= limit) or (stop is not None and stop.is_set()):
                    break
                t0 = time.perf_counter()
                try:
                    self.compute_image_metrics(iid)
                except NotFoundError:
                    continue                     # deleted meanwhile
                except Exception:
                    log.exception("explore metrics of image %s failed", iid)
                    self._explore_failed[iid] = mv.id
                    self.explore_stats["failed"] += 1
                    continue
                done += 1
                self.explore_stats["computed"] += 1
                self.explore_stats["seconds"] += time.perf_counter() - t0
            if self.model_version(p.id).id != mv.id or palette_key(self.store.get_project(p.id)) != key:
                return done + self.refresh_explore_metrics(p.id, None if limit is None else limit - done, stop)
        return done

    def explore_poke(self) -> None:
        """Wake the background computation now (images, predictions or annotations changed)."""
        self._explore_state().set()

    def start_explore_worker(self, poll_s: float = POLL_S) -> threading.Thread:
        """The background thread that keeps every project's Explore metrics current
        (``app.py`` starts it; tests call :meth:`refresh_explore_metrics` instead)."""
        wake = self._explore_state()
        with self._cache_lock:
            if self._explore_thread is not None and self._explore_thread.is_alive():
                return self._explore_thread
            self._explore_stop.clear()

            def loop():
                while not self._explore_stop.is_set():
                    busy = False
                    try:
                        for p in self.store.list_projects():
                            busy |= self.refresh_explore_metrics(p.id, limit=32, stop=self._explore_stop) > 0
                    except Exception:       # never take the app down; try again later
                        log.exception("explore metrics pass failed")
                    if not busy:
                        wake.wait(poll_s)
                        wake.clear()

            self._explore_thread = threading.Thread(target=loop, name="explore-metrics", daemon=True)
            self._explore_thread.start()
            return self._explore_thread

    def stop_explore_worker(self, timeout: float = 10.0) -> None:
        self._explore_state()
        self._explore_stop.set()
        self._explore_wake.set()
        t = self._explore_thread
        if t is not None:
            t.join(timeout)

    def explore_progress(self, project, who: Principal | None = None) -> dict:
        p = self._explorer(project, who)
        mv = self.model_version(p.id)
        return {**self.store.metric_counts(p.id, mv.id, palette_key(p)), "version": mv.id}

    # ------------------------------------------------------------------ pages

    def explore_query(self, p, q: dict | None) -> dict:
        """A query the page or a script sent, checked: the keyword arguments of
        ``Store.explore_images`` (without paging) plus the mask to show."""
        q = dict(q or {})
        if not isinstance(q, dict):
            raise UserError("the query is a JSON object")
        sort = q.get("sort") or "id"
        if sort not in EXPLORE_SORTS:
            raise UserError(f"sort by one of {', '.join(EXPLORE_SORTS)}")
        kw: dict[str, Any] = {
            "sort": sort, "descending": bool(q.get("descending")),
            "status": _choice(q.get("status"), EXPLORE_STATUSES, "status"),
            "review": _choice(q.get("review"), ("pending", "accepted", "rejected"), "review"),
            "split": _choice(q.get("split"), ("train", "val", "none"), "split"),
            "author": _text(q.get("author"), "author"), "name": _text(q.get("name"), "file name"),
            "date_from": _date(q.get("date_from"), "from"), "date_to": _date(q.get("date_to"), "to"),
            "uncertainty": (_number(q.get("unc_min"), "uncertainty from"), _number(q.get("unc_max"), "uncertainty to")),
            "iou": (_number(q.get("iou_min"), "IoU from"), _number(q.get("iou_max"), "IoU to")),
            "min_disagreement": _number(q.get("disagreement_min"), "disagreement from"),
        }
        cls = q.get("class")
        if cls not in (None, "", "any"):
            by_name = {c.name.casefold(): c.index for c in p.classes}
            if not isinstance(cls, str) or cls.casefold() not in by_name:
                raise UserError(f"{str(cls)[:40]!r} is not a class of this project")
            kw["class_index"] = by_name[cls.casefold()]
            kw["class_min_share"] = (_number(q.get("class_min_pct"), "class area (%)", 0, 100) or 0.0) / 100
            kw["class_source"] = _choice(q.get("class_source") or "prediction", ("prediction", "annotation"),
                                         "class area of")
        cell = q.get("cell")
        if cell is not None:
            try:
                t, pr = int(cell["t"]), int(cell["p"])
            except (KeyError, TypeError, ValueError):
                raise UserError("a confusion cell is {'t': annotated class index, 'p': predicted class index}") \
                    from None
            known = set(p.class_indices)
            if t not in known or pr not in known:
                raise UserError("that confusion cell names a class this project does not have")
            kw["cell"] = (t, pr)
            kw["cell_scope"] = _choice(q.get("scope") or "val", CONFUSION_SCOPES, "scope")
        mask = q.get("mask") or "annotation"
        if mask not in ("annotation", "prediction"):
            raise UserError("mask: 'annotation' (where there is one) or 'prediction'")
        return {"kw": kw, "mask": mask}

    def explore_page(self, project, query: dict | None = None, offset: int = 0, limit: int | None = None,
                     who: Principal | None = None) -> dict:
        """One page of the project's images for the grid: ``{"total", "offset", "rows",
        "ms"}``; each row has the image's fields, its metrics (None where not computed
        yet; ``stale`` when they are an older model's or revision's) and a thumbnail
        data URL with the mask over it (a confusion cell's pixels outlined)."""
        t0 = time.perf_counter()
        p = self._explorer(project, who)
        q = self.explore_query(p, query)
        kw = q["kw"]
        mv = self.model_version(p.id)
        cell = kw.get("cell")
        default = CELL_PAGE if cell else PAGE
        try:
            limit = default if limit in (None, "") else int(limit)
            offset = int(offset or 0)
        except (TypeError, ValueError):
            raise UserError("offset and limit are whole numbers") from None
        if offset < 0 or not 1 <= limit <= MAX_PAGE:
            raise UserError(f"offset >= 0 and a page of 1 to {MAX_PAGE} images")
        try:
            total, rows = self.store.explore_images(p.id, **kw, version_id=mv.id, offset=offset, limit=limit)
        except ValidationError as e:
            raise UserError(str(e)) from None
        out = []
        for r in rows:
            use_ann = q["mask"] == "annotation" and r.thumb_ann is not None
            thumb = r.thumb_ann if use_ann else r.thumb_pred
            if cell is not None and thumb is not None:
                thumb = self._outlined(r, thumb, cell, mv.id)
            out.append({
                "id": r.id, "name": r.filename, "status": r.status, "split": r.split, "review": r.review,
                "author": r.annotated_by, "date": r.annotated_at.date().isoformat() if r.annotated_at else None,
                "disagreement": r.review_score, "uncertainty": r.entropy, "iou": r.iou, "accuracy": r.accuracy,
                "stale": r.metrics_version is not None and (r.metrics_version != mv.id or r.metrics_revision != r.revision),
                "thumb": _data_url(thumb), "mask": (None if thumb is None else "annotation" if use_ann else "prediction"),
                "pixels": r.pixels,
            })
        return {"total": total, "offset": offset, "rows": out, "version": mv.id,
                "ms": round(1000 * (time.perf_counter() - t0), 1)}

    def _outlined(self, row, thumb: bytes, cell: tuple[int, int], version_id: int) -> bytes:
        """The thumbnail with the cell's pixels (annotated t, predicted p) outlined."""
        ann = self.store.get_annotation(row.id)
        pred = self.store.get_prediction(row.id, version_id)
        if ann.class_map is None or pred is None or ann.class_map.shape != pred.class_map.shape:
            return thumb
        mask = (ann.class_map == cell[0]) & (pred.class_map == cell[1])
        base = np.asarray(PILImage.open(io.BytesIO(thumb)).convert("RGB"))
        return _jpeg(outline(base, mask))

    # ------------------------------------------------------------------ confusion

    def explore_confusion(self, project, scope: str = "val", who: Principal | None = None) -> dict:
        """The active model's confusion matrix on the project's submitted val images
        (``scope`` "val") or all submitted images ("annotated"), from the stored per-image
        counts (kept until ``Store.metrics_signature`` changes): ``{"names", "indices", "matrix" (rows annotated, columns predicted,
        pixels), "images", "scope", "version", "waiting" (images whose metrics are not
        computed yet)}``."""
        p = self._explorer(project, who)
        if scope not in CONFUSION_SCOPES:
            raise UserError(f"scope: one of {', '.join(CONFUSION_SCOPES)}")
        mv = self.model_version(p.id)
        key = (p.id, mv.id, scope, tuple(p.class_indices))
        sig = self.store.metrics_signature(p.id)
        self._explore_state()
        with self._cache_lock:
            hit = self._explore_conf.get(key)
        if hit is not None and hit[0] == sig:
            return dict(hit[1])
        got = self.store.confusion_counts(p.id, mv.id, scope)
        idx = p.class_indices
        pos = {c: i for i, c in enumerate(idx)}
        m = np.zeros((len(idx), len(idx)), np.int64)
        for (t, q), n in got["cells"].items():
            if t in pos and q in pos:
                m[pos[t], pos[q]] += n
        counts = self.store.metric_counts(p.id, mv.id, palette_key(p))
        out = {"names": p.class_names, "indices": idx, "matrix": m.tolist(), "images": got["images"],
               "scope": scope, "version": mv.id, "waiting": counts["stale"]}
        with self._cache_lock:     # a later call with the same signature is a lookup (a few per project)
            self._explore_conf[key] = (sig, out)
            while len(self._explore_conf) > 32:
                self._explore_conf.pop(next(iter(self._explore_conf)))
        return dict(out)


def confusion_figure(conf: dict):
    """A Plotly heatmap of a confusion matrix from :meth:`ExploreMixin.explore_confusion`:
    rows annotated, columns predicted, colour = share of the row's pixels, the pixel count
    on hover; each cell carries its class indices (``customdata``) for the click."""
    import plotly.graph_objects as go

    names = conf["names"]
    m = np.asarray(conf["matrix"], dtype=np.float64).reshape(len(names), len(names))
    rows = m.sum(1, keepdims=True)
    share = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    idx = conf["indices"]
    custom = [[[idx[i], idx[j], int(m[i, j])] for j in range(len(names))] for i in range(len(names))]
    text = [[f"{100 * share[i, j]:.0f}" if m[i, j] else "" for j in range(len(names))] for i in range(len(names))]
    fig = go.Figure(go.Heatmap(
        z=share, x=names, y=names, customdata=custom, text=text, texttemplate="%{text}",
        colorscale="Blues", zmin=0, zmax=1, colorbar={"title": {"text": "share of row"}},
        hovertemplate="annotated %{y}, predicted %{x}<br>%{z:.1%} of the row, %{customdata[2]:,} px"
                      "<extra>click: the images</extra>"))
    where = "the val split" if conf["scope"] == "val" else "all submitted images"
    fig.update_layout(
        title={"text": f"Model v{conf['version']} on {where} ({conf['images']} images): click a cell",
               "font": {"size": 14}},
        xaxis={"title": "predicted", "side": "bottom", "tickangle": -40},
        yaxis={"title": "annotated", "autorange": "reversed"},
        margin={"l": 90, "r": 10, "t": 40, "b": 90}, height=430)
    return fig
