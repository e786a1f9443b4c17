"""Files in and out: uploads (images and zips of images, one line per file) and exports.

:class:`UploadsMixin` is the part of :class:`segui.handlers.Studio` that adds uploaded
files to a project (the first new image predicted at once, the others in the
background) and exports a project's annotations as a zip.
"""
from __future__ import annotations

import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from common.images import IMAGE_SUFFIXES
from storage import InvalidImageError, ValidationError

from .access import Principal
from .errors import UserError

ZIP_MAX_MEMBERS = 2000
ZIP_MAX_MEMBER_BYTES = 200 * 1024 * 1024


@dataclass
class UploadReport:
    added: list[int] = field(default_factory=list)        # image ids, new
    duplicates: list[str] = field(default_factory=list)   # file names already in the project
    skipped: list[str] = field(default_factory=list)      # "name: reason"
    duplicate_ids: list[int] = field(default_factory=list)
    # one line per file, in upload order: (file name, "added" | "duplicate" | "skipped", message)
    files: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def to_open(self) -> int | None:
        """The image to show after the upload: the first new one, else the first already there."""
        return (self.added or self.duplicate_ids or [None])[0]

    def message(self) -> str:
        parts = [f"{len(self.added)} image(s) added"]
        if self.duplicates:
            parts.append(f"{len(self.duplicates)} already in the project ({', '.join(self.duplicates[:5])})")
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped: " + "; ".join(self.skipped[:10]))
        return ", ".join(parts)


class UploadsMixin:
    """Studio's uploads and exports."""

    def _expand(self, paths: list[str | Path]) -> list[tuple[str, str, bytes | None, str]]:
        """Uploaded paths -> one entry per file, in upload order (zips opened):
        (name shown to the user, file name to store, bytes or None, why it was skipped)."""
        out: list[tuple[str, str, bytes | None, str]] = []
        for path in paths or []:
            path = Path(path)
            name = path.name
            if path.suffix.lower() == ".zip":
                try:
                    with zipfile.ZipFile(path) as zf:
                        members = [m for m in zf.infolist() if not m.is_dir()]
                        if len(members) > ZIP_MAX_MEMBERS:
                            out.append((name, name, None, f"more than {ZIP_MAX_MEMBERS} files in the zip"))
                            continue
                        for m in members:
                            base = Path(m.filename).name
                            shown = f"{name}/{m.filename}"
                            if m.filename.startswith("__MACOSX/") or base.startswith("."):
                                continue
                            if Path(base).suffix.lower() not in IMAGE_SUFFIXES:
                                out.append((shown, base, None, "not an image file"))
                            elif m.file_size > ZIP_MAX_MEMBER_BYTES:
                                out.append((shown, base, None, "file too large"))
                            else:
                                out.append((shown, base, zf.read(m), ""))
                except (zipfile.BadZipFile, OSError, RuntimeError) as e:
                    out.append((name, name, None, f"unreadable zip ({e})"))
                continue
            try:
                out.append((name, name, path.read_bytes(), ""))
            except OSError as e:
                out.append((name, name, None, str(e)))
        return out

    def upload(self, project: str, paths: list[str | Path], predict: bool = True) -> UploadReport:
        """Add files (images or zips of images); bad files are skipped with a reason.

        With ``predict`` the first new image is predicted at once (the labeller sees it
        next) and the others in the background (:meth:`wait_idle` waits for them)."""
        if not project:
            raise UserError("pick or create a project first")
        p = self.store.get_project(project)
        entries = self._expand(paths)
        if not entries:
            raise UserError("no files were uploaded")
        rep = UploadReport()
        for shown, filename, data, reason in entries:
            if data is not None:
                try:
                    info = self.store.add_image(p.id, data, filename)
                except InvalidImageError as e:
                    reason = str(e)
            if data is None or reason:
                rep.skipped.append(f"{shown}: {reason}")
                rep.files.append((shown, "skipped", reason))
            elif info.duplicate:
                rep.duplicates.append(shown)
                rep.duplicate_ids.append(info.id)
                rep.files.append((shown, "duplicate", f"already in the project as image {info.id}"
                                  + (f" ({info.filename})" if info.filename != filename else "")))
            else:
                rep.added.append(info.id)
                rep.files.append((shown, "added", f"added as image {info.id}, {info.width}x{info.height}"))
        if predict and rep.added:
            self.predict(p.id, rep.added[0])
            for iid in rep.added[1:]:
                self._submit(self._predict_if_missing, p.id, iid)
        return rep

    def export(self, project: str, fmt: str, include_drafts: bool = False, who: Principal | None = None) -> Path:
        """Export with storage.datasets into a zip; returns its path."""
        from storage.datasets import export_dataset
        if not project:
            raise UserError("pick a project first")
        tmp = Path(tempfile.mkdtemp(prefix="segui-export-"))
        out = tmp / "export"
        try:
            rep = export_dataset(self.store, project, out, fmt, include_drafts=include_drafts)
        except ValidationError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise UserError(str(e)) from None
        if rep.images == 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise UserError("no annotated images to export yet (submit some, or include drafts)")
        self.store.record_activity("export", self._who(who).name, project, f"{fmt} export",
                                   {"format": fmt, "images": rep.images, "source": rep.source})
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", project)
        zpath = tmp / f"{safe}-{fmt}.zip"
        with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as zf:
            for f in sorted(out.rglob("*")):
                if f.is_file():
                    zf.write(f, f.relative_to(out))
        shutil.rmtree(out, ignore_errors=True)
        return zpath
