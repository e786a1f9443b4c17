"""How much a labeller had to change: the loop's two measures, one owner.

The loop benchmark (``benchmarks.bench_loop``) scores a prediction against the truth
with them, and the app records them for every image at its first submission (the map
the labeller submitted against the prediction they started from), so a project can see
its own corrections shrink as the model learns.
"""
from __future__ import annotations

import numpy as np

MIN_REGION_PIXELS = 20   # a wrong region smaller than this is not counted as a fix


def correction_effort(pred: np.ndarray, truth: np.ndarray, ignore_index: int) -> float:
    """Share of labelled (non-void) pixels whose predicted class differs from the truth."""
    labelled = truth != ignore_index
    return float((pred[labelled] != truth[labelled]).mean()) if labelled.any() else 0.0


def wrong_regions(pred: np.ndarray, truth: np.ndarray, ignore_index: int,
                  min_pixels: int = MIN_REGION_PIXELS) -> int:
    """Separate regions of wrong labelled pixels (8-connected) of at least ``min_pixels``:
    roughly how many fixes a labeller makes on the image. A wrong region that holds two
    wrong classes counts once."""
    from scipy import ndimage

    wrong = (truth != ignore_index) & (pred != truth)
    labels, n = ndimage.label(wrong, structure=np.ones((3, 3), bool))
    if n == 0:
        return 0
    sizes = np.bincount(labels.ravel())[1:]
    return int((sizes >= min_pixels).sum())


def correction_words(changed: float, fixes: int) -> str:
    """A first submission's record in words, as the Activity log and the Label screen say it:
    ``0.0123, 3`` -> "1.2% of the prediction changed, 3 fixes"."""
    n = int(fixes)
    return f"{100 * float(changed):.1f}% of the prediction changed, {n} {'fix' if n == 1 else 'fixes'}"
