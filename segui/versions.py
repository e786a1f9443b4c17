"""The Model screen's views of model versions and of the label set.

:class:`VersionsMixin` is the part of :class:`segui.handlers.Studio` behind them:

- :meth:`~VersionsMixin.iou_history`: per-class IoU of every version of a project,
  as measured here on the project's val set when it was (``segui.evaluation``), else as
  recorded with the version (``models.metrics.recorded_metrics``);
- :meth:`~VersionsMixin.compare_versions`: two versions' predictions of one image of
  the project (stored ones when there are, else predicted now) and what changed;
- :meth:`~VersionsMixin.correction_history`: what labellers changed of each image's
  prediction at its first submission, in the order submitted, by the model version that
  predicted it: the loop's headline number (fewer corrections as the model learns) for
  this project's own images;
- :meth:`~VersionsMixin.label_set_map`: the label set's class vectors in 2D, their
  cosine similarity, the pairs that sit too close (``models.label_map.TOO_CLOSE``) and
  the pairs the active version confuses on the project's val set, when it was evaluated.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from models.label_map import CONFUSED_SHARE, TOO_CLOSE, close_pairs, confused_pairs, cosine_similarity, pca_2d
from models.metrics import recorded_metrics
from storage import NotFoundError

from .errors import UserError
from .heatmaps import HEAT_PHRASES, change_pairs
from .imageops import hex_color

COMPARE_IMAGES = 300      # images offered in the compare picker (val first)
HISTORY_SUBMISSIONS = 2000   # the newest saves read for the correction history
FIRST_LAST = 10           # the summary compares the first and the last this many submissions


class VersionsMixin:
    """Studio's per-version views and the label-set map."""

    def class_colors(self, project: str | int) -> list[tuple[str, str]]:
        """(class name, '#rrggbb') of the project's label set, in index order."""
        return [(c.name, hex_color(c.color)) for c in self.store.get_project(project).classes]

    def iou_history(self, project: str | int) -> dict:
        """``{"classes": the project's class names, "versions": [{"version" ("v3"), "id",
        "active", "source", "miou", "iou" (one per class, None where not measured)}]}``
        in creation order; versions with no per-class IoU at all are left out."""
        p = self.store.get_project(project)
        names = list(p.class_names)
        rows = []
        for m in self.store.list_model_versions(p.id):
            ev = self.cached_evaluation(p.id, m.id)
            if ev is not None:
                per, miou, source = dict(zip(ev["names"], ev["iou"])), ev["miou"], self.measured_here()
            else:
                rec = recorded_metrics(m.metrics)
                per, miou, source = rec.get("per_class_iou") or {}, rec.get("miou"), "recorded with the version"
            iou = [None if per.get(n) is None else float(per[n]) for n in names]
            if all(v is None for v in iou):
                continue
            rows.append({"version": f"v{m.id}", "id": m.id, "active": bool(m.is_active), "source": source,
                         "miou": None if miou is None else float(miou), "iou": iou,
                         "name": m.name or Path(m.weights_dir).name})
        return {"classes": names, "versions": rows}

    def correction_history(self, project: str | int) -> dict:
        """``{"rows": [{"n" (1, 2, ...), "image_id", "name", "changed" (share 0..1), "fixes",
        "version" ("v3" or ""), "author", "when"}] in the order submitted, "sentence": the
        first and the last FIRST_LAST submissions compared}``, from the correction records
        the app keeps with each image's first submission (``Store.corrections``)."""
        p = self.store.get_project(project)
        recs = self.store.corrections(p.id, limit=HISTORY_SUBMISSIONS)
        names = self.store.image_filenames(p.id, [r.image_id for r in recs])
        rows = [{"n": i + 1, "image_id": r.image_id, "name": names.get(r.image_id, f"image {r.image_id}"),
                 "changed": r.changed, "fixes": r.fixes,
                 "version": f"v{r.model_version}" if r.model_version is not None else "",
                 "author": r.author or "", "when": f"{r.saved_at:%Y-%m-%d %H:%M}"} for i, r in enumerate(recs)]
        return {"rows": rows, "sentence": correction_sentence(rows)}

    def compare_choices(self, project: str | int) -> tuple[list[tuple[str, int]], int | None, int | None]:
        """(images to pick from: the val split first, then the others by id, at most
        :data:`COMPARE_IMAGES`; the version to show on the left: the one active before
        the active one; on the right: the active one)."""
        p = self.store.get_project(project)
        val = self.store.list_images(p.id, split="val", limit=COMPARE_IMAGES)
        seen = {im.id for im in val}
        rest = [im for im in self.store.list_images(p.id, limit=COMPARE_IMAGES) if im.id not in seen]
        images = [(f"{im.filename} (#{im.id}{', val' if im.id in seen else ''})", im.id)
                  for im in (val + rest)[:COMPARE_IMAGES]]
        active = self.model_version(p.id).id
        prev = self.previous_model_version(p.id)
        return images, prev if prev is not None else active, active

    def compare_versions(self, project: str | int, image_id, version_a, version_b) -> dict:
        """Versions ``version_a`` and ``version_b`` of the project on its image
        ``image_id``: ``{"image" (H, W, 3), "a", "b" ((H, W) class maps, project
        indices), "colors" (256 '#rrggbb', by class index; void black), "changed"
        (pixels), "share", "pairs" ([(class in a, class in b, pixels)], most first),
        "a_label", "b_label"}``. The image and both versions must belong to the project."""
        p = self.store.get_project(project)
        try:
            iid = int(image_id)
            info = self.store.get_image(iid)
        except (TypeError, ValueError, NotFoundError):
            raise UserError(f"there is no image {image_id!r}: pick one of the list") from None
        if info.project_id != p.id:
            raise UserError(f"image {iid} is not in project {p.name!r}")
        labels = []
        for v in (version_a, version_b):
            try:
                mv = self.store.get_model_version(int(v))
            except (TypeError, ValueError, NotFoundError):
                raise UserError("pick two model versions") from None
            if mv.project_id != p.id:
                raise UserError(f"model version {v} belongs to another project")
            labels.append(f"v{mv.id}: {mv.name or Path(mv.weights_dir).name}")
        a, image = self._version_map(iid, int(version_a))
        b, image = self._version_map(iid, int(version_b), image)
        if image is None:
            image = self.store.load_image(iid)
        mask, pairs = change_pairs(p, a, b)
        colors = ["#000000"] * 256
        for c in p.classes:
            colors[c.index] = hex_color(c.color)
        n = int(mask.sum())
        return {"image": image, "a": a, "b": b, "colors": colors, "changed": n, "share": n / max(1, mask.size),
                "pairs": pairs, "a_label": labels[0], "b_label": labels[1], "ignore_index": p.ignore_index,
                "classes": [(c.name, hex_color(c.color)) for c in p.classes]}

    def label_set_map(self, project: str | int) -> dict:
        """The project's label set as the active model reads it: ``{"names", "xy"
        ((K, 2) PCA of the class vectors), "explained" (variance the 2D map keeps),
        "similarity" ((K, K) cosine), "threshold", "close" ([(a, b, similarity)] at or
        above it), "confused" ([(a, b, share)] on the val set, or None when the active
        version was not evaluated here), "val_images", "version", "sentence"}``."""
        p = self.store.get_project(project)
        names = list(p.class_names)
        if len(names) < 2:
            raise UserError("the label set has fewer than two classes: nothing to compare")
        mv = self.model_version(p.id)
        _, word_cache = self._heat_caches()
        adapter, _ = self._heat_lookup(word_cache, ("set", mv.weights_dir, tuple(names)),
                                       lambda: self.predictors.word_vectors(mv.weights_dir, names), HEAT_PHRASES + 8)
        vectors = adapter.class_vectors.numpy()
        sim = cosine_similarity(vectors)
        xy, explained = pca_2d(vectors)
        close = close_pairs(names, sim, TOO_CLOSE)
        ev = self.cached_evaluation(p.id, mv.id)
        confused = confused_pairs(ev["names"], np.asarray(ev["confusion"]), CONFUSED_SHARE) if ev else None
        return {"names": names, "xy": xy, "explained": explained, "similarity": sim, "threshold": TOO_CLOSE,
                "close": close, "confused": confused, "val_images": ev["images"] if ev else 0,
                "version": mv.id, "sentence": _sentence(close, confused, mv.id, ev)}


