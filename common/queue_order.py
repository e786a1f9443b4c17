"""The labelling queue's pick: the most uncertain image, unless it repeats a scene
already labelled (issue 20; BENCHMARKS.md "A queue that does not take 20 near-duplicate
frames first").

Most-uncertain-first alone takes runs of near-duplicate frames (the same scene a moment
later, all equally uncertain), so the first job learns one scene. The pick scores each
candidate by its uncertainty times its distance from every image already submitted, in
a layout descriptor of class maps:

    d_i = layout_descriptor(prediction_i, K)          # candidates: the map the page shows
    d_j = layout_descriptor(annotation_j, K)          # submitted images: their labels
    next = diverse_pick([u_i], [d_i], [d_j])          # argmax u_i * (1 - max_j cos(d_i, d_j))

The one rule the app's queue (segui.labelling) and the loop benchmark share; numpy only.
"""
from __future__ import annotations

import numpy as np

LAYOUT_GRID = (3, 4)   # cells (rows, columns) of the layout descriptor


def layout_descriptor(class_map: np.ndarray, num_classes: int, grid: tuple[int, int] = LAYOUT_GRID,
                      ignore_index: int | None = None) -> np.ndarray:
    """(H, W) class map -> the share of each class in each cell of a ``grid`` of cells,
    flattened and L2-normalised (all zeros for a map with no class pixel): near-duplicate
    frames have near-identical descriptors (cosine near 1). Void (``ignore_index``, and any
    value >= num_classes) is left out."""
    cm = np.asarray(class_map)
    if cm.ndim != 2:
        raise ValueError(f"class map must be (H, W), got shape {cm.shape}")
    H, W = cm.shape
    gy, gx = grid
    rows = np.minimum(np.arange(H) * gy // H, gy - 1)[:, None]
    cols = np.minimum(np.arange(W) * gx // W, gx - 1)[None, :]
    cell = np.broadcast_to(rows * gx + cols, (H, W)).ravel()
    cls = cm.ravel().astype(np.int64)
    ok = (cls >= 0) & (cls < num_classes)
    if ignore_index is not None:
        ok &= cls != ignore_index
    d = np.bincount(cell[ok] * num_classes + cls[ok], minlength=gy * gx * num_classes).astype(np.float64)
    n = np.linalg.norm(d)
    return d / n if n else d


def diverse_pick(uncertainty, descriptors, chosen) -> int:
    """Index of the next image among candidates with these uncertainties and descriptors:
    the most uncertain when nothing is chosen yet, else the largest uncertainty x (1 - the
    highest cosine to a chosen image's descriptor); ties to the lower index."""
    u = np.asarray(uncertainty, np.float64)
    if len(u) == 0:
        raise ValueError("no candidates")
    if len(chosen) == 0:
        return int(np.argmax(u))
    sim = np.stack(descriptors) @ np.stack(chosen).T   # (candidates, chosen)
    return int(np.argmax(u * (1.0 - sim.max(1))))
