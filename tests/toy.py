"""Toy data shared by the fine-tuning tests (tests/models, tests/jobs): images a tiny
untrained model learns in a few steps."""
import numpy as np


def synthetic(rng, h=48, w=64):
    """Left part red (class 0), right part blue (class 1), at a random split, with noise."""
    cut = int(rng.integers(16, 48))
    img = np.zeros((h, w, 3), np.float32)
    img[:, :cut, 0] = 200
    img[:, cut:, 2] = 200
    img += rng.normal(0, 25, img.shape)
    cm = np.zeros((h, w), np.uint8)
    cm[:, cut:] = 1
    return np.clip(img, 0, 255).astype(np.uint8), cm
