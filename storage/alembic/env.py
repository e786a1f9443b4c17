"""Alembic environment. Run programmatically by :func:`storage.db.upgrade`, which
passes an open connection in ``config.attributes["connection"]``."""
from __future__ import annotations

from alembic import context
from sqlalchemy import text

from storage.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes["connection"]
    is_sqlite = connection.dialect.name == "sqlite"
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=is_sqlite, compare_type=True)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # two app processes starting at once must not both create the schema
            connection.execute(text("SELECT pg_advisory_xact_lock(7261535)"))
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("storage migrations run online only (storage.db.upgrade)")
run_migrations_online()
