"""The Activity screen: who did what and when in the project."""
from __future__ import annotations

import gradio as gr
import pandas as pd

from ..guard import user_errors
from ..handlers import ACTIVITY_KINDS, Studio
from . import Screen


def activity_screen(studio: Studio, project_dd: gr.Dropdown) -> Screen:
    """Who did what and when in the project: revisions, review decisions, jobs,
    promotions, model switches, uploads, removals, exports (reviewers and admins)."""
    with gr.Blocks() as blocks:
        with gr.Row():
            gr.Markdown("Every saved revision, review decision, job, promotion, model switch, export, upload, "
                        "removed image, label-set change and project renamed, removed or restored, newest first.")
            refresh_btn = gr.Button("Refresh", scale=0, min_width=100)
        with gr.Row():
            kind = gr.Dropdown(list(ACTIVITY_KINDS), value="everything", label="Show", elem_id="segui-activity-kind")
            who = gr.Textbox(label="Who (a name, then Enter; empty: everyone)", elem_id="segui-activity-who")
        empty = gr.Markdown(visible=False, elem_id="segui-activity-empty")
        table = gr.Dataframe(headers=["when (UTC)", "who", "what", "on"], datatype=["str"] * 4,
                             interactive=False, elem_id="segui-activity", wrap=True)

        @user_errors
        def on_project(project, kind_v="everything", who_v=""):
            rows = studio.activity(project, kind=kind_v or "everything", who=who_v) if project else []
            if not project:
                note = "Pick a project to see its activity."
            elif kind_v not in (None, "", "everything") or (who_v or "").strip():
                note = "Nothing of that kind recorded in this project."
            else:
                note = ("Nothing recorded in this project yet: uploads, saved and submitted images, reviews "
                        "and jobs will show here.")
            return (pd.DataFrame(rows, columns=["when (UTC)", "who", "what", "on"]),
                    gr.update(value=note, visible=not rows))

        ins = [project_dd, kind, who]
        refresh_btn.click(on_project, ins, [table, empty], api_name="activity")
        kind.change(on_project, ins, [table, empty], api_name="activity_kind", show_progress="hidden")
        who.submit(on_project, ins, [table, empty], api_name="activity_who", show_progress="hidden")
    return Screen(blocks, refresh=(on_project, ins, [table, empty]))
