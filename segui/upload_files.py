"""What an uploaded file holds, read within bounds: images, and the labels a zip brings.

Each file or zip member becomes an :class:`Entry` (its bytes, or why it was skipped), read
one at a time with a cap (:func:`read_capped`): a zip's directory is checked before a byte
is unpacked (files, total size, each member's size and compression ratio). A zip in the
layout of one of the studio's exports brings its labels (:func:`zip_entries`):

- folder: ``classes.json``, ``images/<split>/NAME.*``, ``labels/<split>/NAME.png``;
- voc, as CVAT's "Segmentation mask 1.1": ``labelmap.txt``, ``JPEGImages/``, colour masks in
  ``SegmentationClass/``, splits in ``ImageSets/Segmentation/{train,val}.txt``;
- a COCO file (the coco export's ``annotations.json``, Label Studio's ``result.json``,
  CVAT's ``annotations/*.json``): polygons and RLE, each image found by its ``file_name``.

:class:`segui.uploads.UploadsMixin` stores what they hold.
"""
from __future__ import annotations

import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, NamedTuple

from common import limits
from common.images import IMAGE_SUFFIXES
from common.labels import Relabel, name_key
from common.limits import human
from storage import ValidationError
from storage.datasets import CocoLabels, parse_classes_json, parse_coco, parse_labelmap

# Limits on what an upload may hold; owned and documented by common.limits (env vars).
MAX_IMAGE_BYTES = limits.MAX_IMAGE_BYTES
ZIP_MAX_MEMBERS = limits.ZIP_MAX_FILES
ZIP_MAX_TOTAL_BYTES = limits.ZIP_MAX_TOTAL_BYTES
ZIP_MAX_RATIO = limits.ZIP_MAX_RATIO

CLASSES_JSON = "classes.json"      # the label set of a zip in the folder export's layout
LABELMAP = "labelmap.txt"          # ... in the VOC export's (and CVAT's "Segmentation mask") layout
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
    colors_of: dict[int, object] = field(default_factory=dict)   # classes.json's colour of each index

    @classmethod
    def read(cls, file: str, data: bytes) -> "ZipLabelSet":
        """The label set of a ``classes.json`` or ``labelmap.txt`` (``file``) holding ``data``;
        ValidationError when it is not one."""
        if file == LABELMAP:
            return cls({}, 255, rows=parse_labelmap(data), file=file)
        classes, ignore = parse_classes_json(data)
        return cls({c["index"]: c["name"] for c in classes}, ignore,
                   colors_of={c["index"]: c.get("color") for c in classes})

    def named_classes(self) -> list[tuple[str, tuple[int, int, int] | None]]:
        """Its classes in index order, each with its colour when the file gives one (for a new
        project: :func:`label_set_of`)."""
        if self.rows is not None:   # the unlabelled row: "ignore", else "background" (as the VOC export writes)
            keys = {name_key(n) for n, _ in self.rows}
            unlabelled = {"ignore"} if "ignore" in keys else {"background"}
            return [(n, c) for n, c in self.rows if name_key(n) not in unlabelled]
        if self.coco is not None:
            return [(n, None) for _, n in sorted(self.coco.classes.items())]
        out = []
        for i, n in sorted(self.classes.items()):
            c = self.colors_of.get(i)
            ok = isinstance(c, (list, tuple)) and len(c) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in c)
            out.append((n, tuple(c) if ok else None))
        return out

    def for_project(self, names: list[str]) -> tuple[dict[int, str], dict | None]:
        """(source classes, {colour: source index} for colour masks, else None) for a project
        with class ``names``. A labelmap's "ignore" row, or else its "background" row unless the
        project has a class of that name, are unlabelled pixels (what the VOC export and CVAT
        write for them)."""
        if self.coco is not None:
            return self.coco.classes, None
        if self.rows is None:
            return self.classes, None
        have = {name_key(n) for n in names}
        ignore_row = any(name_key(n) == "ignore" for n, _ in self.rows)   # then "background" is a class
        classes, colors = {}, {}
        for i, (name, color) in enumerate(self.rows):
            unlabelled = name_key(name) == "ignore" or (
                name_key(name) == "background" and not ignore_row and "background" not in have)
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
            label_set = ZipLabelSet.read(file, data)
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


def label_set_of(path: str | Path) -> list[tuple[str, tuple[int, int, int] | None]]:
    """The label set an export names, for a new project: [(class name, colour or None)] in
    its order, from a zip in one of the layouts above (or one of their label-set files
    alone: ``classes.json``, ``labelmap.txt``, a COCO json). A labelmap's unlabelled row
    (``ignore``, else ``background``) is not a class. Raises ValidationError saying what
    the file is not; what it reads is bounded as uploads are."""
    path = Path(path)
    size = path.stat().st_size
    if size > limits.MAX_UPLOAD_BYTES:
        raise ValidationError(f"{path.name} is {human(size)}, over the upload limit of "
                              f"{human(limits.MAX_UPLOAD_BYTES)}; not read")
    if path.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(path) as zf:
                members = [m for m in zf.infolist() if not m.is_dir()]
                if len(members) > ZIP_MAX_MEMBERS:
                    raise ValidationError(f"the zip holds {len(members)} files, over the limit of {ZIP_MAX_MEMBERS}")
                label_set = _zip_labels(zf, members)[0]
        except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError) as e:
            raise ValidationError(f"{path.name}: unreadable zip ({e})") from None
        if label_set is None:
            raise ValidationError(f"{path.name} holds no label set: an export has a classes.json, a labelmap.txt "
                                  "or a COCO annotations file")
        if label_set.error:
            raise ValidationError(f"{label_set.file}: {label_set.error}")
    else:                     # a label-set file alone: a COCO json may be as large as an image
        cap = MAX_IMAGE_BYTES if path.suffix.lower() == ".json" else MAX_CLASSES_JSON_BYTES
        if size > cap:
            raise ValidationError(f"{path.name} is {human(size)}, over {human(cap)} for a label-set file; not read")
        data = path.read_bytes()
        if path.suffix.lower() == ".txt":
            label_set = ZipLabelSet.read(LABELMAP, data)
        else:
            try:
                label_set = ZipLabelSet.read(CLASSES_JSON, data)
            except ValidationError:
                try:
                    coco = parse_coco(data)
                except ValidationError:
                    raise ValidationError(f"{path.name} is neither a classes.json nor a COCO file") from None
                label_set = ZipLabelSet(coco.classes, 255, coco=coco)
    return label_set.named_classes()
