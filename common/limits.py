"""The size limits on what a user can send the app: one owner, settable by environment.

Every limit on untrusted input lives here, so the upload route, Studio's uploads, the
zip reader, the image decoder and the class-map codec refuse the same sizes. Each is a
module constant read once at import from an environment variable (a plain number in
the unit the name says); an unset or empty variable keeps the default, a bad value
fails at start-up with the variable's name. Tests and scripts may also pass their own
values where a function takes them.

===========================  ===========================  =========
constant                     environment variable         default
===========================  ===========================  =========
MAX_UPLOAD_BYTES             SEGUI_MAX_UPLOAD_MB          100 MB
MAX_IMAGE_BYTES              SEGUI_MAX_IMAGE_MB           64 MB
MAX_IMAGE_MEGAPIXELS         SEGUI_MAX_IMAGE_MEGAPIXELS   30
ZIP_MAX_FILES                SEGUI_ZIP_MAX_FILES          2000
ZIP_MAX_TOTAL_BYTES          SEGUI_ZIP_MAX_TOTAL_MB       1024 MB
ZIP_MAX_RATIO                SEGUI_ZIP_MAX_RATIO          200
MAX_MAP_BYTES                SEGUI_MAX_MAP_MB             64 MB
EXPORT_TTL_SECONDS           SEGUI_EXPORT_TTL_S           1800
===========================  ===========================  =========

(MB here is 2**20 bytes.)
"""
from __future__ import annotations

import os

MB = 1024 * 1024


def _env(name: str, default: float, *, integer: bool = False) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a {'whole ' if integer else ''}number") from None
    if value <= 0:
        raise ValueError(f"{name}={raw!r} must be positive")
    return value


# One uploaded file (an image or a zip), as it arrives on the upload route.
MAX_UPLOAD_BYTES = int(_env("SEGUI_MAX_UPLOAD_MB", 100) * MB)
# One image's bytes: an uploaded image file or one zip member, uncompressed.
MAX_IMAGE_BYTES = int(_env("SEGUI_MAX_IMAGE_MB", 64) * MB)
# Width x height of an image the app accepts, read from its header before any pixel is
# decoded (the storage library's own default, for its command line, is
# common.images.DEFAULT_MAX_MEGAPIXELS).
MAX_IMAGE_MEGAPIXELS = float(_env("SEGUI_MAX_IMAGE_MEGAPIXELS", 30.0))
# A zip: its number of files, their total uncompressed size, and the largest
# uncompressed/compressed ratio of one member, all read from the zip's directory
# before a byte is unpacked.
ZIP_MAX_FILES = int(_env("SEGUI_ZIP_MAX_FILES", 2000, integer=True))
ZIP_MAX_TOTAL_BYTES = int(_env("SEGUI_ZIP_MAX_TOTAL_MB", 1024) * MB)
ZIP_MAX_RATIO = float(_env("SEGUI_ZIP_MAX_RATIO", 200.0))
# A class map sent by the page or a script (the PNG's bytes, before decoding).
MAX_MAP_BYTES = int(_env("SEGUI_MAX_MAP_MB", 64) * MB)
# How long an export's zip stays on the server after it was made.
EXPORT_TTL_SECONDS = float(_env("SEGUI_EXPORT_TTL_S", 1800.0))


def human(n: float) -> str:
    """Bytes for a message: '1.5 MB', '820 KB', '12 bytes'."""
    if n >= MB:
        return f"{n / MB:.1f} MB"
    if n >= 1024:
        return f"{n / 1024:.0f} KB"
    return f"{int(n)} bytes"
