"""A scripted labeller that counts the app's tool operations needed to correct an image
(issue 20: "fewer fixes, not just fewer pixels"): a second measure of effort next to
bench_loop's wrong regions, for when a large wrong area partly fixed splits into several
regions and the region count would overstate the work.

The rule, fixed before it was run on anything:
- until at least ``target`` (98%) of the labelled pixels are right (or ``max_ops``):
- take the largest wrong region (8-connected); the class to paint, c, is its majority
  true class; the labeller clicks at its deepest pixel (farthest from its border);
- **fill** (`K`, the canvas's bucket fill): the 4-connected region of the *current* map
  under the click takes c (the canvas's floodFill is a 4-connected scanline fill);
- **brush** (`B`): a careful stroke paints c on up to ``stroke_pixels`` of the region's
  pixels whose truth is c and nothing else (a 12 px brush over a ~125 px path);
- the labeller uses whichever fixes more pixels (net of pixels a fill makes wrong); one
  operation each. Click-to-object and superpixels are left out (they need the model's
  features or the superpixels of the image); so is undo.

    from benchmarks.scripted_labeller import scripted_ops
    ops = scripted_ops(pred_map, truth_map, ignore_index)
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

EIGHT = np.ones((3, 3), bool)
FOUR = ndimage.generate_binary_structure(2, 1)
STROKE_PIXELS = 1500  # what one careful brush stroke covers (12 px brush, ~125 px path)


def scripted_ops(pred: np.ndarray, truth: np.ndarray, ignore_index: int, target: float = 0.98,
                 stroke_pixels: int = STROKE_PIXELS, max_ops: int = 200) -> int:
    """Fills and brush strokes, chosen greedily, until ``target`` of the labelled pixels
    are right; ``max_ops`` if it is not reached by then."""
    cur = np.array(pred, dtype=np.int64, copy=True)
    truth = np.asarray(truth).astype(np.int64)
    if cur.shape != truth.shape:
        raise ValueError(f"prediction {cur.shape} and truth {truth.shape} differ in size")
    labelled = truth != ignore_index
    n = int(labelled.sum())
    if n == 0:
        return 0
    need_wrong = int(np.floor((1.0 - target) * n))
    ops = 0
    while ops < max_ops:
        wrong = labelled & (cur != truth)
        if int(wrong.sum()) <= need_wrong:
            return ops
        lab, k = ndimage.label(wrong, structure=EIGHT)
        sizes = np.bincount(lab.ravel())
        sizes[0] = 0
        region = lab == int(sizes.argmax())
        c = int(np.bincount(truth[region]).argmax())
        depth = ndimage.distance_transform_edt(region)
        y, x = np.unravel_index(int(depth.argmax()), depth.shape)
        # fill: the 4-connected component of the current map under (y, x)
        same, _ = ndimage.label(cur == cur[y, x], structure=FOUR)
        comp = same == same[y, x]
        fill_gain = int((labelled & comp & (truth == c)).sum()) - int((labelled & comp & (cur == truth)).sum())
        # brush: up to stroke_pixels of the region's pixels whose truth is c
        paintable = region & (truth == c)
        brush_gain = min(int(paintable.sum()), stroke_pixels)
        if fill_gain >= brush_gain and fill_gain > 0:
            cur[comp] = c
        else:
            idx = np.flatnonzero(paintable.ravel())
            if len(idx) > stroke_pixels:  # the stroke nearest the click: the pixels closest to it
                ys, xs = np.divmod(idx, cur.shape[1])
                idx = idx[np.argsort((ys - y) ** 2 + (xs - x) ** 2, kind="stable")[:stroke_pixels]]
            cur.ravel()[idx] = c
        ops += 1
    return ops
