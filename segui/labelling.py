"""The labelling flow: which image is next, opening it, saving, splits and revisions.

:class:`LabellingMixin` is the part of :class:`segui.handlers.Studio` that the Label
screen's Next / open / save / submit use: the queues (by uncertainty, for review,
rejected), an image prepared ahead (prefetch), saves with conflicts
kept, and the train / val split of submitted images.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from common.effort import correction_effort, correction_words, wrong_regions
from common.labels import LabelSetError, clean_class_name
from common.queue_order import diverse_pick, layout_descriptor
from common.splits import SPLITS, VAL_EVERY, auto_split, training_splits
from models.finetune import MIN_VAL_TO_PROMOTE
from storage import FILTER_STATUSES, QUEUE_FILTERS, ConflictError, ImageInfo, NotFoundError, StorageError

from . import access
from .access import Act, Forbidden, Principal
from .errors import UserError

log = logging.getLogger(__name__)

FILTERS = QUEUE_FILTERS
PREFETCH_DELAY_S = 0.6             # the next image is prepared this long after one is opened
QUEUE_SHORTLIST = 100              # "unlabelled": the most uncertain images the diverse pick weighs
QUEUE_CHOSEN = 200                 # ... against the layouts of the most recently submitted images


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
    # the active model's prediction when the page opened the image (what an unlabelled image
    # starts from): what a first submission is compared with (never changed after the open)
    predicted: np.ndarray | None = None
    predicted_by: int | None = None       # the model version that made it
    predicted_fit: int = -1               # the instant layer's adapter that made it (-1: none known)

    def __post_init__(self):
        if self.tool_base is None:
            self.tool_base = self.class_map.copy()


@dataclass
class Ready:
    """Everything the canvas needs to show an image, computed ahead when possible."""
    loaded: Loaded
    prediction: np.ndarray | None   # the active model's prediction, project indices
    photo: str                      # data URL for the page
    key: tuple                      # (revision, model version id, prediction mark): still valid?


@dataclass
class SaveResult:
    revision: int
    status: str
    conflict: str | None = None   # set when someone else saved meanwhile
    same: bool = False            # store_edit: the latest revision already held this map
    theirs: int | None = None     # on a conflict: the other person's revision (then the latest before ours)
    base: int | None = None       # on a conflict: the revision the labeller's edit was made on
    theirs_by: str | None = None  # on a conflict: who saved ``theirs``
    correction: dict | None = None  # an image's first submission: what the labeller changed of the prediction
    removed: bool = False         # the image was taken out of the project meanwhile (the revision is kept)

    def note(self, filename: str) -> str:
        """What the Label screen says after the save: the revision, and for an image's first
        submission what the labeller changed of its prediction (the loop's measure, which the
        Model screen plots image after image)."""
        # (short: the status line shows three lines)
        gone = " This image was removed meanwhile, kept with it: Upload · Revisions puts it back." if self.removed else ""
        if self.status != "submitted":
            return f"Saved revision {self.revision} ({self.status}).{gone}"
        c = self.correction
        said = f": {correction_words(c['changed'], c['fixes'])}" if c else ""
        return f"Saved revision {self.revision} (submitted) of {filename}{said}.{gone}"

    def conflict_info(self) -> dict[str, Any] | None:
        """What the page's compare view needs (None without a conflict): the three
        revisions (``base``: what the labeller started from, 0 = the prediction) and who."""
        if not self.conflict:
            return None
        return {"mine": self.revision, "theirs": self.theirs, "base": self.base, "author": self.theirs_by or ""}


def author_name(name: Any) -> str:
    """The author of a revision by the one rule storage applies when it stores one
    (``common.labels.clean_class_name``: non-empty text, spaces collapsed, at most
    MAX_NAME_LENGTH characters); refused as a UserError the labeller understands."""
    try:
        return clean_class_name(name, what="author")
    except LabelSetError as e:
        empty = not (isinstance(name, str) and name.strip())
        raise UserError("type your name before saving" if empty else str(e)) from None


def _copy_loaded(loaded: Loaded) -> Loaded:
    """A Loaded the caller may change (maps copied; the photo array is shared, read-only)."""
    return replace(loaded, class_map=loaded.class_map.copy(), tool_base=loaded.tool_base.copy())


class LabellingMixin:
    """Studio's labelling flow."""

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
        if filter == "unlabelled":
            return self._diverse_next(project, exclude)
        info = self.store.next_image(project, filter=filter, exclude=exclude)
        return info.id if info is not None else None

    def _diverse_next(self, project: str, exclude: tuple[int, ...]) -> int | None:
        """The "unlabelled" queue: of the QUEUE_SHORTLIST most uncertain unlabelled images,
        the one whose uncertainty x distance from the scenes already submitted is largest
        (common.queue_order: most-uncertain-first alone takes runs of near-duplicate
        frames). The images in ``exclude`` (the one being left) count as submitted, by their
        latest annotation or else their prediction. Layouts are kept per image, keyed by its
        uncertainty (a new prediction gives a new one) or its revision; images without a
        prediction come last."""
        ex = set(exclude)
        cands = [im for im in self.store.list_images(project, status="unlabelled", order="uncertainty",
                                                     limit=QUEUE_SHORTLIST + len(ex)) if im.id not in ex]
        cands = cands[:QUEUE_SHORTLIST]
        scored = [im for im in cands if im.uncertainty is not None]
        if len(scored) <= 1:
            return cands[0].id if cands else None
        info = self.store.get_project(project)
        K = max(c.index for c in info.classes) + 1
        subs = self.store.list_images(project, status="submitted", order="latest", limit=QUEUE_CHOSEN)
        cache = self.__dict__.setdefault("_queue_layouts", {})   # (kind, image id, version, K) -> layout
        if len(cache) > 4 * (QUEUE_SHORTLIST + QUEUE_CHOSEN):
            cache.clear()

        def layout(kind: str, im, version, load) -> np.ndarray | None:
            key = (kind, im.id, version, K)   # K: a class added since changes every layout's length
            if key in cache:
                return cache.get(key)
            try:
                cm = load()
            except (NotFoundError, StorageError):
                cm = None
            d = None if cm is None else layout_descriptor(cm, K, ignore_index=info.ignore_index)
            cache[key] = d
            return d

        def annotated(im) -> np.ndarray | None:
            return layout("a", im, im.revision, lambda: self.store.get_annotation(im.id).class_map)

        def predicted(im) -> np.ndarray | None:
            return layout("p", im, im.uncertainty, lambda: getattr(self.store.get_prediction(im.id), "class_map", None))

        chosen = [d for im in subs if (d := annotated(im)) is not None]
        # the image being left (Next's and the prefetch's ``exclude``) counts as submitted: the
        # page asks for the next image while this one is still open, and shows that answer
        for iid in ex - {im.id for im in subs}:
            try:
                im = self.store.get_image(iid)
            except (NotFoundError, StorageError):
                continue
            if im.project_id != info.id:
                continue
            d = annotated(im) if im.revision else predicted(im)
            if d is not None:
                chosen.append(d)
        pairs = [(im, d) for im in scored if (d := predicted(im)) is not None]
        if not pairs:
            return cands[0].id
        pick = diverse_pick([im.uncertainty for im, _ in pairs], [d for _, d in pairs], chosen)
        return pairs[pick][0].id

    def queue(self, project: str, filter: str = "any") -> list[list[Any]]:
        status = None if filter in (None, "any") else filter
        return [[im.id, im.filename, im.status, None if im.uncertainty is None else round(im.uncertainty, 3),
                 im.annotated_by or ""]
                for im in self.store.list_images(project, status=status, order="uncertainty", limit=500)]

    def open_image(self, image_id: int, revision: int | None = None) -> Loaded:
        """The latest annotation (or one revision) if any, else the active model's prediction."""
        return self.prepare(image_id, revision).loaded

    def open_in_project(self, project: str | int, image_id: int, revision: int | None = None,
                        who: Principal | None = None) -> Ready:
        """:meth:`prepare`, refusing an image of another project, one that does not
        exist, or (for an annotator) someone else's work."""
        who = self._who(who)
        info = self.image_of(project, image_id)
        self._check_member(who, info.project_id)   # the image's own project, whatever the client named
        if info.removed:
            raise UserError(f"{info.filename} was removed from this project: " + (
                "put it back under Upload · Revisions, Removed images, to open it" if who.can(Act.REVIEW)
                else "a reviewer or an admin can put it back"))
        if not access.sees_image(who, info.status, info.annotated_by):
            raise Forbidden(f"Not allowed: image {info.id} is someone else's work; "
                            "reviewers and admins open every image.")
        return self.prepare(info.id, revision)

    def image_of(self, project: str | int | None, image_id: Any) -> ImageInfo:
        """Image ``image_id``, refused unless it is ``project``'s (no project: any). Another
        project's image is refused in the same words as one that does not exist, so ids of
        other projects stay unknown."""
        try:
            info = self.store.get_image(int(image_id))
        except (NotFoundError, ValueError, TypeError):
            raise UserError(f"there is no image {image_id} in this project") from None
        if project not in (None, "") and info.project_id != self.store.get_project(project).id:
            raise UserError(f"there is no image {int(image_id)} in this project")
        return info

    def prepare(self, image_id: int, revision: int | None = None) -> Ready:
        """The image, its map (latest annotation or one revision, else the prediction),
        the active model's prediction and the photo for the page. Taken from the
        prefetch cache when nothing changed since it was computed."""
        with self._once(("prepare", int(image_id))):
            return self._prepare(int(image_id), revision)

    def _prepare(self, image_id: int, revision: int | None) -> Ready:
        info = self.store.get_image(int(image_id))
        mv = self.model_version(info.project_id)
        # mark: re-predicted by instant adaptation; label sets: a view made before the words changed is stale
        with self._cache_lock:
            words = self._label_sets.get(info.project_id, 0)
        key = (info.revision, mv.id, self._prediction_mark(info.id), words)
        # an image shown as predicted, whose prediction is older than the instant layer's last
        # fit (a submit just now): predicted again, so the image opened next reflects the submit
        stale = revision is None and info.revision == 0 and self._instant_stale(info.project_id, info.id, mv.id)
        if revision is None and not stale:
            with self._cache_lock:
                ready = self._ready.get(info.id)
            if ready is not None and ready.key == key:
                # the costly part from the cache; what can change without a new revision (a split
                # chosen, a review's status, a new uncertainty) as stored now
                return replace(ready, loaded=replace(_copy_loaded(ready.loaded), split=info.split,
                                                     status=info.status, uncertainty=info.uncertainty))
        image = self.store.load_image(info.id)
        fit = self.predicted_fit(info.id)   # read before the prediction: a re-prediction between looks older, never newer
        pred_info = None if stale else self.store.get_prediction(info.id, mv.id)
        if pred_info is None:
            pred = self.predict(info.project_id, info.id, image, keep=True)
            fit = self.predicted_fit(info.id)
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
            corrected = self.adapted_from(info.id, mv.id)
            if corrected:     # (the page shows a changed source again: Nav.settle)
                src += f", instant layer fit {fit} on {corrected} corrected image(s)"
            cm = pred
        loaded = Loaded(info.id, info.filename, image, cm.copy(), info.revision, src, info.uncertainty,
                        project_id=info.project_id, status=info.status, split=info.split, predicted=pred,
                        predicted_by=mv.id, predicted_fit=fit if info.revision == 0 and revision is None else -1)
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
                pid = self.store.get_project(project).id
                self._instant_sync(pid)     # submissions stored while the app runs (an import):
                self._review_sync(pid)      # learnt by the instant layer, ranked by the reviewer
                self.refresh_predictions(project)
                iid = self.next_image(project, filter if filter in FILTERS else "unlabelled",
                                      (current,) if current is not None else ())
            except (UserError, StorageError):
                return
            if iid is not None:
                ready = self.prepare(iid)
                self.segments(iid, ready.loaded.image)
                self._instant_warm(ready.loaded)
        self._submit(work)

    @staticmethod
    def author(typed: str | None, login: str | None) -> str:
        """Whose revision it is: the login name when there is one, else the typed name
        (by :func:`author_name`'s rule)."""
        return author_name(login or typed)

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
        correction = self._first_submission_correction(loaded, class_map) if status == "submitted" else None
        res = self.save(loaded.image_id, class_map, author, status, loaded.base_revision, correction)
        # someone took the image out of the project while it was open: the work is kept with it,
        # and the person told; a removed image teaches the model nothing until it is put back
        res.removed = self.store.get_image(loaded.image_id).removed
        if res.status == "submitted" and not res.removed:
            loaded.split = self.assign_split(loaded.image_id)
            # instant adaptation first (off unless Studio(instant=True)): the next image waits on it
            self._instant_submitted(loaded.image_id, res.revision)
            self._submit(self.score_submission, loaded.image_id, res.revision)
            # a project setting (off by default): every N submissions the app queues a job itself
            self._submit(self._auto_finetune_after_submit, loaded.image_id, author.strip() or None)
        loaded.base_revision = res.revision
        loaded.class_map = class_map.copy()
        loaded.tool_base = class_map.copy()
        loaded.status = res.status
        loaded.source = f"annotation revision {res.revision} by {author.strip()} ({res.status})"
        return res

    def _first_submission_correction(self, loaded: Loaded, class_map: np.ndarray) -> dict | None:
        """How much of the prediction the labeller changed (``common.effort``'s share of
        labelled pixels and separate regions), for an image's first submission only (a
        resubmission after review would count the same work twice); against the active
        model's prediction as the page got it with the image (``loaded.predicted``: an
        instant-adaptation update or a new version after the open does not count as the
        labeller's change), else the stored one. None when there is none to compare with."""
        try:
            info = self.store.get_image(loaded.image_id)
            if info.review is not None:          # submitted before
                return None
            pred, version = loaded.predicted, loaded.predicted_by
            if pred is None:
                version = self.model_version(info.project_id).id
                p = self.store.get_prediction(info.id, version)
                pred = None if p is None else p.class_map
            if pred is None or pred.shape != class_map.shape:
                return None
            ignore = self.store.get_project(info.project_id).ignore_index
            return {"changed": correction_effort(pred, class_map, ignore),
                    "fixes": wrong_regions(pred, class_map, ignore), "model_version": version}
        except Exception:                        # a record that cannot be made never stops the save
            log.warning("image %s: what the labeller changed was not measured", loaded.image_id, exc_info=True)
            return None

    def leave(self, loaded: Loaded | None, class_map: np.ndarray | None, author: str) -> SaveResult | None:
        """Before the labeller moves to another image: unsaved edits become a draft.
        Returns the save (check ``conflict``), or None when there was nothing to save."""
        if not self.has_unsaved(loaded, class_map):
            return None
        return self.save_edits(loaded, class_map, author, "draft")

    def store_edit(self, image_id: int, class_map: np.ndarray, author: str, base_revision: int) -> SaveResult:
        """An edit the page journaled and could not save with its image (the page's
        outbox, or a restore after a reload): stored as a draft on top of ``base_revision``
        (someone else's newer revision stays: a conflict, both kept). Idempotent: when
        the image's latest revision already holds exactly this map (a save whose answer
        was lost), nothing is stored and that revision is returned with ``same``."""
        info = self.store.get_image(int(image_id))
        if info.revision > 0:
            latest = self.store.get_annotation(info.id)
            if np.array_equal(latest.class_map, class_map):
                return SaveResult(latest.revision, latest.status, same=True)
        return self.save(info.id, class_map, author, "draft", int(base_revision))

    def reopen(self, project: str | int, image_id: Any, base: Any, who: Principal | None = None) -> Loaded:
        """The image a page still shows when the server no longer holds it for the page's
        session (the server restarted, the session ended): opened again, checked as
        :meth:`open_in_project`, as it was at the page's revision ``base`` (what the page's
        map builds on; 0: the prediction), so its unsaved edits count as unsaved and a
        save conflicts only with revisions stored after ``base``."""
        try:
            iid = int(image_id)
        except (TypeError, ValueError):
            raise UserError("no image is open: upload one or press Next") from None
        ready = self.open_in_project(project, iid, who=who)
        lo = ready.loaded
        try:
            b = int(base)
        except (TypeError, ValueError):
            b = lo.base_revision
        if 0 <= b < lo.base_revision:
            if b == 0:
                cm = ready.prediction if ready.prediction is not None else lo.class_map
            else:
                cm = self.store.get_annotation(lo.image_id, b).class_map
            lo.class_map, lo.tool_base, lo.base_revision = cm.copy(), cm.copy(), b
        return lo

    def revision_maps(self, image_id: Any, revisions: Any, who: Principal | None = None) -> dict[int, np.ndarray]:
        """Class maps of up to 3 revisions of an image (0: the active model's prediction,
        what a labeller starts from before the first save), for the page's compare view
        of a conflict. Checked as opening the image (:meth:`open_in_project`)."""
        if not isinstance(revisions, (list, tuple)) or not 0 < len(revisions) <= 3:
            raise UserError("give 1 to 3 revision numbers")
        try:
            iid, revs = int(image_id), sorted({int(r) for r in revisions})
        except (TypeError, ValueError):
            raise UserError("revisions are whole numbers") from None
        ready = self.open_in_project(None, iid, who=who)
        latest = ready.loaded.base_revision
        out: dict[int, np.ndarray] = {}
        for r in revs:
            if not 0 <= r <= latest:
                raise UserError(f"image {iid} has no revision {r}")
            if r == 0:
                out[0] = ready.prediction if ready.prediction is not None else ready.loaded.class_map
            else:
                out[r] = self.store.get_annotation(iid, r).class_map
        return out

    def revision_authors(self, image_id: int) -> dict[int, str]:
        """Who saved each revision of an image (revision -> author)."""
        return {a.revision: a.author for a in self.store.list_annotation_revisions(int(image_id))}

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
        if not project:
            raise UserError("pick a project first")
        info = self.image_of(project, image_id)
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
                    "still switch to the job's version by hand."
                    + (" Automatic jobs wait until then." if self.store.auto_finetune_every(project) else ""))
        return f"A job's model is promoted when its mIoU on the {c['val']} val images does not drop."

    def latest_revision(self, image_id: int) -> int:
        """The image's latest saved revision (0: never saved)."""
        return self.store.get_image(int(image_id)).revision

    def revisions(self, image_id: int) -> list[str]:
        return [f"{a.revision}: {a.author}, {a.status}, {a.saved_at:%Y-%m-%d %H:%M:%S}"
                for a in self.store.list_annotation_revisions(int(image_id))]

    def save(self, image_id: int | None, class_map: np.ndarray | None, author: str,
             status: str = "draft", base_revision: int = 0, correction: dict | None = None) -> SaveResult:
        """Store the class map as a new revision. If someone saved meanwhile, ours is
        stored too (as a draft on top of theirs) and the conflict is reported: both
        versions stay reachable in the revision list."""
        if image_id is None or class_map is None:
            raise UserError("nothing to save: open an image first")
        author = author_name(author)
        try:
            a = self.store.save_annotation(int(image_id), class_map, author, status, int(base_revision), correction)
            return SaveResult(a.revision, a.status, correction=correction)   # the record stored with it
        except ConflictError as c:
            when = c.saved_at.strftime("%Y-%m-%d %H:%M:%S UTC") if c.saved_at else "an unknown time"
            a = self.store.save_annotation(int(image_id), class_map, author, "draft", c.revision)
            msg = (f"{c.author} saved this image at {when} (revision {c.revision}) while you were "
                   f"editing. Your version is stored as draft revision {a.revision}; theirs stays "
                   f"revision {c.revision}. Nothing is lost: compare the two and keep mine, theirs, or "
                   f"mine where you drew (both stay in the revision list).")
            return SaveResult(a.revision, a.status, conflict=msg, theirs=c.revision, base=int(base_revision),
                              theirs_by=c.author)
        except StorageError as e:
            raise UserError(str(e)) from None
