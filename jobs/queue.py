"""The job queue, over `storage.Store`: enqueue, cancel, reap, wait.

A job is a row of the database: queued -> running (a worker claimed it) ->
succeeded / failed / cancelled. Anyone with the database URL can enqueue or cancel;
workers (`python -m jobs.worker`) claim and run.
"""

from __future__ import annotations

import os
import time

from common.splits import training_splits
from storage import DB_URL_ENV  # noqa: F401  (the database URL for workers and runners: the environment, not argv)

WORKER_PID_ENV = "STUDIO_WORKER_PID"   # set by a worker for the runner it starts (which watches it)
STALE_AFTER_S = 180.0          # a running job with no heartbeat for this long is marked failed
TERMINAL = ("succeeded", "failed", "cancelled")


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs: what a runner checks of its worker and a worker of
    the app that started it. A killed process its parent has not reaped yet (a zombie)
    counts as dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class JobError(RuntimeError):
    """A job that cannot run (no data, no base model, label set changed)."""


def enqueue(store, project: str | int, params: dict | None = None):
    """Queue a job on the project's active model version (the recipe's defaults
    overridden by ``params``). Returns the queued JobInfo; a worker runs it. Raises
    JobError when there is nothing to train or no model, JobStateError when the
    project already has a queued or running job."""
    from models.finetune import default_params   # here: a worker process never needs torch

    reap_stale_jobs(store)
    base = store.active_model_version(project)
    if base is None:
        raise JobError("the project has no active model version to fine-tune; add or activate one first")
    if not any(store.submitted_annotations(project, s) for s in training_splits("train")):
        raise JobError("nothing to train on: submit at least one annotation (of an image not in the val split) first")
    return store.create_job(project, default_params(**(params or {})), base.id)


def cancel(store, job_id: int):
    """Queued -> cancelled at once; running -> cancelled: the runner stops at its next
    step, and its worker stops it if it does not within a grace period."""
    return store.cancel_job(job_id)


def reap_stale_jobs(store, stale_after_s: float = STALE_AFTER_S) -> list[int]:
    """Running jobs without a heartbeat for ``stale_after_s`` (their worker and runner
    died, e.g. the machine went away) -> failed. The active model is untouched."""
    return store.mark_stale_jobs(stale_after_s)


def wait_for(store, job_id: int, timeout_s: float | None = None, poll_s: float = 0.5):
    """The job's JobInfo once it has ended (or when ``timeout_s`` has passed)."""
    end = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        job = store.get_job(job_id)
        if job.status in TERMINAL or (end is not None and time.monotonic() > end):
            return job
        time.sleep(poll_s)
