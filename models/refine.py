"""Edge-aware refinement of class probabilities (issue 20: fewer separate fixes).

The decoder predicts at stride 4 and the logits are upsampled bilinearly, so class
boundaries are smooth curves that ignore the image's own edges: thin slivers along
every object boundary come out wrong, and each counts as a separate fix. A guided
filter (He, Sun and Tang, "Guided Image Filtering", ECCV 2010 / TPAMI 2013) with the
image's grey levels as guide makes each class's probability locally an affine function
of the image: boundaries snap to image edges, and isolated specks that the image does
not support are smoothed away. It costs a handful of box filters (each
two 1-D average pools), no learning, and works on any model's probabilities (the shipped
model's, a job's, the instant layer's).

    probs = logits.softmax(0)                      # (K, H, W)
    refined = guided_refine(probs, image, RefineSettings())
    class_map = refined.argmax(0)
    class_map = refined_classes(probs, image, RefineSettings())   # what the app shows: that, with ``keep``

``keep`` (chosen on CamVid train, BENCHMARKS.md "Edge-aware refinement that keeps what the
network is sure of"): the filter only moves pixels the network is unsure of (boundaries,
specks), so a confident object narrower than its window (a pole, a wire) is not smoothed
away into the classes around it.

``min_area`` / ``unsure`` (chosen on CamVid train, BENCHMARKS.md "Small unsure pieces"):
after the filter, a piece of one class (8-connected) smaller than 30 px that the network
was unsure of (mean top probability below 0.8) takes the class around it: a speck that
would be one more thing for a labeller to click away.

Plain model library: torch, numpy, scikit-image's connected-component labelling and
models.data only.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .data import array_to_rgb


@dataclass(frozen=True)
class RefineSettings:
    """Chosen on CamVid train frames of drives 0001TP and 0006R0 (BENCHMARKS.md,
    "Edge-aware refinement"); radius 0 turns the refinement off."""

    radius: int = 4  # box half-width in full-resolution pixels (window 2r + 1)
    eps: float = 1e-3  # regulariser: larger = smoother, less edge-following
    subsample: int = 2  # the fast guided filter (He and Sun 2015): coefficients at 1/s size
    keep: float = 0.8  # a pixel the network gives at least this probability keeps its class (0: off)
    min_area: int = 30  # 8-connected pieces of one class smaller than this take their surroundings' class (0: off)
    unsure: float = 0.8  # ... only pieces whose mean top probability is below this (> 1: every small piece)

    @property
    def enabled(self) -> bool:
        return self.radius > 0

    def to_dict(self) -> dict:
        return asdict(self)


def box_filter(x: torch.Tensor, r: int) -> torch.Tensor:
    """Mean over a (2r+1)^2 window of each pixel of (C, H, W) or (1, C, H, W), the window
    clipped at the borders (the mean is over the pixels inside). Two 1-D average pools (the
    clipped window is a rectangle, so this is the 2-D mean exactly, with 2(2r+1) reads a
    pixel instead of (2r+1)^2); many channels pool channels-last (3-5x faster on this CPU),
    a few in plain layout (channels-last is slower there)."""
    batched = x.dim() == 4
    x4 = x if batched else x[None]
    x4 = x4.contiguous(memory_format=torch.channels_last if x4.shape[1] > 4 else torch.contiguous_format)
    k = 2 * r + 1
    out = F.avg_pool2d(x4, (k, 1), stride=1, padding=(r, 0), count_include_pad=False)
    out = F.avg_pool2d(out, (1, k), stride=1, padding=(0, r), count_include_pad=False)
    return out if batched else out[0]


def grey_guide(image: np.ndarray) -> torch.Tensor:
    """Any image array the model takes ((H, W), (H, W, 1/3/4), uint8 or floats in [0, 1])
    -> (H, W) float32 grey levels in [0, 1]."""
    rgb = array_to_rgb(image).astype(np.float32)
    grey = rgb @ np.array([0.299, 0.587, 0.114], np.float32) / 255.0
    return torch.from_numpy(np.ascontiguousarray(grey, dtype=np.float32))


def guided_refine(probs: torch.Tensor, image: np.ndarray, settings: RefineSettings | None = None,
                  radius: int | None = None, eps: float | None = None, subsample: int | None = None) -> torch.Tensor:
    """(K, H, W) probabilities -> (K, H, W) refined scores (argmax them for a class map;
    they are not renormalised). ``image`` is the (H, W, 3) picture they belong to."""
    s = settings or RefineSettings()
    r = s.radius if radius is None else radius
    e = s.eps if eps is None else eps
    sub = max(1, s.subsample if subsample is None else subsample)
    if r <= 0:
        return probs
    if probs.dim() != 3:
        raise ValueError(f"probs must be (K, H, W), got shape {tuple(probs.shape)}")
    guide = grey_guide(image).to(probs.device)
    if guide.shape != probs.shape[-2:]:
        raise ValueError(f"image {tuple(guide.shape)} and probabilities {tuple(probs.shape[-2:])} differ in size")
    cl = torch.channels_last  # every step below: 3-6x faster channels-last on a CPU
    I_full = guide[None, None].contiguous(memory_format=cl)  # (1, 1, H, W)
    p, I = probs.float()[None].contiguous(memory_format=cl), I_full
    if sub > 1:  # coefficients on a grid 1/sub the size, then upsampled (fast guided filter)
        p = F.avg_pool2d(p, sub, ceil_mode=True)
        I = F.avg_pool2d(I, sub, ceil_mode=True)
        r = max(1, round(r / sub))
    K = p.shape[1]
    # three box-filter calls over stacked channels (fewer, larger ops)
    mI, mII = box_filter(torch.cat([I, I * I], 1), r).split(1, 1)
    mean_p, mean_Ip = box_filter(torch.cat([p, I * p], 1), r).split(K, 1)
    a = (mean_Ip - mI * mean_p) / (mII - mI * mI + e)  # (1, K, h, w)
    b = mean_p - a * mI
    ab = box_filter(torch.cat([a, b], 1), r)
    if sub > 1:
        ab = F.interpolate(ab, size=tuple(I_full.shape[-2:]), mode="bilinear", align_corners=False)
    mean_a, mean_b = ab.split(K, 1)
    return torch.addcmul(mean_b, mean_a, I_full)[0]  # (K, H, W), channels-last in memory


def refined_classes(probs: torch.Tensor, image: np.ndarray, settings: RefineSettings | None = None) -> torch.Tensor:
    """(K, H, W) probabilities -> (H, W) int64 class map: the refined argmax, except where the
    network's top probability is at least ``settings.keep``, which keeps the network's class;
    then small unsure pieces merged into their surroundings (``min_area``, ``unsure``).
    Radius 0: the plain argmax, nothing else."""
    s = settings or RefineSettings()
    top, idx = probs.max(0)  # (max is ~5x faster than argmax over dim 0 on CPU)
    if not s.enabled:
        return idx
    out = guided_refine(probs, image, s).max(0).indices
    if s.keep > 0:
        out = torch.where(top >= s.keep, idx, out)
    if s.min_area > 1:
        out = torch.from_numpy(merge_small_pieces(out.cpu().numpy(), s.min_area, top.cpu().numpy(), s.unsure)).to(out.device)
    return out


def merge_small_pieces(class_map: np.ndarray, min_area: int, top: np.ndarray | None = None,
                       unsure: float = 1.01) -> np.ndarray:
    """(H, W) class map -> a copy where every 8-connected piece of one class smaller than
    ``min_area`` px (and, given ``top``, the (H, W) top probability, whose mean over the piece
    is below ``unsure``) takes the most common class of the pixels touching it (its 1-px
    outer ring, each ring pixel counted once, in the input map: pieces are judged at once,
    not one after another; a tie goes to the lower class index)."""
    from skimage.measure import label

    H, W = class_map.shape
    pieces = label(class_map, background=-1, connectivity=2).ravel()  # every class's pieces, 1..n
    sizes = np.bincount(pieces)
    small = sizes < min_area
    small[0] = False
    if top is not None and unsure <= 1.0:
        small &= np.bincount(pieces, weights=top.ravel(), minlength=sizes.size) < unsure * np.maximum(sizes, 1)
    P = int(small.sum())
    if P == 0:
        return class_map.copy()
    ids = np.zeros(sizes.size, np.int64)
    ids[small] = np.arange(1, P + 1)
    pid = ids[pieces].reshape(H, W)  # 1..P: the small pieces, 0: everything else
    # ring pixels: 8-neighbours of a piece's pixels outside it, as (piece, pixel) pairs, once each
    pad = np.pad(pid, 1, constant_values=-1)
    ys, xs = np.nonzero(pid)
    own = pid[ys, xs]
    keys = []
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy == 0 and dx == 0:
                continue
            ny, nx = ys + dy, xs + dx
            nb = pad[ny + 1, nx + 1]
            ok = (nb != own) & (nb != -1)
            keys.append(own[ok] * (H * W) + ny[ok] * W + nx[ok])
    pairs = np.unique(np.concatenate(keys))
    piece, pix = pairs // (H * W), pairs % (H * W)
    K = int(class_map.max()) + 1
    counts = np.bincount(piece * K + class_map.ravel()[pix], minlength=(P + 1) * K).reshape(P + 1, K)
    has_ring = counts.sum(1) > 0
    new_class = np.where(has_ring, counts.argmax(1), -1)  # -1: a piece with no ring (the whole image)
    out = class_map.copy()
    sel = pid > 0
    repl = new_class[pid[sel]]
    out[sel] = np.where(repl >= 0, repl, class_map[sel])
    return out
