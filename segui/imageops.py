"""Small array helpers shared by the app's handlers (no Gradio, no model)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def hex_color(rgb: Sequence[int]) -> str:
    r, g, b = (int(v) for v in rgb[:3])
    return f"#{r:02x}{g:02x}{b:02x}"


def resize_nearest(a: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest neighbour sampled at pixel centres (exact inverse of an integer upscale)."""
    h, w = a.shape[:2]
    if (h, w) == (height, width):
        return a
    rows = np.minimum(((np.arange(height) + 0.5) * h / height).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * w / width).astype(np.int64), w - 1)
    return a[rows[:, None], cols[None, :]]


# viridis (matplotlib's), 9 stops: the heat colours of the Label screen's layer
# (segui/canvas/heatmap.js HEAT_LUT) and of the Try words view
VIRIDIS_STOPS = ((68, 1, 84), (71, 44, 122), (59, 81, 139), (44, 113, 142), (33, 144, 141),
                 (39, 173, 129), (92, 200, 99), (170, 220, 50), (253, 231, 37))


def _viridis_lut() -> np.ndarray:
    stops = np.asarray(VIRIDIS_STOPS, np.float64)
    t = np.arange(256) / 255 * (len(stops) - 1)
    k = np.minimum(np.floor(t).astype(int), len(stops) - 2)
    f = (t - k)[:, None]
    return np.rint(stops[k] + (stops[k + 1] - stops[k]) * f).astype(np.uint8)


VIRIDIS = _viridis_lut()      # (256, 3) uint8


def heat_rgba(values: np.ndarray) -> np.ndarray:
    """(H, W) uint8 0..255 -> (H, W, 4) viridis, more opaque where the value is higher
    (alpha 90..255, as the Label screen's layer: the photo shows through the cold parts)."""
    v = np.asarray(values, np.uint8)
    alpha = (90 + (165 * v.astype(np.uint16)) // 255).astype(np.uint8)
    return np.concatenate([VIRIDIS[v], alpha[..., None]], axis=-1)


def paint(class_map: np.ndarray, colors: Sequence[str]) -> np.ndarray:
    """(H, W) positions -> (H, W, 3) uint8 in the '#rrggbb' ``colors`` (others black)."""
    lut = np.zeros((256, 3), np.uint8)
    for i, c in enumerate(colors[:256]):
        lut[i] = [int(c[j:j + 2], 16) for j in (1, 3, 5)]
    return lut[np.asarray(class_map, np.uint8)]


def blend(photo: np.ndarray, rgb: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """``rgb`` over ``photo`` at ``alpha`` (both (H, W, 3) uint8)."""
    out = photo.astype(np.float32) * (1 - alpha) + rgb.astype(np.float32) * alpha
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def grey(photo: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> its luminance as (H, W, 3) uint8 (ITU-R 601)."""
    y = photo[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.repeat(np.clip(np.rint(y), 0, 255).astype(np.uint8)[..., None], 3, axis=-1)
