"""Dataset import (CamVid-style folder) and export (folder, Pascal VOC / CVAT
segmentation mask, COCO with RLE masks)."""
from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

from common.images import IMAGE_SUFFIXES
from common.labels import LabelSetError, Relabel, relabel_by_name

from . import imaging
from .errors import InvalidClassMapError, InvalidImageError, NotFoundError, ValidationError
from .info import ProjectInfo
from .models import SPLITS
from .store import Store

FORMATS = ("folder", "voc", "coco")


@dataclass
class ImportReport:
    added: int = 0
    annotated: int = 0
    duplicates: int = 0
    unlabelled: int = 0
    kept_existing: list[str] = field(default_factory=list)   # duplicate image, different stored labels
    rejected: list[str] = field(default_factory=list)        # "name: reason"


@dataclass
class ExportReport:
    images: int = 0
    skipped_unannotated: int = 0     # images without an annotation from the source
    files: list[str] = field(default_factory=list)
    source: str = "submitted"        # "accepted" / "submitted" / "drafts" (include_drafts)


def read_classes_json(path: Path) -> tuple[list[dict], int]:
    return parse_classes_json(Path(path).read_bytes())


def parse_classes_json(data: bytes | str) -> tuple[list[dict], int]:
    """A ``classes.json`` (as the folder export writes it: ``{"ignore_index": 255,
    "classes": [{"index": 0, "name": "sky", "color": [r, g, b]}, ...]}``) -> (classes,
    ignore index), or :class:`ValidationError` saying what is wrong with it."""
    try:
        meta = json.loads(data)
        classes = [{"index": int(c["index"]), "name": c["name"], "color": c.get("color")}
                   for c in meta["classes"]]
        ignore_index = int(meta.get("ignore_index", 255))
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise ValidationError(f"classes.json is not a label set ({type(e).__name__}: {e}); it holds "
                              '{"ignore_index": 255, "classes": [{"index": 0, "name": "sky"}, ...]}') from None
    if not all(isinstance(c["name"], str) for c in classes):
        raise ValidationError("classes.json: every class needs a name (text)")
    return classes, ignore_index


def _ensure_project(store: Store, name: str, classes: list[dict], ignore_index: int) -> tuple[ProjectInfo, Relabel]:
    """The project (made from ``classes`` when there is none) and how the dataset's label
    files read in its class indices: classes matched by name, so a project whose label set
    has the same words in another order (or more words) takes the dataset as it is."""
    try:
        p = store.get_project(name)
    except NotFoundError:
        p = store.create_project(name, classes, ignore_index=ignore_index)
    try:
        relabel = relabel_by_name({c["index"]: c["name"] for c in classes}, ignore_index,
                                  {c.index: c.name for c in p.classes}, p.ignore_index, f"project {name!r}")
    except LabelSetError as e:
        raise ValidationError(f"classes.json: {e}") from None
    if len(relabel.missing) == len(classes):
        raise ValidationError(f"project {name!r} has none of the classes classes.json names "
                              f"({', '.join(c['name'] for c in classes[:5])}...): another project?")
    return p, relabel


