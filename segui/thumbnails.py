"""The Label screen's image strip: pages of the project's images with their status, and
a small thumbnail of each (the photo with its latest annotation over it).

:class:`ThumbnailsMixin` is the part of :class:`segui.handlers.Studio` the strip uses:

- :meth:`strip` gives one page of the strip (ids, file names, statuses, each image's
  thumbnail key), the page holding the open image unless another is asked for; the
  page is small (``STRIP_PAGE``), whatever the project's size;
- :meth:`thumbnails` gives the thumbnails of a few images of one project (at most
  ``MAX_THUMBNAILS_PER_CALL``), as JPEG data URLs, each at most ``THUMB_SIDE`` px on its
  longer side.

A thumbnail is made once per image and revision (and project palette): the JPEG goes
to a cache folder, ``<data dir>/cache/thumbs`` (one file per image: a new revision's
replaces the old one), and the last ``THUMB_MEMORY`` of them stay in memory. Nothing
is stored in the database and nothing in the blob store (whose orphan sweep would
delete files no image row names); deleting the folder only costs their remaking.
"""
from __future__ import annotations

import base64
import io
import os
import threading
import time
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage

from storage import NotFoundError

from . import access
from .access import Forbidden, Principal
from .errors import UserError

STRIP_PAGE = 20                  # images per page of the strip (the column shows about 7 at 1440x900;
                                 # thumbnails are fetched for the ones scrolled into view only)
MAX_STRIP_PAGE = 60              # a client may ask for pages of at most this many
THUMB_SIDE = 112                 # px, the longer side of a thumbnail
THUMB_QUALITY = 78               # JPEG quality (a 112x84 thumbnail is 2-4 KB)
THUMB_MASK_OPACITY = 0.5         # the annotation over the photo (void pixels: none)
THUMB_MEMORY = 512               # thumbnails kept in memory (data URLs of ~5 KB)
MAX_THUMBNAILS_PER_CALL = 60
THUMB_FORMAT_VERSION = 1         # bump when a thumbnail is drawn differently: old files are remade

# what the strip shows for an image: its status, or for a submitted one its review's outcome
STRIP_STATUSES = ("unlabelled", "draft", "submitted", "accepted", "rejected")


def strip_status(status: str, review: str | None) -> str:
    """The strip's status of an image: "accepted" / "rejected" for a submitted image
    whose latest submission was reviewed, else the image's status."""
    if status == "submitted" and review in ("accepted", "rejected"):
        return review
    return status


def status_counts(images) -> dict[str, int]:
    """{strip status: how many of ``images``} (every status of STRIP_STATUSES, 0 when none)."""
    counts = dict.fromkeys(STRIP_STATUSES, 0)
    for im in images:
        s = strip_status(im.status, im.review)
        counts[s] = counts.get(s, 0) + 1
    return counts


def palette_mark(project) -> str:
    """A short mark of the project's colours: a thumbnail drawn with other colours is stale."""
    text = ";".join(f"{c.index}:{c.color}" for c in project.classes) + f";{project.ignore_index}"
    return f"{zlib.crc32(text.encode()):08x}"


def thumb_key(info, mark: str) -> str:
    """What a thumbnail shows: this image file (sha), its revision, the palette."""
    return f"{info.sha256[:12]}.{info.revision}.{mark}.{THUMB_FORMAT_VERSION}"


def thumb_size(width: int, height: int, side: int = THUMB_SIDE) -> tuple[int, int]:
    s = side / max(width, height)
    return max(1, round(width * s)), max(1, round(height * s))


