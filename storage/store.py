"""The narrow storage API used by the app and the fine-tuning jobs.

Every public method opens exactly one ``Session`` for its operation and returns
frozen dataclasses and numpy arrays, never ORM objects or sessions.

The methods live in one mixin per domain (``store_images``: projects, classes, images,
annotations; ``store_models``: predictions, model versions; ``store_jobs``: jobs,
training data and source; ``store_accounts``: users, members; ``store_reviews``:
reviews, review scores, activity; ``store_metrics``: the Explore screen's per-image
metrics) over ``store_base.StoreBase``; the dataclasses they
return are in ``info``. This module assembles :class:`Store` and owns its construction.
"""
from __future__ import annotations

from pathlib import Path

from argon2 import PasswordHasher
from sqlalchemy.orm import sessionmaker

from . import db, imaging
from .errors import ValidationError  # noqa: F401 (re-exported)
from .files import BlobStore, FolderBlobStore
from .info import (ActivityInfo, AnnotationInfo, ClassInfo, ImageInfo, JobInfo, ModelVersionInfo,
                   PredictionInfo, ProjectInfo, ReviewInfo, UserInfo)
from .store_accounts import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, AccountsMixin
from .store_images import FILTER_STATUSES, QUEUE_FILTERS, ImagesMixin
from .store_jobs import JOB_TRANSITIONS, LOG_TAIL_LINES, JobsMixin
from .store_metrics import MetricsMixin
from .store_models import ModelsMixin
from .store_reviews import ReviewsMixin

__all__ = [
    "Store", "ValidationError", "FILTER_STATUSES", "QUEUE_FILTERS", "JOB_TRANSITIONS", "LOG_TAIL_LINES",
    "MIN_PASSWORD_LENGTH", "MAX_PASSWORD_LENGTH", "ProjectInfo", "ClassInfo", "ImageInfo",
    "AnnotationInfo", "PredictionInfo", "ModelVersionInfo", "JobInfo", "UserInfo", "ReviewInfo",
    "ActivityInfo",
]


class Store(ImagesMixin, ModelsMixin, JobsMixin, AccountsMixin, ReviewsMixin, MetricsMixin):
    """All persistent state of the studio.

    ``url=None`` uses ``sqlite:///<data_dir>/studio.db``; any SQLAlchemy URL works
    (``postgresql+psycopg://user:pw@host/db``). Image files live under
    ``<data_dir>/images`` (content-addressed by sha256) whatever the database is.
    The schema is upgraded to the latest Alembic revision on construction.
    ``password_hasher``: an ``argon2.PasswordHasher`` for account passwords (default:
    argon2-cffi's defaults; a login rehashes a hash made with other parameters).
    ``blobs``: where image files live, any :class:`storage.files.BlobStore` (default: a
    :class:`storage.files.FolderBlobStore` in ``<data_dir>/images``).
    """

    def __init__(self, url: str | None = None, data_dir: str | Path = "data", *,
                 max_image_megapixels: float = imaging.DEFAULT_MAX_MEGAPIXELS,
                 min_image_side: int = imaging.MIN_IMAGE_SIDE,
                 sqlite_synchronous: str = "FULL", migrate: bool = True,
                 password_hasher: PasswordHasher | None = None, blobs: BlobStore | None = None):
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.url = url or f"sqlite:///{(self.data_dir / 'studio.db').resolve()}"
        self.max_image_megapixels = float(max_image_megapixels)
        self.min_image_side = int(min_image_side)   # px; add_image refuses narrower/shorter images
        self.engine = db.make_engine(self.url, sqlite_synchronous=sqlite_synchronous)
        if migrate:
            db.upgrade(self.engine)
        self._session = sessionmaker(self.engine, expire_on_commit=False)
        self.blobs: BlobStore = blobs if blobs is not None else FolderBlobStore(self.data_dir / "images")
        # argon2id with argon2-cffi's defaults (RFC 9106 low-memory profile) unless given
        self.password_hasher = password_hasher or PasswordHasher()
        self._dummy_hash: str | None = None

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
