"""A studio's backup, made while the app runs, and its restore into an empty folder.

    python -m storage backup --out studio-2026-12-08.tar [--data-dir data]
    python -m storage restore studio-2026-12-08.tar --data-dir restored

The backup is one tar file: a consistent copy of the SQLite database (SQLite's online
backup, so saves that land meanwhile are either in it or not, never half), then the
files the database points to, under the same names: the image files (``images/``,
content-addressed and written once), the fine-tuned models (``models/``, each written
to a temporary name and renamed) and the job logs. Files are copied after the database,
so every row's file is there; a file added after the copy is an orphan there, which
``python -m storage sweep`` removes. Thumbnails (``cache/``) and exports are left out:
the app makes them again. Model versions whose folder lies outside the data folder (the
shipped ``weights/camvid``) are written down by path, not copied: the report counts them.

With PostgreSQL the database is the server's to back up (``pg_dump``); the backup then
holds the files only, and says so. A restore unpacks into an empty or new folder only
(nothing is overwritten), refusing members that would land outside it, and then opens
the store there, which brings its schema up to date.
"""
from __future__ import annotations

import os
import shutil
import sqlite3
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select

from .errors import StorageError
from .models import Image, ModelVersion, Project
from .store import Store

DB_NAME = "studio.db"
SKIPPED_DIRS = ("cache", "exports")        # made again by the app
TEMP_SUFFIXES = (".partial", ".part")      # a model or a file being written
TEMP_PREFIX = ".tmp-"


class BackupError(StorageError):
    """A backup or restore that cannot be made; nothing was written in its place."""


@dataclass
class BackupReport:
    path: Path
    database: bool = False          # the database is in the file (SQLite)
    projects: int = 0
    images: int = 0
    files: int = 0                  # files copied besides the database
    bytes: int = 0
    outside: list[str] = field(default_factory=list)   # model folders not under the data folder

    def summary(self) -> str:
        db = (f"the database ({self.projects} projects, {self.images} images)" if self.database
              else "no database (PostgreSQL: back it up with pg_dump)")
        out = f"{db} and {self.files} files, {self.bytes / 2**20:.1f} MB, in {self.path}"
        if self.outside:
            out += (f"; {len(self.outside)} model version(s) point outside the data folder and are not "
                    f"copied: {', '.join(sorted(set(self.outside))[:3])}")
        return out


def _kept(rel: Path) -> bool:
    """A data-folder file that belongs in a backup (the database is copied on its own)."""
    if rel.parts[0] in SKIPPED_DIRS or rel.name.startswith(DB_NAME):
        return False
    return not any(p.startswith(TEMP_PREFIX) or p.endswith(TEMP_SUFFIXES) for p in rel.parts)


def backup(store: Store, out: str | Path) -> BackupReport:
    """Write the backup of ``store`` (its database when SQLite, and its data folder's files)
    to ``out``, a tar file (gzip when the name ends in .gz or .tgz). Written to a temporary
    name beside it and renamed, so a failed backup leaves no file that looks whole."""
    out = Path(out)
    if out.exists():
        raise BackupError(f"{out} exists already: give a new file name (nothing is overwritten)")
    data_dir = store.data_dir.resolve()
    if out.resolve().is_relative_to(data_dir):
        raise BackupError(f"{out} lies in the data folder it backs up: write it elsewhere")
    rep = BackupReport(out)
    with store._session() as s:
        rep.projects = s.scalar(select(func.count(Project.id))) or 0
        rep.images = s.scalar(select(func.count(Image.id))) or 0
        for w in s.scalars(select(ModelVersion.weights_dir)):
            if Path(w).is_absolute() and not Path(w).resolve().is_relative_to(data_dir):
                rep.outside.append(w)
    mode = "w:gz" if out.name.endswith((".gz", ".tgz")) else "w"
    fd, tmp_name = tempfile.mkstemp(prefix=out.name + ".", suffix=".partial", dir=out.parent)
    os.close(fd)
    try:
        with tarfile.open(tmp_name, mode) as tar:
            if store.dialect == "sqlite":
                with tempfile.TemporaryDirectory() as scratch:
                    copy = Path(scratch) / DB_NAME
                    src = sqlite3.connect(store.engine.url.database)
                    dst = sqlite3.connect(copy)
                    try:
                        src.backup(dst)      # a consistent copy, while others write
                    finally:
                        dst.close()
                        src.close()
                    tar.add(copy, DB_NAME)
                rep.database = True
            for root, dirs, files in os.walk(data_dir):
                dirs.sort()
                for name in sorted(files):
                    path = Path(root) / name
                    rel = path.relative_to(data_dir)
                    if not _kept(rel) or not path.is_file():
                        continue
                    try:
                        tar.add(path, rel.as_posix())
                    except FileNotFoundError:   # removed meanwhile (a temp file): not needed
                        continue
                    rep.files += 1
                    rep.bytes += path.stat().st_size
        os.replace(tmp_name, out)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return rep


def restore(archive: str | Path, data_dir: str | Path, url: str | None = None) -> BackupReport:
    """Unpack a backup into ``data_dir`` (new, or an empty folder) and open it there: the
    schema is brought up to date. ``url``: the database to open (default: the SQLite file
    in the backup). Members that would land outside ``data_dir`` (absolute paths, ``..``,
    links out) are refused by tarfile's ``data`` filter, which then raises."""
    archive, data_dir = Path(archive), Path(data_dir)
    if data_dir.exists() and any(data_dir.iterdir()):
        raise BackupError(f"{data_dir} is not empty: restore into a new folder (nothing is overwritten)")
    created = not data_dir.exists()
    try:
        with tarfile.open(archive) as tar:
            names = tar.getnames()
            if url is None and DB_NAME not in names:
                raise BackupError(f"{archive} holds no {DB_NAME} (a PostgreSQL studio's backup): restore the "
                                  "database with pg_restore and give its URL")
            if not hasattr(tarfile, "data_filter"):      # Python < 3.11.4: no filter to lean on
                raise BackupError("restoring needs Python 3.11.4 or newer (tarfile's data filter)")
            data_dir.mkdir(parents=True, exist_ok=True)
            tar.extractall(data_dir, filter="data")
    except (tarfile.TarError, OSError) as e:
        # the folder was empty (or not there): what was unpacked before the refusal goes
        for child in list(data_dir.iterdir()) if data_dir.exists() else []:
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        if created and data_dir.exists():
            data_dir.rmdir()
        raise BackupError(f"{archive} cannot be restored: {e}") from None
    store = Store(url, data_dir)
    try:
        rep = BackupReport(data_dir, database=DB_NAME in names, files=len(names) - (DB_NAME in names))
        with store._session() as s:
            rep.projects = s.scalar(select(func.count(Project.id))) or 0
            rep.images = s.scalar(select(func.count(Image.id))) or 0
            ids = list(s.scalars(select(ModelVersion.id)))
        # versions whose folder is not here (the shipped model where the code lies elsewhere)
        rep.outside = [mv.weights_dir for mv in map(store.get_model_version, ids)
                       if not Path(mv.weights_dir).is_dir()]
        return rep
    finally:
        store.close()
