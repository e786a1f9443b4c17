"""Exact conversion between class maps and `gr.ImageEditor` values.

The editor shows the photo as the *background* and the class map as *layer 0*: an
RGBA image whose colour is the class colour and whose alpha is the overlay opacity,
with void (the project's ignore index) fully transparent. The labeller paints on that
layer with a fixed palette of the class colours; the eraser makes pixels transparent.

Reading the editor back (:func:`class_map_from_editor`) follows one documented rule:

1. Layers are stacked bottom (index 0) to top; for each pixel the top-most layer whose
   alpha is at least ``ALPHA_MIN`` (24 of 255) decides. A pixel that no layer covers
   that much is **void** (ignore index): erased pixels and the faint outer fringe of
   an antialiased stroke over void both read back as void, as they look.
2. Its RGB is snapped to the *nearest* palette colour (squared RGB distance), so
   antialiasing fringes, premultiplied-alpha rounding and lossy encodings can never
   produce an unknown colour: every pixel is a class of the project or void.
3. If the layers are not at the image's resolution (the editor rescaled the canvas),
   the map is resampled with nearest neighbour at pixel centres to exactly
   ``(height, width)`` of the stored image.

The background and composite are never used to read labels (the photo would leak in).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

ALPHA_MIN = 24   # out of 255; the opacity slider never goes below 0.3 (alpha 77)


def hex_color(rgb: Sequence[int]) -> str:
    r, g, b = (int(v) for v in rgb[:3])
    return f"#{r:02x}{g:02x}{b:02x}"


def class_layer(class_map: np.ndarray, indices: Sequence[int], colors: np.ndarray,
                ignore_index: int, opacity: float = 0.6) -> np.ndarray:
    """(H, W) class map -> (H, W, 4) uint8 RGBA layer; void and unknown values transparent."""
    lut = np.zeros((256, 4), dtype=np.uint8)
    a = int(round(float(np.clip(opacity, 0.0, 1.0)) * 255))
    a = max(a, ALPHA_MIN + 1)  # keep the layer readable back whatever the opacity
    for idx, col in zip(indices, np.asarray(colors, dtype=np.uint8).reshape(-1, 3)):
        if idx != ignore_index:
            lut[int(idx), :3] = col
            lut[int(idx), 3] = a
    return lut[np.asarray(class_map, dtype=np.uint8)]


def editor_value(image: np.ndarray, class_map: np.ndarray, indices: Sequence[int], colors: np.ndarray,
                 ignore_index: int, opacity: float = 0.6) -> dict:
    """The value to put in the ImageEditor: photo background, class layer, no composite."""
    return {"background": np.asarray(image, dtype=np.uint8),
            "layers": [class_layer(class_map, indices, colors, ignore_index, opacity)],
            "composite": None}


def _to_rgba(a) -> np.ndarray | None:
    if a is None:
        return None
    if isinstance(a, Image.Image):
        a = np.asarray(a.convert("RGBA"))
    elif isinstance(a, (str, bytes)):
        a = np.asarray(Image.open(a).convert("RGBA"))
    a = np.asarray(a)
    if a.ndim == 2:  # greyscale without alpha: opaque
        a = np.stack([a, a, a, np.full_like(a, 255)], axis=-1)
    elif a.shape[-1] == 3:
        a = np.concatenate([a, np.full(a.shape[:2] + (1,), 255, dtype=a.dtype)], axis=-1)
    return a.astype(np.uint8, copy=False)


def resize_nearest(a: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest neighbour sampled at pixel centres (exact inverse of an integer upscale)."""
    h, w = a.shape[:2]
    if (h, w) == (height, width):
        return a
    rows = np.minimum(((np.arange(height) + 0.5) * h / height).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * w / width).astype(np.int64), w - 1)
    return a[rows[:, None], cols[None, :]]


def snap_rgb(rgb: np.ndarray, colors: np.ndarray) -> np.ndarray:
    """(..., 3) colours -> (...) index of the nearest palette colour."""
    pal = np.asarray(colors, dtype=np.int32).reshape(-1, 3)
    flat = rgb.reshape(-1, 3).astype(np.int32)
    # unique colours first: a painted mask has few distinct colours, so this is cheap
    uniq, inv = np.unique(flat, axis=0, return_inverse=True)
    d = ((uniq[:, None, :] - pal[None, :, :]) ** 2).sum(-1)
    return d.argmin(1)[inv.reshape(-1)].reshape(rgb.shape[:-1])


def class_map_from_layers(layers: Sequence, indices: Sequence[int], colors: np.ndarray,
                          ignore_index: int, height: int, width: int) -> np.ndarray:
    """Editor layers -> (height, width) uint8 class map, by the rule in the module doc."""
    out = np.full((height, width), ignore_index, dtype=np.uint8)
    idx = np.asarray(list(indices), dtype=np.uint8)
    if len(idx) == 0:
        return out
    for layer in layers or []:
        rgba = _to_rgba(layer)
        if rgba is None or rgba.ndim != 3:
            continue
        rgba = resize_nearest(rgba, height, width)
        covered = rgba[..., 3] >= ALPHA_MIN
        if covered.any():
            out[covered] = idx[snap_rgb(rgba[..., :3][covered], colors)]
    return out


def class_map_from_editor(value: dict | None, indices: Sequence[int], colors: np.ndarray,
                          ignore_index: int, height: int, width: int) -> np.ndarray:
    if not isinstance(value, dict):
        raise ValueError("the editor holds no image")
    return class_map_from_layers(value.get("layers") or [], indices, colors, ignore_index, height, width)
