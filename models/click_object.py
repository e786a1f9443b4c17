"""Click-to-object: an object's mask from positive and negative clicks, grown over the
model's own pixel embeddings (no extra network, no hub weights).

The shipped model's decoder gives every pixel a unit-norm embedding at stride 4
(:class:`models.adapt.PixelEmbeddings`, cached per image by the app), and the label
set's class vectors give its class probabilities on the same grid. A click's
similarity to a pixel mixes the embeddings' cosine with the chance that both have the
same class (:meth:`ObjectFeatures.click_score`).

:func:`object_mask` is the global grow: a pixel belongs to the object when it is more
like a positive click than like any negative click and than a fixed threshold, and
when it is 8-connected to a positive click (the score is computed on the stride-4 grid
and upsampled bilinearly, as the model's logits are; a distance penalty and a snap to
superpixels are there but off: they did worse on CamVid train).
:func:`object_from_clicks` is what the app runs: the clicks in order, the first
positive one growing globally, later ones correcting locally (a disc the size of the
error they sit in), and after each click the mask snapped to the image's edges (a
small guided filter of the mask against the image's grey levels,
:func:`models.refine.guided_refine`, when the features carry the image), the mask kept
per click prefix.

Also here: the standard click simulator of interactive segmentation benchmarks
(:func:`next_click`: the next click at the interior point of the largest error
region, positive or negative as that error is) and :func:`clicks_to_iou`.

Pure numpy / scipy on arrays; torch only to upsample like the model does.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np
from scipy import ndimage

Click = tuple[float, float]   # (x, y) in image pixels


@dataclass(frozen=True)
class ObjectSettings:
    """The grow's knobs (chosen on CamVid train by ``benchmarks/bench_clicks.py``: the
    grow's on 2026-12-04 (threshold then 0.6), the edge snap with threshold 0.5 on
    2026-12-05, the gate of wide correction discs on 2026-12-06, BENCHMARKS.md
    "Clicks to an object").

    threshold: cosine similarity to a positive click a pixel needs when no negative
      click is closer in embedding space; class_weight: the share of the similarity
      taken from the model's class probabilities (the chance that the pixel and the
      click have the same class, sum_k p_k(pixel) p_k(click)) rather than from the raw
      embeddings' cosine; spatial: similarity lost per image diagonal
      of distance to the click; snap: superpixels decide by majority (``snap_fraction``
      of a superpixel must be in) when segments are given; local: the radius of a
      correction's disc in units of the click's distance to the other state (0: every
      click recomputes the global grow, :func:`object_mask`); local_threshold: the
      similarity a pixel of that disc needs (-1: any); far: beyond this share of the
      image's shorter side from the mask a click grows (or cuts) globally;
      edge_radius / edge_eps / edge_subsample: after each click the mask (0 / 1) is
      guided-filtered against the image's grey levels with this radius (full-resolution
      pixels), regulariser and subsampling and thresholded at 0.5, so that its outline
      follows the image's edges at full resolution rather than the stride-4 grid
      (0: off; needs the image in :class:`ObjectFeatures`); gate_radius: a correction's
      disc wider than this (px) keeps only what the click itself grows to (a positive
      click: :func:`object_mask` from it against the negatives; a negative one: the
      pixels more like it than like the positives), so that a click on a separate
      thing near the mask adds that thing, not a disc over its surroundings (0: off)."""

    threshold: float = 0.5
    class_weight: float = 0.7
    spatial: float = 0.0
    snap: bool = False
    snap_fraction: float = 0.5
    local: float = 1.0
    local_threshold: float = -1.0
    far: float = 0.25
    edge_radius: int = 2
    edge_eps: float = 1e-3
    edge_subsample: int = 2
    gate_radius: float = 32.0

    def to_dict(self) -> dict:
        return asdict(self)


MAX_CLICKS = 64           # a request with more clicks than this is refused by the callers


class ObjectFeatures:
    """One image's embeddings prepared for clicks: (E, h, w) -> (h*w, E) rows, and the
    geometry between the image (H, W) and the grid (h, w); ``image``: the (H, W, 3)
    picture itself, for the edge snap (None: no snap)."""

    def __init__(self, pixels: np.ndarray, size: tuple[int, int], segments: np.ndarray | None = None,
                 probs: np.ndarray | None = None, image: np.ndarray | None = None):
        pixels = np.asarray(pixels, dtype=np.float32)
        if pixels.ndim != 3:
            raise ValueError("pixel embeddings must be (E, h, w)")
        self.e, self.h, self.w = pixels.shape
        self.size = (int(size[0]), int(size[1]))
        norm = np.linalg.norm(pixels, axis=0, keepdims=True)
        self.grid = (pixels / np.maximum(norm, 1e-6)).reshape(self.e, -1)   # (E, h*w)
        # (K, h*w) the model's class probabilities on the same grid (None: embeddings only)
        self.probs = None if probs is None else np.asarray(probs, np.float32).reshape(len(probs), -1)
        if self.probs is not None and self.probs.shape[1] != self.h * self.w:
            raise ValueError("class probabilities and embeddings are on different grids")
        self.segments = None if segments is None else np.asarray(segments)
        if self.segments is not None and self.segments.shape != self.size:
            raise ValueError(f"segments are {self.segments.shape}, the image is {self.size}")
        self.image = None if image is None else np.asarray(image)
        if self.image is not None and self.image.shape[:2] != self.size:
            raise ValueError(f"the image is {self.image.shape[:2]}, the embeddings' size {self.size}")
        H, W = self.size
        # grid coordinates of every grid cell, in image pixels (for the distance penalty)
        gy = (np.arange(self.h) + 0.5) * H / self.h
        gx = (np.arange(self.w) + 0.5) * W / self.w
        self._gy, self._gx = np.meshgrid(gy, gx, indexing="ij")
        self.diag = float(np.hypot(H, W))

    @classmethod
    def from_embeddings(cls, emb, adapter=None, segments: np.ndarray | None = None,
                        image: np.ndarray | None = None) -> "ObjectFeatures":
        """From a :class:`models.adapt.PixelEmbeddings`, (for the class probabilities)
        the label set's :class:`models.adapt.Adapter` and (for the edge snap) the image."""
        import torch

        pixels = emb.pixels
        probs = None
        if adapter is not None:
            with torch.inference_mode():
                low = torch.einsum("ehw,ke->khw", pixels.float(), adapter.class_vectors.float())
                low = low * adapter.logit_scale + adapter.logit_bias + adapter.biases.view(-1, 1, 1)
                probs = low.softmax(0).numpy()
        return cls(pixels.numpy() if hasattr(pixels, "numpy") else pixels, emb.size, segments, probs, image)

    def _sample(self, grid: np.ndarray, x: float, y: float) -> np.ndarray:
        """(rows,) ``grid`` (rows, h*w) at image point (x, y), bilinear as the upsampled
        map would have it (align_corners=False)."""
        H, W = self.size
        gx = min(max((x + 0.5) * self.w / W - 0.5, 0.0), self.w - 1.0)
        gy = min(max((y + 0.5) * self.h / H - 0.5, 0.0), self.h - 1.0)
        x0, y0 = int(np.floor(gx)), int(np.floor(gy))
        x1, y1 = min(x0 + 1, self.w - 1), min(y0 + 1, self.h - 1)
        ax, ay = gx - x0, gy - y0
        g = grid
        return ((1 - ay) * ((1 - ax) * g[:, y0 * self.w + x0] + ax * g[:, y0 * self.w + x1])
                + ay * ((1 - ax) * g[:, y1 * self.w + x0] + ax * g[:, y1 * self.w + x1]))

    def embedding_at(self, x: float, y: float) -> np.ndarray:
        """(E,) the unit embedding at image point (x, y)."""
        v = self._sample(self.grid, x, y)
        return v / max(float(np.linalg.norm(v)), 1e-6)

    def click_score(self, click: Click, spatial: float = 0.0, class_weight: float = 0.0) -> np.ndarray:
        """(h, w) similarity of every grid cell to the click: (1 - class_weight) x the
        embeddings' cosine + class_weight x the chance of the same class, minus
        ``spatial`` per image diagonal of distance to it."""
        x, y = click
        s = (self.embedding_at(x, y) @ self.grid).reshape(self.h, self.w)
        if class_weight and self.probs is not None:
            same = (self._sample(self.probs, x, y) @ self.probs).reshape(self.h, self.w)
            s = (1 - class_weight) * s + class_weight * same
        if spatial:
            s = s - spatial * np.hypot(self._gx - x, self._gy - y) / self.diag
        return s


