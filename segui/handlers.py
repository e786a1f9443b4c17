"""The app's logic as plain functions over the model and storage APIs.

:class:`Studio` holds a :class:`storage.Store` and one cached
:class:`models.inference.Predictor` per model version; the Gradio screens
(``segui.ui``) only call it. Nothing here imports Gradio, so every handler can be
tested without a browser. User mistakes raise :class:`UserError` (a ``ValueError``)
with a message meant to be shown as is; nothing is stored when one is raised.
"""
from __future__ import annotations

import json
import re
import shutil
import tempfile
import threading
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.inference import DEFAULT_MODEL_DIR, Predictor
from storage import (ConflictError, InvalidImageError, NotFoundError, ProjectInfo, StorageError,
                     Store, ValidationError)

from . import smart_tools
from .editor import class_map_from_editor, editor_value, hex_color, resize_nearest

DEMO_DIR = Path(__file__).resolve().parent / "demo"
DEMO_PROJECT = "CamVid demo"
APP_MAX_MEGAPIXELS = 30.0          # bigger uploads are refused with a message
PREDICT_MAX_PIXELS = 1_000_000     # larger images are predicted downscaled, mask upscaled back
ZIP_MAX_MEMBERS = 2000
ZIP_MAX_MEMBER_BYTES = 200 * 1024 * 1024
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
FILTERS = ("unlabelled", "draft", "submitted", "any")


class UserError(ValueError):
    """A mistake the labeller can fix; the message is shown in the UI unchanged."""


@dataclass
class UploadReport:
    added: list[int] = field(default_factory=list)        # image ids, new
    duplicates: list[str] = field(default_factory=list)   # file names already in the project
    skipped: list[str] = field(default_factory=list)      # "name: reason"

    def message(self) -> str:
        parts = [f"{len(self.added)} image(s) added"]
        if self.duplicates:
            parts.append(f"{len(self.duplicates)} already in the project ({', '.join(self.duplicates[:5])})")
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped: " + "; ".join(self.skipped[:10]))
        return ", ".join(parts)


@dataclass
class Loaded:
    """One image opened for labelling."""
    image_id: int
    filename: str
    image: np.ndarray          # (H, W, 3) uint8
    class_map: np.ndarray      # (H, W) uint8 project class indices / ignore index
    base_revision: int         # the revision the labeller starts from (for conflicts)
    source: str                # where the mask came from, for the status line
    uncertainty: float | None
    sent_map: np.ndarray | None = None    # the map last sent to the editor by a tool
    stale_map: np.ndarray | None = None   # the editor's map just before that tool ran


@dataclass
class SaveResult:
    revision: int
    status: str
    conflict: str | None = None   # set when someone else saved meanwhile


def parse_classes(text: str) -> list[dict[str, Any]]:
    """Label set from free text: one class per line or comma-separated, each
    ``name`` or ``name #rrggbb``. Refuses an empty set and duplicate names."""
    if text is None or not str(text).strip():
        raise UserError("the label set is empty: give at least one class name")
    items = [s.strip() for s in re.split(r"[\n,;]+", str(text)) if s.strip()]
    out: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    for item in items:
        m = re.match(r"^(.*?)\s*(#[0-9a-fA-F]{6})?$", item)
        name, color = m.group(1).strip(), m.group(2)
        if not name:
            raise UserError(f"a class has a colour but no name: {item!r}")
        key = name.casefold()
        if key in seen:
            raise UserError(f"duplicate class name {name!r}: class names must be unique")
        seen[key] = name
        out.append({"name": name, "color": color} if color else {"name": name})
    if not out:
        raise UserError("the label set is empty: give at least one class name")
    return out


