"""A map of a label set: its class words' vectors in 2D, their pairwise similarity,
the pairs that sit too close and the pairs a model confuses.

The vectors are the model's own class vectors (the text encoder's projected, unit-norm
word vectors: what a pixel embedding is compared with), so cosine similarity is a
dot product. The 2D map is their PCA (numpy SVD of the centred vectors); it keeps
only part of the variance (``explained`` says how much), so "close" is judged on the
full-dimensional similarity, not on the map.

:data:`TOO_CLOSE` was chosen on CamVid *train* with the shipped model (the pairs it
confuses there) and reported once on val: ``benchmarks/label_set_threshold.py``,
BENCHMARKS.md "Label-set map".
"""
from __future__ import annotations

import numpy as np

# Cosine similarity of two class vectors at or above which the words "sit too close"
# (chosen on CamVid train: benchmarks/label_set_threshold.py).
TOO_CLOSE = 0.55
CONFUSED_SHARE = 0.05     # a pair is "confused" when >= 5% of one class's pixels go to the other


def cosine_similarity(vectors: np.ndarray) -> np.ndarray:
    """(K, E) -> (K, K) cosine similarity (rows normalised first)."""
    v = np.asarray(vectors, np.float64)
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    return np.clip(v @ v.T, -1.0, 1.0)


def pca_2d(vectors: np.ndarray) -> tuple[np.ndarray, float]:
    """(K, E) -> ((K, 2) coordinates on the first two principal axes, the share of the
    variance they keep). Signs are fixed (each axis's largest coordinate positive) so
    that the map does not flip between calls."""
    v = np.asarray(vectors, np.float64)
    k = v.shape[0]
    if k < 2:
        return np.zeros((k, 2)), 1.0
    c = v - v.mean(0, keepdims=True)
    u, s, _ = np.linalg.svd(c, full_matrices=False)
    xy = u[:, :2] * s[:2]
    if xy.shape[1] < 2:
        xy = np.pad(xy, ((0, 0), (0, 2 - xy.shape[1])))
    for j in range(2):
        if xy[np.argmax(np.abs(xy[:, j])), j] < 0:
            xy[:, j] = -xy[:, j]
    total = float((s ** 2).sum())
    return xy, float((s[:2] ** 2).sum() / total) if total > 0 else 1.0


def close_pairs(names: list[str], sim: np.ndarray, threshold: float = TOO_CLOSE) -> list[tuple[str, str, float]]:
    """The pairs whose similarity is at or above ``threshold``, most similar first."""
    out = [(names[i], names[j], float(sim[i, j])) for i in range(len(names)) for j in range(i + 1, len(names))
           if sim[i, j] >= threshold]
    return sorted(out, key=lambda t: -t[2])


def pair_confusion(conf: np.ndarray) -> np.ndarray:
    """(K, K) confusion counts (rows labelled, columns predicted) -> (K, K) symmetric:
    for each pair the larger of "labelled i predicted j" as a share of i's pixels and
    "labelled j predicted i" as a share of j's (0 on the diagonal)."""
    c = np.asarray(conf, np.float64)
    rows = c.sum(1, keepdims=True)
    share = np.divide(c, rows, out=np.zeros_like(c), where=rows > 0)
    out = np.maximum(share, share.T)
    np.fill_diagonal(out, 0.0)
    return out


def confused_pairs(names: list[str], conf: np.ndarray, min_share: float = CONFUSED_SHARE
                   ) -> list[tuple[str, str, float]]:
    """The pairs with :func:`pair_confusion` at or above ``min_share``, most first."""
    pc = pair_confusion(conf)
    out = [(names[i], names[j], float(pc[i, j])) for i in range(len(names)) for j in range(i + 1, len(names))
           if pc[i, j] >= min_share]
    return sorted(out, key=lambda t: -t[2])
