"""Fine-tuning panel of the model screen: queue a job, watch progress, cancel.

The handlers are plain functions over the Store and `jobs.queue` (testable without a
browser). *Fine-tune now* only queues the job in the database; a worker (the app's
local one, or `python -m jobs.worker` on another machine) claims it and trains in its
own process, so the web server stays responsive. `render(studio, project_dd)` builds
the components.
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


def render(studio, project_dd, on_job_end=None) -> None:
    """The panel's components and events. ``on_job_end`` = (fn(project), outputs): run
    when the newest job has finished since the last poll (the version list, the plot)."""
    import gradio as gr

    def visible_errors(fn):
        # like segui.guard.user_errors, but the event keeps a (*args) signature: its API as it was
        def wrapped(*args):
            try:
                return fn(*args)
            except UserError as err:
                raise gr.Error(str(err)) from err
        wrapped.__name__ = fn.__name__
        return wrapped

    store = studio.store
    defaults = default_params()  # the same job the command line and the loop benchmark run
    gr.Markdown("### Fine-tune on submitted corrections")
    with gr.Row():
        epochs = gr.Number(label="Epochs (at most)", value=defaults["epochs"], precision=0, minimum=1)
        minutes = gr.Number(label="Time budget (minutes)", value=defaults["max_minutes"], minimum=0.1)
        start_btn = gr.Button("Fine-tune now", variant="primary", elem_id="segui-finetune-start")
        cancel_btn = gr.Button("Cancel job", variant="stop", elem_id="segui-finetune-cancel")
    state_md = gr.Markdown(elem_id="segui-finetune-status")
    progress = gr.Slider(0, 100, value=0, label="Progress (%)", interactive=False)
    curve = gr.LinePlot(x="step", y="loss", title="Training loss", height=220)
    log = gr.Textbox(label="Job log", lines=6, interactive=False)
    timer = gr.Timer(POLL_SECONDS)
    outputs = [state_md, progress, curve, log]

    def on_status(project):
        return status(store, project)

    start_btn.click(visible_errors(lambda p, e, m: start(store, p, e, m)), [project_dd, epochs, minutes],
                    state_md, api_name="start_finetune").then(
        on_status, project_dd, outputs, api_name="finetune_status_after_start")
    cancel_btn.click(visible_errors(lambda p: cancel(store, p)), project_dd, state_md,
                     api_name="cancel_finetune").then(
        on_status, project_dd, outputs, api_name="finetune_status_after_cancel")
    seen = gr.State(None)   # (job id, status) of the newest job at the last poll

    def on_tick(project, last):
        job = latest_job(store, project)
        now = (job.id, job.status) if job is not None else None
        refresh = [gr.update()] * len(end_outputs)
        if on_job_end and job_ended(last, now):
            refresh = list(on_job_end[0](project))
        return (*status(store, project), now, *refresh)

    end_outputs = list(on_job_end[1]) if on_job_end else []
    timer.tick(on_tick, [project_dd, seen], outputs + [seen] + end_outputs, api_name="finetune_status",
               show_progress="hidden")
    project_dd.change(on_status, project_dd, outputs, api_name="finetune_status_for_project")