def model_metrics(weights_dir: str | Path) -> dict[str, Any] | None:
    try:
        cfg = json.loads((Path(weights_dir) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return cfg.get("metrics")


class Studio:
    """Store + predictors; every method is one user action."""

    def __init__(self, store: Store, model_dir: str | Path | None = None, device: str = "auto"):
        self.store = store
        self.store.max_image_megapixels = min(self.store.max_image_megapixels, APP_MAX_MEGAPIXELS)
        self.default_model_dir = Path(model_dir) if model_dir else DEFAULT_MODEL_DIR
        self.device = device
        self._predictors: dict[str, Predictor] = {}
        self._lock = threading.Lock()
        self._segments: OrderedDict[int, np.ndarray] = OrderedDict()

    # ------------------------------------------------------------------ model

    def _predictor_for_dir(self, weights_dir: str | Path) -> Predictor:
        key = str(Path(weights_dir).resolve())
        with self._lock:
            p = self._predictors.get(key)
            if p is None:
                p = Predictor.load(key, self.device)
                self._predictors[key] = p
            return p

    @property
    def device_name(self) -> str:
        return self._predictor_for_dir(self.default_model_dir).device_name

    def model_version(self, project: str | int):
        mv = self.store.active_model_version(project)
        if mv is None:
            mv = self.store.add_model_version(project, str(self.default_model_dir),
                                              metrics=model_metrics(self.default_model_dir),
                                              activate=True, name=self.default_model_dir.name)
        return mv

    def predict(self, project: str | int, image_id: int, image: np.ndarray | None = None,
                store: bool = True) -> np.ndarray:
        """Predict with the project's active model and label set (project indices)."""
        p = self.store.get_project(project)
        mv = self.model_version(p.id)
        if image is None:
            image = self.store.load_image(image_id)
        cm, unc = self._predict_map(mv.weights_dir, image, p)
        if store:
            self.store.save_prediction(image_id, mv.id, cm, unc)
        return cm

    def _predict_map(self, weights_dir: str, image: np.ndarray, p: ProjectInfo,
                     extra: list[str] | None = None) -> tuple[np.ndarray, float]:
        predictor = self._predictor_for_dir(weights_dir)
        h, w = image.shape[:2]
        small = image
        if h * w > PREDICT_MAX_PIXELS:
            s = (PREDICT_MAX_PIXELS / (h * w)) ** 0.5
            small = resize_nearest(image, max(32, int(h * s)), max(32, int(w * s)))
        names = p.class_names + list(extra or [])
        with self._lock:   # one inference at a time: two would only fight over the 2 cores
            pred = predictor.predict(small, names)
        cm = resize_nearest(pred.class_map, h, w)
        if extra:   # positions in `names`: the caller reads the extra ones itself
            return cm, pred.uncertainty
        lut = np.full(256, p.ignore_index, dtype=np.uint8)
        lut[:len(p.classes)] = p.class_indices   # model output position -> project class index
        return lut[cm], pred.uncertainty

    # ------------------------------------------------------------------ projects

    def ensure_demo(self) -> ProjectInfo | None:
        """On an empty database: the CamVid demo project with its model and sample images."""
        if self.store.list_projects():
            return None
        spec = json.loads((DEMO_DIR / "classes.json").read_text())
        p = self.store.create_project(DEMO_PROJECT, spec["classes"], ignore_index=spec["ignore_index"])
        self.model_version(p.id)
        for f in sorted(DEMO_DIR.glob("*.jpg")):
            info = self.store.add_image(p.id, f, f.name, split="none")
            self.predict(p.id, info.id)
        return self.store.get_project(p.id)

    def warm_up(self, project: str | int | None = None) -> None:
        """Load the active model of each project (or of one) and encode its label set
        with BERT once, so the first upload shows its mask without that delay."""
        tiny = np.zeros((64, 64, 3), np.uint8)
        projects = self.store.list_projects() if project is None else [self.store.get_project(project)]
        for p in projects:
            self._predict_map(self.model_version(p.id).weights_dir, tiny, p)

    def project_names(self) -> list[str]:
        return [p.name for p in self.store.list_projects()]

    def create_project(self, name: str, classes_text: str) -> ProjectInfo:
        name = (name or "").strip()
        if not name:
            raise UserError("give the project a name")
        classes = parse_classes(classes_text)
        try:
            p = self.store.create_project(name, classes)
        except ValidationError as e:
            raise UserError(str(e)) from None
        self.model_version(p.id)
        self.warm_up(p.id)
        return p

    def add_class(self, project: str, name: str, color: str | None = None) -> ProjectInfo:
        if not (name or "").strip():
            raise UserError("type a class name to add")
        try:
            return self.store.add_class(project, name.strip(), color or None)
        except (ValidationError, NotFoundError) as e:
            raise UserError(str(e)) from None

    def update_classes(self, project: str, rows: list[list[Any]]) -> ProjectInfo:
        """Apply an edited label table (index, name, colour); renames and colours only."""
        p = self.store.get_project(project)
        current = {c.index: c for c in p.classes}
        wanted = []
        for row in rows or []:
            if row is None or len(row) < 3 or str(row[0]).strip() == "":
                continue
            try:
                idx = int(float(row[0]))
            except ValueError:
                raise UserError(f"class index {row[0]!r} is not a number") from None
            if idx not in current:
                raise UserError(f"no class with index {idx}; add new classes by name")
            name = str(row[1] or "").strip()
            if not name:
                raise UserError(f"class {idx} needs a name")
            color = str(row[2] or "").strip()
            if not re.fullmatch(r"#[0-9a-fA-F]{6}", color):
                raise UserError(f"class {name!r}: colour must look like #rrggbb, got {color!r}")
            wanted.append((idx, name, color.lower()))
        final = {c.index: c.name for c in p.classes}
        final.update({idx: name for idx, name, _ in wanted})
        names = [n.casefold() for n in final.values()]
        dup = {n for n in names if names.count(n) > 1}
        if dup:   # checked on the whole label set before anything is renamed
            raise UserError(f"duplicate class name(s): {', '.join(sorted(dup))}")
        renames = [(idx, name) for idx, name, _ in wanted if current[idx].name != name]
        try:
            # two phases, so that swapping two names does not trip the uniqueness check
            if len(renames) > 1:
                for idx, _ in renames:
                    self.store.rename_class(project, idx, f"__renaming_{idx}__")
            for idx, name in renames:
                self.store.rename_class(project, idx, name)
            for idx, _, color in wanted:
                if hex_color(current[idx].color) != color:
                    self.store.set_class_color(project, idx, color)
        except (ValidationError, NotFoundError) as e:
            raise UserError(str(e)) from None
        return self.store.get_project(project)

    # ------------------------------------------------------------------ images

    def _expand(self, paths: list[str | Path]) -> tuple[list[tuple[str, bytes]], list[str]]:
        files, skipped = [], []
        for path in paths or []:
            path = Path(path)
            name = path.name
            if path.suffix.lower() == ".zip":
                try:
                    with zipfile.ZipFile(path) as zf:
                        members = [m for m in zf.infolist() if not m.is_dir()]
                        if len(members) > ZIP_MAX_MEMBERS:
                            skipped.append(f"{name}: more than {ZIP_MAX_MEMBERS} files in the zip")
                            continue
                        for m in members:
                            base = Path(m.filename).name
                            if m.filename.startswith("__MACOSX/") or base.startswith("."):
                                continue
                            if Path(base).suffix.lower() not in IMAGE_SUFFIXES:
                                skipped.append(f"{name}/{m.filename}: not an image file")
                                continue
                            if m.file_size > ZIP_MAX_MEMBER_BYTES:
                                skipped.append(f"{name}/{m.filename}: file too large")
                                continue
                            files.append((base, zf.read(m)))
                except (zipfile.BadZipFile, OSError, RuntimeError) as e:
                    skipped.append(f"{name}: unreadable zip ({e})")
                continue
            try:
                files.append((name, path.read_bytes()))
            except OSError as e:
                skipped.append(f"{name}: {e}")
        return files, skipped

    def upload(self, project: str, paths: list[str | Path], predict: bool = True) -> UploadReport:
        """Add files (images or zips of images); bad files are skipped with a reason."""
        if not project:
            raise UserError("pick or create a project first")
        p = self.store.get_project(project)
        files, skipped = self._expand(paths)
        rep = UploadReport(skipped=skipped)
        if not files and not skipped:
            raise UserError("no files were uploaded")
        for name, data in files:
            try:
                info = self.store.add_image(p.id, data, name)
            except InvalidImageError as e:
                rep.skipped.append(f"{name}: {e}")
                continue
            if info.duplicate:
                rep.duplicates.append(name)
                continue
            rep.added.append(info.id)
            if predict:
                self.predict(p.id, info.id)
        return rep

    def next_image(self, project: str, filter: str = "unlabelled", exclude: tuple[int, ...] = ()) -> int | None:
        """Most uncertain prediction first, among images of the given status."""
        if filter not in FILTERS:
            raise UserError(f"filter must be one of {', '.join(FILTERS)}")
        if filter == "submitted":
            for im in self.store.list_images(project, status="submitted", order="uncertainty"):
                if im.id not in exclude:
                    return im.id
            return None
        info = self.store.next_image(project, filter=filter, exclude=exclude)
        return info.id if info is not None else None

    def queue(self, project: str, filter: str = "any") -> list[list[Any]]:
        status = None if filter in (None, "any") else filter
        return [[im.id, im.filename, im.status, None if im.uncertainty is None else round(im.uncertainty, 3),
                 im.annotated_by or ""]
                for im in self.store.list_images(project, status=status, order="uncertainty", limit=500)]

    def open_image(self, image_id: int, revision: int | None = None) -> Loaded:
        """The latest annotation (or one revision) if any, else the active model's prediction."""
        info = self.store.get_image(int(image_id))
        image = self.store.load_image(info.id)
        if revision is not None or info.revision > 0:
            a = self.store.get_annotation(info.id, revision)
            src = f"annotation revision {a.revision} by {a.author} ({a.status})"
            return Loaded(info.id, info.filename, image, a.class_map, info.revision, src, info.uncertainty)
        mv = self.model_version(info.project_id)
        pred = self.store.get_prediction(info.id, mv.id)
        if pred is None:
            cm = self.predict(info.project_id, info.id, image)
            info = self.store.get_image(info.id)
        else:
            cm = pred.class_map
        src = f"prediction of model version {mv.id}"
        return Loaded(info.id, info.filename, image, cm, 0, src, info.uncertainty)

    def revisions(self, image_id: int) -> list[str]:
        return [f"{a.revision}: {a.author}, {a.status}, {a.saved_at:%Y-%m-%d %H:%M:%S}"
                for a in self.store.list_annotation_revisions(int(image_id))]

    def save(self, image_id: int | None, class_map: np.ndarray | None, author: str,
             status: str = "draft", base_revision: int = 0) -> SaveResult:
        """Store the class map as a new revision. If someone saved meanwhile, ours is
        stored too (as a draft on top of theirs) and the conflict is reported: both
        versions stay reachable in the revision list."""
        if image_id is None or class_map is None:
            raise UserError("nothing to save: open an image first")
        author = (author or "").strip()
        if not author:
            raise UserError("type your name before saving")
        try:
            a = self.store.save_annotation(int(image_id), class_map, author, status, int(base_revision))
            return SaveResult(a.revision, a.status)
        except ConflictError as c:
            when = c.saved_at.strftime("%Y-%m-%d %H:%M:%S UTC") if c.saved_at else "an unknown time"
            a = self.store.save_annotation(int(image_id), class_map, author, "draft", c.revision)
            msg = (f"{c.author} saved this image at {when} (revision {c.revision}) while you were "
                   f"editing. Your version is stored as draft revision {a.revision}; theirs stays "
                   f"revision {c.revision}. Both are in the revision list.")
            return SaveResult(a.revision, a.status, conflict=msg)
        except StorageError as e:
            raise UserError(str(e)) from None

    # ------------------------------------------------------------------ editor & smart tools

    def palette(self, project: str | int) -> tuple[list[int], np.ndarray, int]:
        p = self.store.get_project(project)
        return p.class_indices, p.palette, p.ignore_index

    def editor_value(self, project: str | int, loaded: Loaded, class_map: np.ndarray | None = None,
                     opacity: float = 0.6) -> dict:
        idx, pal, ign = self.palette(project)
        return editor_value(loaded.image, loaded.class_map if class_map is None else class_map,
                            idx, pal, ign, opacity)

    def read_editor(self, project: str | int, value: dict | None, height: int, width: int) -> np.ndarray:
        idx, pal, ign = self.palette(project)
        try:
            return class_map_from_editor(value, idx, pal, ign, height, width)
        except ValueError as e:
            raise UserError(str(e)) from None

    def overlay(self, project: str | int, image: np.ndarray, class_map: np.ndarray, opacity: float) -> np.ndarray:
        """The class colours blended over the photo; void pixels show the photo."""
        p = self.store.get_project(project)
        lut = p.color_lut()
        col = lut[class_map].astype(np.float32)
        a = np.where(class_map == p.ignore_index, 0.0, float(opacity))[..., None]
        return (image.astype(np.float32) * (1 - a) + col * a).round().astype(np.uint8)

    def segments(self, image_id: int, image: np.ndarray) -> np.ndarray:
        seg = self._segments.get(image_id)
        if seg is None or seg.shape != image.shape[:2]:
            seg = smart_tools.superpixels(image)
            self._segments[image_id] = seg
            while len(self._segments) > 16:
                self._segments.popitem(last=False)
        else:
            self._segments.move_to_end(image_id)
        return seg

    def class_index(self, project: str | int, name: str) -> int:
        p = self.store.get_project(project)
        for c in p.classes:
            if c.name == name:
                return c.index
        if name in ("void", "void / unlabelled", None, ""):
            return p.ignore_index
        raise UserError(f"unknown class {name!r}")

    def superpixel_fill(self, project: str | int, loaded: Loaded, class_map: np.ndarray,
                        x: int, y: int, class_name: str) -> np.ndarray:
        cls = self.class_index(project, class_name)
        seg = self.segments(loaded.image_id, loaded.image)
        try:
            return smart_tools.superpixel_fill(class_map, seg, int(x), int(y), cls)
        except ValueError as e:
            raise UserError(str(e)) from None

    def snap(self, loaded: Loaded, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        return smart_tools.snap_strokes(before, after, self.segments(loaded.image_id, loaded.image))

    def clean_up(self, project: str | int, class_map: np.ndarray, min_size: int) -> np.ndarray:
        if min_size is None or int(min_size) < 1:
            raise UserError("the minimum region size must be at least 1 pixel")
        return smart_tools.clean_up(class_map, int(min_size), self.store.get_project(project).ignore_index)

    def text_prompt(self, project: str | int, loaded: Loaded, phrase: str) -> np.ndarray:
        """Segment ``phrase`` through the text encoder, competing with the label set:
        a boolean mask of the pixels where the phrase wins."""
        phrase = (phrase or "").strip()
        if not phrase:
            raise UserError("type a phrase to segment, e.g. 'white van'")
        p = self.store.get_project(project)
        mv = self.model_version(p.id)
        same = [c for c in p.classes if c.name.casefold() == phrase.casefold()]
        if same:   # the phrase is already a class: its own prediction
            cm, _ = self._predict_map(mv.weights_dir, loaded.image, p)
            return cm == same[0].index
        pos_map, _ = self._predict_map(mv.weights_dir, loaded.image, p, extra=[phrase])
        return pos_map == len(p.classes)

    def accept_prompt(self, project: str | int, class_map: np.ndarray, mask: np.ndarray,
                      name: str) -> tuple[ProjectInfo, np.ndarray]:
        """Label the prompt's pixels with class ``name`` (added to the project if new)."""
        name = (name or "").strip()
        if not name:
            raise UserError("give the class a name")
        if mask is None or not np.any(mask):
            raise UserError("the prompt selected no pixels; nothing to accept")
        p = self.store.get_project(project)
        match = [c for c in p.classes if c.name.casefold() == name.casefold()]
        if match:
            idx = match[0].index
        else:
            p = self.add_class(p.name, name)
            idx = next(c.index for c in p.classes if c.name == name)
        out = class_map.copy()
        out[mask] = idx
        return p, out

    # ------------------------------------------------------------------ model panel & export

    def model_versions(self, project: str) -> list[tuple[str, int]]:
        return [(f"v{m.id}: {m.name or Path(m.weights_dir).name}{' (active)' if m.is_active else ''}", m.id)
                for m in self.store.list_model_versions(project)]

    def activate_model(self, project: str, version_id: int) -> None:
        mv = self.store.get_model_version(int(version_id))
        if mv.project_id != self.store.get_project(project).id:
            raise UserError("that model version belongs to another project")
        self.store.activate_model_version(mv.id)

    def model_summary(self, project: str) -> tuple[str, list[tuple[str, float]]]:
        mv = self.model_version(project)
        m = mv.metrics or {}
        lines = [f"**Active model:** v{mv.id} `{mv.weights_dir}`", f"**Inference device:** {self.device_name}"]
        if "val_miou" in m:
            lines.append(f"**Validation mIoU:** {m['val_miou']:.3f}")
        if "val_pixel_accuracy" in m:
            lines.append(f"**Pixel accuracy:** {m['val_pixel_accuracy']:.3f}")
        per_class = [(k, float(v)) for k, v in (m.get("val_per_class_iou") or {}).items()]
        if not m:
            lines.append("No metrics recorded for this version.")
        return "\n\n".join(lines), per_class

    def export(self, project: str, fmt: str, include_drafts: bool = False) -> Path:
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
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", project)
        zpath = tmp / f"{safe}-{fmt}.zip"
        with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as zf:
            for f in sorted(out.rglob("*")):
                if f.is_file():
                    zf.write(f, f.relative_to(out))
        shutil.rmtree(out, ignore_errors=True)
        return zpath


def legend_html(p: ProjectInfo) -> str:
    items = "".join(
        f'<span style="display:inline-block;margin:2px 8px 2px 0"><span style="display:inline-block;'
        f'width:14px;height:14px;background:{hex_color(c.color)};border:1px solid #444;'
        f'vertical-align:middle"></span> {_esc(c.name)}</span>' for c in p.classes)
    items += ('<span style="display:inline-block;margin:2px 8px 2px 0"><span style="display:inline-block;'
              'width:14px;height:14px;border:1px dashed #444;vertical-align:middle"></span> void (eraser)</span>')
    return f'<div class="segui-legend">{items}</div>'


def _esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