def _pairs_text(pairs, fmt) -> str:
    return ", ".join(f"{a} – {b} ({fmt(v)})" for a, b, v in pairs)


def _sentence(close, confused, version: int, ev) -> str:
    if close:
        text = (f"These words sit too close for the model (cosine similarity of their vectors at least "
                f"{TOO_CLOSE:.2f}, a threshold chosen on CamVid train): {_pairs_text(close, lambda v: f'{v:.2f}')}. "
                "Pixels of one are easily taken for the other: a more distinct wording may help.")
    else:
        text = f"No two words sit too close: every pair's cosine similarity is below {TOO_CLOSE:.2f}."
    if confused is None:
        return text + (f" Which pairs v{version} confuses: not measured yet; press 'Evaluate on this project's "
                       "val images' above.")
    if not confused:
        return text + (f" On this project's {ev['images']} val image(s) v{version} confuses no pair "
                       f"(no class loses {100 * CONFUSED_SHARE:.0f}% of its pixels to another).")
    both = {frozenset((a, b)) for a, b, _ in close} & {frozenset((a, b)) for a, b, _ in confused}
    text += (f" On this project's {ev['images']} val image(s) v{version} confuses "
             f"{_pairs_text(confused[:6], lambda v: f'{100 * v:.0f}%')}"
             f"{' and more' if len(confused) > 6 else ''} (share of one class's pixels predicted as the other).")
    if close:
        text += f" {len(both)} of the {len(close)} close pair(s) are among them."
    return text


def correction_sentence(rows: list[dict], k: int = FIRST_LAST) -> str:
    """The history in words: the first and the last ``k`` submissions' mean share of the
    prediction changed and fixes an image (only when there are at least 2k; "first": of the
    saves :meth:`VersionsMixin.correction_history` reads, the newest HISTORY_SUBMISSIONS)."""
    if not rows:
        return ("No submission recorded what it changed yet: each image's first submission from now "
                "on is compared with the prediction it started from.")

    def mean(rs, key):
        return float(np.mean([r[key] for r in rs]))

    n = len(rows)
    if n < 2 * k:
        return (f"{n} submitted image(s) so far: {100 * mean(rows, 'changed'):.1f}% of each prediction changed, "
                f"{mean(rows, 'fixes'):.1f} separate fixes an image. After {2 * k} the first and the last {k} are compared.")
    a, b = rows[:k], rows[-k:]
    ca, cb = mean(a, "changed"), mean(b, "changed")
    trend = ("nothing changed" if ca == 0 else f"{100 * (1 - cb / ca):.0f}% less to change" if cb < ca
             else "no less to change")
    return (f"The first {k} submitted images needed {100 * ca:.1f}% of their predicted pixels changed "
            f"({mean(a, 'fixes'):.1f} separate fixes each); the last {k}, {100 * cb:.1f}% "
            f"({mean(b, 'fixes'):.1f}): {trend}.")
