"""Fine-tuning from the app: queue a job, watch its progress, cancel it.

Plain functions over the Store and `jobs.queue` (testable without a browser), and
:class:`FinetuneMixin`, the part of :class:`segui.handlers.Studio` the Model screen
calls. *Fine-tune now* only queues the job in the database; a worker (the app's local
one, or `python -m jobs.worker` on another machine) claims it and trains in its own
process, so the web server stays responsive. The panel itself is
``segui.screens.finetune``.
"""

from __future__ import annotations

import pandas as pd

from jobs import queue
from models.finetune import default_params
from storage.errors import JobStateError

from . import access
from .errors import UserError

POLL_SECONDS = 2.0
PanelError = UserError   # the panel's mistakes are the app's one error type (the old name stays)


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
    try:
        job = queue.enqueue(store, project, params)
    except (queue.JobError, JobStateError, ValueError) as err:  # e.g. a job already running
        raise UserError(str(err)) from err
    who = access.current()
    store.record_activity("job_started", who.name if who else None, project, f"job {job.id}",
                          {"job_id": job.id, "params": params})
    return f"Job {job.id} queued: a worker trains it in its own process."


def latest_job(store, project: str):
    if not project:
        return None
    queue.reap_stale_jobs(store)
    jobs = store.list_jobs(project)
    return jobs[0] if jobs else None


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
        line += " (promoted)" if m.get("promoted") else (
            f" (not promoted: {m.get('not_promoted_because') or 'val mIoU dropped'}; switch to it by hand above)")
    elif job.status == "succeeded":
        line += " (not promoted: no val images to compare on; switch to it by hand above)"
    elif m.get("loss") is not None:
        line += f"; loss {m['loss']:.3f}"
    elif job.status == "queued":
        line += " (waiting for a worker to take it)"
    if job.error:
        line += f"\n\n{job.error}"
    return line, job.progress * 100, curve, "\n".join(job.log_tail[-12:])


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