def make_thumbnail(photo: PILImage.Image, class_map: np.ndarray | None = None, lut: np.ndarray | None = None,
                   ignore_index: int = 255, side: int = THUMB_SIDE) -> bytes:
    """A JPEG of ``photo`` at most ``side`` px on its longer side, with ``class_map``
    (the image's size, class indices) coloured by ``lut`` over it (void left clear)."""
    w, h = photo.size if class_map is None else (class_map.shape[1], class_map.shape[0])
    tw, th = thumb_size(w, h, side)
    small = np.asarray(photo.convert("RGB").resize((tw, th), PILImage.BILINEAR), dtype=np.float32)
    if class_map is not None and lut is not None:
        ys = (np.arange(th) * h // th).astype(np.intp)
        xs = (np.arange(tw) * w // tw).astype(np.intp)
        cm = class_map[ys[:, None], xs[None, :]]
        labelled = (cm != ignore_index)[..., None]
        colour = lut[cm].astype(np.float32)
        a = THUMB_MASK_OPACITY
        small = np.where(labelled, small * (1 - a) + colour * a, small)
    buf = io.BytesIO()
    PILImage.fromarray(np.clip(small + 0.5, 0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=THUMB_QUALITY)
    return buf.getvalue()


class ThumbnailsMixin:
    """Studio's image strip and thumbnails."""

    # ------------------------------------------------------------------ the strip

    def strip(self, project: str | int, current: int | None, page: int | None = None,
              page_size: int = STRIP_PAGE, who: Principal | None = None) -> dict[str, Any]:
        """One page of the image strip: images in upload order (an annotator's: the
        images they see) with file name, status (``strip_status``) and thumbnail key;
        the page holding ``current`` unless ``page`` (0-based) is given; and the
        project's progress (counts per status and ``project_total``, the whole project's:
        ``total`` counts only the images this person's strip lists, ``listed`` their
        statuses)."""
        who = self._who(who)
        try:
            page_size = int(page_size)
        except (TypeError, ValueError):
            raise UserError("page_size must be a whole number") from None
        if not 1 <= page_size <= MAX_STRIP_PAGE:
            raise UserError(f"page_size must be 1..{MAX_STRIP_PAGE}")
        p = self.store.get_project(project) if project not in (None, "") else None   # None: no project left
        images = self.store.list_images(p.id, order="id") if p is not None else []
        counts = status_counts(images)
        if not who.sees_every_image:
            images = [im for im in images if access.sees_image(who, im.status, im.annotated_by)]
        # the legend's counts: of the images this person's strip lists (an annotator's own
        # submissions), so that a count names images its click can open
        listed = counts if who.sees_every_image else status_counts(images)
        pages = max(1, -(-len(images) // page_size))
        if page is None:
            pos = next((k for k, im in enumerate(images) if im.id == current), 0)
            page = pos // page_size
        try:
            page = min(max(int(page), 0), pages - 1)
        except (TypeError, ValueError):
            raise UserError("page must be a whole number") from None
        lo = page * page_size
        mark = palette_mark(p) if p is not None else None
        items = [{"id": im.id, "name": im.filename, "status": strip_status(im.status, im.review),
                  "pos": lo + k + 1, "thumb": thumb_key(im, mark)}
                 for k, im in enumerate(images[lo:lo + page_size])]
        # "labelled": submitted, whatever the review said (as before accepted / rejected existed)
        return {"items": items, "current": current, "total": len(images), "page": page, "pages": pages,
                "page_size": page_size, "project": p.name if p is not None else None, **counts, "listed": listed,
                "project_total": sum(counts.values()),
                "labelled": counts["submitted"] + counts["accepted"] + counts["rejected"]}

    # ------------------------------------------------------------------ thumbnails

    def thumbnails(self, project: str | int, image_ids: list[int], who: Principal | None = None
                   ) -> list[dict[str, Any]]:
        """The thumbnails of ``image_ids`` (images of ``project`` the caller sees; others
        are refused) as ``{"id", "key", "url"}`` (a JPEG data URL), made once per
        revision and kept (``<data dir>/cache/thumbs`` and memory)."""
        who = self._who(who)
        if not isinstance(image_ids, (list, tuple)):
            raise UserError("give a list of image ids")
        if len(image_ids) > MAX_THUMBNAILS_PER_CALL:
            raise UserError(f"at most {MAX_THUMBNAILS_PER_CALL} thumbnails per call")
        p = self.store.get_project(project)
        mark = palette_mark(p)
        out = []
        for raw in image_ids:
            try:
                iid = int(raw)
                info = self.store.get_image(iid)
            except (NotFoundError, TypeError, ValueError):
                raise UserError(f"there is no image {raw} in this project") from None
            if info.project_id != p.id:
                raise UserError(f"there is no image {iid} in this project")
            if not access.sees_image(who, info.status, info.annotated_by):
                raise Forbidden(f"Not allowed: image {info.id} is someone else's work; "
                                "reviewers and admins open every image.")
            key = thumb_key(info, mark)
            out.append({"id": info.id, "key": key, "url": self._thumbnail_url(info, p, key)})
        return out

    def _thumb_cache(self) -> tuple[threading.Lock, OrderedDict]:
        cache = getattr(self, "_thumbs", None)
        if cache is None:
            cache = self._thumbs = (threading.Lock(), OrderedDict())
        return cache

    def thumb_dir(self) -> Path:
        return Path(self.store.data_dir) / "cache" / "thumbs"

    def _thumb_path(self, image_id: int, key: str) -> Path:
        return self.thumb_dir() / f"{image_id % 100:02d}" / f"{image_id}-{key}.jpg"

    def _thumbnail_url(self, info, project, key: str) -> str:
        lock, mem = self._thumb_cache()
        with lock:
            url = mem.get((info.id, key))
            if url is not None:
                mem.move_to_end((info.id, key))
                return url
        path = self._thumb_path(info.id, key)
        try:
            data = path.read_bytes()
        except OSError:
            data = self._make_thumbnail(info, project)
            self._write_thumb(path, info.id, data)
        url = "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")
        with lock:
            mem[(info.id, key)] = url
            mem.move_to_end((info.id, key))
            while len(mem) > THUMB_MEMORY:
                mem.popitem(last=False)
        return url

    def _make_thumbnail(self, info, project) -> bytes:
        t0 = time.perf_counter()
        if info.format == "JPEG" and not info.normalised:
            photo = PILImage.open(io.BytesIO(self.store.image_bytes(info.id)))
            photo.draft("RGB", (THUMB_SIDE * 2, THUMB_SIDE * 2))   # JPEG: decoded at 1/2..1/8 scale, fast
        else:
            photo = PILImage.fromarray(self.store.load_image(info.id))
        cm = None
        if info.revision > 0:
            try:
                cm = self.store.get_annotation(info.id).class_map
            except NotFoundError:
                cm = None
        if cm is not None and cm.shape != (info.height, info.width):
            cm = None
        data = make_thumbnail(photo, cm, project.color_lut() if cm is not None else None, project.ignore_index)
        self._thumb_ms = (time.perf_counter() - t0) * 1000   # the last one's cost (benchmarks)
        return data

    def _write_thumb(self, path: Path, image_id: int, data: bytes) -> None:
        """Atomically (temp file, rename); the image's older thumbnails go."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".tmp-{os.getpid()}-{threading.get_ident()}-{path.name}")
            tmp.write_bytes(data)
            os.replace(tmp, path)
            for old in path.parent.glob(f"{image_id}-*.jpg"):
                if old != path:
                    old.unlink(missing_ok=True)
        except OSError:
            pass   # a cache: without the file it is made again next time
