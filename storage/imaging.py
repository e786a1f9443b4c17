"""Image decoding for storage, and validation of class maps.

Images are decoded by :func:`common.images.decode_image` (format allow-list, megapixel
limit and minimum side checked before decoding, EXIF orientation, RGB 8-bit); here its
errors become :class:`storage.errors.InvalidImageError`. Class maps are (H, W) uint8
arrays stored as mode-"L" PNG.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from common import images
from common.images import (DEFAULT_MAX_MEGAPIXELS, FORMATS, IMAGE_SUFFIXES,  # noqa: F401 (re-exported)
                           MIN_IMAGE_SIDE, DecodedImage, extension)

from .errors import InvalidClassMapError, InvalidImageError


def decode_image(data: bytes, *, max_megapixels: float = DEFAULT_MAX_MEGAPIXELS,
                 min_side: int = MIN_IMAGE_SIDE) -> DecodedImage:
    """:func:`common.images.decode_image`, raising :class:`InvalidImageError` (writes nothing)."""
    try:
        return images.decode_image(data, max_megapixels=max_megapixels, min_side=min_side)
    except images.InvalidImageError as e:
        raise InvalidImageError(str(e)) from None


def encode_png_rgb(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def validate_class_map(class_map: object, height: int, width: int, valid: np.ndarray) -> np.ndarray:
    """Return ``class_map`` as a C-contiguous (H, W) uint8 array or raise
    :class:`InvalidClassMapError`. ``valid`` is a bool array of length 256 marking the
    allowed values (the project's class indices plus its ignore index)."""
    if not isinstance(class_map, np.ndarray):
        raise InvalidClassMapError(f"class map must be a numpy array, got {type(class_map).__name__}")
    if class_map.dtype != np.uint8:
        raise InvalidClassMapError(f"class map must have dtype uint8, got {class_map.dtype}")
    if class_map.shape != (height, width):
        raise InvalidClassMapError(
            f"class map shape {class_map.shape} does not match the image (H, W) = ({height}, {width})")
    counts = np.bincount(class_map.ravel(), minlength=256)
    bad = np.flatnonzero((counts > 0) & ~valid)
    if bad.size:
        raise InvalidClassMapError(
            f"class map contains values outside the label set: {bad.tolist()[:10]} "
            f"({int(counts[bad].sum())} pixels); allowed: {np.flatnonzero(valid).tolist()}")
    return np.ascontiguousarray(class_map)


def encode_class_map(class_map: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(class_map).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _check_label_size(png: bytes, shape: tuple[int, int]) -> None:
    """A label PNG of another size than ``shape`` (H, W) is refused from its header,
    before any pixel is decoded."""
    try:
        w, h = images.png_size(png)
    except images.InvalidImageError as e:
        raise InvalidClassMapError(f"label file: {e}") from None
    if (h, w) != tuple(shape):
        raise InvalidClassMapError(f"label PNG is {w}x{h}, the image {shape[1]}x{shape[0]}; not decoded")


def decode_class_map(png: bytes, shape: tuple[int, int] | None = None) -> np.ndarray:
    """A class-map PNG -> (H, W) uint8. With ``shape`` (H, W) a PNG of another size is
    refused from its header, before any pixel is decoded."""
    if shape is not None:
        _check_label_size(png, shape)
    with Image.open(io.BytesIO(png), formats=("PNG",)) as im:
        if im.mode not in ("L", "P"):
            raise InvalidClassMapError(f"label PNG must be 8-bit greyscale or palette, got mode {im.mode!r}")
        return np.array(im, dtype=np.uint8)


def decode_color_mask(png: bytes, colors: dict[tuple[int, int, int], int], shape: tuple[int, int]) -> np.ndarray:
    """A colour mask (Pascal VOC / CVAT "Segmentation mask": one RGB colour per class) ->
    (H, W) uint8 class map through ``colors`` ({(r, g, b): index}). A PNG of another size
    than ``shape`` (H, W) is refused from its header; a colour ``colors`` lacks raises
    :class:`InvalidClassMapError` naming it."""
    _check_label_size(png, shape)
    try:
        rgb = images.decode_image(png, min_side=1).rgb.astype(np.int32)
    except images.InvalidImageError as e:
        raise InvalidClassMapError(f"label file: {e}") from None
    keys = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    found, inverse = np.unique(keys, return_inverse=True)
    table = {(r << 16) | (g << 8) | b: i for (r, g, b), i in colors.items()}
    unknown = [int(k) for k in found if int(k) not in table]
    if unknown:
        shown = ", ".join(f"({k >> 16},{(k >> 8) & 255},{k & 255})" for k in unknown[:5])
        raise InvalidClassMapError(f"the mask has colour(s) {shown} that labelmap.txt does not name")
    return np.array([table[int(k)] for k in found], np.uint8)[inverse.reshape(keys.shape)]
