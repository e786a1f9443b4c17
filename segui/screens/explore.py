"""The Explore screen (reviewers, admins, demos): the project's images in a virtualised
grid, sorted and filtered by their stored metrics, and the active model's confusion
matrix, whose cells open the images behind them.

Wiring only: the rules are :class:`segui.explore.ExploreMixin`'s (through
:class:`segui.handlers.Studio`), the grid is ``segui.grid`` (a ``gr.HTML`` of our own
that fetches its further pages through the server function ``explore_rows``).
"""
from __future__ import annotations

import gradio as gr

from ..explore import CELL_PAGE, PAGE, SORT_LABELS, confusion_figure
from ..grid import image_grid, page_value
from ..guard import Refused, acting, user_errors
from ..handlers import Studio
from . import Screen

ANY = "any"
SCOPES = [("val split", "val"), ("all submitted images", "annotated")]


def class_name_in(payload):
    """The Class dropdown's ``preprocess``: it is built with no classes (each project has
    its own, filled in per session), so a name is not held against the build-time
    choices; ``Studio.explore_page`` checks it against the project's label set."""
    if payload is None or isinstance(payload, str):
        return payload
    raise gr.Error(f"Class: a name, not {type(payload).__name__}")


def _sort_label(sort: str, descending: bool) -> str:
    return f"sorted by {SORT_LABELS.get(sort, sort)}, {'highest' if descending else 'lowest'} first"


