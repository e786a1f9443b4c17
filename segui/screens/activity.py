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
            gr.Markdown("Every saved revision, review decision, job, promotion, model switch, export and label-set change, newest first.")
            refresh_btn = gr.Button("Refresh", scale=0, min_width=100)
        table = gr.Dataframe(headers=["when (UTC)", "who", "what", "on"], datatype=["str"] * 4,
                             interactive=False, elem_id="segui-activity", wrap=True)

        def on_project(project):
            return pd.DataFrame(studio.activity(project) if project else [],
                                columns=["when (UTC)", "who", "what", "on"])

        refresh_btn.click(on_project, project_dd, table, api_name="activity")
    return Screen(blocks, refresh=(on_project, [project_dd], [table]))
