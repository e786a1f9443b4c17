"""Label storage of the segmentation studio: projects, images, annotations (every
revision), review decisions, predictions, model versions, fine-tuning jobs, user
accounts, project members and the activity log.

SQLite (WAL) in the data folder by default, any SQLAlchemy URL (PostgreSQL via
psycopg) instead; schema managed by Alembic and upgraded on start. Use
:class:`Store`; it never hands out sessions or ORM objects.
"""
from .errors import (ConflictError, InvalidClassMapError, InvalidImageError, JobStateError,
                     NotFoundError, ReviewError, StorageError, ValidationError)
from .info import (ActivityInfo, AnnotationInfo, ClassInfo, CorrectionInfo, ImageInfo, JobInfo, ModelVersionInfo,
                   PredictionInfo, ProjectInfo, ReviewInfo, UserInfo)
from .models import Action, ReviewDecision, ReviewState, Role, TrainingSource
from .store import Store
from .store_accounts import LoginPolicy, LoginResult, check_password
from .store_images import FILTER_STATUSES, QUEUE_FILTERS

# The database URL in the environment (a password in a --db argument is readable by anyone on
# the machine in `ps`): the default of every command's --db, and how the app hands it to workers.
DB_URL_ENV = "STUDIO_DB_URL"

__all__ = [
    "DB_URL_ENV", "Store", "FILTER_STATUSES", "QUEUE_FILTERS", "StorageError", "NotFoundError", "InvalidImageError", "InvalidClassMapError",
    "ConflictError", "JobStateError", "ReviewError", "ValidationError", "ProjectInfo", "ClassInfo",
    "ImageInfo", "AnnotationInfo", "PredictionInfo", "ModelVersionInfo", "JobInfo", "UserInfo",
    "ReviewInfo", "ActivityInfo", "CorrectionInfo", "Role", "ReviewDecision", "ReviewState", "TrainingSource", "Action",
    "LoginPolicy", "LoginResult", "check_password",
]
