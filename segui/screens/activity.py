"""The Activity screen: who did what and when in the project."""
from __future__ import annotations

import gradio as gr
import pandas as pd

from ..handlers import Studio
from . import Screen

def activity_screen(studio: Studio, project_dd: gr.Dropdown) -> Screen:
    """Who did what and when in the project: revisions, review decisions, jobs,
    promotions, model switches, exports (reviewers and admins)."""
    with gr.Blocks() as blocks:
        with gr.Row():
            gr.Markdown("Every saved revision, review decision, job, promotion, model switch, export, upload and "
                        "label-set change, newest first.")
            refresh_btn = gr.Button("Refresh", scale=0, min_width=100)
        empty = gr.Markdown(visible=False, elem_id="segui-activity-empty")
        table = gr.Dataframe(headers=["when (UTC)", "who", "what", "on"], datatype=["str"] * 4,
                             interactive=False, elem_id="segui-activity", wrap=True)

        def on_project(project):
            rows = studio.activity(project) if project else []
            note = ("Nothing recorded in this project yet: uploads, saved and submitted images, reviews "
                    "and jobs will show here." if project else "Pick a project to see its activity.")
            return (pd.DataFrame(rows, columns=["when (UTC)", "who", "what", "on"]),
                    gr.update(value=note, visible=not rows))

        refresh_btn.click(on_project, project_dd, [table, empty], api_name="activity")
    return Screen(blocks, refresh=(on_project, [project_dd], [table, empty]))