def explore_screen(studio: Studio, project_dd: gr.Dropdown) -> Screen:
    def explore_rows(args, request: gr.Request):
        """Server function of the grid: a further page of the current query."""
        req = args[0] if isinstance(args, list) and args else args
        if not isinstance(req, dict):
            raise Refused("explore_rows: give {project, query, offset, limit}", 400)
        with acting(studio, request, "explore_rows", project=req.get("project")) as a:
            return studio.explore_page(a.project, req.get("query"), req.get("offset", 0), req.get("limit"))

    with gr.Blocks() as blocks:
        with gr.Row(equal_height=False):
            with gr.Column(scale=5, min_width=520):
                with gr.Row(equal_height=True):
                    sort = gr.Dropdown(label="Sort by", choices=[(v, k) for k, v in SORT_LABELS.items()], value="iou",
                                       interactive=True, elem_id="segui-explore-sort", scale=3)
                    descending = gr.Checkbox(label="highest first", value=False, elem_id="segui-explore-desc", scale=1)
                    mask = gr.Radio(label="Mask over each image", choices=[("annotation (else prediction)", "annotation"),
                                                                          ("prediction", "prediction")],
                                    value="annotation", elem_id="segui-explore-mask", scale=3)
                grid = image_grid([explore_rows])
                progress = gr.Markdown(elem_id="segui-explore-progress")
            with gr.Column(scale=3, min_width=360):
                with gr.Row(equal_height=True):
                    scope = gr.Radio(label="Confusion matrix of the active model on", choices=SCOPES, value="val",
                                     elem_id="segui-explore-scope", scale=3)
                    conf_btn = gr.Button("Refresh", size="sm", scale=1, min_width=80)
                plot = gr.Plot(label="Confusion matrix (click a cell: its images, those pixels outlined)",
                               elem_id="segui-explore-confusion")
                conf_note = gr.Markdown(elem_id="segui-explore-confusion-note")
                with gr.Accordion("Filter", open=True):
                    name = gr.Textbox(label="File name contains", value="", placeholder="e.g. 0016E5_081 (Enter)", max_length=200,
                                      elem_id="segui-explore-name")
                    with gr.Row():
                        status = gr.Dropdown(label="Status", choices=[ANY, "unlabelled", "draft", "submitted"],
                                             value=ANY, interactive=True, min_width=90)
                        review = gr.Dropdown(label="Review", choices=[ANY, "pending", "accepted", "rejected"],
                                             value=ANY, interactive=True, min_width=90)
                        split = gr.Dropdown(label="Split", choices=[ANY, "train", "val", "none"], value=ANY,
                                            interactive=True, min_width=90)
                    with gr.Row():
                        author = gr.Textbox(label="Author", placeholder="any", max_length=200, min_width=90)
                        date_from = gr.Textbox(label="Annotated from", placeholder="2026-12-01", max_length=32,
                                               min_width=90)
                        date_to = gr.Textbox(label="to", placeholder="2026-12-31", max_length=32, min_width=90)
                    with gr.Row():
                        unc_min = gr.Textbox(label="Uncertainty ≥", placeholder="0–1", max_length=12, min_width=70)
                        unc_max = gr.Textbox(label="≤", placeholder="0–1", max_length=12, min_width=70)
                        iou_min = gr.Textbox(label="IoU ≥", placeholder="0–1", max_length=12, min_width=70)
                        iou_max = gr.Textbox(label="≤", placeholder="0–1", max_length=12, min_width=70)
                        disagree = gr.Textbox(label="Disagree ≥", placeholder="0–1", max_length=12, min_width=70)
                    with gr.Row():
                        cls = gr.Dropdown(label="Class", choices=[ANY], value=ANY, interactive=True,
                                          elem_id="segui-explore-class", min_width=110)
                        cls.preprocess = class_name_in
                        cls_pct = gr.Textbox(label="covers ≥ (%)", value="1", max_length=12, min_width=70)
                        cls_src = gr.Radio(label="in the", choices=["prediction", "annotation"], value="prediction",
                                           min_width=120)
                    apply_btn = gr.Button("Apply filters", size="sm", elem_id="segui-explore-apply")
        # API only (scripts, tests): one page of a query, as the grid's server function serves it
        with gr.Row(visible=False):
            api_query = gr.JSON()
            api_offset = gr.Number(precision=0)
            api_limit = gr.Number(precision=0)
            api_out = gr.JSON()
            api_btn = gr.Button()

        controls = [sort, descending, mask, status, review, split, author, date_from, date_to, unc_min, unc_max,
                    iou_min, iou_max, disagree, cls, cls_pct, cls_src, name]

        def query_of(sort_v, desc_v, mask_v, status_v, review_v, split_v, author_v, from_v, to_v, umin, umax,
                     imin, imax, dis, cls_v, pct_v, src_v, name_v=None) -> dict:
            q = {"sort": sort_v or "id", "descending": bool(desc_v), "mask": mask_v or "annotation",
                 "status": status_v, "review": review_v, "split": split_v, "author": author_v, "name": name_v,
                 "date_from": from_v, "date_to": to_v, "unc_min": umin, "unc_max": umax, "iou_min": imin,
                 "iou_max": imax, "disagreement_min": dis}
            if cls_v and cls_v != ANY:
                q.update({"class": cls_v, "class_min_pct": pct_v, "class_source": src_v})
            return {k: v for k, v in q.items() if v not in (None, "", ANY)}

        def progress_md(project) -> str:
            pr = studio.explore_progress(project)
            if pr["stale"]:
                return (f"Metrics for model v{pr['version']}: {pr['images'] - pr['stale']:,} of {pr['images']:,} images "
                        f"done, {pr['stale']:,} being computed in the background (those show the older figures "
                        "or none, and sort last).")
            return f"Metrics for model v{pr['version']}: all {pr['images']:,} images up to date."

        def first_page(project, q: dict, note: str):
            page = studio.explore_page(project, q)
            size = CELL_PAGE if "cell" in q else PAGE
            return page_value(project, q, page, size, f"{page['total']:,} images · {note} · {page['ms']:.0f} ms")

        @user_errors
        def on_query(project, *values):
            if not project:
                return gr.update(), ""
            q = query_of(*values)
            return first_page(project, q, _sort_label(q["sort"], q.get("descending", False))), gr.update()

        @user_errors
        def on_cell(project, value, scope_v, mask_v):
            if not project:
                raise gr.Error("pick a project first")
            cell = (value or {}).get("cell") if isinstance(value, dict) else None
            if not isinstance(cell, dict):
                raise gr.Error("click a cell of the confusion matrix (or send {'cell': {'t': ..., 'p': ...}})")
            q = {"cell": cell, "scope": scope_v or "val", "mask": mask_v or "annotation"}
            names = {c.index: c.name for c in studio.project(project).classes}
            try:
                what = f"annotated {names[int(cell['t'])]}, predicted {names[int(cell['p'])]}"
            except (KeyError, TypeError, ValueError):
                what = "that cell"
            return (first_page(project, q, f"{what}: most pixels first, outlined in magenta (change a sort or filter to go back)"),
                    gr.update())

        @user_errors
        def on_confusion(project, scope_v):
            if not project:
                return None, "", ""
            conf = studio.explore_confusion(project, scope_v or "val")
            note = []
            if not conf["images"]:
                note.append("No submitted images " + ("in the val split" if conf["scope"] == "val" else "yet")
                            + " with current metrics: " + ("try *all submitted images*, or " if conf["scope"] == "val"
                                                            else "") + "submit some annotations.")
            if conf["waiting"]:
                note.append(f"{conf['waiting']:,} images still wait for their metrics: refresh in a moment.")
            return confusion_figure(conf), " ".join(note), progress_md(project)

        @user_errors
        def on_page(project, query, offset, limit):
            return studio.explore_page(project, query if isinstance(query, dict) else {}, offset or 0, limit)

        @user_errors
        def on_refresh(project, *values):
            """The tab was opened or the project changed: the class list and the grid (the
            matrix follows: ``after_refresh``)."""
            if not project:
                return gr.update(), "", gr.update()
            names = studio.project(project).class_names
            values = list(values)
            if values[14] not in names:
                values[14] = ANY
            grid_v, _ = on_query.__wrapped__(project, *values)
            return grid_v, gr.update(), gr.update(choices=[ANY] + names, value=values[14])

        common = dict(show_progress="hidden")
        gr.on([sort.change, descending.change, mask.change, status.change, review.change, split.change,
               cls.change, cls_src.change, apply_btn.click, name.submit, author.submit, date_from.submit, date_to.submit,
               unc_min.submit, unc_max.submit, iou_min.submit, iou_max.submit, disagree.submit, cls_pct.submit],
              on_query, [project_dd] + controls, [grid, progress], api_name="explore", **common)
        grid.cell(on_cell, [project_dd, grid, scope, mask], [grid, progress], api_name="explore_cell", **common)
        gr.on([scope.change, conf_btn.click], on_confusion, [project_dd, scope], [plot, conf_note, progress],
              api_name="explore_confusion", **common)
        api_btn.click(on_page, [project_dd, api_query, api_offset, api_limit], api_out, api_name="explore_page")

    return Screen(blocks, refresh=(on_refresh, [project_dd] + controls, [grid, progress, cls]),
                  after_refresh=(on_confusion, [project_dd, scope], [plot, conf_note, progress]))
