"""Label storage of the segmentation studio: projects, images, annotations (every
revision), review decisions, predictions, model versions, fine-tuning jobs, user
accounts, project members and the activity log.

SQLite (WAL) in the data folder by default, any SQLAlchemy URL (PostgreSQL via
psycopg) instead; schema managed by Alembic and upgraded on start. Use
:class:`Store`; it never hands out sessions or ORM objects.
"""
from .errors import (ConflictError, InvalidClassMapError, InvalidImageError, JobStateError,
                     NotFoundError, ReviewError, StorageError, ValidationError)
from .info import (ActivityInfo, AnnotationInfo, ClassInfo, ImageInfo, JobInfo, ModelVersionInfo,
                   PredictionInfo, ProjectInfo, ReviewInfo, UserInfo)
from .models import Action, ReviewDecision, ReviewState, Role, TrainingSource
from .store import Store
from .store_accounts import LoginPolicy, LoginResult
from .store_images import FILTER_STATUSES, QUEUE_FILTERS

__all__ = [
    "Store", "FILTER_STATUSES", "QUEUE_FILTERS", "StorageError", "NotFoundError", "InvalidImageError", "InvalidClassMapError",
    "ConflictError", "JobStateError", "ReviewError", "ValidationError", "ProjectInfo", "ClassInfo",
    "ImageInfo", "AnnotationInfo", "PredictionInfo", "ModelVersionInfo", "JobInfo", "UserInfo",
    "ReviewInfo", "ActivityInfo", "Role", "ReviewDecision", "ReviewState", "TrainingSource", "Action",
    "LoginPolicy", "LoginResult",
]
