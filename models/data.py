"""Dataset folders (CamVid layout), image reading and training augmentation.

Layout: DIR/images/SPLIT/NAME.{jpg,png}, DIR/labels/SPLIT/NAME.png (8-bit class
indices, same NAME and size), DIR/classes.json ({"ignore_index", "classes":
[{"index", "name", "color"}]}).
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from common import images
from common.colors import as_rgb, fill_colors
from common.images import IMAGE_SUFFIXES, to_rgb  # noqa: F401 (re-exported)


class DatasetError(ValueError):
    """A dataset folder, image or label file that cannot be used as it is."""


@dataclass
class LabelSet:
    names: list[str]
    colors: list[list[int]]
    ignore_index: int

    @property
    def palette(self) -> np.ndarray:
        return np.asarray(self.colors, dtype=np.uint8).reshape(-1, 3)


def read_classes(data_dir: str | Path) -> LabelSet:
    path = Path(data_dir) / "classes.json"
    if not path.is_file():
        raise DatasetError(f"{path} is missing: a dataset folder needs classes.json (index, name, color)")
    raw = json.loads(path.read_text())
    classes = sorted(raw["classes"], key=lambda c: c["index"])
    if [c["index"] for c in classes] != list(range(len(classes))):
        raise DatasetError(f"{path}: class indices must be 0..K-1 without gaps")
    names = [c["name"] for c in classes]
    return LabelSet(
        names=names,
        colors=label_colors(names, [c.get("color") for c in classes]),
        ignore_index=int(raw.get("ignore_index", 255)),
    )


def label_colors(names: list[str], colors: list | None = None) -> list[list[int]]:
    """[r, g, b] per class: ``colors[i]`` where given, else the default colour of
    :mod:`common.colors` (recognisable by name, well apart from the other colours)."""
    colors = list(colors) if colors is not None else [None] * len(names)
    return [list(as_rgb(h)) for h in fill_colors(names, [c or None for c in colors])]


def array_to_rgb(array: np.ndarray) -> np.ndarray:
    """(H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array -> (H, W, 3) uint8 RGB."""
    a = np.asarray(array)
    if a.dtype != np.uint8:
        if a.dtype.kind == "f" and a.max(initial=0) <= 1.0:
            a = a * 255
        a = np.clip(a, 0, 255).astype(np.uint8)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        raise DatasetError(f"an image array must be (H, W), (H, W, 3) or (H, W, 4), got {a.shape}")
    if a.shape[2] == 1:
        return np.repeat(a, 3, axis=2)
    if a.shape[2] == 4:
        alpha = a[..., 3:4].astype(np.float32) / 255
        return (a[..., :3].astype(np.float32) * alpha).round().astype(np.uint8)
    return np.ascontiguousarray(a)


def load_image(path: str | Path) -> np.ndarray:
    """An image file -> (H, W, 3) uint8 RGB, decoded like uploads (:mod:`common.images`)."""
    try:
        return images.load_image(path)
    except (images.InvalidImageError, OSError) as err:
        raise DatasetError(f"cannot read image {path}: {err}") from err


def load_label(path: str | Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """8-bit class-index PNG -> (H, W) uint8. size=(W, H) must match the image."""
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode not in ("L", "P"):
                raise DatasetError(f"label {path} must be an 8-bit class-index PNG (mode L or P), got {im.mode}")
            arr = np.array(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise DatasetError(f"cannot read label {path}: {err}") from err
    if size is not None and (arr.shape[1], arr.shape[0]) != tuple(size):
        raise DatasetError(
            f"label {path} is {arr.shape[1]}x{arr.shape[0]} but its image is {size[0]}x{size[1]}: "
            "a label map must have its image's size"
        )
    return arr


def list_pairs(data_dir: str | Path, split: str, prefixes: list[str] | None = None) -> list[tuple[str, Path, Path]]:
    """(name, image path, label path) for a split, sorted by name; prefixes filter by file name."""
    root = Path(data_dir)
    img_dir, lbl_dir = root / "images" / split, root / "labels" / split
    if not img_dir.is_dir():
        raise DatasetError(f"{img_dir} does not exist: expected DIR/images/{split}/ and DIR/labels/{split}/")
    pairs = []
    for p in sorted(img_dir.iterdir()):
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if prefixes and not any(p.stem.startswith(x) for x in prefixes):
            continue
        lbl = lbl_dir / (p.stem + ".png")
        if not lbl.is_file():
            raise DatasetError(f"image {p.name} has no label {lbl}")
        pairs.append((p.stem, p, lbl))
    if not pairs:
        raise DatasetError(f"no images found in {img_dir}" + (f" with prefixes {prefixes}" if prefixes else ""))
    return pairs


def load_split(
    data_dir: str | Path, split: str, prefixes: list[str] | None = None, limit: int | None = None
) -> tuple[list[str], list[np.ndarray], list[np.ndarray]]:
    """Read a split into memory: names, (H, W, 3) uint8 images, (H, W) uint8 labels."""
    pairs = list_pairs(data_dir, split, prefixes)[:limit]
    names, images, labels = [], [], []
    for name, ip, lp in pairs:
        img = load_image(ip)
        names.append(name)
        images.append(img)
        labels.append(load_label(lp, (img.shape[1], img.shape[0])))
    return names, images, labels


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float in [0, 1]."""
    a = np.ascontiguousarray(image)
    if not a.flags.writeable:
        a = a.copy()
    return torch.from_numpy(a).permute(2, 0, 1).float().div_(255)


def augment(
    image: torch.Tensor,
    label: torch.Tensor,
    crop: tuple[int, int],
    scale: tuple[float, float],
    ignore_index: int,
    rng: random.Random,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random scale, crop (padding with void), horizontal flip and colour jitter.
    image: (3, H, W) float [0,1]; label: (H, W) int64. Returns (3, ch, cw), (ch, cw)."""
    ch, cw = crop
    s = math.exp(rng.uniform(math.log(scale[0]), math.log(scale[1])))
    H, W = image.shape[-2:]
    h, w = max(1, round(H * s)), max(1, round(W * s))
    image = F.interpolate(image[None], size=(h, w), mode="bilinear", align_corners=False)[0]
    label = F.interpolate(label[None, None].float(), size=(h, w), mode="nearest")[0, 0].long()
    ph, pw = max(0, ch - h), max(0, cw - w)
    if ph or pw:
        image = F.pad(image, (0, pw, 0, ph), value=0.0)
        label = F.pad(label, (0, pw, 0, ph), value=ignore_index)
        h, w = h + ph, w + pw
    y, x = rng.randint(0, h - ch), rng.randint(0, w - cw)
    image, label = image[:, y : y + ch, x : x + cw], label[y : y + ch, x : x + cw]
    if rng.random() < 0.5:
        image, label = image.flip(-1), label.flip(-1)
    # colour jitter: brightness, contrast, saturation
    b, c, sat = rng.uniform(0.75, 1.25), rng.uniform(0.75, 1.25), rng.uniform(0.7, 1.3)
    grey = image.mean(0, keepdim=True)
    image = (grey + (image - grey) * sat) * b
    image = (image - image.mean()) * c + image.mean()
    return image.clamp_(0, 1), label


def class_frequencies(labels: list[np.ndarray], num_classes: int) -> np.ndarray:
    counts = np.zeros(num_classes, dtype=np.float64)
    for lbl in labels:
        counts += np.bincount(lbl.ravel(), minlength=256)[:num_classes]
    return counts / max(counts.sum(), 1)


def balanced_class_weights(labels: list[np.ndarray], num_classes: int, power: float = 0.5) -> list[float]:
    """Median-frequency balancing softened by `power` (0 = uniform, 1 = full balancing)."""
    freq = class_frequencies(labels, num_classes)
    present = freq[freq > 0]
    median = float(np.median(present)) if present.size else 1.0
    w = np.where(freq > 0, (median / np.maximum(freq, 1e-12)) ** power, 1.0)
    return [float(x) for x in np.clip(w, 0.2, 10.0)]
