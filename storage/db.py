"""Engine creation (SQLite pragmas) and Alembic upgrade-on-start."""
from __future__ import annotations

import os
import stat
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

ALEMBIC_DIR = Path(__file__).with_name("alembic")


def make_engine(url: str, *, sqlite_synchronous: str = "FULL") -> Engine:
    """Create an engine. SQLite: WAL, foreign keys on, a busy timeout so concurrent
    writers wait instead of failing, ``synchronous=FULL`` by default (a committed
    annotation survives power loss)."""
    if url.startswith("sqlite"):
        private_sqlite_file(url)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # noqa: ANN001
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute(f"PRAGMA synchronous={sqlite_synchronous}")
            cur.close()
        return engine
    return create_engine(url, pool_pre_ping=True)


def private_sqlite_file(url: str) -> Path | None:
    """The SQLite file of ``url`` readable by its owner only (0600, created so before
    SQLite opens it; its -wal and -shm files take its mode, and existing ones are
    tightened too), and its folder not open to other users (no "other" bits). None
    for an in-memory database."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    path = Path(database)
    folder = path.parent
    if folder.exists() and folder.stat().st_uid == os.getuid():
        mode = stat.S_IMODE(folder.stat().st_mode)
        if mode & 0o007:
            folder.chmod(mode & ~0o007)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if p.exists() and p.stat().st_uid == os.getuid() and stat.S_IMODE(p.stat().st_mode) & 0o077:
            p.chmod(0o600)
    return path


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(ALEMBIC_DIR))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (called by every ``Store`` on start)."""
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Take the schema back to ``revision`` (tests, and undoing an upgrade by hand)."""
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.migration import MigrationContext
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
