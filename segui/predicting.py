"""Predictions: the model versions of a project and a cache of loaded predictors.

:class:`PredictorCache` holds one loaded :class:`models.inference.Predictor` per
weights folder and runs one inference at a time; a :class:`segui.handlers.Studio`
is given one (tests share one across studios). :class:`ModelMixin` is the part of
Studio about models: the active version, predictions stored per image, warm-up,
predicting the queue again after a model change, switching versions.
"""
from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from models.inference import Predictor
from models.metrics import recorded_metrics
from storage import ProjectInfo

from .access import Principal
from .errors import UserError
from .imageops import resize_nearest

log = logging.getLogger(__name__)

PREDICT_MAX_PIXELS = 1_000_000     # larger images are predicted downscaled, mask upscaled back
REFRESH_LIMIT = 200                # unlabelled images predicted again after the active model changed
EMBED_KEEP = 8                     # pixel embeddings kept of the images last opened or prepared ahead


def model_metrics(weights_dir: str | Path) -> dict[str, Any] | None:
    try:
        cfg = json.loads((Path(weights_dir) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return cfg.get("metrics")


def predict_size(height: int, width: int) -> tuple[int, int]:
    """The size an image is predicted at: as it is up to PREDICT_MAX_PIXELS, else
    scaled down to about that many pixels (the mask is scaled back up)."""
    if height * width <= PREDICT_MAX_PIXELS:
        return height, width
    s = (PREDICT_MAX_PIXELS / (height * width)) ** 0.5
    return max(32, int(height * s)), max(32, int(width * s))


def model_positions(p: ProjectInfo, missing: int = 255) -> np.ndarray:
    """Project class index -> its position in the label set the model is asked for
    (``p.class_names``); void and unknown indices -> ``missing``. A 256-entry table."""
    lut = np.full(256, missing, dtype=np.uint8)
    lut[p.class_indices] = np.arange(len(p.classes), dtype=np.uint8)
    return lut


def project_indices(p: ProjectInfo) -> np.ndarray:
    """The inverse table: model output position -> project class index (others void)."""
    lut = np.full(256, p.ignore_index, dtype=np.uint8)
    lut[:len(p.classes)] = p.class_indices
    return lut


class PredictorCache:
    """One loaded predictor per weights folder, and one inference at a time (two would
    only fight over the cores). Studios given the same cache share its models."""

    def __init__(self, device: str = "auto", input_scale: float = 1.0, flip: bool = False):
        from models.inference import check_input_scale

        self.device = device
        # the network sees each image (at predict_size) resized by this: the app's --predict-scale
        self.input_scale = check_input_scale(input_scale)
        # each image also seen mirrored, the views averaged: the app's --predict-flip
        self.flip = bool(flip)
        self._predictors: dict[str, Predictor] = {}
        self._hidden: dict[tuple, list[str]] = {}
        self._embeddings: OrderedDict = OrderedDict()   # (folder, names, scale, flip, image digest) -> PixelEmbeddings
        self._lock = threading.Lock()

    def get(self, weights_dir: str | Path) -> Predictor:
        key = str(Path(weights_dir).resolve())
        with self._lock:
            p = self._predictors.get(key)
            if p is None:
                p = Predictor.load(key, self.device, input_scale=self.input_scale, flip=self.flip)
                self._predictors[key] = p
            return p

    def class_map(self, weights_dir: str | Path, image: np.ndarray, names: list[str]) -> tuple[np.ndarray, float]:
        """The argmax map at the image's size (positions in ``names``) and the
        prediction's uncertainty; predicted at :func:`predict_size`."""
        cm, uncertainty, _ = self.class_map_entropy(weights_dir, image, names)
        return cm, uncertainty

    def class_map_entropy(self, weights_dir: str | Path, image: np.ndarray,
                          names: list[str]) -> tuple[np.ndarray, float, float | None]:
        """:meth:`class_map` and the prediction's mean normalised entropy (Explore)."""
        predictor = self.get(weights_dir)
        h, w = image.shape[:2]
        small = resize_nearest(image, *predict_size(h, w))
        with self._lock:
            pred = predictor.predict(small, names)
        return resize_nearest(pred.class_map, h, w), pred.uncertainty, pred.entropy

    def embed(self, weights_dir: str | Path, image: np.ndarray, names: list[str], scale: float | None = None,
              flip: bool | None = None, keep: bool = False):
        """The frozen network's pixel embeddings (``models.adapt.embed_image``) of the
        image at :func:`predict_size`, for instant adaptation: the same forward pass as
        :meth:`class_map`, under the same lock. ``scale``: seen resized by this (> 1: a
        finer grid); None: as the predictions see it (the cache's ``input_scale``).
        ``flip``: with the mirrored view averaged in; None: as the predictions (``flip``).
        ``keep``: remember them (the last ``EMBED_KEEP`` images kept so): the image opened
        now is learnt at its submit, and the one prepared ahead predicted again after it,
        without another forward pass. Found or not, the caller gets its own copy."""
        from models.adapt import embed_image

        predictor = self.get(weights_dir)
        h, w = image.shape[:2]
        small = resize_nearest(image, *predict_size(h, w))
        key = (str(Path(weights_dir).resolve()), tuple(names), scale, flip, small.shape,
               hashlib.blake2b(np.ascontiguousarray(small).data, digest_size=16).digest())
        with self._lock:
            emb = self._embeddings.get(key)
            if emb is None:
                emb = embed_image(predictor, small, names, with_base_map=False, scale=scale, flip=flip)
                if keep:
                    self._embeddings[key] = emb
            if key in self._embeddings:
                self._embeddings.move_to_end(key)
                while len(self._embeddings) > EMBED_KEEP:
                    self._embeddings.popitem(last=False)
        return replace(emb)     # (callers set base_map on theirs)

    def adaptation(self, weights_dir: str | Path, names: list[str], ignore_index: int, settings=None):
        """A new ``models.adapt.InstantAdaptation`` on the folder's model (its word
        vectors are a text-encoder pass: under the lock)."""
        from models.adapt import InstantAdaptation

        predictor = self.get(weights_dir)
        with self._lock:
            return InstantAdaptation(predictor, names, ignore_index, settings)

    def word_vectors(self, weights_dir: str | Path, names: list[str]):
        """The label set's un-tuned ``models.adapt.Adapter`` (its class vectors from the
        words), under the lock (a text-encoder pass the first time)."""
        from models.adapt import word_adapter

        predictor = self.get(weights_dir)
        with self._lock:
            return word_adapter(predictor, names)

    def hidden_words(self, weights_dir: str | Path, names: list[str]) -> list[str]:
        """The hidden words (``models.open_set``) the folder's model is asked for after
        ``names`` when a project leaves the pixels that are none of them unlabelled; a
        text-encoder pass under the lock the first time, then cached."""
        from models.open_set import hidden_words

        key = (str(Path(weights_dir).resolve()), tuple(names))
        words = self._hidden.get(key)
        if words is None:
            predictor = self.get(weights_dir)
            with self._lock:
                words = self._hidden[key] = hidden_words(predictor, list(names))
        return list(words)

    def phrase_vector(self, weights_dir: str | Path, phrase: str):
        """(E,) the model's class vector of a typed phrase (``models.heatmap``), under the lock."""
        from models.heatmap import phrase_vector

        predictor = self.get(weights_dir)
        with self._lock:
            return phrase_vector(predictor, phrase)

    def probabilities(self, weights_dir: str | Path, image: np.ndarray, names: list[str]):
        """(K, H, W) class probabilities (a torch tensor) of ``image`` as given."""
        predictor = self.get(weights_dir)
        with self._lock:
            return predictor.logits(image, names).softmax(0)


class ModelMixin:
    """Studio's models and predictions."""

    def _predictor_for_dir(self, weights_dir: str | Path) -> Predictor:
        return self.predictors.get(weights_dir)

    @property
    def device_name(self) -> str:
        name = self._predictor_for_dir(self.default_model_dir).device_name
        scale, flip = self.predictors.input_scale, self.predictors.flip
        return (name + (f", input {scale:g}x" if scale != 1.0 else "")
                + (", each image also seen mirrored" if flip else ""))

    def relink_shipped_model(self) -> list[int]:
        """At start: model versions whose folder is gone but was the shipped model's (same
        folder name as the app's model, e.g. ``camvid``: the code moved, or a backup was
        restored on another machine) point to the app's model again, so the projects that
        start from it keep predicting. -> the versions moved (logged)."""
        moved = []
        if not (Path(self.default_model_dir) / "config.json").is_file():
            return moved
        for p in self.store.list_projects(include_removed=True):
            for mv in self.store.list_model_versions(p.id):
                gone = Path(mv.weights_dir)
                if not gone.exists() and gone.name == Path(self.default_model_dir).name and mv.parent_id is None:
                    self.store.move_model_version(mv.id, self.default_model_dir)
                    log.warning("model version %s of project %r: its folder %s is gone; it is the shipped "
                                "model, now read from %s", mv.id, p.name, gone, self.default_model_dir)
                    moved.append(mv.id)
        return moved

    def model_version(self, project: str | int):
        mv = self.store.active_model_version(project)
        if mv is None:
            mv = self.store.add_model_version(project, str(self.default_model_dir),
                                              metrics=model_metrics(self.default_model_dir),
                                              activate=True, name=self.default_model_dir.name)
        return mv

    def model_words(self, p: ProjectInfo, weights_dir: str | Path) -> list[str]:
        """The words the model is asked for: the project's classes, then, when the project
        leaves the pixels that are none of them unlabelled, the hidden words
        (``models.open_set``; positions past the classes are void: :func:`project_indices`)."""
        names = list(p.class_names)
        if p.others_unlabelled:
            names += self.predictors.hidden_words(weights_dir, names)
        return names

    def predict(self, project: str | int, image_id: int, image: np.ndarray | None = None,
                store: bool = True, keep: bool = False) -> np.ndarray:
        """Predict with the project's active model and label set (project indices).
        ``keep``: an image opened or prepared ahead, whose pixel embeddings the instant layer
        will want again (``PredictorCache.embed``)."""
        with self._cache_lock:          # before the words are read (label_set_changed)
            words = dict(self._label_sets)
        p = self.store.get_project(project)
        mv = self.model_version(p.id)
        if image is None:
            image = self.store.load_image(image_id)
        adapted, unc, corrected, fit = (self._adapted_map(p, mv, image, keep) if getattr(self, "instant", False)
                                        else (None, 0.0, 0, -1))
        entropy = None
        if adapted is not None:     # instant adaptation on, with corrected images: its adapter
            cm = project_indices(p)[adapted]
        else:
            asked = self.model_words(p, mv.weights_dir)
            cm, unc, entropy = self.predictors.class_map_entropy(mv.weights_dir, image, asked)
            cm = project_indices(p)[cm]
        if store:
            with self._cache_lock:      # not if the words changed meanwhile: it would show the old ones
                if self._label_sets.get(p.id, 0) == words.get(p.id, 0):
                    self.store.save_prediction(image_id, mv.id, cm, unc, entropy=entropy)
                    # shown with the image ("adapted to N corrections"); which fit of the
                    # instant layer made it (_instant_stale, the page's Nav.newerFit)
                    self._prediction_stored(image_id, mv.id, corrected if adapted is not None else 0, fit)
        return cm

    def _predict_map(self, weights_dir: str, image: np.ndarray, p: ProjectInfo,
                     extra: list[str] | None = None) -> tuple[np.ndarray, float]:
        if extra:   # positions in the names: the caller reads the extra ones itself
            return self.predictors.class_map(weights_dir, image, p.class_names + list(extra))
        cm, uncertainty = self.predictors.class_map(weights_dir, image, self.model_words(p, weights_dir))
        return project_indices(p)[cm], uncertainty

    def warm_up(self, project: str | int | None = None, words: bool = True) -> None:
        """Load the active model of each project (or of one) and encode its label set
        with BERT once, so the first upload shows its mask without that delay.
        ``words=False``: only load the models (a fraction of a second; a broken weights
        folder fails here): BERT (about 6 s, most of it importing transformers) is left
        to a later call or the first prediction (the app starts it in the background)."""
        tiny = np.zeros((64, 64, 3), np.uint8)
        projects = self.store.list_projects() if project is None else [self.store.get_project(project)]
        for p in projects:
            weights = self.model_version(p.id).weights_dir
            if words:
                self._predict_map(weights, tiny, p)
            else:
                self.predictors.get(weights)

    def warm_up_soon(self, project: str | int) -> None:
        """:meth:`warm_up` of one project on the background thread: a project picked on
        the Label screen opens its image at once (a stored mask needs no model) instead
        of waiting for its label set's BERT encoding (seconds on a first pick). By id: the
        project may be renamed before the thread gets to it."""
        self._submit(self.warm_up, self.store.get_project(project).id)

    def _predict_if_missing(self, project_id: int, image_id: int) -> None:
        mv = self.model_version(project_id)
        if self.store.get_prediction(image_id, mv.id) is None:
            self.predict(project_id, image_id)

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

    def label_set_changed(self, project: str | int) -> int:
        """The project's class words changed (a class added or renamed, or the words the
        model is asked for: :meth:`set_others_unlabelled`): its stored
        predictions were made for the old words and would never show the new class.
        Forget them and the prepared views of its images, and predict the queue's
        unlabelled images again in the background, most uncertain first (any other
        image is predicted when it is opened). Annotations are untouched. -> images queued."""
        p = self.store.get_project(project)
        with self._cache_lock:          # a prediction under way with the old words is not stored
            self._label_sets[p.id] = self._label_sets.get(p.id, 0) + 1
            for iid in [i for i, r in self._ready.items() if r.loaded.project_id == p.id]:
                del self._ready[iid]
            self._fresh_for.pop(p.id, None)
        self.store.delete_predictions(p.id)
        return self.refresh_predictions(p.id)

    def model_versions(self, project: str) -> list[tuple[str, int]]:
        return [(f"v{m.id}: {m.name or Path(m.weights_dir).name}{' (active)' if m.is_active else ''}", m.id)
                for m in self.store.list_model_versions(project)]

    def activate_model(self, project: str, version_id: int, who: Principal | None = None) -> None:
        mv = self.store.get_model_version(int(version_id))
        if mv.project_id != self.store.get_project(project).id:
            raise UserError("that model version belongs to another project")
        self.store.activate_model_version(mv.id, by=self._who(who).actor)

    def model_summary(self, project: str) -> tuple[str, list[tuple[str, float]]]:
        mv = self.model_version(project)
        m = recorded_metrics(mv.metrics)
        lines = [f"**Active model:** v{mv.id} `{mv.weights_dir}`", f"**Inference device:** {self.device_name}"]
        names = set(self.store.get_project(project).class_names)
        recorded = {k for k, v in (m.get("per_class_iou") or {}).items() if v is not None}
        if m.get("miou") is not None:
            where = "recorded with the version"
            if recorded and recorded != names:   # e.g. the shipped model's CamVid figures in a new project
                where += (f" on its own val images and {len(recorded)} classes, {len(recorded & names)} of them "
                          "this project's; neither this figure nor the chart is measured on this project: "
                          "'Evaluate on this project's val images' is")
            lines.append(f"**Validation mIoU** ({where}): {m['miou']:.3f}")
        if m.get("pixel_accuracy") is not None:
            lines.append(f"**Pixel accuracy:** {m['pixel_accuracy']:.3f}")
        # only the project's classes: a version's recorded metrics may cover another label set
        per_class = [(k, float(v)) for k, v in (m.get("per_class_iou") or {}).items() if k in names and v is not None]
        if all(v is None for v in m.values()):
            lines.append("No metrics recorded for this version.")
        return "\n\n".join(lines), per_class
