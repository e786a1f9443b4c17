"""The app's logic as plain functions over the model and storage APIs.

:class:`Studio` holds a :class:`storage.Store` and one cached
:class:`models.inference.Predictor` per model version; the Gradio screens
(``segui.ui``) only call it. Nothing here imports Gradio, so every handler can be
tested without a browser. User mistakes raise :class:`UserError` (a ``ValueError``)
with a message meant to be shown as is; nothing is stored when one is raised.
"""
from __future__ import annotations

import json
import logging
import queue
import re
import shutil
import tempfile
import threading
import time
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from common.images import IMAGE_SUFFIXES
from common.labels import LabelSetError, parse_label_text, validate_class_names
from common.splits import SPLITS, VAL_EVERY, auto_split, training_splits
from models.data import load_label
from models.finetune import MIN_VAL_TO_PROMOTE
from models.metrics import recorded_metrics
from models.inference import DEFAULT_MODEL_DIR, Predictor
from storage import (FILTER_STATUSES, QUEUE_FILTERS, ConflictError, InvalidImageError, NotFoundError, ProjectInfo, StorageError,
                     Store, ValidationError)

from . import access, smart_tools
from .access import Act, Forbidden, Principal
from .imageops import hex_color, resize_nearest

log = logging.getLogger(__name__)

DEMO_DIR = Path(__file__).resolve().parent / "demo"
DEMO_AUTHOR = "CamVid ground truth"  # who submitted the demo's labelled images
DEMO_PROJECT = "CamVid demo"
APP_MAX_MEGAPIXELS = 30.0          # bigger uploads are refused with a message
PREDICT_MAX_PIXELS = 1_000_000     # larger images are predicted downscaled, mask upscaled back
ZIP_MAX_MEMBERS = 2000
ZIP_MAX_MEMBER_BYTES = 200 * 1024 * 1024
FILTERS = QUEUE_FILTERS
REFRESH_LIMIT = 200                # unlabelled images predicted again after the active model changed
THIN_SAMPLE = 12                   # maps thin_classes measures (an image's annotation, else its prediction)
THIN_REFRESH_S = 30.0
PREFETCH_DELAY_S = 0.6             # the next image is prepared this long after one is opened
STRIP_WINDOW = 300                 # images shown around the open one in the image strip
EVIDENCE_RULE = "PROBS_RULE"      # models.review rule of the evidence stored per submission
REVIEW_MASK_CACHE = 16             # disagreement masks kept for reviewers (image, revision, model)


class UserError(ValueError):
    """A mistake the labeller can fix; the message is shown in the UI unchanged."""


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
    project_id: int = 0
    status: str = "unlabelled"
    split: str = "none"
    tool_base: np.ndarray | None = None   # the map at the last sync (open, save, tool): snap's "before"

    def __post_init__(self):
        if self.tool_base is None:
            self.tool_base = self.class_map.copy()


@dataclass
class Ready:
    """Everything the canvas needs to show an image, computed ahead when possible."""
    loaded: Loaded
    prediction: np.ndarray | None   # the active model's prediction, project indices
    photo: str                      # data URL for the page
    key: tuple                      # (revision, model version id): still valid?


@dataclass
class SaveResult:
    revision: int
    status: str
    conflict: str | None = None   # set when someone else saved meanwhile


def parse_classes(text: str) -> list[dict[str, Any]]:
    """Label set from free text (``common.labels.parse_label_text``), errors as UserError."""
    try:
        return parse_label_text(text)
    except LabelSetError as e:
        raise UserError(str(e)) from None


