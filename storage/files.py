"""Where image files live: the :class:`BlobStore` interface :class:`storage.Store` uses,
and :class:`FolderBlobStore`, the content-addressed folder ``<root>/<sha[:2]>/<sha>``.

Files are addressed by the sha256 of their bytes (:func:`digest`; the store keeps it in
the image row). The folder store writes to a temp name in the same folder, fsyncs, then
renames into place, so a file under its final name is always complete. A crash between
the file and the database row leaves an orphan file (never a dangling row); the orphan
sweep removes those. Another implementation (an object store) only needs the
:class:`BlobStore` methods and is passed as ``Store(..., blobs=...)``.
"""
from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

TMP_PREFIX = ".tmp-"


def digest(data: bytes) -> str:
    """The address of ``data``: its sha256 hex digest."""
    return hashlib.sha256(data).hexdigest()


class BlobStore(Protocol):
    """What :class:`storage.Store` needs from an image file store."""

    def write(self, sha256: str, data: bytes) -> bool:
        """Store ``data`` under its digest, completely or not at all; True when new."""

    def read(self, sha256: str) -> bytes:
        """The bytes stored under ``sha256``."""

    def path(self, sha256: str) -> Any:
        """Where ``sha256`` lives (named in error messages)."""

    def iter_files(self) -> Iterable[tuple[Any, str | None, float]]:
        """Every stored entry: (entry, sha256 or None for an incomplete write, mtime)."""

    def remove(self, entry: Any) -> None:
        """Delete an entry :meth:`iter_files` yielded (gone already: nothing happens)."""


class FolderBlobStore:
    """The default :class:`BlobStore`: files in a local (or shared) folder."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    digest = staticmethod(digest)

    def path(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def read(self, sha256: str) -> bytes:
        return self.path(sha256).read_bytes()

    def write(self, sha256: str, data: bytes) -> bool:
        """Store ``data`` under its digest; return True when a new file was created."""
        final = self.path(sha256)
        if final.is_file() and final.stat().st_size == len(data):
            return False
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.parent / f"{TMP_PREFIX}{sha256}-{os.getpid()}-{time.monotonic_ns()}"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        try:
            dfd = os.open(final.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:
            pass
        return True

    def delete(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)

    def remove(self, entry: Path) -> None:
        Path(entry).unlink(missing_ok=True)

    def iter_files(self):
        """Yield (path, sha256 or None for temp files, mtime)."""
        if not self.root.is_dir():
            return
        for sub in self.root.iterdir():
            if not sub.is_dir():
                continue
            for p in sub.iterdir():
                if p.is_file():
                    name = p.name
                    sha = None if name.startswith(TMP_PREFIX) else name
                    yield p, sha, p.stat().st_mtime
