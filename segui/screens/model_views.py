"""The Model screen's views of versions and of the label set (rendered by
``segui.screens.model``): what labellers changed of each prediction, image after image
(the loop's effect on this project), per-class IoU across versions (Plotly), two versions'
predictions of one image under a slider (``gr.ImageSlider``), and the map of the
label set (the class words in 2D, their similarity, the pairs too close and the pairs
confused on val). The data are Studio's (``segui.versions``), the figures
``segui.plots``'s."""
from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Callable

import gradio as gr
import numpy as np

from ..errors import UserError
from ..guard import user_errors
from ..handlers import Studio
from ..imageops import blend, paint
from ..plots import correction_history_figure, iou_history_figure, label_map_figure, similarity_figure

VIEWS_CSS = """
.segui-compare-legend { display: flex; flex-wrap: wrap; gap: 6px 16px; font-size: 15px; margin: 4px 0; }
.segui-compare-legend span.sw { display: inline-block; width: 14px; height: 14px; border: 1px solid #000;
  vertical-align: -2px; margin-right: 4px; }
.segui-compare-text { font-size: 15px; margin: 4px 0; }
"""


@dataclass
class ModelViews:
    refresh: Callable            # project -> values of ``outputs``
    outputs: list


def _overlay(image: np.ndarray, class_map: np.ndarray, colors: list[str], ignore: int) -> np.ndarray:
    """The prediction over the photo (void pixels show the photo)."""
    out = blend(image, paint(class_map, colors), 0.55)
    void = class_map == ignore
    out[void] = image[void]
    return out


def compare_html(r: dict) -> str:
    legend = "".join(f'<span><span class="sw" style="background:{c}"></span>{html.escape(n)}</span>'
                     for n, c in r["classes"])
    top = "; ".join(f"{html.escape(a)} → {html.escape(b)} {n:,} px" for a, b, n in r["pairs"][:5])
    text = (f"<b>Left</b> {html.escape(r['a_label'])} · <b>right</b> {html.escape(r['b_label'])}: "
            f"{r['changed']:,} pixels ({100 * r['share']:.1f}%) predicted differently"
            + (f" — most: {top}" if top else "") + ".")
    if r["a_label"] == r["b_label"]:
        text += " (the same version on both sides: pick another one to compare)"
    return f'<p class="segui-compare-text">{text}</p><div class="segui-compare-legend">{legend}</div>'


def render(studio: Studio, project_dd: gr.Dropdown) -> ModelViews:
    gr.Markdown("### Fewer corrections as the model learns")
    corrections_text = gr.Markdown(elem_id="segui-corrections-text")
    corrections_plot = gr.Plot(elem_id="segui-corrections", show_label=False)
    gr.Markdown("### Per-class IoU across model versions")
    iou_plot = gr.Plot(elem_id="segui-iou-history", show_label=False)
    gr.Markdown("### Compare two versions on one image\nDrag the slider: the left version's prediction "
                "on the left, the right one's on the right.")
    with gr.Row(equal_height=True):
        image_dd = gr.Dropdown(label="Image (val images first)", choices=[], interactive=True,
                               elem_id="segui-compare-image", scale=2)
        left_dd = gr.Dropdown(label="Left version", choices=[], interactive=True, elem_id="segui-compare-a")
        right_dd = gr.Dropdown(label="Right version", choices=[], interactive=True, elem_id="segui-compare-b")
        compare_btn = gr.Button("Compare", elem_id="segui-compare-btn", scale=0, min_width=120)
    slider = gr.ImageSlider(label="left version | right version", type="numpy", interactive=False, format="png",
                            elem_id="segui-compare", max_height=560)
    compare_info = gr.HTML(css_template=VIEWS_CSS, js_on_load=None, elem_id="segui-compare-info")
    gr.Markdown("### The label set as the model reads it")
    map_text = gr.Markdown(elem_id="segui-label-map-text")
    with gr.Row():
        map_plot = gr.Plot(elem_id="segui-label-map", show_label=False)
        sim_plot = gr.Plot(elem_id="segui-similarity", show_label=False)

    def colors_of(project) -> dict[str, str]:
        return {n: c for n, c in studio.class_colors(project)}

    def refresh(project):
        if not project:
            return ("", None, None, gr.update(choices=[], value=None), gr.update(choices=[], value=None),
                    gr.update(choices=[], value=None), "", None, None)
        corrections = studio.correction_history(project)
        colors = colors_of(project)
        iou = iou_history_figure(studio.iou_history(project), colors)
        images, left, right = studio.compare_choices(project)
        versions = studio.model_versions(project)
        try:
            m = studio.label_set_map(project)
            text, lmap, sim = m["sentence"], label_map_figure(m, colors), similarity_figure(m)
        except UserError as e:
            text, lmap, sim = str(e), None, None
        return (corrections["sentence"], correction_history_figure(corrections),
                iou, gr.update(choices=images, value=images[0][1] if images else None),
                gr.update(choices=versions, value=left), gr.update(choices=versions, value=right), text, lmap, sim)

    outputs = [corrections_text, corrections_plot, iou_plot, image_dd, left_dd, right_dd, map_text, map_plot, sim_plot]

    @user_errors
    def on_compare(project, image_id, left, right):
        if not project:
            raise UserError("pick a project first")
        if image_id is None or left is None or right is None:
            raise UserError("pick an image and two versions")
        r = studio.compare_versions(project, image_id, left, right)
        ign = r["ignore_index"]
        pair = (_overlay(r["image"], r["a"], r["colors"], ign), _overlay(r["image"], r["b"], r["colors"], ign))
        return gr.update(value=pair, label=f"{r['a_label']}  |  {r['b_label']}"), compare_html(r)

    compare_btn.click(on_compare, [project_dd, image_dd, left_dd, right_dd], [slider, compare_info],
                      api_name="compare_versions")
    return ModelViews(refresh, outputs)
