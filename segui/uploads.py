"""Files in and out: uploads (images and zips of images, one line per file), images
taken out of a project and put back, and exports.

:class:`UploadsMixin` is the part of :class:`segui.handlers.Studio` that adds uploaded
files to a project (the first new image predicted at once, the others in the
background), removes and restores images, and exports a project's annotations as a zip.

What an upload may hold is bounded (:mod:`common.limits`, set by ``SEGUI_*`` variables):
a file's size is checked before it is read, a zip's directory (files, total unpacked
size, each member's size and compression ratio) before anything is unpacked, and each
member is read with a cap, one at a time; an image's width and height are checked from
its header before decoding (:func:`common.images.decode_image`). Each refusal is one line
naming the file (:mod:`segui.upload_files` reads them). A zip in the layout of one of the
studio's exports (or CVAT's and Label Studio's) brings its labels: each image comes with its
class map as a submitted annotation, classes matched by name to the project's
(:func:`common.labels.relabel_by_name`), so a project's export moves to another project or
another studio, and labels made elsewhere come in. Exports are made under
``<data dir>/exports/<user>/<random>/`` and swept after :data:`EXPORT_TTL_SECONDS`.
"""
from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from common import limits
from common.labels import LabelSetError, relabel_by_name
from common.limits import human
from storage import ConflictError, InvalidClassMapError, InvalidImageError, ValidationError
from storage.datasets import coco_class_map
from storage.imaging import decode_class_map, decode_color_mask

from .access import Act, Forbidden, Principal
from .errors import UserError
# what an uploaded file holds, read within bounds (read_capped: re-exported, the tests use it here)
from .upload_files import Entry, ZipLabelSet, file_entries, read_capped, zip_entries  # noqa: F401

# Limits on what an upload may hold; owned and documented by common.limits (env vars).
MAX_UPLOAD_BYTES = limits.MAX_UPLOAD_BYTES
EXPORT_TTL_SECONDS = limits.EXPORT_TTL_SECONDS
EXPORTS_DIR = "exports"      # under the store's data dir: exports/<user>/<random>/<project>-<fmt>.zip
log = logging.getLogger(__name__)
LABELS_NOT_IMPORTED = "its labels not imported"   # in a file's line of the report (the page marks it)
SWAP_CHECK_IMAGES = 16   # imported labels checked against the model for two swapped names (~1-2 s)


@dataclass
class UploadReport:
    added: list[int] = field(default_factory=list)        # image ids, new
    duplicates: list[str] = field(default_factory=list)   # file names already in the project
    skipped: list[str] = field(default_factory=list)      # "name: reason"
    duplicate_ids: list[int] = field(default_factory=list)
    restored: list[int] = field(default_factory=list)     # ids of removed images put back (also in ``added``)
    labelled: list[int] = field(default_factory=list)     # ids whose labels came with them (a zip's labels/)
    labels_refused: list[int] = field(default_factory=list)   # ids whose labels could not be imported
    swapped: list[tuple[str, str]] = field(default_factory=list)   # class names the labels seem to exchange
    # one line per file, in upload order: (file name, "added" | "duplicate" | "skipped", message)
    files: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def to_open(self) -> int | None:
        """The image to show after the upload: the first new one, else the first already there."""
        return (self.added or self.duplicate_ids or [None])[0]

    def added_words(self) -> str:
        new = len(self.added) - len(self.restored)
        return (f"{new} image(s) added" + (f", {len(self.restored)} put back" if self.restored else "")
                + (f", {len(self.labelled)} with their labels" if self.labelled else ""))

    def message(self) -> str:
        parts = [self.added_words()]
        if self.duplicates:
            parts.append(f"{len(self.duplicates)} already in the project ({', '.join(self.duplicates[:5])})")
        if self.labels_refused:
            parts.append(f"the labels of {len(self.labels_refused)} not imported")
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped: " + "; ".join(self.skipped[:10]))
        return ", ".join(parts) + self.swap_warning()

    def summary(self) -> str:
        """One short line for the Label screen's status (each file's result is in the
        list of the Upload · Revisions drawer): counts only, no file names."""
        parts = [self.added_words()]
        if self.duplicates:
            parts.append(f"{len(self.duplicates)} already in the project")
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped")
        if self.labels_refused:
            parts.append(f"the labels of {len(self.labels_refused)} not imported")
        return "Upload: " + ", ".join(parts) + " (each file's result: Upload · Revisions)." + self.swap_warning()

    def swap_warning(self) -> str:
        """A warning when the imported labels seem to exchange two classes' names."""
        if not self.swapped:
            return ""
        pairs = "; ".join(f"what they call {a!r} the model sees as {b!r}, and the other way round"
                          for a, b in self.swapped)
        return (f" Check the imported labels' class names: {pairs}, in most images (two names swapped "
                "in the export's label set?). They are submitted: correct them, or remove the images and "
                "upload a corrected zip.")


