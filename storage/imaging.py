"""Decoding and validation of images and class maps.

Images are decoded with Pillow from an allow-list of formats, checked against a
megapixel limit *before* pixel data is decoded, and normalised to RGB 8-bit with
EXIF orientation applied. Class maps are (H, W) uint8 arrays stored as mode-"L" PNG.
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import InvalidClassMapError, InvalidImageError

FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF")
DEFAULT_MAX_MEGAPIXELS = 80.0
_EXT = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "BMP": ".bmp", "TIFF": ".tif", "GIF": ".gif"}


def extension(fmt: str) -> str:
    return _EXT.get(fmt, ".img")


@dataclass(frozen=True)
class DecodedImage:
    rgb: np.ndarray          # (H, W, 3) uint8, orientation applied
    format: str              # Pillow format name of the original bytes
    normalised: bool         # True when the pixels differ from a plain RGB decode of the file


def _to_rgb(im: Image.Image) -> np.ndarray:
    mode = im.mode
    if mode == "RGB":
        return np.asarray(im, dtype=np.uint8)
    if mode in ("L", "P", "PA", "LA", "RGBA", "RGBa", "La", "RGBX", "CMYK", "YCbCr", "LAB", "HSV", "1"):
        if mode in ("P", "PA") and "transparency" in im.info:
            im = im.convert("RGBA")
        return np.asarray(im.convert("RGB"), dtype=np.uint8)
    if mode.startswith("I;16") or mode == "I":
        a = np.asarray(im)
        a = a.astype(np.int64)
        if a.size and (a.min() < 0 or a.max() > 65535):
            raise InvalidImageError(f"unsupported {mode} image: values outside 0..65535")
        g = ((a * 255 + 32767) // 65535).astype(np.uint8)  # 16-bit -> 8-bit, rounded
        return np.repeat(g[..., None], 3, axis=2)
    raise InvalidImageError(f"unsupported image mode {mode!r}; use RGB, greyscale, palette, "
                            "RGBA, CMYK or 16-bit greyscale")


def decode_image(data: bytes, *, max_megapixels: float = DEFAULT_MAX_MEGAPIXELS) -> DecodedImage:
    """Decode and normalise an image or raise :class:`InvalidImageError` (writes nothing)."""
    if not data:
        raise InvalidImageError("empty file: 0 bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data), formats=FORMATS)
            w, h = im.size
            if w <= 0 or h <= 0:
                raise InvalidImageError(f"image has no pixels ({w}x{h})")
            mp = w * h / 1e6
            if mp > max_megapixels:
                raise InvalidImageError(
                    f"image is {w}x{h} = {mp:.1f} megapixels, over the limit of "
                    f"{max_megapixels:g} megapixels (possible decompression bomb); not decoded")
            fmt = im.format or "unknown"
            im.load()
            orientation = im.getexif().get(0x0112, 1)
            oriented = ImageOps.exif_transpose(im)
            rgb = _to_rgb(oriented)
    except InvalidImageError:
        raise
    except UnidentifiedImageError:
        raise InvalidImageError(
            f"not an image (or not one of {', '.join(FORMATS)}): cannot identify the "
            f"{len(data)} bytes") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise InvalidImageError(f"decompression bomb rejected: {e}") from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as e:
        raise InvalidImageError(f"corrupt or truncated {locals().get('fmt', 'image')} file: {e}") from None
    normalised = im.mode != "RGB" or orientation not in (None, 1)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise InvalidImageError(f"decoded to unexpected shape {rgb.shape}")
    return DecodedImage(np.ascontiguousarray(rgb), fmt, normalised)


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


def decode_class_map(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png), formats=("PNG",)) as im:
        if im.mode not in ("L", "P"):
            raise InvalidClassMapError(f"label PNG must be 8-bit greyscale or palette, got mode {im.mode!r}")
        return np.array(im, dtype=np.uint8)
