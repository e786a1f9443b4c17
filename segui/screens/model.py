"""The Model screen: versions and per-class IoU, evaluation on val, switching, export, fine-tuning;
per-class IoU across versions, two versions compared on one image and the label-set map
(``segui.screens.model_views``)."""
from __future__ import annotations

import html
import shutil

import gradio as gr
import numpy as np
import pandas as pd

from . import finetune, model_views
from ..errors import UserError
from ..guard import user_errors
from ..handlers import Studio
from . import TYPED_OUTPUTS, Screen

def _confusion_html(ev: dict) -> str:
    """The confusion matrix as a table: rows the labelled class, columns the predicted
    one, each row's shares shaded (void-labelled pixels are not counted)."""
    names = ev["names"]
    conf = np.asarray(ev["confusion"], dtype=np.float64)
    rows = conf.sum(1, keepdims=True)
    share = np.divide(conf, rows, out=np.zeros_like(conf), where=rows > 0)
    head = "".join(f'<th title="{html.escape(n)}">{html.escape(n[:10])}</th>' for n in names)
    body = []
    for i, n in enumerate(names):
        cells = "".join(
            f'<td style="background:rgba({"37,99,235" if i == j else "220,38,38"},{share[i, j]:.2f})" '
            f'title="labelled {html.escape(n)}, predicted {html.escape(names[j])}: {int(conf[i, j])} px">'
            f'{round(100 * share[i, j]) if conf[i, j] else ""}</td>' for j in range(len(names)))
        body.append(f"<tr><th>{html.escape(n)}</th>{cells}<td>{int(rows[i, 0])}</td></tr>")
    return (f'<div class="segui-confusion"><p>Confusion on {ev["images"]} val image(s) of this project, model '
            f'v{ev["version"]}: % of each labelled class (row) predicted as each class (column).</p>'
            f'<table><tr><th>labelled \\ predicted</th>{head}<th>px</th></tr>{"".join(body)}</table></div>')


CONFUSION_CSS = """
.segui-confusion table { border-collapse: collapse; font-size: 11px; }
.segui-confusion td, .segui-confusion th { border: 1px solid #ddd; padding: 2px 4px; text-align: right; }
.segui-confusion th { font-weight: 600; background: #f8fafc; }
"""


