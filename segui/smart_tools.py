"""Server-side smart tools over class maps (numpy + scikit-image, no Gradio)."""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from scipy import ndimage
from skimage.measure import label as cc_label
from skimage.segmentation import slic


# superpixels of a bigger image are computed on it resized to this many pixels (960x720)
SUPERPIXEL_MAX_PIXELS = 960 * 720


def superpixels(image: np.ndarray, pixels_per_segment: int = 300, compactness: float = 10.0,
                max_pixels: int | None = SUPERPIXEL_MAX_PIXELS) -> np.ndarray:
    """SLIC superpixels of an (H, W, 3) image -> (H, W) int32 segment ids (0..n-1),
    about ``pixels_per_segment`` each. An image of more than ``max_pixels`` is segmented
    resized to that many (``pixels_per_segment`` counted there) and the ids scaled back
    up, nearest neighbour: a 12-megapixel photo took 13 s of both cores for 40,000
    segments of 17x17 px; so it takes about 0.6 s for 2,000, the same share of the
    photo as a 960x720 image's (None: always at full size)."""
    from PIL import Image

    from .imageops import resize_nearest

    h, w = image.shape[:2]
    small = image
    if max_pixels is not None and h * w > max_pixels:
        f = (max_pixels / (h * w)) ** 0.5
        size = (max(1, round(w * f)), max(1, round(h * f)))
        small = (np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR)) if image.dtype == np.uint8
                 else resize_nearest(image, size[1], size[0]))
    sh, sw = small.shape[:2]
    n = max(8, (sh * sw) // max(1, pixels_per_segment))
    seg = slic(small, n_segments=n, compactness=compactness, start_label=0, channel_axis=-1).astype(np.int32)
    return resize_nearest(seg, h, w)


def superpixel_fill(class_map: np.ndarray, segments: np.ndarray, x: int, y: int, cls: int) -> np.ndarray:
    """Give the whole superpixel under (x, y) the class ``cls``."""
    h, w = class_map.shape
    if not (0 <= x < w and 0 <= y < h):
        raise ValueError(f"point ({x}, {y}) is outside the {w}x{h} image")
    out = class_map.copy()
    out[segments == segments[y, x]] = cls
    return out


def snap_strokes(before: np.ndarray, after: np.ndarray, segments: np.ndarray,
                 min_fraction: float = 0.5) -> np.ndarray:
    """Extend the edit ``before -> after`` to every superpixel it mostly covers.

    A superpixel where at least ``min_fraction`` of the pixels were changed takes, as a
    whole, the class most of its changed pixels were given. Changed pixels in other
    superpixels stay as painted; nothing else changes."""
    changed = before != after
    out = after.copy()
    if not changed.any():
        return out
    n = int(segments.max()) + 1
    seg_changed = segments[changed]
    total = np.bincount(segments.ravel(), minlength=n)
    hits = np.bincount(seg_changed, minlength=n)
    for s in np.nonzero(hits >= min_fraction * np.maximum(total, 1))[0]:
        new_vals = after[changed & (segments == s)]
        out[segments == s] = np.bincount(new_vals, minlength=256).argmax()
    return out


def clean_up(class_map: np.ndarray, min_size: int, ignore_index: int | None = None,
             keep: Iterable[int] = ()) -> np.ndarray:
    """Remove islands and fill holes smaller than ``min_size`` pixels.

    Every 4-connected region of one value (classes and void alike) smaller than
    ``min_size`` is replaced by the value of the nearest pixel outside such small
    regions: small islands take the class around them, small void holes are filled.
    Void regions of ``min_size`` or more stay void.

    Two exceptions protect what the labeller wants to keep:

    - ``keep``: class indices that are never erased (typically thin classes such as
      poles, see :func:`thin_classes`). Their regions keep their pixels whatever their
      size, and count as "outside small regions", so a neighbouring small region may
      take their value.
    - No class present in the input disappears: if every region of a class is small
      (and not in ``keep``), *all* its regions stay as they were (keeping all of them
      rather than only the largest is simple and predictable: the tool never erases the
      only evidence of a class). Void (``ignore_index``) is not a class: small void
      holes are always filled.

    Like ``keep`` regions, regions protected by this rule are sources of values for
    the small regions around them."""
    if min_size <= 1:
        return np.array(class_map, copy=True)
    cm = np.asarray(class_map)
    comps = cc_label(cm.astype(np.int32) + 1, background=0, connectivity=1)
    flat = comps.ravel()
    sizes = np.bincount(flat)
    comp_class = np.zeros(len(sizes), np.int64)
    comp_class[flat] = cm.ravel()                 # every pixel of a region has its value
    small_comp = sizes < min_size
    small_comp[0] = False                         # label 0 is unused (values are shifted by 1)
    if not small_comp.any():
        return cm.copy()
    keep = [int(k) for k in keep]
    if keep:
        small_comp &= ~np.isin(comp_class, keep)
    # classes all of whose regions are small would vanish: keep all their regions
    real = np.arange(len(sizes)) > 0
    present = np.unique(comp_class[real])
    surviving = np.unique(comp_class[real & ~small_comp])
    lost = np.setdiff1d(present, surviving)
    if ignore_index is not None:
        lost = lost[lost != ignore_index]
    if lost.size:
        small_comp &= ~np.isin(comp_class, lost)
    if not small_comp.any():
        return cm.copy()
    small = small_comp[comps]
    if small.all():
        return cm.copy()  # nothing big enough to take a value from
    _, (ri, ci) = ndimage.distance_transform_edt(small, return_indices=True)
    out = cm[ri, ci]
    return out.astype(cm.dtype)


def region_widths(class_map: np.ndarray, ignore_index: int | None = None) -> dict[int, np.ndarray]:
    """Width in pixels of every 8-connected region of every class -> {class: widths}.

    The width of a region is the diameter, counted in pixels, of the largest disc that
    fits inside it: ``2 * r + 1``, where ``r`` is the largest Euclidean distance from a
    pixel of the region to the region's border (its pixels with a 4-neighbour of
    another value). A 1-px line has width 1, a 3-px-wide pole 3, an ``a x b``
    rectangle about ``min(a, b)`` (one less when that is even). The image frame counts
    as a border: a region cut by the frame is measured by the part that is seen. Void
    (``ignore_index``) regions are not reported, but void borders a class like any
    other value.

    One Euclidean distance transform for the whole map (to the border pixels of all
    regions at once: the nearest border pixel of a pixel is always one of its own
    region's), so it costs about 15 ms at 480x360."""
    return {c: w for c, (w, _) in region_widths_areas(class_map, ignore_index).items()}


def region_widths_areas(class_map: np.ndarray, ignore_index: int | None
                         ) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """{class: (widths, areas)} of its 8-connected regions; see :func:`region_widths`."""
    cm = np.asarray(class_map)
    h, w = cm.shape
    border = np.zeros((h, w), bool)
    dv = cm[1:, :] != cm[:-1, :]
    dh = cm[:, 1:] != cm[:, :-1]
    border[1:, :] |= dv
    border[:-1, :] |= dv
    border[:, 1:] |= dh
    border[:, :-1] |= dh
    border[[0, -1], :] = True                     # the frame bounds what is seen
    border[:, [0, -1]] = True
    dist = ndimage.distance_transform_edt(~border)
    comps = cc_label(cm.astype(np.int32) + 1, background=0, connectivity=2)
    flat = comps.ravel()
    n = int(flat.max())
    areas = np.bincount(flat, minlength=n + 1)
    comp_class = np.zeros(n + 1, np.int64)
    comp_class[flat] = cm.ravel()
    rmax = np.zeros(n + 1)
    np.maximum.at(rmax, flat, dist.ravel())
    widths = 2.0 * rmax + 1.0
    cls, wid, area = comp_class[1:], widths[1:], areas[1:]
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for c in np.unique(cls):
        if ignore_index is not None and c == ignore_index:
            continue
        sel = cls == c
        out[int(c)] = (wid[sel], area[sel])
    return out


def weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """The value below and above which lie at most half the total weight each."""
    order = np.argsort(values, kind="stable")
    v, cw = values[order], np.cumsum(weights[order], dtype=np.float64)
    return float(v[np.searchsorted(cw, 0.5 * cw[-1])])


# thin_classes measures a map with a longer shorter side at this shorter side (nearest
# neighbour): widths are fractions of that side, and 180 to 720 select the same classes
THIN_MEASURE_SIDE = 720


def thin_classes(class_maps: Iterable[np.ndarray], ignore_index: int | None = None,
                 max_width: float = 0.1, max_width_px: float | None = None,
                 measure_side: int | None = THIN_MEASURE_SIDE) -> set[int]:
    """Classes that are thin in ``class_maps``: candidates for clean-up's ``keep`` list.

    A class is thin when the median width (:func:`region_widths`) of its 8-connected
    regions over all the maps, *weighted by region area*, is at most ``max_width``
    times the map's shorter side (each region is measured against its own map, so maps
    of different sizes mix). The weighted median is the width of the region holding the
    class's median pixel. A plain median over regions is useless on real labels, where
    1-px specks outnumber real regions: on CamVid train it is 1 px for sky, tree and
    pole alike.

    The default 0.1 was chosen on CamVid train (480x360, 367 maps; measured by
    ``benchmarks/thin_classes.py``): area-weighted median widths, as fractions of the
    shorter side, are pole 0.011, pedestrian 0.042, sign symbol 0.053, bicyclist 0.071,
    then a gap, then fence 0.136, pavement 0.140, car 0.219, tree 0.227, sky 0.287,
    building 0.303, road 0.408. 0.1 (36 px at 480x360) sits in the middle
    (geometrically) of that gap, so on train it selects pole, pedestrian, sign symbol
    and bicyclist. On val (101 maps) it selects the same plus fence (0.095 there:
    borderline). A handful of maps is a noisy sample: on consecutive 10-map chunks of
    val, fence and bicyclist are sometimes left out and car (0.190 on val) sometimes
    let in, in sequences where cars are far away and small; pole, sign symbol and
    pedestrian are always selected.

    The threshold is relative rather than in pixels because widths scale with
    resolution: with the train labels rescaled to 240x180 and 960x720, 0.1 selects the
    same classes, while any cut in pixels in the same gap (30 to 40 px) also selects
    pavement and fence at 240x180 and drops bicyclist at 960x720. ``max_width_px``
    sets an absolute threshold in pixels instead (``max_width`` is then ignored).

    One distance transform per map: about 20 ms per 480x360 map. A bigger map (shorter
    side over ``measure_side``; not with ``max_width_px``) is measured at that shorter
    side, nearest neighbour: a 12-megapixel map took 1.7 s, as 960x720 0.1 s (None:
    every map at its own size)."""
    from .imageops import resize_nearest

    acc: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    for cm in class_maps:
        cm = np.asarray(cm)
        side = min(cm.shape)
        if max_width_px is None and measure_side is not None and side > measure_side:
            f = measure_side / side
            cm = resize_nearest(cm, max(1, round(cm.shape[0] * f)), max(1, round(cm.shape[1] * f)))
        scale = 1.0 if max_width_px is not None else 1.0 / min(cm.shape)
        for c, (w, a) in region_widths_areas(cm, ignore_index).items():
            acc.setdefault(c, []).append((w * scale, a))
    limit = max_width_px if max_width_px is not None else max_width
    out = set()
    for c, parts in acc.items():
        w = np.concatenate([p[0] for p in parts])
        a = np.concatenate([p[1] for p in parts])
        if weighted_median(w, a) <= limit:
            out.add(c)
    return out
