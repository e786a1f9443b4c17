"""Pixels that are none of a label set's words: found with hidden words, left void.

A project's label set often names only some of what its images show ("road, bicycle,
bin"). A softmax over those words alone paints every pixel with one of them, so the sky
becomes "traffic light" and the labeller erases it. Here the label set the model is asked for is
widened by common scene words (:data:`HIDDEN_WORDS`) that are not close to any of its
own (class-vector cosine below :data:`HIDDEN_CLOSE`: "streetlight pole" keeps "pole"
out, or poles would go void); a pixel whose argmax is a hidden word is none of the
project's classes. (A word the model never learned can sit close to a scene word:
"bin" is 0.82 from "tree", so "tree" stays out and trees stay "bin" until the instant
layer learns from the labeller's void.) The hidden words come after the project's, so positions
``>= len(class_names)`` are "none of them" (``segui.predicting.project_indices`` makes
them void).

The words were fixed before any measurement and :data:`HIDDEN_CLOSE` was chosen on
CamVid train with label sets that are random subsets of its classes, then reported once
on val (``benchmarks/open_set.py``, BENCHMARKS.md "Pixels that are none of the classes").

    words = class_names + hidden_words(predictor, class_names)
    class_map = predictor.predict(image, words).class_map   # >= len(class_names): void
"""
from __future__ import annotations

import numpy as np
import torch

from common.labels import name_key, validate_class_names

# Broad things scenes hold; fixed before any measurement (benchmarks/open_set.py).
HIDDEN_WORDS: tuple[str, ...] = (
    "sky", "building", "wall", "tree", "grass", "road", "sidewalk", "ground", "car", "person",
    "bicycle", "pole", "sign", "fence", "water", "animal")

# A hidden word whose class vector's cosine to any of the project's words reaches this is
# left out (it would take that class's pixels). Chosen on CamVid train (benchmarks/open_set.py).
HIDDEN_CLOSE = 0.8


# Words of a class meant to hold everything else: with one, nothing is "none of the
# classes", and the hidden words would take that class's pixels.
CATCH_ALL_WORDS: frozenset[str] = frozenset({
    "background", "other", "others", "rest", "the rest", "everything else", "anything else", "misc",
    "miscellaneous", "stuff", "clutter", "void", "unlabelled", "unlabeled", "none", "bg"})


def catch_all(class_names: list[str]) -> list[str]:
    """The class names that read as a catch-all class ("background", "other", ...)."""
    return [n for n in class_names if name_key(n) in CATCH_ALL_WORDS]


def close_to_words(class_vectors: np.ndarray | torch.Tensor, k: int) -> np.ndarray:
    """For (K + H, E) class vectors, the project's K first: each of the H others'
    largest cosine similarity to the K (H,)."""
    v = torch.as_tensor(np.asarray(class_vectors), dtype=torch.float64)
    v = v / v.norm(dim=1, keepdim=True).clamp_min(1e-12)
    if k == 0 or len(v) == k:
        return np.ones(len(v) - k)
    return (v[k:] @ v[:k].T).max(1).values.numpy()


def candidates(class_names: list[str], words: tuple[str, ...] = HIDDEN_WORDS) -> list[str]:
    """The hidden words that are not the project's own (case and spaces ignored)."""
    own = {name_key(n) for n in validate_class_names(class_names)}
    return [w for w in words if name_key(w) not in own]


def hidden_words(predictor, class_names: list[str], close: float = HIDDEN_CLOSE,
                 words: tuple[str, ...] = HIDDEN_WORDS) -> list[str]:
    """The hidden words to add after ``class_names`` when the model is asked for them:
    those whose class vector is below ``close`` to every one of the project's."""
    from .adapt import word_adapter

    names = validate_class_names(class_names)
    extra = candidates(names, words)
    if not extra:
        return []
    vectors = word_adapter(predictor, names + extra).class_vectors
    sim = close_to_words(vectors, len(names))
    return [w for w, s in zip(extra, sim) if s < close]


def void_targets(positions: np.ndarray, hidden_logits: torch.Tensor | np.ndarray, k: int,
                 ignore_index: int) -> np.ndarray:
    """A corrected map in model positions (H, W), where the labeller left ``ignore_index``
    (none of the project's classes), given the hidden words' logits there (H', W' any:
    (H, W) here) -> those pixels' targets for instant adaptation: the hidden word the
    model scores highest (positions k, k + 1, ...), so the adapter learns "none of them"
    instead of painting them with the nearest class."""
    positions = np.asarray(positions).copy()
    hl = torch.as_tensor(np.asarray(hidden_logits))
    if hl.shape[0] == 0:
        return positions
    if tuple(hl.shape[1:]) != positions.shape:
        raise ValueError(f"hidden logits {tuple(hl.shape[1:])} do not match the map {positions.shape}")
    void = positions == ignore_index
    best = (hl.argmax(0).numpy() + k).astype(positions.dtype)
    positions[void] = best[void]
    return positions
