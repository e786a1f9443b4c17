"""Lossless wire format of class maps between the page and Python.

A class map travels as a PNG data URL whose pixel values are the class indices:
mode "L" from Python; from the browser an RGBA PNG with the index in the red
channel (a canvas cannot write greyscale PNGs). Superpixel ids (up to 65535) travel
as an RGB PNG, low byte in red, high byte in green. Scripts using gradio_client can
send ``encode_map(class_map)`` wherever the page sends its map.
"""
from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from common import limits
from common.images import InvalidImageError, png_size

PNG_PREFIX = "data:image/png;base64,"
MAX_MAP_BYTES = limits.MAX_MAP_BYTES    # SEGUI_MAX_MAP_MB (common.limits)
MAX_SEGMENT_PIXELS = int(limits.MAX_IMAGE_MEGAPIXELS * 1e6)


class MapFormatError(ValueError):
    """The map sent by the page or a script cannot be read."""


def _png_url(im: Image.Image, compress_level: int = 1) -> str:
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=compress_level)
    return PNG_PREFIX + base64.b64encode(buf.getvalue()).decode("ascii")


def encode_map(class_map: np.ndarray) -> str:
    """(H, W) uint8 class indices -> PNG data URL (mode L)."""
    a = np.asarray(class_map)
    if a.ndim != 2 or a.dtype != np.uint8:
        raise ValueError(f"a class map is a 2-D uint8 array, got {a.dtype} {a.shape}")
    return _png_url(Image.fromarray(np.ascontiguousarray(a), mode="L"))


def encode_mask(mask: np.ndarray) -> str:
    """Boolean mask -> PNG data URL (0 / 1)."""
    return encode_map(np.asarray(mask, dtype=bool).astype(np.uint8))


def encode_segments(segments: np.ndarray) -> str:
    """(H, W) superpixel ids < 65536 -> RGB PNG data URL (low byte red, high byte green)."""
    s = np.asarray(segments)
    if s.size and (s.min() < 0 or s.max() > 0xFFFF):
        raise ValueError("superpixel ids must lie in 0..65535")
    s = s.astype(np.uint16)
    rgb = np.zeros(s.shape + (3,), np.uint8)
    rgb[..., 0] = s & 0xFF
    rgb[..., 1] = s >> 8
    return _png_url(Image.fromarray(rgb, mode="RGB"))


def decode_segments(url: str) -> np.ndarray:
    rgb = np.asarray(_open(url, max_pixels=MAX_SEGMENT_PIXELS).convert("RGB"))
    return rgb[..., 0].astype(np.int32) | (rgb[..., 1].astype(np.int32) << 8)


def _open(url: str, size: tuple[int, int] | None = None, max_pixels: int | None = None) -> Image.Image:
    """The PNG in a data URL, decoded only after its encoded size and the width and
    height in its IHDR header passed: ``size`` (width, height) exactly, or at most
    ``max_pixels``. A 600 KB PNG can declare 13000x13000 pixels (169 MB as greyscale,
    676 MB as RGBA): it is refused from its first 24 bytes."""
    if not isinstance(url, str) or not url.startswith(PNG_PREFIX):
        raise MapFormatError("the class map must be a PNG data URL ('data:image/png;base64,...')")
    encoded = len(url) - len(PNG_PREFIX)
    if encoded * 3 // 4 > MAX_MAP_BYTES:   # refused before base64 makes a second copy
        raise MapFormatError(f"the class map is {limits.human(encoded * 3 // 4)}, over the limit of "
                             f"{limits.human(MAX_MAP_BYTES)} (SEGUI_MAX_MAP_MB); not decoded")
    try:
        data = base64.b64decode(url[len(PNG_PREFIX):], validate=True)
    except ValueError:
        raise MapFormatError("the class map's base64 is corrupt") from None
    try:
        w, h = png_size(data)
    except InvalidImageError:
        raise MapFormatError("the class map is not a readable PNG (no PNG header)") from None
    if size is not None and (w, h) != tuple(size):
        raise MapFormatError(f"the class map is {w}x{h}, the image {size[0]}x{size[1]}; not decoded")
    if max_pixels is not None and w * h > max_pixels:
        raise MapFormatError(f"the class map is {w}x{h}, over the limit of {max_pixels / 1e6:g} megapixels; "
                             "not decoded")
    try:
        im = Image.open(io.BytesIO(data), formats=("PNG",))
        if im.size != (w, h):     # Pillow read another header than ours: trust neither
            raise ValueError(f"header says {w}x{h}, Pillow {im.size[0]}x{im.size[1]}")
        im.load()
    except Exception as e:   # PIL raises many types for bad bytes
        raise MapFormatError(f"the class map is not a readable PNG ({e})") from None
    return im


def decode_map(url: str, height: int, width: int) -> np.ndarray:
    """PNG data URL -> (height, width) uint8 class indices (L, P: the values; RGB or
    RGBA: the red channel). Refuses another size before decoding."""
    im = _open(url, size=(width, height))
    if im.mode in ("L", "P"):
        return np.array(im, dtype=np.uint8)
    if im.mode in ("RGB", "RGBA"):
        return np.ascontiguousarray(np.asarray(im)[..., 0], dtype=np.uint8)
    raise MapFormatError(f"the class map PNG has mode {im.mode}; use 8-bit greyscale (L)")


def photo_url(data: bytes, fmt: str, rgb: np.ndarray | None = None, normalised: bool = False) -> str:
    """The photo for the page: the original bytes when a browser shows them as the
    store decodes them, else the decoded pixels as JPEG (display only)."""
    # (GIF is re-encoded: the page would animate an animated one, the store uses frame 1)
    mime = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "BMP": "image/bmp"}.get(fmt)
    if mime and not normalised:
        return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")
    if rgb is None:
        raise ValueError("photo_url needs the decoded pixels for this format")
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=92)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def map_from_value(value: object, image_id: int, height: int, width: int) -> np.ndarray | None:
    """The class map the page (or a script) sent with an event, for the open image
    ``image_id``; None when it sent none. Refuses a map of another image."""
    if not isinstance(value, dict) or not value.get("map"):
        return None
    sent = value.get("image_id")
    if sent is not None and (not isinstance(sent, int) or isinstance(sent, bool)):
        raise MapFormatError(f"image_id must be a whole number, got {sent!r}")
    if sent is not None and sent != int(image_id):
        raise MapFormatError(f"the canvas holds image {sent}, but image {image_id} is open here; "
                             "reload the page to continue")
    return decode_map(value["map"], height, width)


def args_of(value: object) -> dict:
    """The event's arguments the page sent with the map."""
    a = value.get("args") if isinstance(value, dict) else None
    return a if isinstance(a, dict) else {}


def stamp_of(value: object) -> int | None:
    """The page's journal stamp of the map it sent (a whole number), else None."""
    s = value.get("stamp") if isinstance(value, dict) else None
    return s if isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2 ** 53 else None


def request_of(value: object):
    return value.get("request") if isinstance(value, dict) else None