def _upsample(score: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(score, dtype=np.float32))[None, None]
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False)[0, 0].numpy()


def _inside(click: Click, size: tuple[int, int]) -> tuple[int, int]:
    H, W = size
    x, y = click
    if not (0 <= x < W and 0 <= y < H):
        raise ValueError(f"click ({x:g}, {y:g}) is outside the {W}x{H} image")
    return int(x), int(y)


def object_mask(feat: ObjectFeatures, positive: Sequence[Click], negative: Sequence[Click] = (),
                settings: ObjectSettings = ObjectSettings()) -> np.ndarray:
    """(H, W) bool: the object the clicks describe (empty without a positive click).

    A pixel is in when its best positive score beats both its best negative score and
    ``settings.threshold``, and it is 8-connected to a positive click. A positive click's
    own pixel is always in and a negative click's always out."""
    H, W = feat.size
    pos = [_inside(c, feat.size) for c in positive]
    neg = [_inside(c, feat.size) for c in negative]
    if not pos:
        return np.zeros((H, W), bool)
    sp, cw = settings.spatial, settings.class_weight
    best_pos = np.max([feat.click_score(c, sp, cw) for c in positive], axis=0)
    rival = np.full((feat.h, feat.w), settings.threshold, np.float32)
    if neg:
        rival = np.maximum(rival, np.max([feat.click_score(c, sp, cw) for c in negative], axis=0))
    inside = _upsample(best_pos - rival, (H, W)) > 0
    if settings.snap and feat.segments is not None:
        seg = feat.segments.ravel()
        n = int(seg.max()) + 1
        frac = np.bincount(seg, weights=inside.ravel(), minlength=n) / np.maximum(np.bincount(seg, minlength=n), 1)
        inside = (frac >= settings.snap_fraction)[feat.segments]
    for x, y in neg:
        inside[y, x] = False
    for x, y in pos:
        inside[y, x] = True
    comps, _ = ndimage.label(inside, structure=np.ones((3, 3), bool))
    keep = np.unique([comps[y, x] for x, y in pos])
    keep = keep[keep > 0]
    return np.isin(comps, keep)