def model_screen(studio: Studio, project_dd: gr.Dropdown) -> Screen:
    with gr.Blocks() as blocks:
        with gr.Row():
            with gr.Column():
                summary = gr.Markdown(elem_id="segui-model-summary")
                versions = gr.Dropdown(label="Model versions", choices=[], interactive=True, elem_id="segui-versions")
                with gr.Row():
                    activate_btn = gr.Button("Switch to this version")
                    evaluate_btn = gr.Button("Evaluate on this project's val images", elem_id="segui-evaluate")
            with gr.Column():
                plot = gr.BarPlot(x="class", y="IoU", title="IoU per class (the project's classes)", y_lim=[0, 1],
                                  sort="-y", x_label_angle=-40, height=340)
        # the loop's controls come next, before the figures (filled below, once the views exist:
        # a job's end refreshes them)
        with gr.Column(elem_id="segui-finetune-panel") as ft_slot:
            pass
        with gr.Row():
            confusion = gr.HTML(css_template=CONFUSION_CSS, js_on_load=None, elem_id="segui-confusion")
            history = gr.ScatterPlot(x="version", y="mIoU", color="measured", title="mIoU per version", y_lim=[0, 1],
                                     sort=None, height=260)
        with gr.Row():
            fmt = gr.Radio(["folder", "voc", "coco"], value="folder", label="Export format")
            drafts = gr.Checkbox(label="Include drafts", value=False)
            export_btn = gr.Button("Export")
            export_file = gr.File(label="Export (zip)")

        def per_class_df(pairs):
            return pd.DataFrame({"class": [c for c, _ in pairs], "IoU": [v for _, v in pairs]})

        def evaluated(ev):
            """Plot and confusion of an evaluation on the project's val set."""
            pairs = [(f"{n} ({v:,} px)", iou) for n, iou, v in zip(ev["names"], ev["iou"], ev["val_pixels"])
                     if iou is not None]
            return per_class_df(pairs), _confusion_html(ev)

        def refresh(project):
            if not project:
                return "", gr.update(choices=[]), per_class_df([]), "", pd.DataFrame({"version": [], "mIoU": [],
                                                                                        "measured": []})
            queued = studio.refresh_predictions(project)   # a new active model: the queue follows it
            text, per_class = studio.model_summary(project)
            if queued:
                text += f"\n\n{queued} unlabelled image(s) are being predicted again with the active model."
            counts = studio.split_counts(project)
            text += (f"\n\n**Submitted annotations:** {counts['train']} train, {counts['val']} val. "
                     + studio.promotion_readiness(project))
            vs = studio.model_versions(project)
            active = next((v for label, v in vs if label.endswith("(active)")), None)
            df, conf = per_class_df(per_class), ""
            ev = studio.cached_evaluation(project, active) if active is not None else None
            if ev is not None:
                df, conf = evaluated(ev)
                text += f"\n\n**On this project's {ev['images']} val image(s):** mIoU {ev['miou']:.3f}."
            return (text, gr.update(choices=vs, value=active), df, conf,
                    pd.DataFrame(studio.version_history(project), columns=["version", "mIoU", "measured"]))

        MODEL_OUT = [summary, versions, plot, confusion, history]
        panel_ev = project_dd.change(refresh, project_dd, MODEL_OUT, api_name="model_panel", **TYPED_OUTPUTS)
        with gr.Column(elem_id="segui-model-views"):
            views = model_views.render(studio, project_dd)
        panel_ev.success(views.refresh, project_dd, views.outputs, api_name="model_views", show_progress="hidden")

        def refresh_all(project):
            """The panel and the views below it (a tab opened, a job ended)."""
            return (*refresh(project), *views.refresh(project))

        ALL_OUT = MODEL_OUT + views.outputs

        @user_errors
        def on_evaluate(project, vid, progress=gr.Progress()):
            if not project:
                raise UserError("pick a project first")
            ev = studio.evaluate_on_val(project, vid, progress=progress)
            df, conf = evaluated(ev)
            text, _, _, _, hist = refresh(project)
            text += f"\n\n**v{ev['version']} on this project's {ev['images']} val image(s):** mIoU {ev['miou']:.3f}."
            return text, df, conf, hist

        evaluate_btn.click(on_evaluate, [project_dd, versions], [summary, plot, confusion, history],
                           api_name="evaluate_version").success(
            views.refresh, project_dd, views.outputs, api_name="model_views_after_evaluate", show_progress="hidden")

        @user_errors
        def on_activate(project, vid):
            if not project or vid is None:
                raise UserError("pick a model version")
            studio.activate_model(project, int(vid))
            gr.Info(f"Model version {int(vid)} is now active; new predictions use it.")
            return refresh(project)

        activate_btn.click(on_activate, [project_dd, versions], MODEL_OUT, api_name="activate_model",
                           **TYPED_OUTPUTS).success(
            views.refresh, project_dd, views.outputs, api_name="model_views_after_activate", show_progress="hidden")

        @user_errors
        def on_export(project, f, include_drafts):
            """The zip is made in a folder of its own under the data dir; Gradio's copy
            (the one the page downloads) is made here and that folder deleted at once. The
            copy's URL holds a secret hash, is sent to this caller only, and is deleted
            with Gradio's cache after the export TTL (segui.ui.DELETE_CACHE)."""
            zpath = studio.export(project, f, include_drafts)
            try:
                cached = export_file.move_resource_to_block_cache(str(zpath))
                studio.protect_download(cached, project)   # its URL serves the caller (or the project's admins) only
                return cached
            finally:
                shutil.rmtree(zpath.parent, ignore_errors=True)

        export_btn.click(on_export, [project_dd, fmt, drafts], export_file, api_name="export")

        with ft_slot:
            # when a job ends, the version list, summary and plots follow without re-picking the project
            finetune.render(studio, project_dd, on_job_end=(refresh_all, ALL_OUT))
            # automatic fine-tuning: a project setting, off (0) by default
            with gr.Row():
                # not editable until the project's value has arrived: typed earlier, a number was
                # overwritten by it a moment later and Save stored the old one (seen in Chromium)
                auto_nb = gr.Number(label="Start a job every N submitted annotations (0 = off)", value=0,
                                    precision=0, minimum=0, elem_id="segui-auto-finetune", interactive=False)
                auto_btn = gr.Button("Save", elem_id="segui-auto-finetune-save")
            auto_md = gr.Markdown(elem_id="segui-auto-finetune-status")

        @user_errors
        def on_auto_finetune(project, every):
            text = studio.set_auto_finetune(project, every)
            return studio.auto_finetune_every(project), text

        auto_btn.click(on_auto_finetune, [project_dd, auto_nb], [auto_nb, auto_md], api_name="auto_finetune",
                       **TYPED_OUTPUTS)
        # after the panel's refresh (which refuses those who may not see it): the project's value
        panel_ev.success(studio.auto_finetune_every, project_dd, auto_nb, api_name="auto_finetune_value",
                         show_progress="hidden").success(
            lambda: gr.update(interactive=True), None, auto_nb, api_name="auto_finetune_editable",
            show_progress="hidden")
    return Screen(blocks, refresh=(refresh_all, [project_dd], ALL_OUT))
