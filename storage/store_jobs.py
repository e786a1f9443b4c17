"""Fine-tuning jobs (queue, claim, heartbeat, finish, cancel) and what they train on:
the annotation chosen per image by the project's training source."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from .errors import JobStateError, NotFoundError, ValidationError
from .info import JobInfo, ProjectInfo, _job_info
from .models import (IN_PROJECT, Action, Annotation, Image, Project, ProjectMember, Review, ReviewDecision, Role,
                     TrainingJob, TrainingSource, User, utcnow)
from .store_base import StoreBase, _check_split, _enum_value

LOG_TAIL_LINES = 200


def _append_log(job: TrainingJob, lines: list) -> None:
    """Add lines to a job row's log tail, keeping the last LOG_TAIL_LINES."""
    job.log_tail = (list(job.log_tail or []) + [str(x) for x in lines])[-LOG_TAIL_LINES:]


JOB_TRANSITIONS = {
    "queued": ("running", "cancelled"),
    "running": ("succeeded", "failed", "cancelled"),
    "succeeded": (), "failed": (), "cancelled": (),
}


class JobsMixin(StoreBase):
    """Training jobs, training data and the training source."""

    @staticmethod
    def _job_row(s: Session, job_id: int, **options: Any) -> TrainingJob:
        """The job (``options``: for ``Session.get``), or NotFoundError."""
        job = s.get(TrainingJob, job_id, **options)
        if job is None:
            raise NotFoundError(f"job {job_id} does not exist")
        return job

    # ------------------------------------------------------------------ training jobs

    def create_job(self, project: str | int, params: dict[str, Any] | None = None,
                   base_version_id: int | None = None) -> JobInfo:
        """Queue a fine-tuning job. A project has at most one queued-or-running job
        (a partial unique index enforces it); a second raises :class:`JobStateError`.
        A removed project gets no job (:class:`ValidationError`: restore it first), not
        even from a page still open on it."""
        with self._session() as s, s.begin():
            p = self._project_row(s, project, lock=True)   # remove_project takes the same lock
            if p.removed_at is not None:
                raise ValidationError(f"project {p.name!r} was removed: it gets no fine-tuning jobs; "
                                      "an admin restores it on the Projects screen")
            if base_version_id is not None:
                self._version_row(s, base_version_id, p.id, "base model version", repr(p.name))
            active = s.scalar(select(TrainingJob).where(TrainingJob.project_id == p.id,
                                                        TrainingJob.status.in_(("queued", "running"))))
            if active is not None:
                raise JobStateError(f"project {p.name!r} already has job {active.id} ({active.status}); "
                                    "cancel it or wait for it to finish")
            job = TrainingJob(project_id=p.id, status="queued", progress=0.0, step=0,
                              params=dict(params or {}), metrics=None, log_tail=[],
                              base_version_id=base_version_id, created_at=utcnow())
            s.add(job)
            try:
                s.flush()
            except IntegrityError:
                raise JobStateError(f"project {p.name!r} already has a queued or running job") from None
            return _job_info(job)

    def _transition(self, job_id: int, to: str, *, activate_version: int | None = None,
                    **values: Any) -> JobInfo:
        allowed_from = tuple(k for k, v in JOB_TRANSITIONS.items() if to in v)
        with self._session() as s, s.begin():
            n = s.execute(update(TrainingJob).where(TrainingJob.id == job_id,
                                                    TrainingJob.status.in_(allowed_from))
                          .values(status=to, **values)
                          .execution_options(synchronize_session=False)).rowcount
            job = self._job_row(s, job_id, populate_existing=True)
            if n != 1:
                raise JobStateError(f"job {job_id} is {job.status}; cannot move to {to} "
                                    f"(allowed only from {' or '.join(allowed_from)})")
            if activate_version is not None:   # in the same transaction as the transition
                mv, previous = self._activate(s, activate_version)
                self._record(s, Action.MODEL_PROMOTED, None, mv.project_id, self._version_subject(mv),
                             {"version_id": mv.id, "previous_version_id": previous, "job_id": job_id})
            return _job_info(job)

    def start_job(self, job_id: int) -> JobInfo:
        now = utcnow()
        return self._transition(job_id, "running", started_at=now, heartbeat_at=now)

    def claim_job(self, project: str | int | None = None) -> JobInfo | None:
        """Atomically take the oldest queued job (optionally of one project) and mark
        it running; None when nothing is queued. Each queued job is claimed at most once,
        whatever the number of workers.

        PostgreSQL: one transaction, ``SELECT ... FOR UPDATE SKIP LOCKED`` then the
        update, so concurrent workers never wait on, nor take, a row another worker is
        claiming. SQLite (no row locks): read the oldest queued id, then a conditional
        ``UPDATE ... WHERE status = 'queued'``; a worker that loses the race tries the
        next one. SQLite serialises writers, so it suits one worker (the app's local one)."""
        if self.dialect == "postgresql":
            with self._session() as s, s.begin():
                q = select(TrainingJob).where(TrainingJob.status == "queued")
                if project is not None:
                    q = q.where(TrainingJob.project_id == self._project_row(s, project).id)
                job = s.scalar(q.order_by(TrainingJob.id).limit(1).with_for_update(skip_locked=True))
                if job is None:
                    return None
                now = utcnow()
                job.status, job.started_at, job.heartbeat_at = "running", now, now
                s.flush()
                return _job_info(job)
        for _ in range(20):
            with self._session() as s:
                q = select(TrainingJob.id).where(TrainingJob.status == "queued")
                if project is not None:
                    q = q.where(TrainingJob.project_id == self._project_row(s, project).id)
                job_id = s.scalar(q.order_by(TrainingJob.id).limit(1))
            if job_id is None:
                return None
            try:
                return self.start_job(job_id)
            except JobStateError:
                continue  # another worker claimed it first
        return None

    def update_job(self, job_id: int, progress: float | None = None, step: int | None = None,
                   metrics: dict[str, Any] | None = None, log_line: str | Sequence[str] | None = None
                   ) -> JobInfo:
        """Report progress of a running job (also the heartbeat). Raises
        :class:`JobStateError` if the job is no longer running (e.g. cancelled):
        the worker should stop then."""
        with self._session() as s, s.begin():
            job = self._job_row(s, job_id, with_for_update=True)
            if job.status != "running":
                raise JobStateError(f"job {job_id} is {job.status}, not running; stop working on it")
            if progress is not None:
                if not 0.0 <= float(progress) <= 1.0:
                    raise ValidationError(f"progress must be in 0..1, got {progress!r}")
                job.progress = float(progress)
            if step is not None:
                job.step = int(step)
            if metrics is not None:
                job.metrics = dict(metrics)
            if log_line is not None:
                _append_log(job, [log_line] if isinstance(log_line, str) else list(log_line))
            job.heartbeat_at = utcnow()
            s.flush()
            return _job_info(job)

    def finish_job(self, job_id: int, status: str, result_version_id: int | None = None,
                   error: str | None = None, metrics: dict[str, Any] | None = None,
                   activate: bool = False) -> JobInfo:
        """running -> succeeded / failed / cancelled. ``activate=True`` (with
        ``status="succeeded"`` and a result version) makes the result the active version
        in the same transaction: a job cancelled or failed meanwhile (JobStateError)
        never changes the active model. The promotion is recorded in the activity log
        (``model_promoted``, user None: the system) in that transaction too."""
        if status not in JOB_TRANSITIONS["running"]:
            raise JobStateError(f"finish_job status must be succeeded/failed/cancelled, got {status!r}")
        if activate and (status != "succeeded" or result_version_id is None):
            raise JobStateError("only a succeeded job with a result version can activate it")
        values: dict[str, Any] = {"finished_at": utcnow(), "error": error}
        if status == "succeeded":
            values["progress"] = 1.0
        if result_version_id is not None:
            with self._session() as s:
                job = s.get(TrainingJob, job_id)
                self._version_row(s, result_version_id, job.project_id if job is not None else None,
                                  "result model version", "the job's project")
            values["result_version_id"] = result_version_id
        if metrics is not None:
            values["metrics"] = dict(metrics)
        if status == "cancelled":
            # the worker acknowledging a cancel it noticed: running -> cancelled
            return self._transition(job_id, "cancelled", **values)
        return self._transition(job_id, status, activate_version=result_version_id if activate else None,
                                **values)

    def cancel_job(self, job_id: int) -> JobInfo:
        """queued or running -> cancelled (a running worker sees it on its next update_job);
        the job's log ends with the step it was cancelled at (its runner can no longer log)."""
        self._transition(job_id, "cancelled", finished_at=utcnow())
        with self._session() as s, s.begin():   # cancelled is final: nothing moves it meanwhile
            job = self._job_row(s, job_id, with_for_update=True)
            _append_log(job, ["cancelled" + (f" at step {job.step}" if job.started_at is not None
                                             else " before it started")])
            s.flush()
            return _job_info(job)

    def get_job(self, job_id: int) -> JobInfo:
        with self._session() as s:
            return _job_info(self._job_row(s, job_id))

    def list_jobs(self, project: str | int, status: str | None = None) -> list[JobInfo]:
        with self._session() as s:
            pid = self._project_row(s, project).id
            q = select(TrainingJob).where(TrainingJob.project_id == pid)
            if status is not None:
                q = q.where(TrainingJob.status == status)
            return [_job_info(j) for j in s.scalars(q.order_by(TrainingJob.id.desc()))]

    def newest_job(self, project: str | int) -> JobInfo | None:
        """The project's most recently queued job (any status), None before its first;
        one row (the Label screen's heartbeat asks every few seconds)."""
        with self._session() as s:
            pid = self._project_row(s, project).id
            j = s.scalar(select(TrainingJob).where(TrainingJob.project_id == pid)
                         .order_by(TrainingJob.id.desc()).limit(1))
            return None if j is None else _job_info(j)

    def mark_stale_jobs(self, timeout_s: float) -> list[int]:
        """Running jobs whose last heartbeat is older than ``timeout_s`` -> failed."""
        cutoff = utcnow() - timedelta(seconds=timeout_s)
        now = utcnow()
        with self._session() as s, s.begin():
            beat = func.coalesce(TrainingJob.heartbeat_at, TrainingJob.started_at, TrainingJob.created_at)
            ids = list(s.scalars(select(TrainingJob.id).where(TrainingJob.status == "running", beat < cutoff)))
            if ids:
                s.execute(update(TrainingJob).where(TrainingJob.id.in_(ids), TrainingJob.status == "running",
                                                    beat < cutoff)
                          .values(status="failed", finished_at=now,
                                  error=f"no heartbeat for more than {timeout_s:g} s (worker died?)")
                          .execution_options(synchronize_session=False))
            return ids

    # ------------------------------------------------------------------ training data

    def submitted_annotations(self, project: str | int, split: str | None = "train",
                              source: str | None = None) -> list[tuple[int, int]]:
        """(image_id, revision) of the annotation jobs and exports use for each image, by
        image id. ``source`` (default: :meth:`effective_training_source`): "submitted" =
        the latest submitted revision (later drafts ignored); "accepted" = the latest
        revision whose latest review decision is an acceptance (pending and rejected
        submissions after it are ignored; images with none are left out)."""
        with self._session() as s:
            p = self._project_row(s, project)
            src = (self._effective_source(s, p) if source is None
                   else _enum_value(TrainingSource, source, "training source"))
            if src == TrainingSource.SUBMITTED:
                q = (select(Annotation.image_id, func.max(Annotation.revision))
                     .join(Image, Image.id == Annotation.image_id)
                     .where(Image.project_id == p.id, IN_PROJECT, Annotation.status == "submitted")
                     .group_by(Annotation.image_id).order_by(Annotation.image_id))
            else:
                later = aliased(Review)
                q = (select(Review.image_id, func.max(Review.revision))
                     .join(Image, Image.id == Review.image_id)
                     .where(Image.project_id == p.id, IN_PROJECT, Review.decision == ReviewDecision.ACCEPTED.value,
                            ~exists().where(later.image_id == Review.image_id,
                                            later.revision == Review.revision, later.id > Review.id))
                     .group_by(Review.image_id).order_by(Review.image_id))
            if split is not None:
                q = q.where(Image.split == _check_split(split))
            return [(int(i), int(r)) for i, r in s.execute(q)]

    def training_examples(self, project: str | int, split: str | None = "train",
                          source: str | None = None) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """(image_id, (H,W,3) uint8 image, (H,W) uint8 class map) for every image with an
        annotation from the project's training source (see :meth:`submitted_annotations`)."""
        return list(self.iter_training_examples(project, split, source))

    def iter_training_examples(self, project: str | int, split: str | None = "train",
                               source: str | None = None):
        for image_id, rev in self.submitted_annotations(project, split, source):
            ann = self.get_annotation(image_id, revision=rev)
            yield image_id, self.load_image(image_id), ann.class_map

    # ------------------------------------------------------------------ training source

    @staticmethod
    def _effective_source(s: Session, p: Project) -> str:
        if p.training_source is not None:
            return p.training_source
        reviewer = s.scalar(select(ProjectMember.user_id).join(User, User.id == ProjectMember.user_id)
                            .where(ProjectMember.project_id == p.id, User.role == Role.REVIEWER.value,
                                   User.disabled.is_(False)).limit(1))
        return (TrainingSource.ACCEPTED if reviewer is not None else TrainingSource.SUBMITTED).value

    def effective_training_source(self, project: str | int) -> str:
        """What jobs and exports use: the project's explicit setting, else (automatic)
        "accepted" once the project has an enabled member with role reviewer, else
        "submitted"."""
        with self._session() as s:
            return self._effective_source(s, self._project_row(s, project))

    # ------------------------------------------------------------------ automatic fine-tuning

    def auto_finetune_every(self, project: str | int) -> int | None:
        """N: the app queues a fine-tuning job every N submitted annotations; None = off."""
        with self._session() as s:
            return self._project_row(s, project).auto_finetune_every

    def set_auto_finetune_every(self, project: str | int, every: int | None) -> ProjectInfo:
        """Set N (see :meth:`auto_finetune_every`); None or 0 turns it off."""
        if every is not None:
            if isinstance(every, bool) or int(every) != every or every < 0:
                raise ValidationError(f"auto_finetune_every must be a whole number >= 0, not {every!r}")
            every = int(every) or None
        return self._set_project(project, auto_finetune_every=every)

    def submitted_since(self, project: str | int, since: datetime | None) -> int:
        """How many annotation revisions were submitted in the project after ``since``
        (every one, when None): what automatic fine-tuning counts."""
        with self._session() as s:
            p = self._project_row(s, project)
            q = (select(func.count()).select_from(Annotation).join(Image, Image.id == Annotation.image_id)
                 .where(Image.project_id == p.id, IN_PROJECT, Annotation.status == "submitted"))
            if since is not None:
                q = q.where(Annotation.created_at > since)
            return int(s.scalar(q) or 0)

    def set_training_source(self, project: str | int, value: str | None) -> ProjectInfo:
        """"accepted" / "submitted", or None for automatic (see effective_training_source)."""
        if value is not None:
            value = _enum_value(TrainingSource, value, "training source")
        return self._set_project(project, training_source=value)
