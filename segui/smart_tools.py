"""Server-side smart tools over class maps (numpy + scikit-image, no Gradio)."""
from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.measure import label as cc_label
from skimage.segmentation import slic


def superpixels(image: np.ndarray, pixels_per_segment: int = 300, compactness: float = 10.0) -> np.ndarray:
    """SLIC superpixels of an (H, W, 3) image -> (H, W) int32 segment ids (0..n-1)."""
    h, w = image.shape[:2]
    n = max(8, (h * w) // max(1, pixels_per_segment))
    seg = slic(image, n_segments=n, compactness=compactness, start_label=0, channel_axis=-1)
    return seg.astype(np.int32)


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


def clean_up(class_map: np.ndarray, min_size: int, ignore_index: int | None = None) -> np.ndarray:
    """Remove islands and fill holes smaller than ``min_size`` pixels.

    Every 4-connected region of one value (classes and void alike) smaller than
    ``min_size`` is replaced by the value of the nearest pixel outside such small
    regions: small islands take the class around them, small void holes are filled.
    Void regions of ``min_size`` or more stay void."""
    if min_size <= 1:
        return class_map.copy()
    cm = np.asarray(class_map)
    comps = cc_label(cm.astype(np.int32) + 1, background=0, connectivity=1)
    sizes = np.bincount(comps.ravel())
    small = sizes[comps] < min_size
    if not small.any():
        return cm.copy()
    if small.all():
        return cm.copy()  # nothing big enough to take a value from
    _, (ri, ci) = ndimage.distance_transform_edt(small, return_indices=True)
    out = cm[ri, ci]
    return out.astype(cm.dtype)