def _distance_to(mask: np.ndarray, x: int, y: int) -> float:
    ys, xs = np.nonzero(mask)
    if not len(ys):
        return float("inf")
    return float(np.sqrt(np.min((xs - x) ** 2 + (ys - y) ** 2)))


def object_from_clicks(feat: ObjectFeatures, clicks: Sequence[tuple[float, float, bool]],
                       settings: ObjectSettings = ObjectSettings(), states: dict | None = None) -> np.ndarray:
    """(H, W) bool from clicks in order, ``(x, y, positive)`` each.

    Replayed one click at a time from an empty mask. A positive click outside the
    mask and far from it (more than ``settings.far`` of the image's shorter side, or
    the first) adds a part grown globally from it (:func:`object_mask` against the
    negative clicks so far); a negative click as deep inside the mask removes what is
    more like the negative clicks than like the positive ones. Any other click
    corrects locally: a disc around it, of ``settings.local`` times the
    click's distance to the other state (its error region's size as seen from the
    mask), takes the click's state, where the click's similarity is at least
    ``settings.local_threshold``. ``states``: a cache {clicks prefix: mask} so that a
    new click costs one step."""
    H, W = feat.size
    cl = [(*_inside((x, y), feat.size), bool(p)) for x, y, p in clicks]
    if settings.local <= 0:
        return object_mask(feat, [(x, y) for x, y, p in cl if p], [(x, y) for x, y, p in cl if not p], settings)
    mask, start = resume(states, cl, (H, W))
    snap = settings.edge_radius > 0 and feat.image is not None
    for k in range(start, len(cl)):
        x, y, positive = cl[k]
        if mask[y, x] == positive:
            pass
        elif positive and (not mask.any() or _distance_to(mask, x, y) > settings.far * min(H, W)):
            neg = [(a, b) for a, b, p in cl[:k + 1] if not p]
            mask |= object_mask(feat, [(x, y)], neg, settings)
        elif not positive and _distance_to(~mask, x, y) > settings.far * min(H, W):
            # deep inside the mask: what is more like this click than like the positives goes
            pos = [(a, b) for a, b, p in cl[:k + 1] if p]
            neg = [(a, b) for a, b, p in cl[:k + 1] if not p]
            mask &= object_mask(feat, pos, neg, ObjectSettings(threshold=-2.0, class_weight=settings.class_weight))
        else:
            r = _distance_to(mask if positive else ~mask, x, y)
            R = settings.local * r + 1.0
            y0, y1 = max(0, int(y - R)), min(H, int(y + R) + 1)
            x0, x1 = max(0, int(x - R)), min(W, int(x + R) + 1)
            yy, xx = np.ogrid[y0:y1, x0:x1]
            disc = (yy - y) ** 2 + (xx - x) ** 2 <= R * R
            if settings.local_threshold > -1:
                sim = _upsample(feat.click_score((x, y), 0.0, settings.class_weight), (H, W))[y0:y1, x0:x1]
                disc &= sim >= settings.local_threshold
            if settings.gate_radius > 0 and R > settings.gate_radius:
                disc &= _own_grow(feat, cl[:k + 1], settings)[y0:y1, x0:x1]
            mask[y0:y1, x0:x1][disc] = positive
        mask[y, x] = positive
        if snap:
            mask = snap_to_edges(mask, feat.image, settings)
            for a, b, p in cl[:k + 1]:       # every click keeps its state
                mask[b, a] = p
        if states is not None:
            states[tuple(cl[:k + 1])] = mask.copy()
    pos = [(x, y) for x, y, p in cl if p]
    if not pos:
        return np.zeros((H, W), bool)
    return connected_to(mask, pos)


