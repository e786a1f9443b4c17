"""Label storage of the segmentation studio: projects, images, annotations (every
revision), predictions, model versions and fine-tuning jobs.

SQLite (WAL) in the data folder by default, any SQLAlchemy URL (PostgreSQL via
psycopg) instead; schema managed by Alembic and upgraded on start. Use
:class:`Store`; it never hands out sessions or ORM objects.
"""
from .errors import (ConflictError, InvalidClassMapError, InvalidImageError, JobStateError,
                     NotFoundError, StorageError)
from .store import (AnnotationInfo, ClassInfo, ImageInfo, JobInfo, ModelVersionInfo,
                    PredictionInfo, ProjectInfo, Store, ValidationError)

__all__ = [
    "Store", "StorageError", "NotFoundError", "InvalidImageError", "InvalidClassMapError",
    "ConflictError", "JobStateError", "ValidationError", "ProjectInfo", "ClassInfo", "ImageInfo",
    "AnnotationInfo", "PredictionInfo", "ModelVersionInfo", "JobInfo",
]
