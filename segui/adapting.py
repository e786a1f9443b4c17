"""Instant adaptation in the app (issue 20, part 1): each submitted annotation improves
the next predictions within about a second, with no training job.

:class:`AdaptingMixin` is the part of :class:`segui.handlers.Studio` that keeps one
:class:`models.adapt.InstantAdaptation` session per project, for the project's active
model version and label set. It is off unless the Studio is made with ``instant=True``
(the app's ``--instant-adaptation``); off, nothing here runs and predictions are the
model's own.

- On a submit (:meth:`_instant_submitted`, called by ``save_edits``) the background
  worker embeds the image (stored image at ``predict_size``, one forward pass), adds its
  submitted class map (project indices -> model positions, void -> ignore), fits the
  adapter (< 0.5 s) and then predicts the queue's unlabelled images again, most
  uncertain first, one image per background task, so that Next shows the adapted masks
  and other background work (prefetch, review scores) keeps its turn. A later submit
  makes a pass still running stop; the new one starts from the top of the queue.
- ``ModelMixin.predict`` uses the session's adapter once it has examples.
- A session is rebuilt lazily, in the background, when it is missing (app restart) or
  its model version or label set changed (a promoted job, a switch by hand): from the
  project's submitted annotations, the most recent ``settings.max_images`` (by image id),
  a few images per background task.
- Annotations submitted another way while the app runs (``python -m storage import-dataset``,
  a second app process on the same database) are learnt the same way: each image opened
  makes the background worker look for submitted revisions the session has not learnt
  (:meth:`_instant_sync`, at most every ``SYNC_EVERY_S`` per project) and add them a few
  per task, then fit and predict the queue again.
- Each image predicted again gets a new mark (:meth:`_prediction_mark`), part of the
  prepared-ahead image's key, so ``prepare`` never serves a prediction made before.
- The next image reflects the submit: Submit & next waits (at most ``INSTANT_WAIT_S``) until
  the worker has learnt the submitted image (:meth:`instant_wait`), and ``prepare`` predicts
  an unlabelled image again when its stored prediction is older than the adapter
  (:meth:`_instant_stale`), so the image opened next is predicted with that correction.

Thread safety: the sessions are changed only by the one background worker; requests
only read a session's current adapter (replaced as a whole by ``update``). Forward passes
go through :class:`segui.predicting.PredictorCache`, one at a time under its lock.
"""
from __future__ import annotations

import itertools
import logging
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from models.adapt import AdaptSettings, InstantAdaptation  # noqa: F401  (InstantAdaptation: types)
from models.open_set import void_targets

from .imageops import resize_nearest
from .predicting import REFRESH_LIMIT, model_positions

log = logging.getLogger(__name__)

IGNORE = 255                # model_positions' index for void and unknown classes
REBUILD_STEP = 4            # submitted images embedded per background task when rebuilding
SYNC_EVERY_S = 5.0          # how often (at most) an opened image makes the worker look for outside submissions
INSTANT_WAIT_S = 1.5        # Submit & next waits at most this long for the adapter to learn the submit


_FITS = itertools.count(1)  # every adapter a slot holds gets the next number: stored predictions name theirs


@dataclass
class _Slot:
    """A project's session and its state."""
    key: tuple                                   # (project id, model version id, class names)
    weights_dir: str
    session: InstantAdaptation
    pending: list = field(default_factory=list)  # (image id, revision) still to add (rebuild)
    updates: int = 0                             # adapter fits so far (the re-predict pass's generation)
    fit: int = 0                                 # this adapter's number among all of the process's (see _FITS)
    last: dict = field(default_factory=dict)     # the last update: images, seconds, latency
    learnt: dict = field(default_factory=dict)   # image id -> the submitted revision the session has
    checked: float = 0.0                         # when _instant_sync last looked (time.monotonic)
    rebuilt: bool = False                        # the submissions it started with are learnt (fitted)


