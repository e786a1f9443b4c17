"""The app's logic as plain functions over the model and storage APIs.

:class:`Studio` holds a :class:`storage.Store` and a
:class:`segui.predicting.PredictorCache`; the Gradio screens (``segui.screens``) only
call it. It is a facade: each concern lives in its own module, as a mixin Studio is
made of:

- ``segui.predicting``: model versions, predictions, the predictor cache;
- ``segui.adapting``: instant adaptation (``instant=True``): submits tune the predictions;
- ``segui.projects``: the demo project, projects and label sets;
- ``segui.uploads``: uploads (files, zips) and exports;
- ``segui.labelling``: the queues, opening, saving, splits, revisions;
- ``segui.labelling_tools``: superpixels, snap, clean-up, text prompts;
- ``segui.heatmaps``: a word's probability map over an image (pixel embeddings cached);
- ``segui.object_tool``: click-to-object, an object's mask from clicks over the same embeddings;
- ``segui.thumbnails``: the image strip's pages and thumbnails (cached in a folder);
- ``segui.try_words``: the demo's words over any image, no project;
- ``segui.versions``: per-class IoU across versions, two versions on one image, the label-set map;
- ``segui.review``: the model as a second reviewer, review decisions;
- ``segui.evaluation``: a version on the project's val images;
- ``segui.explore``: the Explore screen (background per-image metrics, pages, confusion);
- ``segui.finetuning``: fine-tuning jobs from the app (queue, status, cancel);
- ``segui.admin``: logins, permissions, members, accounts, activity.

This module keeps what they share (the stores, the caches, the background worker).
Nothing here imports Gradio, so every handler can be tested without a browser. User
mistakes raise :class:`UserError` (``segui.errors``, a ``ValueError``) with a message
meant to be shown as is; nothing is stored when one is raised.
"""
from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np

from common import limits
from common.splits import VAL_EVERY, auto_split  # noqa: F401  (re-exported: tests, benchmarks)
from models.inference import DEFAULT_MODEL_DIR
from storage import Store

from .adapting import AdaptingMixin
from .admin import ACTIVITY_KINDS, AdminMixin  # noqa: F401  (re-exported: the Activity screen)
from .errors import UserError  # noqa: F401  (re-exported)
from .evaluation import EvaluationMixin
from .explore import ExploreMixin
from .finetuning import FinetuneMixin
from .heatmaps import HeatmapMixin
from .labelling import FILTERS, LabellingMixin, Loaded, Ready, SaveResult  # noqa: F401  (re-exported)
from .labelling_tools import ToolsMixin
from .object_tool import ObjectToolMixin
from .predicting import PREDICT_MAX_PIXELS, ModelMixin, PredictorCache, model_metrics  # noqa: F401
from .projects import DEMO_AUTHOR, DEMO_DIR, DEMO_PROJECT, ProjectsMixin, parse_classes  # noqa: F401
from .review import ReviewMixin
from .thumbnails import ThumbnailsMixin
from .try_words import TryWordsMixin
from .versions import VersionsMixin
from .uploads import UploadReport, UploadsMixin  # noqa: F401  (re-exported)

log = logging.getLogger(__name__)

APP_MAX_MEGAPIXELS = limits.MAX_IMAGE_MEGAPIXELS   # bigger uploads are refused (SEGUI_MAX_IMAGE_MEGAPIXELS)


class Studio(AdminMixin, AdaptingMixin, ModelMixin, ProjectsMixin, UploadsMixin, LabellingMixin, ToolsMixin, ReviewMixin,
             EvaluationMixin, FinetuneMixin, HeatmapMixin, ObjectToolMixin, ThumbnailsMixin,
             TryWordsMixin, VersionsMixin, ExploreMixin):
    """Store + predictors; every method is one user action.

    ``predictors``: the cache of loaded models to use (default: a new one on
    ``device``); studios given the same cache share its loaded models. ``instant``:
    instant adaptation (``segui.adapting``): each submitted annotation tunes the class
    vectors the next predictions use, in the background (off by default). ``input_scale``:
    the network sees each image resized by this (the app's ``--predict-scale``), ``flip``:
    and mirrored, the two views averaged (``--predict-flip``); both ignored when
    ``predictors`` is given: the cache's own."""

    def __init__(self, store: Store, model_dir: str | Path | None = None, device: str = "auto",
                 predictors: PredictorCache | None = None, instant: bool = False, input_scale: float = 1.0,
                 flip: bool = False):
        self.store = store
        self.store.max_image_megapixels = min(self.store.max_image_megapixels, APP_MAX_MEGAPIXELS)
        self.default_model_dir = Path(model_dir) if model_dir else DEFAULT_MODEL_DIR
        self.predictors = predictors if predictors is not None else PredictorCache(device, input_scale, flip)
        self.device = self.predictors.device
        self._cache_lock = threading.RLock()     # the caches below and the worker
        self._segments: OrderedDict[int, np.ndarray] = OrderedDict()
        self._ready: OrderedDict[int, Ready] = OrderedDict()
        self._thin: dict[tuple, tuple[float, list[int], int]] = {}
        self._evaluations: dict[tuple, dict] = {}
        self._fresh_for: dict[int, int] = {}     # project id -> model version its queue was predicted with
        self._review_checked: dict[int, float] = {}   # project id -> when _review_sync last looked
        self._label_sets: dict[int, int] = {}    # project id -> how often its class words changed (this process)
        self._work_locks: dict[tuple, threading.Lock] = {}
        self._jobs: queue.Queue = queue.Queue()
        self._worker: threading.Thread | None = None
        self._disagreement: OrderedDict[tuple, tuple[float, np.ndarray]] = OrderedDict()
        # this process's id: a page that sees another one knows the server restarted and
        # lost its session's open image (the canvas's heartbeat, ``alive``), and reopens it
        self.boot = secrets.token_hex(8)
        self.single_user: str | None = None      # --auth user:password: that one person, an admin
        self._accounts: bool | None = None      # decided once: see uses_accounts
        self._init_adapting(instant)

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

    def _once(self, key: tuple) -> threading.Lock:
        """A lock per piece of work, so that the prefetch thread and a request asking
        for the same image's superpixels or payload compute it once, not twice."""
        with self._cache_lock:
            return self._work_locks.setdefault(key, threading.Lock())

    def _lru_lookup(self, cache: OrderedDict, key, make, size: int, once: tuple):
        """``(value, cached)`` from the LRU ``cache`` (at most ``size`` entries), made by
        ``make()`` under the work lock ``once`` when missing: one computation per lock,
        even when two requests ask at once."""
        with self._cache_lock:
            if key in cache:
                cache.move_to_end(key)
                return cache[key], True
        with self._once(once):
            with self._cache_lock:
                if key in cache:
                    return cache[key], True
            value = make()
            with self._cache_lock:
                cache[key] = value
                cache.move_to_end(key)
                while len(cache) > size:
                    cache.popitem(last=False)
        return value, False
