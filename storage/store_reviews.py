"""The review stage (accept / reject a submitted revision), the model's review scores
and evidence, and the activity log."""
from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, update

from common import labels

from .errors import NotFoundError, ReviewError, ValidationError
from .info import ActivityInfo, CorrectionInfo, ImageInfo, ProjectInfo, ReviewInfo, _activity_info, _review_info, _utc
from .models import IN_PROJECT, Action, Activity, Annotation, Image, Project, Review, ReviewDecision, ReviewState, utcnow
from .store_base import StoreBase, _clean_name, _enum_value



def _check_score(score: float) -> float:
    """A review score (already a float) must lie in [0, 1]."""
    if not (0.0 <= score <= 1.0):
        raise ValidationError(f"score must be in [0, 1], got {score}")
    return score


def _json_dict(value: Any, what: str) -> dict[str, Any]:
    """``value`` (a dict) as plain JSON data, or ValidationError naming ``what``."""
    if not isinstance(value, dict):
        raise ValidationError(f"{what} must be a dict, got {type(value).__name__}")
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as e:
        raise ValidationError(f"{what} must be JSON-serialisable: {e}") from None


class ReviewsMixin(StoreBase):
    """Reviews, review scores and the activity log."""

    # ------------------------------------------------------------------ reviews

    def review(self, image_id: int, revision: int, decision: str, comment: str = "",
               reviewer: str = "", allow_self_review: bool = False) -> ReviewInfo:
        """Accept or reject the image's latest submitted revision ``revision``. A
        rejection needs a comment (it goes back to the annotator). Raises
        :class:`ReviewError` for a draft revision or one that is no longer the latest
        submitted one or an acceptance by the revision's own author (unless the
        project allows self-review, :meth:`set_self_review`, or the caller does:
        ``allow_self_review``, an app of one person), :class:`NotFoundError`
        for an unknown image or revision. Every
        decision is kept (a later one on the same revision replaces the state); the
        image's review state and the activity log (``review``, by ``reviewer``) change
        in the same transaction."""
        decision = _enum_value(ReviewDecision, decision, "decision")
        if comment is None:
            comment = ""
        if not isinstance(comment, str):
            raise ValidationError(f"comment must be text, got {type(comment).__name__}")
        comment = comment.strip()
        if decision == ReviewDecision.REJECTED and not comment:
            raise ValidationError("a rejection needs a comment saying what to fix")
        reviewer = _clean_name(reviewer, "reviewer")
        if not isinstance(revision, int) or revision < 1:
            raise ValidationError(f"revision must be an integer >= 1, got {revision!r}")
        with self._session() as s:
            # Lock the image first (SQLite: this write takes the database's write lock;
            # PostgreSQL: the row lock save_annotation's UPDATE also takes), so a
            # submission cannot slip in between the checks below and the decision.
            n = s.execute(update(Image).where(Image.id == image_id).values(review=Image.review)
                          .execution_options(synchronize_session=False)).rowcount
            if n != 1:
                raise NotFoundError(f"image {image_id} does not exist")
            im = s.get(Image, image_id, populate_existing=True)
            ann = s.execute(select(Annotation.status, Annotation.author).where(
                Annotation.image_id == image_id, Annotation.revision == revision)).first()
            if ann is None:
                raise NotFoundError(f"image {image_id} has no annotation revision {revision}")
            if ann.status != "submitted":
                raise ReviewError(f"image {image_id} revision {revision} is a draft: only "
                                  "submitted revisions can be reviewed")
            latest = s.execute(select(Annotation.revision, Annotation.author, Annotation.created_at)
                               .where(Annotation.image_id == image_id, Annotation.status == "submitted")
                               .order_by(Annotation.revision.desc()).limit(1)).first()
            if latest.revision != revision:
                when = _utc(latest.created_at).isoformat(timespec="seconds")
                raise ReviewError(f"image {image_id}: revision {revision} is no longer the latest "
                                  f"submitted revision; {latest.author!r} submitted revision "
                                  f"{latest.revision} at {when}: review that one")
            if (decision == ReviewDecision.ACCEPTED and not allow_self_review and labels.name_key(ann.author) == labels.name_key(reviewer)
                    and not s.scalar(select(Project.allow_self_review).where(Project.id == im.project_id))):
                raise ReviewError(f"image {image_id} revision {revision} was submitted by {ann.author!r}: "
                                  "a reviewer cannot accept their own submission, another reviewer must "
                                  "(an admin can allow it for a one-person project: allow self-review)")
            now = utcnow()
            r = Review(image_id=image_id, revision=revision, decision=decision, comment=comment,
                       reviewer=reviewer, created_at=now)
            s.add(r)
            im.review = decision
            self._record(s, Action.REVIEW, reviewer, im.project_id, f"image {image_id} revision {revision}",
                         {"image_id": image_id, "revision": revision, "decision": decision,
                          "comment": comment, "author": ann.author}, now)
            s.flush()
            info = _review_info(r)
            s.commit()
            return info

    def set_self_review(self, project: str | int, allowed: bool) -> ProjectInfo:
        """Whether a reviewer may accept their own submission in ``project`` (a
        one-person project); refused by default."""
        if not isinstance(allowed, bool):
            raise ValidationError(f"allow self-review is true or false, got {allowed!r}")
        return self._set_project(project, allow_self_review=allowed)

    def get_review(self, image_id: int) -> ReviewInfo | None:
        """The latest decision on the image's latest submitted revision; None when that
        revision awaits review or nothing was submitted."""
        with self._session() as s:
            self._image_row(s, image_id)
            latest = s.scalar(select(func.max(Annotation.revision)).where(
                Annotation.image_id == image_id, Annotation.status == "submitted"))
            if latest is None:
                return None
            r = s.scalar(select(Review).where(Review.image_id == image_id, Review.revision == latest)
                         .order_by(Review.id.desc()).limit(1))
            return _review_info(r) if r is not None else None

    def list_reviews(self, image_id: int) -> list[ReviewInfo]:
        """Every decision on the image, oldest first."""
        with self._session() as s:
            self._image_row(s, image_id)
            return [_review_info(r) for r in s.scalars(
                select(Review).where(Review.image_id == image_id).order_by(Review.id))]

    def review_queue(self, project: str | int, split: str | None = None, limit: int | None = None,
                     offset: int = 0, order: str = "id") -> list[ImageInfo]:
        """Images whose latest submitted revision awaits review, by id, or with
        ``order="review_score"`` the model's strongest disagreement first."""
        return self.list_images(project, split=split, review=ReviewState.PENDING.value, order=order,
                                limit=limit, offset=offset)

    def review_rank(self, image_id: int) -> tuple[int, int] | None:
        """Where the image stands in its project's review queue by the model's
        disagreement: (1 + how many awaiting review score higher, how many await review).
        None when the image does not await review or has no score yet."""
        with self._session() as s:
            im = self._image_row(s, image_id)
            if im.review != ReviewState.PENDING.value or im.review_score is None:
                return None
            pending = (Image.project_id == im.project_id) & IN_PROJECT & (Image.review == ReviewState.PENDING.value)
            higher = s.scalar(select(func.count()).select_from(Image).where(
                pending, Image.review_score > im.review_score))
            total = s.scalar(select(func.count()).select_from(Image).where(pending))
            return int(higher) + 1, int(total)

    def set_review_score(self, image_id: int, revision: int, score: float,
                         evidence: dict[str, Any] | None = None) -> bool:
        """Record the model's disagreement ``score`` with submitted revision ``revision``
        (and, when given, the JSON ``evidence`` it was computed from); False (nothing
        stored) when that is no longer the image's latest revision or it is not
        submitted (a newer save came first: its own score will follow)."""
        try:
            score = float(score)
        except (TypeError, ValueError):
            raise ValidationError(f"score must be a number, got {score!r}") from None
        values: dict[str, Any] = {"review_score": _check_score(score)}
        if evidence is not None:
            values["review_evidence"] = _json_dict(evidence, "evidence")
        with self._session() as s, s.begin():
            self._image_row(s, image_id)
            return s.execute(update(Image).where(
                Image.id == image_id, Image.revision == int(revision), Image.status == "submitted")
                .values(**values).execution_options(synchronize_session=False)).rowcount == 1

    def set_review_scores(self, scores: Sequence[tuple[int, int, float]]) -> int:
        """Many :meth:`set_review_score` (image id, revision, score) in one transaction
        (a review queue scored again); returns how many were stored."""
        rows = []
        for image_id, revision, score in scores:
            rows.append((int(image_id), int(revision), _check_score(float(score))))
        n = 0
        with self._session() as s, s.begin():
            for image_id, revision, score in rows:
                n += s.execute(update(Image).where(
                    Image.id == image_id, Image.revision == revision, Image.status == "submitted")
                    .values(review_score=score).execution_options(synchronize_session=False)).rowcount
        return n

    def review_evidence(self, project: str | int) -> list[tuple[int, int, float | None, dict[str, Any]]]:
        """(image id, revision, score, evidence) of every submitted image of the project
        whose latest revision has stored evidence, by id."""
        with self._session() as s:
            pid = self._project_row(s, project).id
            rows = s.execute(select(Image.id, Image.revision, Image.review_score, Image.review_evidence).where(
                Image.project_id == pid, IN_PROJECT, Image.status == "submitted", Image.review_evidence.is_not(None))
                .order_by(Image.id)).all()
            return [(int(i), int(r), sc, ev) for i, r, sc, ev in rows]

    def count_reviews(self, project: str | int) -> dict[str, int]:
        """Images per review state: {"pending": n, "accepted": n, "rejected": n}."""
        with self._session() as s:
            pid = self._project_row(s, project).id
            rows = s.execute(select(Image.review, func.count()).where(
                Image.project_id == pid, IN_PROJECT, Image.review.is_not(None)).group_by(Image.review)).all()
        out = {st.value: 0 for st in ReviewState}
        out.update({k: int(v) for k, v in rows})
        return out

    # ------------------------------------------------------------------ activity
    def record_activity(self, action: str, user: str | None = None, project: str | int | None = None,
                        subject: str = "", details: dict[str, Any] | None = None) -> ActivityInfo:
        """Record that ``user`` did ``action`` (a :class:`storage.models.Action` value) on
        ``subject`` (free text, e.g. "job 7") in ``project`` (None: user administration).
        ``details``: JSON-serialisable. Storage records revision_saved, review,
        model_activated and model_promoted itself; callers record the rest."""
        action = _enum_value(Action, action, "action")
        if user is not None:
            user = _clean_name(user, "user")
        if not isinstance(subject, str):
            raise ValidationError(f"subject must be text, got {type(subject).__name__}")
        if details is not None:
            details = _json_dict(details, "details")
        with self._session() as s, s.begin():
            pid = self._project_row(s, project).id if project is not None else None
            a = self._record(s, action, user, pid, subject, details)
            s.flush()
            return _activity_info(a)

    def corrections(self, project: str | int, limit: int = 2000) -> list[CorrectionInfo]:
        """The correction records of the project's newest ``limit`` saves (the saves that
        carried one: the app sends it with an image's first submission), oldest first."""
        with self._session() as s:
            pid = self._project_row(s, project).id
            q = (select(Activity).where(Activity.project_id == pid, Activity.action == Action.REVISION_SAVED.value)
                 .order_by(Activity.id.desc()).limit(int(limit)))
            out = []
            for a in s.scalars(q):
                d = a.details or {}
                c = d.get("correction")
                if not isinstance(c, dict) or "changed" not in c:
                    continue
                out.append(CorrectionInfo(int(d.get("image_id", 0)), int(d.get("revision", 0)), a.user_name,
                                          _utc(a.created_at), float(c["changed"]), int(c.get("fixes") or 0),
                                          c.get("model_version")))
            return out[::-1]

    def list_activity(self, project: str | int | None = None, limit: int = 100, offset: int = 0,
                      action: str | Sequence[str] | None = None, user: str | None = None
                      ) -> list[ActivityInfo]:
        """Activity records, newest first. ``project``: that project's records; None:
        every record (user administration included). ``action``: one action or several;
        ``user``: one user's (exact name)."""
        with self._session() as s:
            q = select(Activity)
            if project is not None:
                q = q.where(Activity.project_id == self._project_row(s, project).id)
            if action is not None:
                acts = [action] if isinstance(action, str) else list(action)
                q = q.where(Activity.action.in_([_enum_value(Action, a, "action") for a in acts]))
            if user is not None:
                q = q.where(Activity.user_name == user)
            q = q.order_by(Activity.id.desc()).limit(int(limit)).offset(int(offset))
            return [_activity_info(a) for a in s.scalars(q)]