class AdaptingMixin:
    """Studio's instant adaptation (one session per project, in the background)."""

    instant: bool = False
    adapt_settings: AdaptSettings | None = None

    def _init_adapting(self, instant: bool, settings: AdaptSettings | None = None) -> None:
        self.instant = bool(instant)
        self.adapt_settings = settings or AdaptSettings()
        self._slots: dict[int, _Slot] = {}
        self._building: set[tuple] = set()       # keys whose (re)build is queued
        self._marks: dict[int, int] = {}         # image id -> re-predictions by the adapter
        self._adapted: dict[int, tuple[int, int]] = {}   # image id -> (model version, corrected images) of its stored prediction
        self._predicted_at: dict[int, int] = {}  # image id -> the adapter (slot.fit) that predicted it
        self._mark_counter = 0
        self._learning: dict[int, int] = {}      # image id -> submitted revision queued to be learnt
        self._learnt_cv = threading.Condition()  # told when the worker is done with a queued submit

    # ------------------------------------------------------------------ what others read

    def _prediction_mark(self, image_id: int) -> int:
        """Changes each time the adapter stores a new prediction of the image (part of
        the prepared-ahead image's key)."""
        return self._marks.get(int(image_id), 0) if self.instant else 0

    def _slot_key(self, p, mv) -> tuple:
        return (p.id, mv.id, tuple(self.model_words(p, mv.weights_dir)))

    def instant_session(self, project) -> InstantAdaptation | None:
        """The project's current session (None: off, or not built yet for the active
        model version and label set)."""
        if not self.instant:
            return None
        p = self.store.get_project(project)
        slot = self._slots.get(p.id)
        if slot is None or slot.key != self._slot_key(p, self.model_version(p.id)):
            return None
        return slot.session

    def instant_status(self, project) -> dict:
        """The last update of the project's session: images, seconds (fitting),
        latency (submit to adapter updated); empty when there was none."""
        if not self.instant:
            return {}
        slot = self._slots.get(self.store.get_project(project).id)
        return dict(slot.last) if slot is not None else {}

    def _current_slot(self, p, mv) -> _Slot | None:
        """The project's slot for model version ``mv`` and its words; None when it is not
        there yet, its build then queued (at most once: ``_instant_schedule_build``)."""
        key = self._slot_key(p, mv)
        with self._cache_lock:
            slot = self._slots.get(p.id)
        if slot is None or slot.key != key:
            self._instant_schedule_build(p.id, key)
            return None
        return slot

    def _adapted_map(self, p, mv, image: np.ndarray, keep: bool = False) -> tuple[np.ndarray | None, float, int, int]:
        """The adapted class map (positions in p.class_names), uncertainty, the number of
        corrected images the adapter learnt from and the adapter fit that made it
        (``slot.fit``); the map is None (the model's own prediction is wanted) when the
        session is not there (its build is queued, fit -1) or has no examples yet."""
        slot = self._current_slot(p, mv)
        if slot is None:
            return None, 0.0, 0, -1
        fit = slot.fit              # read before the adapter: a fit between the two reads looks stale, never fresh
        adapter = slot.session.adapter
        if not adapter.images:
            return None, 0.0, 0, fit
        emb = self.predictors.embed(mv.weights_dir, image, list(adapter.class_names), keep=keep)
        pred = adapter.predict(emb)
        h, w = image.shape[:2]
        return resize_nearest(pred.class_map, h, w), pred.uncertainty, int(adapter.images), fit

    def _instant_stale(self, project_id: int, image_id: int, version_id: int | None = None) -> bool:
        """The image's stored prediction was made before the project's current adapter
        (a submit since, or not made in this process) and that adapter would change it:
        it has examples, or the stored one came from an adapter. With ``version_id`` (the
        active model version), never while the session is for another version (its rebuild
        is under way: predicting again would give the model's own prediction each time)."""
        if not self.instant:
            return False
        slot = self._slots.get(project_id)
        if slot is None or (version_id is not None and slot.key[1] != version_id):
            return False
        image_id = int(image_id)
        if self._predicted_at.get(image_id, -1) == slot.fit:
            return False
        return bool(slot.session.adapter.images) or image_id in self._adapted

    def instant_adapter(self, project_id: int, version_id: int, names: list[str]):
        """The project's tuned adapter (``models.adapt.Adapter``) when the instant layer has
        learnt from corrections for model version ``version_id`` and exactly the words
        ``names`` (none hidden: ``others_unlabelled`` conditions the network on more
        words), else None. The word and uncertainty maps use it, so they show what made
        the mask on screen."""
        if not self.instant:
            return None
        slot = self._slots.get(int(project_id))
        if slot is None or slot.key[1] != version_id:
            return None
        adapter = slot.session.adapter
        return adapter if adapter.images and list(adapter.class_names) == list(names) else None

    def _instant_warm(self, loaded) -> None:
        """(Worker, prefetch) keep the pixel embeddings of an image the labeller is about to
        see (``PredictorCache.embed``): its submit is learnt, and it is predicted again after
        another submit, without a forward pass on the way to the next image."""
        if not self.instant or loaded.status != "unlabelled":
            return
        slot = self._slots.get(loaded.project_id)
        if slot is not None and slot.session.adapter.images:
            self.predictors.embed(slot.weights_dir, loaded.image, list(slot.session.class_names), keep=True)

    def instant_wait(self, image_id: int, timeout: float = INSTANT_WAIT_S) -> bool:
        """Wait until the background worker is done learning the image's queued submit
        (at most ``timeout`` seconds; at once when none is queued or the layer is off).
        -> True when it is done."""
        if not self.instant:
            return True
        with self._learnt_cv:
            return self._learnt_cv.wait_for(lambda: int(image_id) not in self._learning, timeout)

    def active_version(self, project: str | int) -> dict | None:
        """The project's active model version as the page names it: {"id", "name": "vN",
        "ready", "fit"}, None before the project has one (nothing is created: the heartbeat
        asks). ``ready``: its predictions are what the page would be given now, i.e. the
        instant layer is off or rebuilt on it (a rebuild is started here when none is under
        way, so that a promoted job's version becomes ready without anyone opening an image).
        ``fit``: the instant layer's current adapter (its number, as :meth:`predicted_fit`
        gives it for an image) when it is ready and has learnt from corrections, else None:
        a page whose open prediction came from another one opens it again (``Nav.newerFit``)."""
        mv = self.store.active_model_version(project)
        if mv is None:
            return None
        ready, fit = True, None
        if self.instant:
            slot = self._current_slot(self.store.get_project(mv.project_id), mv)
            ready = slot is not None and slot.rebuilt
            if ready and slot.session.adapter.images:
                fit = slot.fit
        return {"id": mv.id, "name": f"v{mv.id}", "ready": ready, "fit": fit}

    def _prediction_stored(self, image_id: int, version_id: int | None = None, corrected: int = 0,
                           fit: int = -1) -> None:
        """Remember what made the image's stored prediction (what :meth:`adapted_from` and
        :meth:`predicted_fit` tell): the instant layer's adapter ``fit`` having learnt from
        ``corrected`` images for model version ``version_id``; ``corrected`` 0: the model's
        own (``fit``: the adapter it is current with, -1 none)."""
        image_id = int(image_id)
        if corrected:
            self._adapted[image_id] = (version_id, corrected)
        else:
            self._adapted.pop(image_id, None)
        if fit >= 0:
            self._predicted_at[image_id] = fit
        else:
            self._predicted_at.pop(image_id, None)

    def predicted_fit(self, image_id: int) -> int:
        """The instant layer's adapter (``_Slot.fit``) that made the image's stored
        prediction; -1 when none did (the model's own) or it was made before this process."""
        return self._predicted_at.get(int(image_id), -1) if self.instant else -1

    def adapted_from(self, image_id: int, version_id: int | None = None) -> int:
        """How many corrected images the instant layer had learnt from when it made the
        image's stored prediction (0: the model's own, or not made in this process); with
        ``version_id``, 0 unless that version's prediction is the one meant."""
        if not self.instant:
            return 0
        version, corrected = self._adapted.get(int(image_id), (None, 0))
        return corrected if version_id is None or version == version_id else 0

    # ------------------------------------------------------------------ background work

    def _instant_schedule_build(self, project_id: int, key: tuple) -> None:
        with self._cache_lock:
            if key in self._building:
                return
            self._building.add(key)
        self._submit(self._instant_ensure, project_id)

    def _instant_ensure(self, project_id: int) -> _Slot:
        """(Worker) the project's slot for its active version and label set; a new one
        (word vectors, the submitted images queued to be added) when that changed."""
        p = self.store.get_project(project_id)
        mv = self.model_version(p.id)
        key = self._slot_key(p, mv)
        slot = self._slots.get(p.id)
        if slot is not None and slot.key == key:
            with self._cache_lock:
                self._building.discard(key)
            return slot
        session = self.predictors.adaptation(mv.weights_dir, list(key[2]), IGNORE, self.adapt_settings)
        done = self.store.submitted_annotations(p.id, split=None, source="submitted")
        pending = done[-session.settings.max_images:]
        slot = _Slot(key, mv.weights_dir, session, pending=pending, fit=next(_FITS), rebuilt=not pending)
        with self._cache_lock:
            self._slots[p.id] = slot
            self._building.discard(key)
        if pending:
            log.info("instant adaptation: rebuilding project %s on model v%s from %d image(s)",
                     p.id, mv.id, len(pending))
            self._submit(self._instant_rebuild_step, p.id, key)
        return slot

    def _instant_add(self, slot: _Slot, p, image_id: int, revision: int) -> bool:
        """(Worker) embed one submitted image and cache its sampled pixels."""
        try:
            label = self.store.get_annotation(image_id, revision).class_map
            image = self.store.load_image(image_id)
        except Exception:       # removed meanwhile: nothing to learn from
            log.info("instant adaptation: image %s revision %s is gone", image_id, revision)
            return False
        if label is None:
            return False
        words = slot.session.class_names
        emb = self.predictors.embed(slot.weights_dir, image, words)
        logits = slot.session.base.logits(emb)      # (once: the map below and the hidden words' targets)
        emb.base_map = slot.session.base.predict(emb, logits=logits).class_map   # where the model was wrong
        positions = model_positions(p, IGNORE)[label]
        positions = resize_nearest(positions, *emb.size)
        k = len(p.classes)
        if len(words) > k:      # hidden words (others unlabelled): what was left void is "none of them"
            positions = void_targets(positions, logits[k:], k, IGNORE)
        slot.session.add(int(image_id), emb, positions)
        slot.learnt[int(image_id)] = int(revision)
        return True

    def _instant_update(self, slot: _Slot, since: float | None = None) -> None:
        slot.session.update()
        slot.fit = next(_FITS)
        slot.updates += 1
        slot.last = {"images": len(slot.session.examples), "seconds": slot.session.last_update_seconds,
                     "latency": (time.perf_counter() - since) if since is not None else None,
                     "at": time.time()}

    def _instant_rebuild_step(self, project_id: int, key: tuple) -> None:
        slot = self._slots.get(project_id)
        if slot is None or slot.key != key or (not slot.pending and slot.rebuilt):
            return
        p = self.store.get_project(project_id)
        step, slot.pending = slot.pending[:REBUILD_STEP], slot.pending[REBUILD_STEP:]
        for iid, rev in step:
            if slot.learnt.get(iid, -1) < rev:     # a submit meanwhile added this or a newer revision
                self._instant_add(slot, p, iid, rev)
        if slot.pending:
            self._submit(self._instant_rebuild_step, project_id, key)
        else:
            self._instant_update(slot)
            slot.rebuilt = True
            self._instant_repredict_queue(slot)

    def instant_relearn(self, project) -> None:
        """The project's submitted annotations came in another way than a submit (the demo's
        labelled images): rebuild its session from all of them in the background; the queue
        is predicted again with it at the end."""
        if self.instant:
            self._submit(self._instant_relearn, self.store.get_project(project).id)

    def _instant_relearn(self, project_id: int) -> None:
        with self._cache_lock:      # (worker) one task at a time: no other build runs meanwhile
            self._slots.pop(project_id, None)
        self._instant_ensure(project_id)

    def instant_forget(self, image_id: int) -> None:
        """An image left the project (``remove_image``): its pixels stop teaching the adapter,
        which is fitted again without them and the queue predicted again (background)."""
        if self.instant:
            self._submit(self._instant_forget, int(image_id))

    def _instant_forget(self, image_id: int) -> None:
        slot = self._slots.get(self.store.get_image(image_id).project_id)
        if slot is None:        # not built yet: its build reads the project's submissions, not this one
            return
        slot.pending = [(i, r) for i, r in slot.pending if i != image_id]
        slot.learnt.pop(image_id, None)
        if image_id in slot.session.examples:
            slot.session.remove(image_id)
            self._instant_update(slot)
            self._instant_repredict_queue(slot)

    def instant_recall(self, image_id: int) -> None:
        """An image came back (``restore_image``): its latest submitted revision teaches the
        adapter again, as a submit does."""
        rev = self._latest_submitted(image_id)
        if rev is not None:
            self._instant_submitted(int(image_id), rev)

    def _instant_submitted(self, image_id: int, revision: int) -> None:
        """Hook of ``save_edits``: a submitted revision teaches the adapter (background)."""
        if self.instant:
            with self._learnt_cv:
                self._learning[int(image_id)] = int(revision)
            self._submit(self._instant_learn, int(image_id), int(revision), time.perf_counter())

    def _instant_learn(self, image_id: int, revision: int, since: float | None = None) -> None:
        """(Worker) add a submitted image, fit the adapter, predict the queue again; then
        whoever waits on it (:meth:`instant_wait`) goes on."""
        try:
            self._instant_learn_now(image_id, revision, since)
        finally:
            with self._learnt_cv:
                if self._learning.get(image_id) == revision:
                    del self._learning[image_id]
                self._learnt_cv.notify_all()

    def _instant_learn_now(self, image_id: int, revision: int, since: float | None) -> None:
        info = self.store.get_image(image_id)
        slot = self._instant_ensure(info.project_id)
        p = self.store.get_project(info.project_id)
        slot.pending = [(i, r) for i, r in slot.pending if i != image_id]
        if slot.learnt.get(image_id, -1) >= revision:   # already learnt (a sync found it first)
            return
        if not self._instant_add(slot, p, image_id, revision):
            return
        self._instant_update(slot, since)
        log.info("instant adaptation: project %s, %d image(s), fitted in %.2f s",
                 p.id, len(slot.session.examples), slot.session.last_update_seconds)
        self._instant_repredict_queue(slot)

    def _instant_sync(self, project_id: int, now: float | None = None) -> int:
        """(Worker) learn the project's submitted revisions that did not come through this
        process's canvas (an import, another process on the same database): queued like a
        rebuild's, a few per background task, then the adapter fitted and the queue predicted
        again. At most once every ``SYNC_EVERY_S`` per project (one query of the latest
        submitted revisions); nothing when off or when the session is not built yet (its
        build reads every submission anyway). -> images queued."""
        if not self.instant:
            return 0
        slot = self._slots.get(project_id)
        now = time.monotonic() if now is None else now
        if slot is None or now - slot.checked < SYNC_EVERY_S:
            return 0
        slot.checked = now
        p = self.store.get_project(project_id)
        if slot.key != self._slot_key(p, self.model_version(p.id)):
            return 0            # the model or the words changed: a rebuild reads everything
        done = self.store.submitted_annotations(p.id, split=None, source="submitted")
        queued = {i for i, _ in slot.pending}
        new = [(i, r) for i, r in done[-slot.session.settings.max_images:]
               if slot.learnt.get(i, -1) < r and i not in queued]
        if not new:
            return 0
        log.info("instant adaptation: project %s, %d submission(s) from outside this app", p.id, len(new))
        running = bool(slot.pending)        # a rebuild's steps are queued already: they take these too
        slot.pending.extend(new)
        if not running:
            self._submit(self._instant_rebuild_step, p.id, slot.key)
        return len(new)

    def _instant_repredict_queue(self, slot: _Slot, limit: int = REFRESH_LIMIT) -> None:
        pid = slot.key[0]
        ids = [im.id for im in self.store.list_images(pid, status="unlabelled", order="uncertainty", limit=limit)]
        if ids:
            self._submit(self._instant_repredict, slot.key, slot.updates, ids)

    def _instant_repredict(self, key: tuple, generation: int, ids: list[int]) -> None:
        """(Worker) predict the first of ``ids`` with the adapter, then queue the rest,
        unless the adapter changed since (a newer pass runs) or the model did."""
        slot = self._slots.get(key[0])
        if slot is None or slot.key != key or slot.updates != generation or not ids:
            return
        iid, rest = ids[0], ids[1:]
        try:
            info = self.store.get_image(iid)
        except Exception:
            info = None
        if info is not None and info.status == "unlabelled":
            p = self.store.get_project(key[0])
            mv = self.model_version(p.id)
            if self._slot_key(p, mv) != key:
                return
            # prepare's lock: an image being opened now (Submit & next) is predicted once, by
            # whichever comes first; the other finds it made with this adapter already
            with self._once(("prepare", int(iid))):
                if self._instant_stale(key[0], iid, key[1]):
                    self.predict(p.id, iid)
                    with self._cache_lock:
                        self._mark_counter += 1
                        self._marks[iid] = self._mark_counter
                        self._ready.pop(iid, None)
        if rest:
            self._submit(self._instant_repredict, key, generation, rest)
