"""The automatic train / val split: the one rule the app, its jobs and the loop
benchmark share.

An image that nobody put in a split gets one when it is first submitted: "val" for one
image in :data:`VAL_EVERY`, by a stable hash of its bytes, else "train". The same image
always lands in the same split, whoever submits it and in whatever order.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

VAL_EVERY = 5   # one submitted image in five is held out for validation
SPLITS = ("train", "val", "none")   # "none": not decided yet (an upload before its first submit)


def training_splits(split: str) -> tuple[str, ...]:
    """The stored splits a split name stands for when reading examples: "train" also takes
    images with no split set (uploads in the app), so only the val split is held out."""
    return ("train", "none") if split == "train" else (split,)


def auto_split(sha256: str) -> str:
    """The split for an image whose bytes have this SHA-256 (hex digest)."""
    return "val" if int(sha256[:12], 16) % VAL_EVERY == 0 else "train"


def auto_split_file(path: str | Path) -> str:
    """:func:`auto_split` of a file's bytes."""
    return auto_split(hashlib.sha256(Path(path).read_bytes()).hexdigest())
