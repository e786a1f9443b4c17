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
naming the file. A zip in the layout of the folder export (``images/<split>/NAME.*``,
``labels/<split>/NAME.png``, ``classes.json``) or of the VOC export and CVAT's "Segmentation
mask" (``JPEGImages/``, colour masks in ``SegmentationClass/``, ``labelmap.txt``), or with a
COCO file (the coco export's ``annotations.json``, Label Studio's ``result.json``, CVAT's
``annotations/*.json``: polygons and RLE, each image found by its ``file_name``) brings its
labels: each image comes with its class map as a submitted annotation, classes matched by
name to the project's (:func:`common.labels.relabel_by_name`), so a project's export moves
to another project or another studio, and labels made in CVAT or Label Studio come in.
Exports are made under ``<data dir>/exports/<user>/<random>/`` and swept after
:data:`EXPORT_TTL_SECONDS`.
"""
from __future__ import annotations

import os
import re
import secrets
import shutil
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

from common import limits
from common.images import IMAGE_SUFFIXES
from common.labels import LabelSetError, Relabel, name_key, relabel_by_name
from common.limits import human
from storage import ConflictError, InvalidClassMapError, InvalidImageError, ValidationError
from storage.datasets import CocoLabels, coco_class_map, parse_classes_json, parse_coco, parse_labelmap
from storage.imaging import decode_class_map, decode_color_mask

from .access import Act, Forbidden, Principal
from .errors import UserError

# Limits on what an upload may hold; owned and documented by common.limits (env vars).
MAX_UPLOAD_BYTES = limits.MAX_UPLOAD_BYTES
MAX_IMAGE_BYTES = limits.MAX_IMAGE_BYTES
ZIP_MAX_MEMBERS = limits.ZIP_MAX_FILES
ZIP_MAX_TOTAL_BYTES = limits.ZIP_MAX_TOTAL_BYTES
ZIP_MAX_RATIO = limits.ZIP_MAX_RATIO
EXPORT_TTL_SECONDS = limits.EXPORT_TTL_SECONDS
EXPORTS_DIR = "exports"      # under the store's data dir: exports/<user>/<random>/<project>-<fmt>.zip

CLASSES_JSON = "classes.json"      # the label set of a zip in the folder export's layout
LABELMAP = "labelmap.txt"          # ... in the VOC export's (and CVAT's "Segmentation mask") layout
LABELS_NOT_IMPORTED = "its labels not imported"   # in a file's line of the report (the page marks it)
MAX_CLASSES_JSON_BYTES = 1 << 20


@dataclass
class ZipLabelSet:
    """The label set of a zip that brings labels: its ``classes.json`` ({index: name},
    ignore index; label files hold class indices), or its ``labelmap.txt`` (``rows``:
    [(name, colour)]; label files are colour masks, Pascal VOC / CVAT "Segmentation
    mask"); or why it cannot be read (``error``): its label files are then not imported."""
    classes: dict[int, str]
    ignore_index: int
    error: str = ""
    rows: list[tuple[str, tuple[int, int, int]]] | None = None
    file: str = CLASSES_JSON
    coco: CocoLabels | None = None                   # a COCO file's segmentations (labels by file_name)
    orphans: set[str] = field(default_factory=set)   # label files whose image is not in the zip
    own: tuple[str, ...] = ()                        # where the layout's own files are (not images)
    path: str = ""                                   # the label-set file's path in the zip
    splits: dict[str, str] = field(default_factory=dict)   # image stem -> train / val (VOC's ImageSets)
    # how its maps read in the project uploaded into (a Relabel, or why not) and its colours;
    # made at its first image (an upload goes to one project)
    relabel: tuple[Relabel | str, dict | None] | None = None

    def for_project(self, names: list[str]) -> tuple[dict[int, str], dict | None]:
        """(source classes, {colour: source index} for colour masks, else None) for a project
        with class ``names``. A labelmap's "ignore" row, and its "background" row unless the
        project has a class of that name, are unlabelled pixels (what the VOC export and CVAT
        write for them)."""
        if self.coco is not None:
            return self.coco.classes, None
        if self.rows is None:
            return self.classes, None
        have = {name_key(n) for n in names}
        classes, colors = {}, {}
        for i, (name, color) in enumerate(self.rows):
            unlabelled = name_key(name) == "ignore" or (name_key(name) == "background" and "background" not in have)
            colors[color] = self.ignore_index if unlabelled else i
            if not unlabelled:
                classes[i] = name
        return classes, colors


class Entry(NamedTuple):
    """One uploaded file, read (or why not)."""
    shown: str                       # the name shown to the user
    filename: str                    # the file name stored
    data: bytes | None               # its bytes; None when it was skipped
    reason: str                      # why it was skipped ("" when read)
    label: bytes | str | None = None   # its label file (a zip in a LABEL_LAYOUTS layout), or its COCO file_name
    label_set: ZipLabelSet | None = None   # that zip's label set
    split: str = "none"              # the split such a zip gives it (train or val), else automatic


def read_capped(f: BinaryIO, cap: int) -> bytes | None:
    """At most ``cap`` bytes of ``f`` read in chunks; None when it holds more (what a
    zip's directory or a file's size said is not trusted: the bytes are counted)."""
    chunks, n = [], 0
    while True:
        chunk = f.read(min(1 << 20, cap + 1 - n))
        if not chunk:
            return b"".join(chunks)
        n += len(chunk)
        if n > cap:
            return None
        chunks.append(chunk)


def _read_member(zf: zipfile.ZipFile, m: zipfile.ZipInfo, cap: int) -> tuple[bytes | None, str]:
    """One zip member's bytes after its size and compression ratio were checked, read
    with ``cap`` (what the zip may still unpack): (bytes, "") or (None, why not).
    ``(None, "")`` when it unpacks to more than its directory entry says."""
    if m.file_size > MAX_IMAGE_BYTES:
        return None, (f"{human(m.file_size)} unpacked, over the limit of {human(MAX_IMAGE_BYTES)} "
                      "for one image (SEGUI_MAX_IMAGE_MB); not unpacked")
    ratio = m.file_size / max(m.compress_size, 1)
    if ratio > ZIP_MAX_RATIO:
        return None, (f"compressed {ratio:.0f}:1, over the limit of {ZIP_MAX_RATIO:g}:1 "
                      "(SEGUI_ZIP_MAX_RATIO; a zip bomb?); not unpacked")
    try:
        with zf.open(m) as f:
            return read_capped(f, min(MAX_IMAGE_BYTES, cap)), ""
    except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError, EOFError) as e:
        return None, f"unreadable in the zip ({e})"


# the layouts a zip may bring labels in: (its label-set file, images folder, labels folder)
LABEL_LAYOUTS = ((CLASSES_JSON, "images/", "labels/"),              # the folder export
                 (LABELMAP, "JPEGImages/", "SegmentationClass/"))   # the VOC export, CVAT's masks
# a COCO file: the coco export's, Label Studio's, CVAT's (annotations/instances_default.json)
COCO_FILES = ("annotations.json", "result.json")
# files of those layouts that are neither images nor labels (read as the layout's, never as images)
LAYOUT_FILES = {CLASSES_JSON: (CLASSES_JSON,),
                LABELMAP: (LABELMAP, "ImageSets/", "SegmentationObject/")}


def _zip_labels(zf: zipfile.ZipFile, members: list[zipfile.ZipInfo]
                ) -> tuple[ZipLabelSet | None, str, str, dict[str, zipfile.ZipInfo]]:
    """A zip in a layout of :data:`LABEL_LAYOUTS`: (its label set, the folder holding the
    shallowest label-set file, its images folder, {image member name: its label member});
    a label is ``<top><labels>REL.png`` beside ``<top><images>REL.*``. A zip in neither
    layout: (None, "", "", {})."""
    for file, image_dir, label_dir in LABEL_LAYOUTS:
        found = [m for m in members if Path(m.filename).name == file]
        if found:
            break
    else:
        return _coco_labels(zf, members)
    meta = min(found, key=lambda m: m.filename.count("/"))
    top = meta.filename[:-len(file)]
    if meta.file_size > MAX_CLASSES_JSON_BYTES:
        label_set = ZipLabelSet({}, 255, f"{file} is {human(meta.file_size)}, over "
                                         f"{human(MAX_CLASSES_JSON_BYTES)}; not read", file=file)
    else:
        data, why = _read_member(zf, meta, MAX_CLASSES_JSON_BYTES)
        try:
            if data is None:
                raise ValidationError(why or "it unpacks to more than the zip's directory says")
            if file == LABELMAP:
                label_set = ZipLabelSet({}, 255, rows=parse_labelmap(data), file=file)
            else:
                classes, ignore = parse_classes_json(data)
                label_set = ZipLabelSet({c["index"]: c["name"] for c in classes}, ignore)
        except ValidationError as e:
            label_set = ZipLabelSet({}, 255, str(e), file=file)
    images = {m.filename[len(top) + len(image_dir):].rsplit(".", 1)[0]: m for m in members
              if m.filename.startswith(top + image_dir)}
    pairs = {}
    for m in members:
        rel = m.filename[len(top) + len(label_dir):]
        if not m.filename.startswith(top + label_dir):
            continue
        if rel.lower().endswith(".png") and rel[:-4] in images:
            pairs[images[rel[:-4]].filename] = m
        else:
            label_set.orphans.add(m.filename)
    label_set.own = tuple(top + f for f in (label_dir, *LAYOUT_FILES[file]))
    label_set.path = meta.filename
    if file == LABELMAP:      # the VOC export's splits: ImageSets/Segmentation/{train,val}.txt
        for split in ("train", "val"):
            m = next((m for m in members if m.filename == f"{top}ImageSets/Segmentation/{split}.txt"), None)
            data = _read_member(zf, m, MAX_CLASSES_JSON_BYTES)[0] if m is not None else None
            for stem in (data or b"").decode("utf-8", "replace").split():
                label_set.splits.setdefault(stem, split)
    return label_set, top, top + image_dir, pairs


def _coco_labels(zf: zipfile.ZipFile, members: list[zipfile.ZipInfo]
                 ) -> tuple[ZipLabelSet | None, str, str, dict[str, str]]:
    """A zip with a COCO file (:data:`COCO_FILES`, or a json under ``annotations/``): as
    :func:`_zip_labels`, each image paired with its ``file_name`` in that file (the image
    whose path ends with it)."""
    found = [m for m in members if m.filename.lower().endswith(".json")
             and (Path(m.filename).name in COCO_FILES or "/annotations/" in "/" + m.filename)]
    if not found:
        return None, "", "", {}
    meta = min(found, key=lambda m: (m.filename.count("/"), m.filename))
    file = meta.filename
    data, why = _read_member(zf, meta, MAX_IMAGE_BYTES)
    try:
        if data is None:
            raise ValidationError(why or "it unpacks to more than the zip's directory says")
        coco = parse_coco(data)
    except ValidationError as e:
        return ZipLabelSet({}, 255, str(e), file=file, own=(file,), path=file), "", "", {}
    ends = {}                       # every path ending at a "/" of each member -> the member
    for m in members:
        parts = m.filename.split("/")
        for i in range(len(parts)):
            ends.setdefault("/".join(parts[i:]), m.filename)
    pairs = {ends[f]: f for f in coco.by_file if f in ends}
    return ZipLabelSet(coco.classes, 255, file=file, coco=coco, own=(file,), path=file), "", "", pairs


def zip_entries(path: Path, name: str) -> Iterator[Entry]:
    """The files of an uploaded zip, one at a time. The zip's directory is checked
    before a byte is unpacked (number of files, total uncompressed size, each member's
    size and compression ratio); each member is then read with a cap on its size, so at
    most one image of :data:`MAX_IMAGE_BYTES` (and its label file) is in memory at a time.
    A zip that brings labels (:func:`_zip_labels`) yields each image with its label; a
    label file without its image, or a label-set file that cannot be read, is a skipped
    line."""
    with zipfile.ZipFile(path) as zf:
        members = [m for m in zf.infolist() if not m.is_dir()]
        if len(members) > ZIP_MAX_MEMBERS:
            yield Entry(name, name, None, f"the zip holds {len(members)} files, over the limit of "
                        f"{ZIP_MAX_MEMBERS} (SEGUI_ZIP_MAX_FILES); nothing unpacked")
            return
        total = sum(m.file_size for m in members)
        if total > ZIP_MAX_TOTAL_BYTES:
            yield Entry(name, name, None, f"the zip would unpack to {human(total)}, over the limit of "
                        f"{human(ZIP_MAX_TOTAL_BYTES)} (SEGUI_ZIP_MAX_TOTAL_MB); nothing unpacked")
            return
        label_set, _, image_dir, pairs = _zip_labels(zf, members)
        left = ZIP_MAX_TOTAL_BYTES
        for m in members:
            base = Path(m.filename).name
            shown = f"{name}/{m.filename}"
            if m.filename.startswith("__MACOSX/") or base.startswith("."):
                continue
            if label_set is not None and m.filename.startswith(label_set.own):
                # the layout's own files (label-set file, labels, VOC's ImageSets, CVAT's
                # SegmentationObject): not images; a label without its image is said
                if m.filename in label_set.orphans:
                    yield Entry(shown, base, None, "a label file that matches no image in the zip (a label "
                                "is a PNG with its image's path and name); not imported")
                elif m.filename == label_set.path and label_set.error:
                    yield Entry(shown, base, None, f"no labels read from it: {label_set.error}")
                continue
            if Path(base).suffix.lower() not in IMAGE_SUFFIXES:
                yield Entry(shown, base, None, "not an image file")
                continue
            data, why = _read_member(zf, m, left)
            if data is None:
                if not why:     # the directory understated the size
                    yield Entry(shown, base, None, "unpacks to more than the zip's directory says; not unpacked")
                    return
                yield Entry(shown, base, None, why)
                continue
            left -= len(data)
            label, split = None, "none"
            if m.filename in pairs and label_set.coco is not None:    # its labels are in the COCO file
                entry = label_set.coco.by_file[pairs[m.filename]][0]
                label = pairs[m.filename]
                split = entry.get("split") if entry.get("split") in ("train", "val") else "none"
            elif m.filename in pairs:
                label, why = _read_member(zf, pairs[m.filename], left)
                if label is None:
                    yield Entry(shown, base, None, f"its label file {pairs[m.filename].filename}: "
                                + (why or "unpacks to more than the zip's directory says") + "; not unpacked")
                    if not why:
                        return
                    continue
                left -= len(label)
                folder = m.filename[len(image_dir):].split("/")
                split = (folder[0] if len(folder) > 1 and folder[0] in ("train", "val")
                         else label_set.splits.get(m.filename[len(image_dir):].rsplit(".", 1)[0], "none"))
            yield Entry(shown, base, data, "", label, label_set if label is not None else None, split)


def file_entries(path: Path, name: str) -> Iterator[Entry]:
    """One uploaded file (not a zip): its bytes, after its size was checked."""
    try:
        size = path.stat().st_size
        if size > MAX_IMAGE_BYTES:
            yield Entry(name, name, None, f"{human(size)}, over the limit of {human(MAX_IMAGE_BYTES)} "
                        "for one image (SEGUI_MAX_IMAGE_MB); not read")
            return
        with open(path, "rb") as f:
            data = read_capped(f, MAX_IMAGE_BYTES)
    except OSError as e:
        yield Entry(name, name, None, str(e))
        return
    if data is None:
        yield Entry(name, name, None, f"over the limit of {human(MAX_IMAGE_BYTES)} for one image; not read")
    else:
        yield Entry(name, name, data, "")


@dataclass
class UploadReport:
    added: list[int] = field(default_factory=list)        # image ids, new
    duplicates: list[str] = field(default_factory=list)   # file names already in the project
    skipped: list[str] = field(default_factory=list)      # "name: reason"
    duplicate_ids: list[int] = field(default_factory=list)
    restored: list[int] = field(default_factory=list)     # ids of removed images put back (also in ``added``)
    labelled: list[int] = field(default_factory=list)     # ids whose labels came with them (a zip's labels/)
    labels_refused: list[int] = field(default_factory=list)   # ids whose labels could not be imported
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
        return ", ".join(parts)

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
        return "Upload: " + ", ".join(parts) + " (each file's result: Upload · Revisions)."


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
        if rep.labelled:    # as after a submit: a split, the instant layer, the second reviewer's score
            for iid in rep.labelled:
                self.assign_split(iid)
            self.instant_relearn(p.id)
            self._submit(self.score_unscored, len(rep.labelled), [p.id])
        if predict and rep.added:
            self.predict(p.id, rep.added[0])
            for iid in rep.added[1:]:
                self._submit(self._predict_if_missing, p.id, iid)
        return rep

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
