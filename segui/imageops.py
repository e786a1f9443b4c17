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
