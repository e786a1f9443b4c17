"""Fine-tuning from the app: queue a job, watch its progress, cancel it.

Plain functions over the Store and `jobs.queue` (testable without a browser), and
:class:`FinetuneMixin`, the part of :class:`segui.handlers.Studio` the Model screen
calls. *Fine-tune now* only queues the job in the database; a worker (the app's local
one, or `python -m jobs.worker` on another machine) claims it and trains in its own
process, so the web server stays responsive. The panel itself is
``segui.screens.finetune``.
"""

from __future__ import annotations

import logging

import pandas as pd

from common.splits import VAL_EVERY
from jobs import queue
from models.finetune import MIN_VAL_TO_PROMOTE, default_params
from storage.errors import JobStateError

from . import access
from .errors import UserError

log = logging.getLogger(__name__)

POLL_SECONDS = 2.0
PanelError = UserError   # the panel's mistakes are the app's one error type (the old name stays)


def _queue(store, project: str | int, params: dict, who: str | None, **details):
    """Queue a job with ``params`` and record it (the activity *Fine-tune now* leaves)."""
    try:
        job = queue.enqueue(store, project, params)
    except (queue.JobError, JobStateError, ValueError) as err:  # e.g. a job already running
        raise UserError(str(err)) from err
    store.record_activity("job_started", who, project, f"job {job.id}",
                          {"job_id": job.id, "params": params, **details})
    return job


def start(store, project: str, epochs: float | None, minutes: float | None) -> str:
    if not project:
        raise UserError("pick a project first")
    params = {}
    if epochs:
        params["epochs"] = int(epochs)
    if minutes:
        if minutes <= 0:
            raise UserError("the time budget must be positive")
        params["max_minutes"] = float(minutes)
    who = access.current()
    job = _queue(store, project, params, who.actor if who else None)
    return f"Job {job.id} queued: a worker trains it in its own process."


AUTO_USER = "auto"   # whom the activity log names for a job the app started when no one submitted


def auto_finetune_due(store, project: str | int) -> tuple[int, int] | None:
    """(N, submissions counted) when the project's setting asks for a job now: it is on
    (N > 0), no job is queued or running, at least N annotations were submitted since
    the newest job was created (or ever, when there is none), the project is not
    removed, and it has the val images a job needs to make its model active by itself (:func:`val_short`). Else
    None."""
    every = store.auto_finetune_every(project)
    if not every or store.get_project(project).removed:   # a page still open on a removed project
        return None
    queue.reap_stale_jobs(store)
    if store.list_jobs(project, status="queued") or store.list_jobs(project, status="running"):
        return None                                  # never two jobs at once
    newest = store.newest_job(project)               # (one row, not the project's every job)
    count = store.submitted_since(project, newest.created_at if newest else None)
    if count < every or val_short(store, project):
        # (too few val images: a job's model could not be promoted, and nobody switches to it
        # in a loop that runs by itself; the count keeps growing, the job starts once they are in)
        return None
    return every, count


def val_short(store, project: str | int) -> int:
    """How many more submitted val images the project needs before a job can decide by
    itself whether its model replaces the active one (0: none)."""
    return max(0, MIN_VAL_TO_PROMOTE - len(store.submitted_annotations(project, "val")))


def maybe_auto_finetune(store, project: str | int, who: str | None = None):
    """After a submission: queue a job with the default recipe, exactly as *Fine-tune
    now* with the panel's defaults, when :func:`auto_finetune_due`. Returns the job, or
    None; a job that cannot be queued (nothing to train on, no model, another process
    queued one first) is logged, never raised: the submission stands."""
    due = auto_finetune_due(store, project)
    if due is None:
        return None
    every, count = due
    d = default_params()
    params = {"epochs": int(d["epochs"]), "max_minutes": float(d["max_minutes"])}
    try:
        job = _queue(store, project, params, who or AUTO_USER, auto=True, every=every, submitted=count)
    except UserError as err:
        log.warning("automatic fine-tuning of project %s: not queued: %s", project, err)
        return None
    log.info("automatic fine-tuning of project %s: job %s queued after %s submissions", project, job.id, count)
    return job


def latest_job(store, project: str):
    if not project:
        return None
    queue.reap_stale_jobs(store)
    return store.newest_job(project)


def status(store, project: str) -> tuple[str, float, pd.DataFrame, str]:
    """(markdown status line, progress 0..100, loss curve, log tail) of the newest job."""
    empty = pd.DataFrame({"step": [], "loss": []})
    job = latest_job(store, project)
    if job is None:
        return "No fine-tuning job yet.", 0.0, empty, ""
    m = job.metrics or {}
    losses = m.get("losses") or []
    curve = pd.DataFrame({"step": list(range(1, len(losses) + 1)), "loss": losses}) if losses else empty
    line = f"**Job {job.id}: {job.status}**, step {job.step}, {job.progress * 100:.0f}%"
    if m.get("val_miou") is not None:
        line += f"; val mIoU {m['base_val_miou'] or 0:.3f} -> {m['val_miou']:.3f}"
        line += " (promoted)" if m.get("promoted") else f" (not promoted: {not_promoted_because(job)}; switch to it by hand above)"
    elif job.status == "succeeded":
        line += f" (not promoted: {not_promoted_because(job)}; switch to it by hand above)"
    elif m.get("loss") is not None:
        line += f"; loss {m['loss']:.3f}"
    elif job.status == "queued":
        line += " (waiting for a worker to take it)"
    if job.error:
        line += f"\n\n{job.error}"
    return line, job.progress * 100, curve, "\n".join(job.log_tail[-12:])