def _own_grow(feat: ObjectFeatures, clicks: Sequence[tuple[int, int, bool]],
              settings: ObjectSettings) -> np.ndarray:
    """(H, W) bool: what the last of ``clicks`` grows to on its own (the gate of a wide
    correction disc): for a positive click the grow from it against the negative clicks
    so far, for a negative one the pixels 8-connected to it that are more like it than
    like any positive click so far."""
    x, y, positive = clicks[-1]
    others = [(a, b) for a, b, p in clicks[:-1] if p != positive]
    return object_mask(feat, [(x, y)], others, settings)


def snap_to_edges(mask: np.ndarray, image: np.ndarray, settings: ObjectSettings = ObjectSettings()) -> np.ndarray:
    """(H, W) bool: ``mask`` guided-filtered against ``image``'s grey levels
    (:func:`models.refine.guided_refine`, radius ``settings.edge_radius``) and
    thresholded at 0.5: its outline moves to the image's edges nearby, slivers the
    stride-4 score got wrong along an edge flip with it, and isolated specks the
    image does not support go."""
    import torch

    from .refine import guided_refine

    m = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None]
    out = guided_refine(m, image, radius=settings.edge_radius, eps=settings.edge_eps,
                        subsample=settings.edge_subsample)[0]
    return (out > 0.5).numpy()


def resume(states: dict | None, clicks: Sequence[tuple[int, int, bool]],
           size: tuple[int, int]) -> tuple[np.ndarray, int]:
    """(mask, k): the cached mask of the longest prefix of ``clicks`` in ``states``
    ({clicks prefix: mask}) and its length, or an empty mask and 0, so that a new click
    costs one step (the grow's and the click head's replay)."""
    if states is not None:
        for k in range(len(clicks), 0, -1):
            hit = states.get(tuple(clicks[:k]))
            if hit is not None:
                return hit.copy(), k
    return np.zeros(size, bool), 0


def connected_to(mask: np.ndarray, points: Sequence[tuple[int, int]]) -> np.ndarray:
    """The parts of ``mask`` 8-connected to one of ``points`` ((x, y) each)."""
    comps, _ = ndimage.label(mask, structure=np.ones((3, 3), bool))
    keep = np.unique([comps[y, x] for x, y in points])
    return np.isin(comps, keep[keep > 0])


