"""Typed errors raised by :mod:`storage`.

Every error the app or a fine-tuning job should handle derives from
:class:`StorageError`, so callers can catch one type and show ``str(err)``.
"""
from __future__ import annotations

from datetime import datetime

from common import images


class StorageError(Exception):
    """Base class of every storage error."""


class NotFoundError(StorageError, LookupError):
    """A project, image, annotation, model version or job does not exist."""


class InvalidImageError(StorageError, images.InvalidImageError):
    """Image bytes that cannot be decoded, or that break a limit. Nothing was written.
    (Also a :class:`common.images.InvalidImageError`, hence a ``ValueError``.)"""


class ValidationError(StorageError, ValueError):
    """Invalid argument (empty/duplicate class names, unknown split, ...)."""


class InvalidClassMapError(StorageError, ValueError):
    """A class map of the wrong shape, dtype or with values outside the label set."""


class ReviewError(StorageError, ValueError):
    """A review decision that cannot be taken: the revision is a draft, or no longer
    the image's latest submitted revision (someone submitted since: reload)."""


class JobStateError(StorageError):
    """An invalid training-job state transition, or a second active job for a project."""


class ConflictError(StorageError):
    """Someone saved the annotation after the revision the editor started from.

    Nothing was overwritten. ``author``/``saved_at``/``revision`` describe the
    save that is now the latest one, so the app can tell the labeller who and when.
    """

    def __init__(self, image_id: int, base_revision: int, revision: int,
                 author: str | None, saved_at: datetime | None):
        self.image_id = image_id
        self.base_revision = base_revision
        self.revision = revision
        self.author = author
        self.saved_at = saved_at
        when = saved_at.isoformat(timespec="seconds") if saved_at else "unknown time"
        super().__init__(
            f"image {image_id}: annotation was saved by {author!r} at {when} "
            f"(revision {revision}) after you started from revision {base_revision}; "
            "nothing was overwritten, reload and merge your changes")
