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
  operation each. Superpixels and undo are left out.
- **click-to-object** (`O`, issue 18), only when an ``object_tool`` is given (it needs
  the image's features): the object is the 8-connected region of class c in the truth
  under the deepest pixel of the region's part whose truth is c; the labeller clicks it
  as the interactive-segmentation simulator does (``models.click_object.next_click``,
  void pixels not counting), at most ``object_clicks`` clicks, stopping at 85% IoU,
  and commits the mask with class c; each click is one operation. It is used when its
  net gain per click beats the better of fill and brush.

    from benchmarks.scripted_labeller import scripted_ops, scripted_detail
    ops = scripted_ops(pred_map, truth_map, ignore_index)
    detail = scripted_detail(pred_map, truth_map, ignore_index, object_tool=tool)  # {"ops", "fill", "brush", "object"}
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from scipy import ndimage

EIGHT = np.ones((3, 3), bool)
FOUR = ndimage.generate_binary_structure(2, 1)
STROKE_PIXELS = 1500  # what one careful brush stroke covers (12 px brush, ~125 px path)


def scripted_ops(pred: np.ndarray, truth: np.ndarray, ignore_index: int, target: float = 0.98,
                 stroke_pixels: int = STROKE_PIXELS, max_ops: int = 200) -> int:
    """Fills and brush strokes, chosen greedily, until ``target`` of the labelled pixels
    are right; ``max_ops`` if it is not reached by then."""
    return scripted_detail(pred, truth, ignore_index, target, stroke_pixels, max_ops)["ops"]


def _object_op(tool, obj: np.ndarray, labelled: np.ndarray, max_clicks: int):
    """The clicks on one object -> (mask, clicks)."""
    from models.click_object import iou, next_click

    clicks: list = []
    mask = np.zeros(obj.shape, bool)
    for _ in range(max_clicks):
        c = next_click(obj, mask, labelled)
        if c is None:
            break
        clicks.append(c)
        mask = np.asarray(tool(list(clicks)), bool)
        if iou(obj, mask, labelled) >= 0.85:
            break
    return mask, len(clicks)


def scripted_detail(pred: np.ndarray, truth: np.ndarray, ignore_index: int, target: float = 0.98,
                    stroke_pixels: int = STROKE_PIXELS, max_ops: int = 200,
                    object_tool: Callable[[list], np.ndarray] | None = None, object_clicks: int = 5) -> dict:
    """As :func:`scripted_ops`, with click-to-object as a third operation when
    ``object_tool(clicks) -> (H, W) bool`` is given (clicks ``(x, y, positive)`` in
    order, one object at a time). -> {"ops", "fill", "brush", "object" (clicks),
    "objects" (committed), "reached"}."""
    cur = np.array(pred, dtype=np.int64, copy=True)
    truth = np.asarray(truth).astype(np.int64)
    if cur.shape != truth.shape:
        raise ValueError(f"prediction {cur.shape} and truth {truth.shape} differ in size")
    labelled = truth != ignore_index
    n = int(labelled.sum())
    out = {"ops": 0, "fill": 0, "brush": 0, "object": 0, "objects": 0, "reached": True}
    if n == 0:
        return out
    need_wrong = int(np.floor((1.0 - target) * n))
    ops = 0
    while ops < max_ops:
        wrong = labelled & (cur != truth)
        if int(wrong.sum()) <= need_wrong:
            out["ops"] = ops
            return out
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
        if object_tool is not None and paintable.any():
            pdepth = ndimage.distance_transform_edt(paintable)
            py, px = np.unravel_index(int(pdepth.argmax()), pdepth.shape)
            objs, _ = ndimage.label(truth == c, structure=EIGHT)
            obj = objs == objs[py, px]
            mask, k = _object_op(object_tool, obj, labelled, min(object_clicks, max_ops - ops))
            obj_gain = int((labelled & mask & (truth == c) & (cur != c)).sum()) \
                - int((labelled & mask & (cur == truth) & (truth != c)).sum())
            if k and obj_gain > 0 and obj_gain / k > max(fill_gain, brush_gain):
                cur[mask] = c
                ops += k
                out["object"] += k
                out["objects"] += 1
                continue
        if fill_gain >= brush_gain and fill_gain > 0:
            cur[comp] = c
            out["fill"] += 1
        else:
            out["brush"] += 1
            idx = np.flatnonzero(paintable.ravel())
            if len(idx) > stroke_pixels:  # the stroke nearest the click: the pixels closest to it
                ys, xs = np.divmod(idx, cur.shape[1])
                idx = idx[np.argsort((ys - y) ** 2 + (xs - x) ** 2, kind="stable")[:stroke_pixels]]
            cur.ravel()[idx] = c
        ops += 1
    out["ops"], out["reached"] = ops, False
    return out
