"""The fine-tuning panel of the Model screen: its components and events; the actions
are Studio's (``segui.finetuning``)."""
from __future__ import annotations

import gradio as gr

from ..errors import UserError
from ..finetuning import POLL_SECONDS, job_ended, job_live


def render(studio, project_dd, on_job_end=None) -> None:
    """The panel's components and events. ``on_job_end`` = (fn(project), outputs): run
    when the newest job has finished since the last poll (the version list, the plot)."""
    def visible_errors(fn):
        # like segui.guard.user_errors, but the event keeps a (*args) signature: its API as it was
        def wrapped(*args):
            try:
                return fn(*args)
            except UserError as err:
                raise gr.Error(str(err)) from err
        wrapped.__name__ = fn.__name__
        return wrapped

    defaults = studio.finetune_defaults()  # the same job the command line and the loop benchmark run
    gr.Markdown("### Fine-tune on submitted corrections")
    with gr.Row():
        epochs = gr.Number(label="Epochs (at most)", value=defaults["epochs"], precision=0, minimum=1)
        minutes = gr.Number(label="Time budget (minutes)", value=defaults["max_minutes"], minimum=0.1)
        start_btn = gr.Button("Fine-tune now", variant="primary", elem_id="segui-finetune-start")
        # live only while the project's newest job is queued or running (the poll below)
        cancel_btn = gr.Button("Cancel job", variant="stop", elem_id="segui-finetune-cancel", interactive=False)
    state_md = gr.Markdown(elem_id="segui-finetune-status")
    progress = gr.Slider(0, 100, value=0, label="Progress (%)", interactive=False)
    curve = gr.LinePlot(x="step", y="loss", title="Training loss", height=220)
    log = gr.Textbox(label="Job log", lines=6, interactive=False)
    timer = gr.Timer(POLL_SECONDS)
    outputs = [state_md, progress, curve, log]

    def on_status(project):
        return studio.finetune_status(project)

    start_btn.click(visible_errors(studio.start_finetune), [project_dd, epochs, minutes],
                    state_md, api_name="start_finetune").then(
        on_status, project_dd, outputs, api_name="finetune_status_after_start")
    cancel_btn.click(visible_errors(studio.cancel_finetune), project_dd, state_md,
                     api_name="cancel_finetune").then(
        on_status, project_dd, outputs, api_name="finetune_status_after_cancel")
    seen = gr.State(None)   # (job id, status) of the newest job at the last poll

    def on_tick(project, last):
        job = studio.latest_job(project)
        now = (job.id, job.status) if job is not None else None
        refresh = [gr.update()] * len(end_outputs)
        if on_job_end and job_ended(last, now):
            refresh = list(on_job_end[0](project))
        return (*studio.finetune_status(project), now, *refresh)

    end_outputs = list(on_job_end[1]) if on_job_end else []
    poll = timer.tick(on_tick, [project_dd, seen], outputs + [seen] + end_outputs, api_name="finetune_status",
                      show_progress="hidden")
    project_dd.change(on_status, project_dd, outputs, api_name="finetune_status_for_project")

    def cancel_state(project):
        return gr.update(interactive=studio.can_cancel_finetune(project))

    def cancel_state_after_poll(project, now):
        # the job the poll just read: no second look (``project`` is an input for the guard's
        # membership check, segui.guard, not read here)
        return gr.update(interactive=job_live(now))

    # endpoints of their own, so the status endpoints above keep their outputs
    poll.then(cancel_state_after_poll, [project_dd, seen], cancel_btn, api_name="finetune_cancel_state",
              show_progress="hidden")
    project_dd.change(cancel_state, project_dd, cancel_btn, api_name="finetune_cancel_state_for_project",
                      show_progress="hidden")