def not_promoted_because(job) -> str:
    """Why a succeeded job's model was not made active, in the labeller's words."""
    m = job.metrics or {}
    if m.get("val_miou") is None:
        return "no val images to compare on"
    return m.get("not_promoted_because") or "val mIoU dropped"


def job_brief(job) -> dict | None:
    """The newest job as the Label screen shows it: id, status, progress (0..1), and for a
    succeeded one whether its model was promoted (else why not)."""
    if job is None:
        return None
    out = {"id": job.id, "status": job.status, "progress": round(float(job.progress or 0.0), 3)}
    if job.status == "succeeded":
        out["promoted"] = bool((job.metrics or {}).get("promoted"))
        if not out["promoted"]:
            out["why"] = not_promoted_because(job)
    return out


def cancel(store, project: str) -> str:
    job = latest_job(store, project)
    if job is None or job.status not in ("queued", "running"):
        raise UserError("no queued or running job to cancel")
    queue.cancel(store, job.id)
    return f"Job {job.id} cancelled; the active model is unchanged."


TERMINAL = ("succeeded", "failed", "cancelled")


def job_ended(last: tuple | None, now: tuple | None) -> bool:
    """Between two polls the newest job (id, status) reached an end: what the model
    screen shows (versions, metrics) may have changed."""
    return bool(last is not None and now is not None and now != last and now[1] in TERMINAL)


def job_live(now: tuple | None) -> bool:
    """The newest job (id, status), as a poll read it, is queued or running."""
    return now is not None and now[1] not in TERMINAL


class FinetuneMixin:
    """Studio's fine-tuning actions (the functions above on the Studio's store)."""

    def finetune_defaults(self) -> dict:
        """The job recipe's defaults (what the panel shows): ``models.finetune.default_params``."""
        return default_params()

    def start_finetune(self, project: str, epochs: float | None, minutes: float | None) -> str:
        return start(self.store, project, epochs, minutes)

    def finetune_status(self, project: str) -> tuple[str, float, pd.DataFrame, str]:
        return status(self.store, project)

    def latest_job(self, project: str):
        return latest_job(self.store, project)

    def cancel_finetune(self, project: str) -> str:
        return cancel(self.store, project)

    def job_brief(self, project: str) -> dict | None:
        """The project's newest job for the Label screen's heartbeat (:func:`job_brief`). A
        running job whose worker has not beaten for ``queue.STALE_AFTER_S`` is reaped first (as
        the Model panel's poll does), so a dead worker's job does not read "running" for ever.
        Asked only while the newest job runs; storage's rule says what is stale and writes
        only then."""
        job = self.store.newest_job(project)
        if job is not None and job.status == "running" and queue.reap_stale_jobs(self.store, queue.STALE_AFTER_S):
            job = self.store.newest_job(project)
        return job_brief(job)

    def can_cancel_finetune(self, project: str) -> bool:
        """The project's newest job is queued or running (the panel's *Cancel job* is live)."""
        job = latest_job(self.store, project)
        return job_live(None if job is None else (job.id, job.status))

    # automatic fine-tuning (a project setting, off by default)

    def auto_finetune_every(self, project: str) -> int:
        """The project's N (0 = off): a job every N submitted annotations."""
        if not project:
            return 0
        return self.store.auto_finetune_every(project) or 0

    def set_auto_finetune(self, project: str, every: float | None) -> str:
        """Set the project's N from the Model screen (0 or empty = off)."""
        if not project:
            raise UserError("pick a project first")
        if every is None or every == "":
            every = 0
        if float(every) != int(float(every)) or float(every) < 0:
            raise UserError("N must be a whole number, 0 or more (0 = off)")
        info = self.store.set_auto_finetune_every(project, int(float(every)))
        n = info.auto_finetune_every
        if not n:
            return "Automatic fine-tuning is off: jobs start only with *Fine-tune now*."
        text = f"A fine-tuning job starts by itself every {n} submitted annotation(s)."
        short = val_short(self.store, project)
        return text + (f" Jobs wait for {short} more submitted val image(s) (one submitted image in "
                       f"{VAL_EVERY} goes to val): without {MIN_VAL_TO_PROMOTE}, its model could not be made "
                       "active by itself." if short else "")

    def _auto_finetune_after_submit(self, image_id: int, who: str | None) -> None:
        """Background work after a submission of ``image_id`` (``LabellingMixin.save_edits``):
        :func:`maybe_auto_finetune` on its project."""
        maybe_auto_finetune(self.store, self.store.get_image(int(image_id)).project_id, who)
