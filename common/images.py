"""The one image decoder, the image file suffixes and the minimum image side.

Images are decoded with Pillow from an allow-list of formats, checked against a
megapixel limit and a minimum side *before* pixel data is decoded, and normalised to
(H, W, 3) uint8 RGB with EXIF orientation applied: greyscale, palette, CMYK and
16-bit images are converted, an alpha channel is dropped (the colour pixels are kept
as they are, which is what a labeller sees and what the model is given).
"""
from __future__ import annotations

import io
import math
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF")   # Pillow format names decoded
# File suffixes of those formats (lowercase, with the dot): what uploads, zips and
# dataset folders count as images.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")
DEFAULT_MAX_MEGAPIXELS = 80.0   # the storage library's default; the app's: common.limits.MAX_IMAGE_MEGAPIXELS
MIN_IMAGE_SIDE = 16    # px; a smaller image is refused as too small to label
_EXT = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "BMP": ".bmp", "TIFF": ".tif", "GIF": ".gif"}


class InvalidImageError(ValueError):
    """Bytes that are not an image of an allowed format, or that break a limit."""


def extension(fmt: str) -> str:
    """File suffix for a Pillow format name (".img" for an unknown one)."""
    return _EXT.get(fmt, ".img")


@dataclass(frozen=True)
class DecodedImage:
    rgb: np.ndarray          # (H, W, 3) uint8, orientation applied
    format: str              # Pillow format name of the original bytes
    normalised: bool         # True when the pixels differ from a plain RGB decode of the file


def to_rgb(im: Image.Image) -> np.ndarray:
    """A decoded PIL image (orientation already applied) -> (H, W, 3) uint8 RGB, a
    writable array of its own."""
    mode = im.mode
    if mode == "RGB":
        return np.array(im, dtype=np.uint8)
    if mode in ("L", "P", "PA", "LA", "RGBA", "RGBa", "La", "RGBX", "CMYK", "YCbCr", "LAB", "HSV", "1"):
        if mode in ("P", "PA") and "transparency" in im.info:
            im = im.convert("RGBA")
        return np.array(im.convert("RGB"), dtype=np.uint8)
    if mode.startswith("I;16") or mode == "I":
        a = np.asarray(im).astype(np.int64)
        if a.size and (a.min() < 0 or a.max() > 65535):
            raise InvalidImageError(f"unsupported {mode} image: values outside 0..65535")
        g = ((a * 255 + 32767) // 65535).astype(np.uint8)  # 16-bit -> 8-bit, rounded
        return np.repeat(g[..., None], 3, axis=2)
    raise InvalidImageError(f"unsupported image mode {mode!r}; use RGB, greyscale, palette, "
                            "RGBA, CMYK or 16-bit greyscale")


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk, without decoding anything; raises
    :class:`InvalidImageError` when ``data`` does not start like a PNG."""
    if len(data) < 24 or data[:8] != PNG_SIGNATURE or data[12:16] != b"IHDR":
        raise InvalidImageError("not a PNG (no PNG signature and IHDR header)")
    w, h = struct.unpack(">II", data[16:24])
    return w, h


def _check_size(w: int, h: int, max_megapixels: float, min_side: int) -> None:
    if w <= 0 or h <= 0:
        raise InvalidImageError(f"image has no pixels ({w}x{h})")
    if w < min_side or h < min_side:
        raise InvalidImageError(f"image is {w}x{h} px: too small to label "
                                f"(each side must be at least {min_side} px)")
    mp = w * h / 1e6
    if mp > max_megapixels:
        raise InvalidImageError(
            f"image is {w}x{h} = {mp:.1f} megapixels, over the limit of "
            f"{max_megapixels:g} megapixels (possible decompression bomb); not decoded")


def decode_image(data: bytes, *, max_megapixels: float = DEFAULT_MAX_MEGAPIXELS,
                 min_side: int = MIN_IMAGE_SIDE) -> DecodedImage:
    """Decode and normalise image bytes or raise :class:`InvalidImageError`.

    Refused before the pixels are decoded: formats outside :data:`FORMATS`, more than
    ``max_megapixels``, a width or height under ``min_side`` px (``min_side=1``: any size)."""
    if not data:
        raise InvalidImageError("empty file: 0 bytes")
    fmt = "image"
    try:
        with warnings.catch_warnings():
            # the size is checked here, from the header, with a message naming it (Pillow's
            # own limit, Image.MAX_IMAGE_PIXELS, is respected below; twice it, open raises)
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data), formats=FORMATS)
            _check_size(*im.size, max_megapixels, min_side)
            w, h = im.size
            if Image.MAX_IMAGE_PIXELS and w * h > Image.MAX_IMAGE_PIXELS:
                raise InvalidImageError(
                    f"image is {w}x{h} = {w * h / 1e6:.1f} megapixels, over Pillow's limit of "
                    f"{Image.MAX_IMAGE_PIXELS / 1e6:.1f} megapixels (possible decompression bomb); not decoded")
            fmt = im.format or "unknown"
            im.load()
            orientation = im.getexif().get(0x0112, 1)
            rgb = to_rgb(ImageOps.exif_transpose(im))
    except InvalidImageError:
        raise
    except UnidentifiedImageError:
        raise InvalidImageError(
            f"not an image (or not one of {', '.join(FORMATS)}): cannot identify the "
            f"{len(data)} bytes") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise InvalidImageError(f"decompression bomb rejected from its header: {e}; not decoded") from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as e:
        raise InvalidImageError(f"corrupt or truncated {fmt} file: {e}") from None
    normalised = im.mode != "RGB" or orientation not in (None, 1)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise InvalidImageError(f"decoded to unexpected shape {rgb.shape}")
    return DecodedImage(np.ascontiguousarray(rgb), fmt, normalised)


def load_image(path: str | Path, *, max_megapixels: float = math.inf, min_side: int = 1) -> np.ndarray:
    """An image file -> (H, W, 3) uint8 RGB, decoded by :func:`decode_image`. No size
    limits by default (dataset folders and model inputs); raises
    :class:`InvalidImageError`, or ``OSError`` when the file cannot be read."""
    data = Path(path).read_bytes()
    return decode_image(data, max_megapixels=max_megapixels, min_side=min_side).rgb