class UploadsMixin:
    """Studio's uploads and exports."""

    def _expand(self, paths: list[str | Path]) -> Iterator[Entry]:
        """Uploaded paths -> one entry per file, in upload order (zips opened), made
        one at a time so only one file's bytes are held: (name shown to the user, file
        name to store, bytes or None, why it was skipped)."""
        for path in paths or []:
            path = Path(path)
            name = path.name
            try:
                size = path.stat().st_size
            except OSError as e:
                yield Entry(name, name, None, str(e))
                continue
            if size > MAX_UPLOAD_BYTES:
                yield Entry(name, name, None, f"{human(size)}, over the upload limit of {human(MAX_UPLOAD_BYTES)} "
                            "(SEGUI_MAX_UPLOAD_MB); not read")
                continue
            if path.suffix.lower() == ".zip":
                try:
                    yield from zip_entries(path, name)
                except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError) as e:
                    yield Entry(name, name, None, f"unreadable zip ({e})")
                continue
            yield from file_entries(path, name)

    def upload(self, project: str, paths: list[str | Path], predict: bool = True,
               who: Principal | None = None) -> UploadReport:
        """Add files (images or zips of images); bad files are skipped with a reason.

        With ``predict`` the first new image is predicted at once (the labeller sees it
        next) and the others in the background (:meth:`wait_idle` waits for them).
        ``who``: whom the activity log names (default: the caller)."""
        if not project:
            raise UserError("pick or create a project first")
        p = self.store.get_project(project)
        if not paths:
            raise UserError("no files were uploaded")
        rep = UploadReport()
        for shown, filename, data, reason, label, label_set, split in self._expand(paths):
            if data is not None:
                try:
                    info = self.store.add_image(p.id, data, filename, split=split)
                except InvalidImageError as e:
                    reason = str(e)
            if data is None or reason:
                rep.skipped.append(f"{shown}: {reason}")
                rep.files.append((shown, "skipped", reason))
                continue
            if info.duplicate and info.removed:
                # uploaded again after it was removed: the person wants it back, as it was
                self.restore_image(p.id, info.id, who)
                rep.added.append(info.id)
                rep.restored.append(info.id)
                what, text = "added", (f"image {info.id} was removed from the project: restored, "
                                       "with its saved revisions")
            elif info.duplicate:
                rep.duplicates.append(shown)
                rep.duplicate_ids.append(info.id)
                what, text = "duplicate", (f"already in the project as image {info.id}"
                                           + (f" ({info.filename})" if info.filename != filename else ""))
            else:
                rep.added.append(info.id)
                what, text = "added", f"added as image {info.id}, {info.width}x{info.height}"
            if label is not None:
                text += "; " + self._import_label(p, info, label, label_set, rep, who)
            rep.files.append((shown, what, text))
        if not rep.files:
            raise UserError("no files were uploaded (the zip holds no image files)")
        if rep.added:       # who added which images (a team's log; refused and duplicate files add nothing)
            shown = [f for f, what, _ in rep.files if what == "added"]
            self.record("import", p.id, f"upload: {rep.added_words()}"
                        + (f", {len(rep.duplicates)} already there" if rep.duplicates else "")
                        + (f", {len(rep.skipped)} refused" if rep.skipped else ""),
                        {"added": len(rep.added) - len(rep.restored), "restored": len(rep.restored),
                         "duplicates": len(rep.duplicates), "refused": len(rep.skipped),
                         "files": shown[:20], "image_ids": rep.added[:20]}
                        | ({"labelled": len(rep.labelled)} if rep.labelled else {}), who=who)
        if rep.labelled:    # as after a submit: a split, the instant layer, the second reviewer's
            for iid in rep.labelled:        # score, and an automatic job when the project asks for one
                self.assign_split(iid)
            try:        # a check: the labels are stored, whatever it meets
                rep.swapped = self._swapped_names(p, rep.labelled[:SWAP_CHECK_IMAGES])
            except Exception:   # noqa: BLE001 - e.g. the model's folder missing: said in the log
                log.exception("upload into project %s: the swapped-names check did not run", p.name)
            self.instant_relearn(p.id)
            self._submit(self.score_unscored, len(rep.labelled), [p.id])
            self._submit(self._auto_finetune_after_submit, rep.labelled[-1], self._who(who).actor)
        if predict and rep.added:
            self.predict(p.id, rep.added[0])
            for iid in rep.added[1:]:
                self._submit(self._predict_if_missing, p.id, iid)
        return rep

    def _swapped_names(self, p, image_ids: list[int]) -> list[tuple[str, str]]:
        """Class names the imported labels of ``image_ids`` seem to exchange, against the
        active model's predictions (``models.review.swapped_classes``)."""
        from models.review import label_confusion, swapped_classes
        k = len(p.classes)
        conf = np.zeros((k, k), np.int64)
        mostly = np.zeros((k, k), np.int64)
        weights = self.model_version(p.id).weights_dir
        for iid in image_ids:
            pred, _ = self._predict_map(weights, self.store.load_image(iid), p)
            c, m = label_confusion(self.store.get_annotation(iid).class_map, pred, k, p.ignore_index)
            conf += c
            mostly += m
        names = p.class_names
        return [(names[a], names[b]) for a, b in swapped_classes(conf, mostly)]

    def _import_label(self, p, info, label: bytes | str, label_set: ZipLabelSet,
                      rep: UploadReport, who: Principal | None) -> str:
        """An uploaded image's labels (a zip that brings them) as its submitted annotation,
        in the project's class indices; an image that already has saved labels keeps them.
        -> what happened, for its line of the report."""
        if info.revision > 0:
            return "its saved labels are kept (the zip's labels not imported)"
        refused = self._label_refusal(p, info, label, label_set, who)
        if refused:
            rep.labels_refused.append(info.id)
            return f"{LABELS_NOT_IMPORTED}: {refused}"
        rep.labelled.append(info.id)
        return "with its labels, submitted"

    def _label_refusal(self, p, info, label: bytes | str, label_set: ZipLabelSet,
                       who: Principal | None) -> str:
        """Store the image's labels as its submitted annotation; -> why not ("" when stored)."""
        if label_set.error:
            return label_set.error
        if label_set.relabel is None:
            classes, colors = label_set.for_project([c.name for c in p.classes])
            try:
                label_set.relabel = relabel_by_name(classes, label_set.ignore_index,
                                                    {c.index: c.name for c in p.classes}, p.ignore_index,
                                                    f"project {p.name!r}"), colors
            except LabelSetError as e:
                label_set.relabel = f"{label_set.file}: {e}", None
        relabel, colors = label_set.relabel
        if isinstance(relabel, str):
            return relabel
        shape = (info.height, info.width)
        try:
            if label_set.coco is not None:
                class_map = coco_class_map(label_set.coco, label, shape)
            elif colors is not None:
                class_map = decode_color_mask(label, colors, shape)
            else:
                class_map = decode_class_map(label, shape=shape)
            class_map = relabel(class_map)
            self.store.save_annotation(info.id, class_map, author=self._who(who).actor or "import",
                                       status="submitted", base_revision=0)
        except (InvalidClassMapError, LabelSetError, ValidationError, ConflictError) as e:
            return str(e)
        return ""

    def remove_image(self, project: str | int, image_id: Any, who: Principal | None = None) -> str:
        """Take an image out of the project (a wrong upload, a blurred frame): it leaves the
        queue, the strip, the counts, Explore, exports, reviews and jobs. Its file, saved
        revisions and reviews are kept, and :meth:`restore_image` puts it back. -> a note."""
        if not project:
            raise UserError("pick a project first")
        info = self.image_of(project, image_id)
        if info.removed:
            return f"{info.filename} was already removed."
        self.store.remove_image(info.id, by=self._who(who).actor)
        with self._cache_lock:              # no prepared view of it is shown again
            self._ready.pop(info.id, None)
        self.instant_forget(info.id)        # a submitted image stops teaching the instant layer
        return f"{info.filename} removed from the project: Upload · Revisions puts it back."

    def restore_image(self, project: str | int, image_id: Any, who: Principal | None = None) -> str:
        """Put a removed image back into the project, with everything it had. -> a note."""
        if not project:
            raise UserError("pick a project first")
        info = self.image_of(project, image_id)
        if not info.removed:
            return f"{info.filename} is in the project."
        self.store.restore_image(info.id, by=self._who(who).actor)
        self.instant_recall(info.id)        # a submitted one teaches it again
        return f"{info.filename} is back in the project, with its saved revisions."

    def removed_images(self, project: str | int) -> list[tuple[str, int]]:
        """(label, id) of the project's removed images, the latest removal first."""
        if not project:
            return []
        return [(f"{i.filename} (#{i.id}, {i.status})", i.id) for i in self.store.removed_images(project)]

    def export(self, project: str, fmt: str, include_drafts: bool = False, who: Principal | None = None) -> Path:
        """Export with storage.datasets into a zip; returns its path.

        The zip is made in a folder of its own, ``<data dir>/exports/<user>/<random>/``
        (owner-only permissions), not in the system's shared temp folder; exports older
        than :data:`EXPORT_TTL_SECONDS` are deleted whenever one is made (and by
        :meth:`sweep_exports`)."""
        from storage.datasets import export_dataset
        if not project:
            raise UserError("pick a project first")
        who = self._who(who)
        self.sweep_exports()
        # the folder is the login's (an owner, as protect_download's); the record names the actor
        tmp = self.exports_root() / _safe(who.name or "anonymous") / secrets.token_urlsafe(16)
        tmp.mkdir(mode=0o700, parents=True)
        out = tmp / "export"
        try:
            rep = export_dataset(self.store, project, out, fmt, include_drafts=include_drafts)
        except ValidationError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise UserError(str(e)) from None
        if rep.images == 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise UserError("no annotated images to export yet (submit some, or include drafts)")
        self.store.record_activity("export", who.actor, project, f"{fmt} export",
                                   {"format": fmt, "images": rep.images, "source": rep.source})
        zpath = tmp / f"{_safe(project)}-{fmt}.zip"
        with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as zf:
            for f in sorted(out.rglob("*")):
                if f.is_file():
                    zf.write(f, f.relative_to(out))
        shutil.rmtree(out, ignore_errors=True)
        os.chmod(zpath, 0o600)
        return zpath

    def protect_download(self, path: str | Path, project: str | int, who: Principal | None = None) -> None:
        """Gradio serves the copy of an export at ``/gradio_api/file=<path>`` to any
        logged-in user who has the URL: remember whose it is, so that the server's guard
        (``segui.security.ServerGuard``) gives it only to them or to whoever may export
        that project (issue 17, finding 7). Entries older than the export TTL go."""
        owner = self._who(who).name
        project_id = self.store.get_project(project).id
        now = time.time()
        with self._cache_lock:
            downloads = self.__dict__.setdefault("_downloads", {})
            for k in [k for k, (_, _, t) in downloads.items() if now - t > EXPORT_TTL_SECONDS]:
                del downloads[k]
            downloads[os.path.realpath(path)] = (project_id, owner, now)

    def download_refusal(self, path: str, username: str | None) -> str | None:
        """Why ``username`` may not fetch the protected download at ``path`` (None: they
        may, or it is not a protected download)."""
        with self._cache_lock:
            hit = self.__dict__.get("_downloads", {}).get(os.path.realpath(path))
        if hit is None:
            return None
        project_id, owner, _ = hit
        if username is not None and owner is not None and username.casefold() == owner.casefold():
            return None
        try:
            self.authorize(username, Act.ADMIN, project_id)
        except Forbidden as e:
            return f"Not allowed: this export belongs to {owner or 'someone else'}. {e}"
        return None

    def exports_root(self) -> Path:
        root = Path(self.store.data_dir) / EXPORTS_DIR
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        return root

    def sweep_exports(self, max_age: float | None = None) -> int:
        """Delete export folders older than ``max_age`` seconds (default
        :data:`EXPORT_TTL_SECONDS`); returns how many were deleted."""
        max_age = EXPORT_TTL_SECONDS if max_age is None else max_age
        cutoff = time.time() - max_age
        gone = 0
        for user in self.exports_root().iterdir():
            if not user.is_dir():
                continue
            for d in user.iterdir():
                try:
                    if d.stat().st_mtime < cutoff:
                        shutil.rmtree(d, ignore_errors=True)
                        gone += 1
                except OSError:
                    pass
        return gone


def discard_uploads(paths: list[str | Path], folder: str | Path) -> int:
    """Delete uploaded files once they are stored (the image store keeps its own copy):
    only files inside ``folder`` (the web server's upload folder), each with its folder
    when that is left empty. Returns how many files were deleted."""
    root = Path(folder).resolve()
    gone = 0
    for p in paths or []:
        path = Path(p).resolve()
        if root not in path.parents:
            continue
        try:
            path.unlink()
            gone += 1
            if path.parent != root:
                path.parent.rmdir()      # Gradio keeps each upload in a folder of its own
        except OSError:
            pass
    return gone


def _safe(text: str) -> str:
    """A name usable as one file or folder name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip(".") or "_"
