"""The review flow: the model as a second reviewer, the review queue's scores, decisions.

:class:`ReviewMixin` is the part of :class:`segui.handlers.Studio` that scores a
submission against the active model (``models.review``), orders the review queue,
shows a reviewer where the model disagrees and stores accept / reject decisions.
"""
from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from storage import ReviewDecision, StorageError

from . import access
from .access import Act, Forbidden, Principal
from .errors import UserError
from .imageops import resize_nearest
from .labelling import Loaded
from .predicting import model_positions, predict_size

log = logging.getLogger(__name__)

EVIDENCE_RULE = "PROBS_RULE"      # models.review rule of the evidence stored per submission
REVIEW_MASK_CACHE = 16             # disagreement masks kept for reviewers (image, revision, model)
UNSCORED_AT_START = 200            # unscored submissions the second reviewer scores when the app starts
REVIEW_SYNC_EVERY_S = 30.0         # how often (at most) an opened image makes the worker score outside submissions


class ReviewMixin:
    """Studio's review: disagreement, queue scores, decisions."""

    def _latest_submitted(self, image_id: int) -> int | None:
        revs = [a.revision for a in self.store.list_annotation_revisions(int(image_id)) if a.status == "submitted"]
        return max(revs) if revs else None

    def _review_prediction(self, info, revision: int, mv):
        """The active model's (K, h, w) class probabilities for submitted revision
        ``revision`` (predicted at :func:`segui.predicting.predict_size`), with the
        annotation in label-set positions: ``(probs, map, (H, W) of the image, project)``."""
        p = self.store.get_project(info.project_id)
        image = self.store.load_image(info.id)
        cm = self.store.get_annotation(info.id, int(revision)).class_map
        h, w = cm.shape
        size = predict_size(h, w)
        small, small_cm = resize_nearest(image, *size), resize_nearest(cm, *size)
        probs = self.predictors.probabilities(mv.weights_dir, small, p.class_names)
        return probs, model_positions(p)[small_cm], (h, w), p

    def disagreement(self, image_id: int, revision: int) -> tuple[float, np.ndarray, Any]:
        """How much the project's active model confidently disagrees with submitted
        revision ``revision`` (``models.review``): the annotation's own score, the
        (H, W) mask of the disagreeing regions (what a reviewer is shown), and its
        :class:`models.review.Evidence` (for scoring it among the project's other
        submissions). Cached per (image, revision, model version)."""
        from models.review import DEFAULT_RULE, annotation_evidence_from_probs, confident_disagreement

        info = self.store.get_image(int(image_id))
        mv = self.model_version(info.project_id)
        key = (info.id, int(revision), mv.id)
        with self._once(("review", *key)):
            with self._cache_lock:
                hit = self._disagreement.get(key)
                if hit is not None:
                    self._disagreement.move_to_end(key)
                    return hit
            probs, m, (h, w), p = self._review_prediction(info, revision, mv)
            # models.review.review_score's rule, on the probabilities it would compute
            score, mask = confident_disagreement(probs, m, 255, DEFAULT_RULE)
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
        if not self._store_evidence(info, revision):
            return None
        self.rescore_queue(info.project_id)
        return self.store.get_image(image_id).review_score

    def _store_evidence(self, info, revision: int) -> bool:
        """The model's evidence against submitted ``revision`` of the image (``info``),
        stored with its own score; False when that is not the latest revision."""
        if self._latest_submitted(info.id) != revision or info.revision != revision:
            return False
        _, _, evidence = self.disagreement(info.id, revision)
        return self.store.set_review_score(info.id, revision, evidence.score(),
                                           {**evidence.to_json(), "rule": EVIDENCE_RULE})

    def score_unscored(self, limit: int = UNSCORED_AT_START, projects: list[int] | None = None) -> int:
        """The second reviewer on submissions it never scored (the demo's ground truth,
        ``python -m storage import-dataset``, anything saved while no app ran), so that the
        review queue's order and the score a reviewer sees mean something from the
        start; at most ``limit``, in every project or those with ids in ``projects``. Run
        in a thread of its own by ``app.py``, and by :meth:`_review_sync`. -> how many
        were scored."""
        done = 0
        for p in self.store.list_projects():
            if projects is not None and p.id not in projects:
                continue
            stored = 0
            for im in self.store.review_queue(p.id, order="review_score"):
                if done + stored >= limit:
                    break
                if im.review_score is not None:
                    continue
                rev = self._latest_submitted(im.id)
                if rev is None:
                    continue
                try:
                    stored += self._store_evidence(im, rev)
                except Exception:   # one image must not stop the rest (reviewing works unscored)
                    log.exception("scoring image %s revision %s", im.id, rev)
            if stored:              # the queue's scores among each other: once, not after each image
                self.rescore_queue(p.id)
                done += stored
            if done >= limit:
                break
        return done

    def _review_sync(self, project_id: int, now: float | None = None) -> int:
        """(Worker) submissions stored while the app runs by another way than this process's
        canvas (``python -m storage import-dataset``, a second app process) are scored like
        those found at start, so that the review queue ranks them too (before: at the next
        start). At most once every ``REVIEW_SYNC_EVERY_S`` per project, the first time that
        long after the project's first image was opened here (the start's own pass covers
        those seconds). -> how many were scored."""
        now = time.monotonic() if now is None else now
        with self._cache_lock:
            last = self._review_checked.setdefault(int(project_id), now)
            if now - last < REVIEW_SYNC_EVERY_S:
                return 0
            self._review_checked[int(project_id)] = now
        return self.score_unscored(projects=[int(project_id)])

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
            rank = self.store.review_rank(info.id)          # e.g. 2 of 7 awaiting review
            if rank is not None:
                out["rank"], out["pending"] = rank
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
        if decision not in tuple(ReviewDecision):
            raise UserError("decision must be accepted or rejected")
        if decision == "rejected" and not (comment or "").strip():
            raise UserError("say what is wrong: a rejection needs a comment for the annotator")
        rev = self._latest_submitted(loaded.image_id)
        if rev is None:
            raise UserError("nothing to review: this image has no submitted annotation")
        try:
            # an app without accounts is one person's: their own submissions are theirs to accept
            return self.store.review(loaded.image_id, rev, decision, (comment or "").strip(),
                                     who.name or "reviewer", allow_self_review=not self.uses_accounts())
        except StorageError as e:
            raise UserError(str(e)) from None