def _copy_loaded(loaded: Loaded) -> Loaded:
    """A Loaded the caller may change (maps copied; the photo array is shared, read-only)."""
    return replace(loaded, class_map=loaded.class_map.copy(), tool_base=loaded.tool_base.copy())


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
        self._lock = threading.Lock()            # one inference at a time
        self._cache_lock = threading.RLock()     # the caches below and the worker
        self._segments: OrderedDict[int, np.ndarray] = OrderedDict()
        self._ready: OrderedDict[int, Ready] = OrderedDict()
        self._thin: dict[tuple, tuple[float, list[int], int]] = {}
        self._evaluations: dict[tuple, dict] = {}
        self._fresh_for: dict[int, int] = {}     # project id -> model version its queue was predicted with
        self._work_locks: dict[tuple, threading.Lock] = {}
        self._jobs: queue.Queue = queue.Queue()
        self._worker: threading.Thread | None = None
        self._disagreement: OrderedDict[tuple, tuple[float, np.ndarray]] = OrderedDict()
        self.single_user: str | None = None      # --auth user:password: that one person, an admin
        self._accounts: bool | None = None      # decided once: see uses_accounts

    # ------------------------------------------------------------------ who is calling

    def uses_accounts(self) -> bool:
        """Accounts exist in the database: people log in with them and roles apply.
        Decided once, when first asked (app.py asks before it launches), because
        Gradio's login is fixed at launch: accounts added while an app without a login
        runs take effect when it is started again (until then it stays one person's,
        instead of refusing everyone who has no way to log in)."""
        if self._accounts is None:
            self._accounts = self.store.has_users()
        return self._accounts

    def login(self, username: str, password: str) -> bool:
        """Gradio's ``auth`` callable: an enabled account with that password."""
        return self.store.verify_user(username, password) is not None

    def principal(self, username: str | None) -> Principal:
        """Who a request's logged-in name is. Without accounts: the one person (an
        admin). With accounts: their role; unknown, disabled or no login -> Forbidden
        (a user disabled while logged in is refused from their next request)."""
        if not self.uses_accounts():
            return Principal(username or self.single_user, access.Role.ADMIN)
        if not username:
            raise Forbidden("Not logged in: log in with your account.")
        try:
            u = self.store.get_user(username)
        except NotFoundError:
            raise Forbidden(f"Not allowed: there is no account {username!r}.") from None
        if u.disabled:
            raise Forbidden(f"Not allowed: the account {u.name!r} is disabled.")
        return Principal(u.name, u.role, member_only=u.role != access.Role.ADMIN)

    def authorize(self, username: str | None, act: Act | str, project: str | int | None = None,
                  image_id: int | None = None) -> Principal:
        """The one permission check: may ``username`` do ``act`` (in ``project``, on
        ``image_id``)? Returns who they are; raises Forbidden with the reason."""
        who = self.principal(username)
        if not who.can(act):
            raise Forbidden(access.refusal(who, act))
        if image_id is not None:
            try:
                info = self.store.get_image(int(image_id))
            except (NotFoundError, TypeError, ValueError):
                raise Forbidden(f"there is no image {image_id}") from None
            self._check_member(who, info.project_id)
            if not access.sees_image(who, info.status, info.annotated_by):
                raise Forbidden(f"Not allowed: image {info.id} is someone else's work; "
                                "reviewers and admins open every image.")
        if project not in (None, ""):
            self._check_member(who, project)
        return who

    def _check_member(self, who: Principal, project: str | int) -> None:
        if not who.member_only:
            return
        try:
            ok = self.store.can_access(who.name, project)
        except NotFoundError:
            ok = False
        if not ok:
            raise Forbidden(f"Not allowed: {who.name} is not a member of project {project!r}; "
                            "an admin adds members on the Projects screen.")

    @staticmethod
    def _who(who: Principal | None) -> Principal:
        """The caller: given, else the one the app's guard set for this event, else
        the one person of an app without accounts."""
        return who or access.current() or access.NOBODY_ADMIN

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

    def ensure_demo(self, demo_dir: Path = DEMO_DIR) -> ProjectInfo | None:
        """On an empty database: the CamVid demo project with its model, street images to
        label (``demo_dir/*.jpg``, predicted now) and images already labelled
        (``demo_dir/labelled/NAME.jpg`` with its class map ``NAME.png``: submitted as
        :data:`DEMO_AUTHOR`, the automatic split puts them in train or val), so that the
        first fine-tuning job has val images to be promoted on: a whole round of the loop
        runs in the demo (benchmarks/bench_demo_round.py)."""
        if self.store.list_projects():
            return None
        spec = json.loads((demo_dir / "classes.json").read_text())
        p = self.store.create_project(DEMO_PROJECT, spec["classes"], ignore_index=spec["ignore_index"])
        self.model_version(p.id)
        for f in sorted(demo_dir.glob("*.jpg")):
            info = self.store.add_image(p.id, f, f.name, split="none")
            self.predict(p.id, info.id)
        for f in sorted((demo_dir / "labelled").glob("*.jpg")):
            info = self.store.add_image(p.id, f, f.name, split="none")
            truth = load_label(f.with_suffix(".png"), (info.width, info.height))
            self.store.save_annotation(info.id, truth, DEMO_AUTHOR, "submitted", base_revision=0)
            self.assign_split(info.id)
        return self.store.get_project(p.id)

    def warm_up(self, project: str | int | None = None) -> None:
        """Load the active model of each project (or of one) and encode its label set
        with BERT once, so the first upload shows its mask without that delay."""
        tiny = np.zeros((64, 64, 3), np.uint8)
        projects = self.store.list_projects() if project is None else [self.store.get_project(project)]
        for p in projects:
            self._predict_map(self.model_version(p.id).weights_dir, tiny, p)

    def project_names(self, who: Principal | None = None) -> list[str]:
        """The projects the caller sees: all, or with accounts their projects."""
        who = self._who(who)
        if who.member_only:
            return [p.name for p in self.store.projects_for(who.name)]
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
        try:   # the one label-set rule, on the whole set before anything is renamed
            validate_class_names(list(final.values()))
        except LabelSetError as e:
            raise UserError(str(e)) from None
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

    def _predict_if_missing(self, project_id: int, image_id: int) -> None:
        mv = self.model_version(project_id)
        if self.store.get_prediction(image_id, mv.id) is None:
            self.predict(project_id, image_id)

    def next_image(self, project: str, filter: str = "unlabelled", exclude: tuple[int, ...] = (),
                   who: Principal | None = None) -> int | None:
        """Most uncertain prediction first, among images of the given status; "review":
        submissions awaiting review, the model's strongest disagreement first;
        "rejected": rejected submissions (back to their annotator). An annotator gets
        only images they see (unlabelled ones and their own)."""
        if filter not in FILTERS:
            raise UserError(f"filter must be one of {', '.join(FILTERS)}")
        who = self._who(who)
        if filter == "review":
            if not who.can(Act.REVIEW):
                raise Forbidden(access.refusal(who, Act.REVIEW))
            return next((im.id for im in self.store.review_queue(project, order="review_score")
                         if im.id not in exclude), None)
        if not who.sees_every_image and filter != "unlabelled":
            statuses = FILTER_STATUSES.get(filter, ())
            for im in self.store.list_images(project, order="uncertainty"):
                wanted = im.review == "rejected" if filter == "rejected" else im.status in statuses
                if wanted and im.id not in exclude and access.sees_image(who, im.status, im.annotated_by):
                    return im.id
            return None
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

    def strip(self, project: str | int, current: int | None, window: int = STRIP_WINDOW,
              who: Principal | None = None) -> dict[str, Any]:
        """The image strip: images in upload order around ``current`` with their status
        (an annotator's: the images they see), and the project's progress ("12 / 340
        labelled", the whole project's)."""
        who = self._who(who)
        images = self.store.list_images(project, order="id")
        counts = {"unlabelled": 0, "draft": 0, "submitted": 0}
        for im in images:
            counts[im.status] = counts.get(im.status, 0) + 1
        if not who.sees_every_image:
            images = [im for im in images if access.sees_image(who, im.status, im.annotated_by)]
        pos = next((k for k, im in enumerate(images) if im.id == current), 0)
        lo = max(0, min(pos - window // 2, len(images) - window))
        items = [{"id": im.id, "name": im.filename, "status": im.status, "pos": lo + k + 1}
                 for k, im in enumerate(images[lo:lo + window])]
        return {"items": items, "current": current, "total": len(images), **counts}

    def open_image(self, image_id: int, revision: int | None = None) -> Loaded:
        """The latest annotation (or one revision) if any, else the active model's prediction."""
        return self.prepare(image_id, revision).loaded

    def open_in_project(self, project: str | int, image_id: int, revision: int | None = None,
                        who: Principal | None = None) -> Ready:
        """:meth:`prepare`, refusing an image of another project, one that does not
        exist, or (for an annotator) someone else's work."""
        try:
            info = self.store.get_image(int(image_id))
        except (NotFoundError, ValueError, TypeError):
            raise UserError(f"there is no image {image_id}") from None
        if project is not None and info.project_id != self.store.get_project(project).id:
            raise UserError(f"image {int(image_id)} belongs to another project")
        if not access.sees_image(self._who(who), info.status, info.annotated_by):
            raise Forbidden(f"Not allowed: image {info.id} is someone else's work; "
                            "reviewers and admins open every image.")
        return self.prepare(info.id, revision)

    def prepare(self, image_id: int, revision: int | None = None) -> Ready:
        """The image, its map (latest annotation or one revision, else the prediction),
        the active model's prediction and the photo for the page. Taken from the
        prefetch cache when nothing changed since it was computed."""
        with self._once(("prepare", int(image_id))):
            return self._prepare(int(image_id), revision)

    def _prepare(self, image_id: int, revision: int | None) -> Ready:
        info = self.store.get_image(int(image_id))
        mv = self.model_version(info.project_id)
        key = (info.revision, mv.id)
        if revision is None:
            with self._cache_lock:
                ready = self._ready.get(info.id)
            if ready is not None and ready.key == key:
                return replace(ready, loaded=_copy_loaded(ready.loaded))
        image = self.store.load_image(info.id)
        pred_info = self.store.get_prediction(info.id, mv.id)
        if pred_info is None:
            pred = self.predict(info.project_id, info.id, image)
            info = self.store.get_image(info.id)
        else:
            pred = pred_info.class_map
        if revision is not None or info.revision > 0:
            try:
                a = self.store.get_annotation(info.id, revision)
            except NotFoundError:
                raise UserError(f"image {info.id} has no revision {revision}") from None
            src = f"annotation revision {a.revision} by {a.author} ({a.status})"
            cm = a.class_map
        else:
            src = f"prediction of model version {mv.id}"
            cm = pred
        loaded = Loaded(info.id, info.filename, image, cm.copy(), info.revision, src, info.uncertainty,
                        project_id=info.project_id, status=info.status, split=info.split)
        from .canvas.codec import photo_url
        photo = photo_url(self.store.image_bytes(info.id), info.format, image, info.normalised)
        ready = Ready(loaded, pred, photo, key)
        if revision is None:
            with self._cache_lock:
                self._ready[info.id] = replace(ready, loaded=_copy_loaded(loaded))
                self._ready.move_to_end(info.id)
                while len(self._ready) > 8:
                    self._ready.popitem(last=False)
        return ready

    def prefetch_next(self, project: str | int, filter: str, current: int | None) -> None:
        """Compute, in the background, what the canvas needs for the image Next would
        open now (prediction, superpixels, photo), so that Next shows it at once."""
        def work():
            # start after the open image's answer has gone out: SLIC and the prediction
            # would otherwise compete with it for the interpreter and the two cores
            time.sleep(PREFETCH_DELAY_S)
            try:
                self.refresh_predictions(project)
                iid = self.next_image(project, filter if filter in FILTERS else "unlabelled",
                                      (current,) if current is not None else ())
            except (UserError, StorageError):
                return
            if iid is not None:
                ready = self.prepare(iid)
                self.segments(iid, ready.loaded.image)
        self._submit(work)

    # ------------------------------------------------------------------ background work

    def _submit(self, fn, *args) -> None:
        with self._cache_lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work_loop, name="studio-background", daemon=True)
                self._worker.start()
        self._jobs.put((fn, args))

    def _work_loop(self) -> None:
        while True:
            fn, args = self._jobs.get()
            try:
                fn(*args)
            except Exception:   # background work must never take the app down; it is redone on demand
                log.exception("background task %s failed", getattr(fn, "__name__", fn))
            finally:
                self._jobs.task_done()

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Wait until the background predictions and prefetches are done."""
        end = time.monotonic() + timeout
        while self._jobs.unfinished_tasks:
            if time.monotonic() > end:
                return False
            time.sleep(0.02)
        return True

    # ------------------------------------------------------------------ the labelling rules

    @staticmethod
    def author(typed: str | None, login: str | None) -> str:
        """Whose revision it is: the login name when there is one, else the typed name."""
        name = (login or typed or "").strip()
        if not name:
            raise UserError("type your name before saving")
        return name

    @staticmethod
    def has_unsaved(loaded: Loaded | None, class_map: np.ndarray | None) -> bool:
        """The labeller's map differs from the one opened or last saved."""
        if loaded is None or class_map is None:
            return False
        return not np.array_equal(class_map, loaded.class_map)

    def save_edits(self, loaded: Loaded | None, class_map: np.ndarray | None, author: str,
                   status: str = "draft") -> SaveResult:
        """Store the labeller's map as a new revision of the open image; the open image
        then counts as saved at that revision (a conflict is stored, not lost)."""
        if loaded is None or class_map is None:
            raise UserError("nothing to save: open an image first")
        res = self.save(loaded.image_id, class_map, author, status, loaded.base_revision)
        if res.status == "submitted":
            loaded.split = self.assign_split(loaded.image_id)
            self._submit(self.score_submission, loaded.image_id, res.revision)
        loaded.base_revision = res.revision
        loaded.class_map = class_map.copy()
        loaded.tool_base = class_map.copy()
        loaded.status = res.status
        loaded.source = f"annotation revision {res.revision} by {author.strip()} ({res.status})"
        return res

    def leave(self, loaded: Loaded | None, class_map: np.ndarray | None, author: str) -> SaveResult | None:
        """Before the labeller moves to another image: unsaved edits become a draft.
        Returns the save (check ``conflict``), or None when there was nothing to save."""
        if not self.has_unsaved(loaded, class_map):
            return None
        return self.save_edits(loaded, class_map, author, "draft")

    def assign_split(self, image_id: int) -> str:
        """An image without a split (uploads) gets :func:`auto_split`'s; a split set by
        the labeller or an imported dataset stays. Returns the image's split."""
        info = self.store.get_image(int(image_id))
        if info.split == "none":
            info = self.store.set_split(info.id, auto_split(info.sha256))
        return info.split

    def set_split(self, project: str | int, image_id: int, split: str) -> str:
        """The labeller chooses the image's split ("train", "val", or "none": decided by
        :func:`auto_split` when it is submitted; an already submitted image gets it now)."""
        if split not in SPLITS:
            raise UserError("split must be train, val or none (automatic)")
        info = self.store.get_image(int(image_id))
        if info.project_id != self.store.get_project(project).id:
            raise UserError(f"image {int(image_id)} belongs to another project")
        self.store.set_split(info.id, split)
        return self.assign_split(info.id) if info.status == "submitted" else split

    def split_counts(self, project: str | int) -> dict[str, int]:
        """Submitted images per split ("train" counts images without a split too: jobs
        train on them) and whether a job can decide promotion on its own."""
        train = sum(len(self.store.submitted_annotations(project, s)) for s in training_splits("train"))
        val = len(self.store.submitted_annotations(project, "val"))
        return {"train": train, "val": val}

    def promotion_readiness(self, project: str | int) -> str:
        """Why a fine-tuning job could or could not promote its model by itself."""
        c = self.split_counts(project)
        if c["train"] == 0:
            return "Nothing to train on yet: submit some annotations."
        if c["val"] < MIN_VAL_TO_PROMOTE:
            return (f"A job would not be promoted automatically: {c['val']} submitted val image(s), at least "
                    f"{MIN_VAL_TO_PROMOTE} needed to compare the new model with the active one (one submitted "
                    f"image in {VAL_EVERY} goes to val; set an image's split on the Label screen). You can "
                    "still switch to the job's version by hand.")
        return f"A job's model is promoted when its mIoU on the {c['val']} val images does not drop."

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

    # ------------------------------------------------------------------ smart tools

    def _once(self, key: tuple) -> threading.Lock:
        """A lock per piece of work, so that the prefetch thread and a request asking
        for the same image's superpixels or payload compute it once, not twice."""
        with self._cache_lock:
            return self._work_locks.setdefault(key, threading.Lock())

    def segments(self, image_id: int, image: np.ndarray) -> np.ndarray:
        with self._once(("segments", image_id)):
            with self._cache_lock:
                seg = self._segments.get(image_id)
                if seg is not None and seg.shape == image.shape[:2]:
                    self._segments.move_to_end(image_id)
                    return seg
            seg = smart_tools.superpixels(image)
            with self._cache_lock:
                self._segments[image_id] = seg
                while len(self._segments) > 16:
                    self._segments.popitem(last=False)
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

    def thin_classes(self, project: str | int) -> list[int]:
        """Classes made of narrow regions (poles, signs): clean-up keeps them unless told
        otherwise. Measured on up to THIN_SAMPLE of the project's annotations or predictions."""
        p = self.store.get_project(project)
        key = (p.id, tuple(p.class_indices))
        with self._cache_lock:
            hit = self._thin.get(key)
        # measured once per label set from a full sample; from fewer maps (a young project)
        # again at most every THIN_REFRESH_S as its images come in
        if hit is not None and (hit[2] >= THIN_SAMPLE or time.monotonic() - hit[0] < THIN_REFRESH_S):
            return hit[1]
        maps = []
        for im in self.store.list_images(p.id, order="id", limit=60):
            if len(maps) >= THIN_SAMPLE:
                break
            if im.revision > 0:
                maps.append(self.store.get_annotation(im.id).class_map)
            else:
                pred = self.store.get_prediction(im.id)
                if pred is not None:
                    maps.append(pred.class_map)
        thin = sorted(int(c) for c in smart_tools.thin_classes(maps, p.ignore_index)) if maps else []
        with self._cache_lock:
            self._thin[key] = (time.monotonic(), thin, len(maps))
        return thin

    def clean_up(self, project: str | int, class_map: np.ndarray, min_size: int,
                 keep: list[int] | None = None) -> np.ndarray:
        """Small islands and holes take their surroundings' class; classes in ``keep``
        (default: the project's thin classes) are never erased, and no class is removed
        as a whole."""
        try:
            min_size = int(min_size)
        except (TypeError, ValueError):
            raise UserError("the minimum region size must be a whole number of pixels") from None
        if min_size < 1:
            raise UserError("the minimum region size must be at least 1 pixel")
        p = self.store.get_project(project)
        keep = self.thin_classes(p.id) if keep is None else [int(k) for k in keep]
        unknown = [k for k in keep if k not in p.class_indices]
        if unknown:
            raise UserError(f"clean-up: no class with index {unknown[0]} in this project")
        return smart_tools.clean_up(class_map, min_size, p.ignore_index, keep=keep)

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
                      name: str, add_class: bool = False, who: Principal | None = None
                      ) -> tuple[ProjectInfo, np.ndarray]:
        """Label the prompt's pixels with class ``name``. A name that is not a class yet
        is added to the project only when ``add_class`` says the labeller agreed."""
        name = (name or "").strip()
        if not name:
            raise UserError("give the class a name")
        if mask is None or not np.any(mask):
            raise UserError("the prompt selected no pixels; nothing to accept")
        if mask.shape != class_map.shape:
            raise UserError("the prompt was made on another image; segment the phrase again")
        p = self.store.get_project(project)
        match = [c for c in p.classes if c.name.casefold() == name.casefold()]
        if match:
            idx = match[0].index
        elif not add_class:
            raise UserError(f"'{name}' is not a class of project '{p.name}': accepting it adds it to the "
                            "project's label set; confirm to add it")
        elif not self._who(who).can(Act.ADMIN):
            raise Forbidden(f"'{name}' is not a class of project '{p.name}', and only an admin adds classes: "
                            "label the pixels with an existing class, or ask an admin to add it")
        else:
            p = self.add_class(p.name, name)
            idx = next(c.index for c in p.classes if c.name == name)
        out = class_map.copy()
        out[mask] = idx
        return p, out


    # ------------------------------------------------------------------ model panel & export

    def refresh_predictions(self, project: str | int, limit: int = REFRESH_LIMIT) -> int:
        """When the active model changed (a promoted job, a switch by hand): predict the
        queue's unlabelled images again with it, in the background, most uncertain first,
        so the next images show the new model's masks. Once per model version; returns
        how many images were queued."""
        p = self.store.get_project(project)
        mv = self.model_version(p.id)
        with self._cache_lock:
            if self._fresh_for.get(p.id) == mv.id:
                return 0
            self._fresh_for[p.id] = mv.id
        stale = [im.id for im in self.store.list_images(p.id, status="unlabelled", order="uncertainty", limit=limit)
                 if self.store.get_prediction(im.id, mv.id) is None]
        for iid in stale:
            self._submit(self._predict_if_missing, p.id, iid)
        return len(stale)

    def _val_key(self, p: ProjectInfo, version_id: int) -> tuple:
        return (version_id, tuple(self.store.submitted_annotations(p.id, "val")), tuple(p.class_indices),
                tuple(p.class_names))

    def cached_evaluation(self, project: str | int, version_id: int) -> dict | None:
        """An evaluation of the version on the project's current val set, if one was made."""
        p = self.store.get_project(project)
        with self._cache_lock:
            return self._evaluations.get(self._val_key(p, int(version_id)))

    def evaluate_on_val(self, project: str | int, version_id: int | None = None, progress=None) -> dict:
        """The version (default: the active one) on the project's submitted val images and
        its own label set: one confusion matrix over the project's classes (void
        excluded), per-class IoU with the val pixels of each class, mIoU over the classes
        that occur in the val labels or the predictions."""
        p = self.store.get_project(project)
        mv = self.model_version(p.id) if version_id is None else self.store.get_model_version(int(version_id))
        if mv.project_id != p.id:
            raise UserError("that model version belongs to another project")
        key = self._val_key(p, mv.id)
        with self._cache_lock:
            hit = self._evaluations.get(key)
        if hit is not None:
            return hit
        val = key[1]
        if not val:
            raise UserError("no submitted val images in this project yet: submit some (one in five goes to val) "
                            "or set an image's split to val on the Label screen")
        k = len(p.classes)
        pos = np.full(256, k, dtype=np.int64)              # class index -> row; void and strays -> k (dropped)
        pos[p.class_indices] = np.arange(k)
        conf = np.zeros((k + 1, k + 1), dtype=np.int64)
        for n, (image_id, rev) in enumerate(val):
            if progress is not None:
                progress((n, len(val)), desc=f"predicting val image {n + 1} of {len(val)}")
            gt = self.store.get_annotation(image_id, rev).class_map
            pred, _ = self._predict_map(mv.weights_dir, self.store.load_image(image_id), p)
            conf += np.bincount(pos[gt].ravel() * (k + 1) + pos[pred].ravel(),
                                minlength=(k + 1) ** 2).reshape(k + 1, k + 1)
        conf = conf[:k]                                    # rows: labelled classes only (void excluded)
        pred_void = conf[:, k]                             # labelled pixels predicted as void/unknown
        conf = conf[:, :k]
        tp = np.diag(conf).astype(np.float64)
        gt_px = conf.sum(1) + pred_void
        pred_px = conf.sum(0)
        union = gt_px + pred_px - tp
        iou = np.where(union > 0, tp / np.maximum(union, 1), np.nan)
        present = union > 0
        out = {"version": mv.id, "images": len(val), "names": p.class_names,
               "iou": [None if np.isnan(v) else float(v) for v in iou],
               "val_pixels": [int(v) for v in gt_px], "confusion": conf.tolist(),
               "miou": float(np.nanmean(iou[present])) if present.any() else None,
               "pixel_accuracy": float(tp.sum() / max(gt_px.sum(), 1))}
        with self._cache_lock:
            self._evaluations[key] = out
        return out

    def version_history(self, project: str | int) -> list[dict]:
        """mIoU of each version in creation order: measured on the project's current val
        set where it was evaluated here, else as its fine-tuning job recorded it."""
        rows = []
        for m in self.store.list_model_versions(project):
            ev = self.cached_evaluation(project, m.id)
            if ev is not None and ev["miou"] is not None:
                rows.append({"version": f"v{m.id}", "mIoU": ev["miou"], "measured": "this project's val set now"})
            elif recorded_metrics(m.metrics).get("miou") is not None:
                rows.append({"version": f"v{m.id}", "mIoU": float(recorded_metrics(m.metrics)["miou"]),
                             "measured": "recorded with the version"})
        return rows

    def model_versions(self, project: str) -> list[tuple[str, int]]:
        return [(f"v{m.id}: {m.name or Path(m.weights_dir).name}{' (active)' if m.is_active else ''}", m.id)
                for m in self.store.list_model_versions(project)]

    def activate_model(self, project: str, version_id: int, who: Principal | None = None) -> None:
        mv = self.store.get_model_version(int(version_id))
        if mv.project_id != self.store.get_project(project).id:
            raise UserError("that model version belongs to another project")
        self.store.activate_model_version(mv.id, by=self._who(who).name)

    def model_summary(self, project: str) -> tuple[str, list[tuple[str, float]]]:
        mv = self.model_version(project)
        m = recorded_metrics(mv.metrics)
        lines = [f"**Active model:** v{mv.id} `{mv.weights_dir}`", f"**Inference device:** {self.device_name}"]
        if m.get("miou") is not None:
            lines.append(f"**Validation mIoU** (recorded with the version): {m['miou']:.3f}")
        if m.get("pixel_accuracy") is not None:
            lines.append(f"**Pixel accuracy:** {m['pixel_accuracy']:.3f}")
        names = set(self.store.get_project(project).class_names)
        # only the project's classes: a version's recorded metrics may cover another label set
        per_class = [(k, float(v)) for k, v in (m.get("per_class_iou") or {}).items() if k in names and v is not None]
        if all(v is None for v in m.values()):
            lines.append("No metrics recorded for this version.")
        return "\n\n".join(lines), per_class

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

    # ------------------------------------------------------------------ review

    def _latest_submitted(self, image_id: int) -> int | None:
        revs = [a.revision for a in self.store.list_annotation_revisions(int(image_id)) if a.status == "submitted"]
        return max(revs) if revs else None

    def _review_prediction(self, info, revision: int, mv):
        """The active model's class probabilities, argmax and confidence for submitted
        revision ``revision`` (at most PREDICT_MAX_PIXELS), with the annotation in
        label-set positions: ``(probs, pred, conf, map, (H, W) of the image, project)``."""
        p = self.store.get_project(info.project_id)
        image = self.store.load_image(info.id)
        cm = self.store.get_annotation(info.id, int(revision)).class_map
        h, w = cm.shape
        small, small_cm = image, cm
        if h * w > PREDICT_MAX_PIXELS:
            f = (PREDICT_MAX_PIXELS / (h * w)) ** 0.5
            sh, sw = max(32, int(h * f)), max(32, int(w * f))
            small, small_cm = resize_nearest(image, sh, sw), resize_nearest(cm, sh, sw)
        # project class indices -> positions in the label set the model is asked for
        lut = np.full(256, 255, dtype=np.uint8)
        lut[p.class_indices] = np.arange(len(p.classes), dtype=np.uint8)
        predictor = self._predictor_for_dir(mv.weights_dir)
        with self._lock:
            probs = predictor.logits(small, p.class_names).softmax(0)
        conf, pred = probs.max(0)
        return probs, pred.numpy().astype(np.uint8), conf.numpy(), lut[small_cm], (h, w), p

    def disagreement(self, image_id: int, revision: int) -> tuple[float, np.ndarray, Any]:
        """How much the project's active model confidently disagrees with submitted
        revision ``revision`` (``models.review``): the annotation's own score, the
        (H, W) mask of the disagreeing regions (what a reviewer is shown), and its
        :class:`models.review.Evidence` (for scoring it among the project's other
        submissions). Cached per (image, revision, model version)."""
        from models.review import DEFAULT_RULE, annotation_evidence_from_probs, disagreement_from_prediction

        info = self.store.get_image(int(image_id))
        mv = self.model_version(info.project_id)
        key = (info.id, int(revision), mv.id)
        with self._once(("review", *key)):
            with self._cache_lock:
                hit = self._disagreement.get(key)
                if hit is not None:
                    self._disagreement.move_to_end(key)
                    return hit
            probs, pred, conf, m, (h, w), p = self._review_prediction(info, revision, mv)
            score, mask = disagreement_from_prediction(pred, conf, m, 255, DEFAULT_RULE)
            # the queue's order: PROBS_RULE evidence (BENCHMARKS.md, second reviewer, third round)
            evidence = annotation_evidence_from_probs(probs, m, 255, len(p.classes))
            mask = resize_nearest(mask.astype(np.uint8), h, w).astype(bool)
            hit = (float(score), mask, evidence)
            with self._cache_lock:
                self._disagreement[key] = hit
                while len(self._disagreement) > REVIEW_MASK_CACHE:
                    self._disagreement.popitem(last=False)
            return hit

    def score_submission(self, image_id: int, revision: int) -> float | None:
        """The second reviewer, after a submission (background): the model's evidence
        against the annotation is stored with its revision, and the project's scored
        submissions are scored again among each other (``models.review.queue_scores``:
        the project's usual confusions count little). Returns the new score; None when
        a newer revision came first (it gets its own)."""
        info = self.store.get_image(int(image_id))
        if self._latest_submitted(image_id) != revision or info.revision != revision:
            return None
        _, _, evidence = self.disagreement(image_id, revision)
        if not self.store.set_review_score(image_id, revision, evidence.score(),
                                           {**evidence.to_json(), "rule": EVIDENCE_RULE}):
            return None
        self.rescore_queue(info.project_id)
        return self.store.get_image(image_id).review_score

    def rescore_queue(self, project: str | int) -> int:
        """Score every scored submission of the project again with the statistics of
        the others; returns how many scores changed."""
        from models.review import Evidence, queue_scores

        # evidence made under another rule would skew the statistics: left out (scored again
        # when the image is next submitted)
        rows = [r for r in self.store.review_evidence(project) if r[3].get("rule") == EVIDENCE_RULE]
        if not rows:
            return 0
        evidence = []
        for _, _, _, d in rows:
            try:
                evidence.append(Evidence.from_json(d))
            except ValueError:
                evidence.append(Evidence(0, np.zeros(0, np.intp), np.zeros(0, np.intp), np.zeros(0)))
        k = max([len(self.store.get_project(project).classes)] +
                [int(max(e.top.max(initial=0), e.cls.max(initial=0))) + 1 for e in evidence])
        changed = []
        for (iid, rev, old, _), new in zip(rows, queue_scores(evidence, k)):
            new = min(max(float(new), 0.0), 1.0)
            if old is None or abs(old - new) > 1e-9:
                changed.append((iid, rev, new))
        return self.store.set_review_scores(changed) if changed else 0

    def review_state(self, image_id: int, who: Principal | None = None) -> dict[str, Any] | None:
        """What the Label screen shows about an image's review: its state, the latest
        decision (a rejection's comment goes back to the annotator), and for a reviewer
        the model's disagreement score. None when nothing was ever submitted."""
        who = self._who(who)
        info = self.store.get_image(int(image_id))
        if info.review is None:
            return None
        r = self.store.get_review(info.id)
        out: dict[str, Any] = {"state": info.review, "can_review": who.can(Act.REVIEW),
                               "revision": self._latest_submitted(info.id), "draft_on_top": info.status == "draft"}
        if r is not None:
            out.update(decision=r.decision, comment=r.comment, reviewer=r.reviewer,
                       at=f"{r.created_at:%Y-%m-%d %H:%M} UTC")
        if who.can(Act.REVIEW):
            out["score"] = info.review_score
        return out

    def review_overlay(self, image_id: int, revision: int) -> np.ndarray | None:
        """For a reviewer opening a submission: the mask of where the model disagrees,
        None if it cannot be computed (the reason is logged; reviewing still works)."""
        try:
            return self.disagreement(image_id, revision)[1]
        except Exception:
            log.exception("disagreement of image %s revision %s", image_id, revision)
            return None

    def review(self, loaded: Loaded | None, class_map: np.ndarray | None, decision: str, comment: str,
               who: Principal | None = None) -> Any:
        """Accept or reject the open image's latest submitted revision. Refused while
        the reviewer has unsaved edits (submit them first: the decision is on what the
        annotator submitted) or when there is nothing submitted."""
        who = self._who(who)
        if not who.can(Act.REVIEW):
            raise Forbidden(access.refusal(who, Act.REVIEW))
        if loaded is None:
            raise UserError("no image is open: pick 'to review' in the queue and press Next")
        if self.has_unsaved(loaded, class_map):
            raise UserError("you have unsaved edits: submit them (Ctrl+Enter) or undo them before you accept "
                            "or reject; the decision is on the submitted annotation")
        if decision not in ("accepted", "rejected"):
            raise UserError("decision must be accepted or rejected")
        if decision == "rejected" and not (comment or "").strip():
            raise UserError("say what is wrong: a rejection needs a comment for the annotator")
        rev = self._latest_submitted(loaded.image_id)
        if rev is None:
            raise UserError("nothing to review: this image has no submitted annotation")
        try:
            return self.store.review(loaded.image_id, rev, decision, (comment or "").strip(),
                                     who.name or "reviewer")
        except StorageError as e:
            raise UserError(str(e)) from None

    # ------------------------------------------------------------------ activity and members

    def activity(self, project: str | int, limit: int = 200) -> list[list[Any]]:
        """The project's activity, newest first: when, who, what, on what."""
        def what(a) -> str:
            d = a.details or {}
            if a.action == "review" and d.get("decision"):
                return f"review: {d['decision']}"
            if a.action == "revision_saved" and d.get("status"):
                return f"revision saved ({d['status']})"
            return a.action.replace("_", " ")

        def on(a) -> str:
            d = a.details or {}
            if a.action == "review" and d.get("comment"):
                return f"{a.subject}: “{d['comment']}”"
            return a.subject

        return [[f"{a.created_at:%Y-%m-%d %H:%M:%S}", a.user or "(system)", what(a), on(a)]
                for a in self.store.list_activity(project, limit=limit)]

    def record(self, action: str, project: str | int | None, subject: str, details: dict | None = None,
               who: Principal | None = None) -> None:
        self.store.record_activity(action, self._who(who).name, project, subject, details)

    def members(self, project: str | int) -> str:
        ms = self.store.list_members(project) if project else []
        if not self.uses_accounts():
            return "No accounts yet: everyone who opens the app works as one person (see README, Accounts)."
        if not ms:
            return "No members yet: only admins see this project."
        return "**Members:** " + ", ".join(f"{u.name} ({u.role}{', disabled' if u.disabled else ''})" for u in ms)

    def set_member(self, project: str | int, user: str, add: bool, who: Principal | None = None) -> str:
        if not project:
            raise UserError("pick a project first")
        user = (user or "").strip()
        if not user:
            raise UserError("type the user's name")
        try:
            u = self.store.get_user(user)
            changed = self.store.add_member(project, u.id) if add else self.store.remove_member(project, u.id)
        except NotFoundError as e:
            raise UserError(f"{e} (add the account first, under Accounts below)") from None
        if changed:
            self.record("member_added" if add else "member_removed", project, f"user {u.name}",
                        {"name": u.name, "role": u.role}, who)
        verb = ("added to" if changed else "already a member of") if add else \
            ("removed from" if changed else "not a member of")
        return f"{u.name} {verb} {project}."

    def set_training_source(self, project: str | int, value: str, who: Principal | None = None) -> str:
        """Which annotations jobs and exports use: "accepted", "submitted" or "auto"."""
        if not project:
            raise UserError("pick a project first")
        if value not in ("auto", "accepted", "submitted"):
            raise UserError("the training source is auto, accepted or submitted")
        try:
            self.store.set_training_source(project, None if value == "auto" else value)
        except ValidationError as e:
            raise UserError(str(e)) from None
        now = self.store.effective_training_source(project)
        self.record("training_source_changed", project, f"training source {value}", {"setting": value, "now": now},
                    who)
        return now

    # ------------------------------------------------------------------ accounts (admins)

    def users_table(self) -> list[list[Any]]:
        """Every account: name, role, enabled, projects (admins: all)."""
        member_of: dict[int, list[str]] = {}
        for p in self.store.list_projects():
            for u in self.store.list_members(p.id):
                member_of.setdefault(u.id, []).append(p.name)
        return [[u.name, u.role, "disabled" if u.disabled else "enabled",
                 "(all)" if u.is_admin else ", ".join(member_of.get(u.id, [])) or "-"]
                for u in self.store.list_users()]

    def manage_user(self, action: str, name: str, role: str | None = None, password: str | None = None,
                    who: Principal | None = None) -> str:
        """An admin's change to an account: "add" (with role and password), "set_role",
        "disable", "enable", "password". The password is hashed by storage (argon2) and
        never logged. Returns what happened, for the page."""
        who = self._who(who)
        if not who.can(Act.ADMIN):
            raise Forbidden(access.refusal(who, Act.ADMIN))
        name = (name or "").strip()
        if not name:
            raise UserError("type the account's name")
        try:
            if action == "add":
                u = self.store.add_user(name, password or "", role or "annotator")
                self.record("user_added", None, f"user {u.name}", {"name": u.name, "role": u.role}, who)
                note = f"Account {u.name} ({u.role}) added. Add it to projects with Add member."
                if not self.uses_accounts():
                    note += " Start the app again to require logins."
                return note
            before = self.store.get_user(name)
            if action == "set_role":
                u = self.store.set_role(before.id, role or "")
                if u.role != before.role:
                    self.record("role_changed", None, f"user {u.name}",
                                {"name": u.name, "from": before.role, "to": u.role}, who)
                return f"{u.name} is {u.role}."
            if action in ("disable", "enable"):
                u = (self.store.disable_user if action == "disable" else self.store.enable_user)(before.id)
                if u.disabled != before.disabled:
                    self.record("user_disabled" if u.disabled else "user_enabled", None, f"user {u.name}",
                                {"name": u.name}, who)
                return f"{u.name} is {'disabled' if u.disabled else 'enabled'}."
            if action == "password":
                u = self.store.set_password(before.id, password or "")
                self.record("password_changed", None, f"user {u.name}", {"name": u.name}, who)
                return f"The password of {u.name} was changed."
        except (ValidationError, NotFoundError) as e:
            raise UserError(str(e)) from None
        raise UserError(f"unknown account action {action!r}")