def import_dataset(store: Store, project: str, data_dir: str | Path, split: str,
                   author: str = "import", limit: int | None = None) -> ImportReport:
    """Import ``images/<split>/NAME.*`` + ``labels/<split>/NAME.png`` + ``classes.json``
    as images with submitted annotations. Re-importing is idempotent; a duplicate
    image whose stored labels differ keeps the stored labels (reported). Into an existing
    project, classes are matched by name (any order, case or spacing); a label file that
    uses a class the project lacks is rejected (reported), its image still imported."""
    root = Path(data_dir)
    classes, ignore_index = read_classes_json(root / "classes.json")
    _, relabel = _ensure_project(store, project, classes, ignore_index)
    img_dir, lbl_dir = root / "images" / split, root / "labels" / split
    if not img_dir.is_dir():
        raise NotFoundError(f"no image folder {img_dir}")
    store_split = split if split in SPLITS else "none"
    rep = ImportReport()
    files = sorted(p for p in img_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    for path in files[:limit]:
        try:
            info = store.add_image(project, path, filename=path.name, split=store_split)
        except InvalidImageError as e:
            rep.rejected.append(f"{path.name}: {e}")
            continue
        rep.duplicates += info.duplicate
        rep.added += not info.duplicate
        lbl = lbl_dir / (path.stem + ".png")
        if not lbl.is_file():
            rep.unlabelled += 1
            continue
        try:
            cm = relabel(imaging.decode_class_map(lbl.read_bytes(), shape=(info.height, info.width)))
        except (InvalidClassMapError, LabelSetError, OSError) as e:
            rep.rejected.append(f"{lbl.name}: {e}")
            continue
        if info.revision > 0:
            current = store.get_annotation(info.id).class_map
            if current is None or not np.array_equal(current, cm):
                rep.kept_existing.append(path.name)
            continue
        try:
            store.save_annotation(info.id, cm, author=author, status="submitted",
                                  base_revision=info.revision)
        except InvalidClassMapError as e:
            rep.rejected.append(f"{lbl.name}: {e}")
            continue
        rep.annotated += 1
    return rep


# ------------------------------------------------------------------------ export

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_stem(filename: str, fallback: str) -> str:
    """A file-name stem that cannot escape the export folder: last path component
    only (both / and \\), characters outside [A-Za-z0-9._-] replaced, no leading dots."""
    name = filename.replace("\\", "/").split("/")[-1]
    if "." in name.lstrip("."):
        name = name[:name.rfind(".")]
    stem = _UNSAFE.sub("_", name).strip("._-")[:120]
    return stem or fallback


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(path)


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _items(store: Store, project: str, split: str | None, include_drafts: bool,
           source: str | None = None):
    """Yield (ImageInfo, revision) for every exported image, with a unique safe stem."""
    images = {i.id: i for i in store.list_images(project, split=split)}
    if include_drafts:
        chosen = [(i.id, i.revision) for i in images.values() if i.revision > 0]
    else:
        chosen = store.submitted_annotations(project, split=split, source=source)
    used: set[str] = set()
    for image_id, rev in chosen:
        info = images[image_id]
        stem = safe_stem(info.filename, f"image_{image_id}")
        if stem.lower() in used:
            stem = f"{stem}_{image_id}"
        used.add(stem.lower())
        yield info, rev, stem


def _image_payload(store: Store, info) -> tuple[bytes, str]:
    """Original bytes when they decode to exactly what the labels refer to, else a PNG
    of the normalised (EXIF-rotated, RGB) pixels."""
    if info.normalised:
        return _png(store.load_image(info.id)), ".png"
    return store.image_bytes(info.id), imaging.extension(info.format)


def export_dataset(store: Store, project: str, out_dir: str | Path, format: str,
                   split: str | None = None, include_drafts: bool = False,
                   source: str | None = None) -> ExportReport:
    """Write each image's annotation from the project's training source
    (``Store.effective_training_source``; ``source`` overrides it: "accepted" = latest
    accepted revision, "submitted" = latest submitted revision), or its latest revision
    of any status with ``include_drafts``. Recording the export in the activity log is
    the caller's (it knows who)."""
    if format not in FORMATS:
        raise ValidationError(f"format must be one of {FORMATS}, got {format!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    p = store.get_project(project)
    rep = ExportReport()
    rep.source = ("drafts" if include_drafts else
                  source if source is not None else store.effective_training_source(project))
    items = list(_items(store, project, split, include_drafts, source))
    total = len(store.list_images(project, split=split))
    rep.skipped_unannotated = total - len(items)
    {"folder": _export_folder, "voc": _export_voc, "coco": _export_coco}[format](store, p, out, items, rep)
    rep.images = len(items)
    return rep


def _write(rep: ExportReport, out: Path, rel: str, data: bytes) -> None:
    path = (out / rel)
    if out.resolve() not in path.resolve().parents:
        raise ValidationError(f"refusing to write outside the export folder: {rel!r}")
    _atomic_write(path, data)
    rep.files.append(rel)


def _classes_json(p: ProjectInfo) -> bytes:
    return (json.dumps({"ignore_index": p.ignore_index,
                        "classes": [{"index": c.index, "name": c.name, "color": list(c.color)}
                                    for c in p.classes]}, indent=2) + "\n").encode()


def _export_folder(store, p, out, items, rep) -> None:
    for info, rev, stem in items:
        data, ext = _image_payload(store, info)
        _write(rep, out, f"images/{info.split}/{stem}{ext}", data)
        cm = store.get_annotation(info.id, revision=rev).class_map
        _write(rep, out, f"labels/{info.split}/{stem}.png", imaging.encode_class_map(cm))
    _write(rep, out, "classes.json", _classes_json(p))


def voc_colors(p: ProjectInfo) -> tuple[np.ndarray, tuple[int, int, int], str]:
    """Colour LUT, colour of ignore pixels and the labelmap.txt text (CVAT style)."""
    colors = [c.color for c in p.classes]
    if len(set(colors)) != len(colors):
        raise ValidationError("two classes share a colour; a colour-mask export would be lossy")
    ignore_color = next(c for c in [(0, 0, 0), (224, 224, 192), (255, 255, 255)] + [
        (r, g, 0) for r in range(256) for g in range(256)] if c not in colors)
    names = {c.name.casefold() for c in p.classes}
    ignore_name = "background" if "background" not in names else "ignore"
    lines = ["# label:color_rgb:parts:actions", f"{ignore_name}:{','.join(map(str, ignore_color))}::"]
    for c in p.classes:
        lines.append(f"{c.name.replace(':', '_')}:{','.join(map(str, c.color))}::")
    return p.color_lut(ignore_color), ignore_color, "\n".join(lines) + "\n"


def parse_labelmap(data: bytes | str) -> list[tuple[str, tuple[int, int, int]]]:
    """A ``labelmap.txt`` (Pascal VOC / CVAT "Segmentation mask": ``name:r,g,b:parts:actions``
    lines, ``#`` comments; as :func:`voc_colors` writes it) -> [(name, colour)] in its
    order, or :class:`ValidationError` naming the line that is not one."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, rest = line.partition(":")
        try:
            color = tuple(int(v) for v in rest.split(":")[0].split(","))
            if len(color) != 3 or not all(0 <= v <= 255 for v in color) or not name.strip():
                raise ValueError
        except ValueError:
            raise ValidationError(f"labelmap.txt line {n} is not 'name:r,g,b::': {line[:80]!r}") from None
        if any(c == color for _, c in rows):
            raise ValidationError(f"labelmap.txt line {n}: colour {color} is given twice; a mask would be ambiguous")
        rows.append((name.strip(), color))
    if not rows:
        raise ValidationError("labelmap.txt names no class")
    return rows


def _export_voc(store, p, out, items, rep) -> None:
    lut, _, labelmap = voc_colors(p)
    sets: dict[str, list[str]] = {}
    for info, rev, stem in items:
        data, ext = _image_payload(store, info)
        _write(rep, out, f"JPEGImages/{stem}{ext}", data)
        cm = store.get_annotation(info.id, revision=rev).class_map
        _write(rep, out, f"SegmentationClass/{stem}.png", _png(lut[cm]))
        sets.setdefault(info.split, []).append(stem)
        sets.setdefault("default", []).append(stem)
    for name, stems in sets.items():
        _write(rep, out, f"ImageSets/Segmentation/{name}.txt", ("\n".join(stems) + "\n").encode())
    _write(rep, out, "labelmap.txt", labelmap.encode())


def _export_coco(store, p, out, items, rep) -> None:
    from pycocotools import mask as mask_utils
    images, anns = [], []
    for info, rev, stem in items:
        data, ext = _image_payload(store, info)
        _write(rep, out, f"images/{stem}{ext}", data)
        images.append({"id": info.id, "file_name": f"{stem}{ext}", "width": info.width,
                       "height": info.height, "split": info.split})
        cm = store.get_annotation(info.id, revision=rev).class_map
        for c in p.classes:
            m = cm == c.index
            if not m.any():
                continue
            rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
            anns.append({"id": len(anns) + 1, "image_id": info.id, "category_id": c.index + 1,
                         "segmentation": {"size": [int(v) for v in rle["size"]],
                                          "counts": rle["counts"].decode("ascii")},
                         "area": float(mask_utils.area(rle)),
                         "bbox": [float(v) for v in mask_utils.toBbox(rle)], "iscrowd": 0})
    doc = {"info": {"description": f"project {p.name}", "ignore_index": p.ignore_index,
                    "category_id_is": "class index + 1; pixels without annotation are ignore_index"},
           "licenses": [], "images": images,
           "categories": [{"id": c.index + 1, "name": c.name, "index": c.index,
                           "color": list(c.color), "supercategory": ""} for c in p.classes],
           "annotations": anns}
    _write(rep, out, "annotations.json", json.dumps(doc).encode())


@dataclass
class CocoLabels:
    """The segmentations of a COCO file (our coco export, CVAT's or Label Studio's), read
    for import: categories as compact indices 0..n-1 in the order of their ids."""
    classes: dict[int, str]                        # compact index -> category name
    index_of: dict[int, int]                       # category id -> compact index
    by_file: dict[str, tuple[dict, list[dict]]]    # image file_name -> (its entry, its annotations)


def parse_coco(data: bytes | str) -> CocoLabels:
    """A COCO json (``images``, ``annotations`` with ``segmentation``, ``categories``) ->
    :class:`CocoLabels`, or :class:`ValidationError` saying what is wrong with it."""
    try:
        doc = json.loads(data)
        cats = sorted(doc["categories"], key=lambda c: int(c["id"]))
        names = {int(c["id"]): str(c["name"]) for c in cats}
        images = {int(im["id"]): im for im in doc["images"]}
        by_file: dict[str, tuple[dict, list[dict]]] = {}
        for im in images.values():
            if int(im["width"]) < 1 or int(im["height"]) < 1 or not isinstance(im["file_name"], str):
                raise ValueError(f"image {im['id']}: a width, a height and a file_name")
            by_file[im["file_name"].replace("\\", "/")] = (im, [])
        for ann in doc["annotations"]:
            if ann.get("segmentation") and int(ann["category_id"]) in names and int(ann["image_id"]) in images:
                by_file[images[int(ann["image_id"])]["file_name"].replace("\\", "/")][1].append(ann)
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise ValidationError(f"the COCO file is not one ({type(e).__name__}: {e}); it holds images, "
                              "annotations with a segmentation, and categories") from None
    if len(names) > 255:
        raise ValidationError(f"the COCO file has {len(names)} categories; a label set holds at most 255")
    index_of = {cid: i for i, cid in enumerate(names)}
    return CocoLabels({index_of[cid]: n for cid, n in names.items()}, index_of, by_file)


def coco_class_map(labels: CocoLabels, file_name: str, shape: tuple[int, int], ignore_index: int = 255) -> np.ndarray:
    """One image's annotations of a COCO file as a (H, W) class map in ``labels``' compact
    indices (polygons, RLE and compressed RLE; a later annotation over an earlier one wins);
    pixels no annotation covers are ``ignore_index``. The file's sizes (the image's, each
    RLE's) must be ``shape``, the image's own: checked before any mask is made."""
    from pycocotools import mask as mask_utils
    entry, anns = labels.by_file[file_name]
    h, w = int(entry["height"]), int(entry["width"])
    if (h, w) != tuple(shape):
        raise InvalidClassMapError(f"the COCO file gives it {w}x{h}, the image is {shape[1]}x{shape[0]}")
    cm = np.full((h, w), ignore_index, dtype=np.uint8)
    for ann in anns:
        seg = ann["segmentation"]
        try:
            if isinstance(seg, dict) and [int(v) for v in seg.get("size", ())] != [h, w]:
                raise InvalidClassMapError(f"annotation {ann.get('id')}: its mask's size {seg.get('size')} is "
                                           f"not the image's [{h}, {w}]")
            if isinstance(seg, list):                                   # polygons
                rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
            elif isinstance(seg.get("counts"), list):                   # uncompressed RLE
                rle = mask_utils.frPyObjects(seg, h, w)
            else:                                                       # compressed RLE
                rle = {"size": seg["size"], "counts": seg["counts"].encode() if isinstance(seg["counts"], str)
                       else seg["counts"]}
            m = mask_utils.decode(rle).astype(bool)
        except (TypeError, ValueError, KeyError, AttributeError, IndexError) as e:
            raise InvalidClassMapError(f"annotation {ann.get('id')}: its segmentation cannot be read ({e})") from None
        cm[m] = labels.index_of[int(ann["category_id"])]
    return cm