def objects_of(label: np.ndarray, ignore: int, min_area: int = 400) -> list[tuple[int, np.ndarray]]:
    """The benchmark's objects: (class, mask) of each 8-connected region of one class
    (not ``ignore``) of at least ``min_area`` px."""
    out = []
    for c in np.unique(label):
        if c == ignore:
            continue
        comps, n = ndimage.label(label == c, structure=np.ones((3, 3), bool))
        areas = np.bincount(comps.ravel(), minlength=n + 1)
        for k in np.nonzero(areas >= min_area)[0]:
            if k > 0:
                out.append((int(c), comps == k))
    return out


# ------------------------------------------------------------------ click simulation

def next_click(gt: np.ndarray, pred: np.ndarray, valid: np.ndarray | None = None) -> tuple[int, int, bool] | None:
    """The standard simulated click (RITM, Sofiiuk et al. 2022): the point of the
    largest error region farthest from its boundary (Euclidean distance transform; the
    image frame counts as a boundary), positive when that error is a missed part of the
    object, negative when it is a wrongly included part. ``valid``: pixels that count
    (e.g. not void). -> (x, y, positive), or None when there is no error."""
    gt = np.asarray(gt, bool)
    pred = np.asarray(pred, bool)
    v = np.ones_like(gt) if valid is None else np.asarray(valid, bool)
    fn = gt & ~pred & v
    fp = pred & ~gt & v
    best = None
    for mask, positive in ((fn, True), (fp, False)):
        if not mask.any():
            continue
        ys, xs = np.nonzero(mask)
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        crop = np.pad(mask[y0:y1, x0:x1], 1)      # outside the box the mask is empty anyway
        dt = ndimage.distance_transform_edt(crop)
        k = int(np.argmax(dt))
        d = float(dt.flat[k])
        cy, cx = divmod(k, crop.shape[1])
        if best is None or d > best[0]:
            best = (d, int(cx - 1 + x0), int(cy - 1 + y0), positive)
    return None if best is None else best[1:]


def iou(gt: np.ndarray, pred: np.ndarray, valid: np.ndarray | None = None) -> float:
    g, p = np.asarray(gt, bool), np.asarray(pred, bool)
    if valid is not None:
        g, p = g & valid, p & valid
    union = np.count_nonzero(g | p)
    return 1.0 if union == 0 else np.count_nonzero(g & p) / union


def clicks_to_iou(gt: np.ndarray, tool: Callable[[list[tuple[int, int, bool]]], np.ndarray],
                  valid: np.ndarray | None = None, max_clicks: int = 20,
                  targets: Sequence[float] = (0.85, 0.90)) -> dict:
    """Drive ``tool(clicks) -> mask`` (clicks in order, ``(x, y, positive)`` each) with
    :func:`next_click` from an empty mask until every IoU target is reached or
    ``max_clicks`` clicks were made. -> {"noc": {target: clicks (max_clicks when never
    reached)}, "reached": {target: bool}, "ious": [IoU after each click]}."""
    clicks: list[tuple[int, int, bool]] = []
    pred = np.zeros(np.shape(gt), bool)
    ious: list[float] = []
    noc = {t: None for t in targets}
    for k in range(1, max_clicks + 1):
        c = next_click(gt, pred, valid)
        if c is None:
            break
        clicks.append(c)
        pred = tool(list(clicks))
        ious.append(iou(gt, pred, valid))
        for t in targets:
            if noc[t] is None and ious[-1] >= t:
                noc[t] = k
        if all(v is not None for v in noc.values()):
            break
    return {"noc": {t: (v if v is not None else max_clicks) for t, v in noc.items()},
            "reached": {t: v is not None for t, v in noc.items()}, "ious": ious}


def superpixel_clicks(segments: np.ndarray, clicks: Sequence[tuple[float, float, bool]]) -> np.ndarray:
    """The superpixel tool driven by clicks, for comparison: each positive click adds
    the superpixel under it, each negative click removes it, in click order."""
    seg = np.asarray(segments)
    mask = np.zeros(seg.shape, bool)
    for x, y, positive in clicks:
        mask[seg == seg[int(y), int(x)]] = bool(positive)
    return mask
