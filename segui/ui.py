"""Gradio screens of the labelling studio.

Each screen is its own ``gr.Blocks`` (``label_screen``, ``projects_screen``,
``model_screen``) rendered into one tab of :func:`build_app`; the project picker and
the author name live in the header and are shared. Every event has an ``api_name``.
Handlers only call :class:`segui.handlers.Studio`; user mistakes become ``gr.Error``
(nothing stored) or ``gr.Warning``.
"""
from __future__ import annotations

import functools
from typing import Any

import gradio as gr
import numpy as np
import pandas as pd

from . import finetune_panel
from .editor import hex_color
from .handlers import FILTERS, Loaded, Studio, UserError, legend_html

DEFAULT_OPACITY = 0.6
VOID = "void / unlabelled"

def _user_errors(fn):
    """UserError -> visible gr.Error; the app keeps working and nothing is stored."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            raise gr.Error(str(e)) from None
    return wrapper


def _brush(studio: Studio, project: str | None) -> gr.Brush:
    colors = ["#000000"]
    if project:
        colors = [hex_color(c.color) for c in studio.store.get_project(project).classes] or colors
    return gr.Brush(colors=colors, color_mode="fixed", default_color=colors[0], default_size=10)


def _editor(studio: Studio, project: str | None, **kw) -> gr.ImageEditor:
    return gr.ImageEditor(
        type="numpy", image_mode="RGBA", format="png", sources=(), transforms=(),
        layers=gr.LayerOptions(allow_additional_layers=False, layers=["labels"]),
        brush=_brush(studio, project), eraser=gr.Eraser(default_size=16),
        canvas_size=(480, 360), label="Mask (paint with a class colour; the eraser = void)",
        elem_id="segui-editor", **kw)


def _class_choices(studio: Studio, project: str | None) -> list[str]:
    if not project:
        return []
    return [c.name for c in studio.store.get_project(project).classes] + [VOID]


# --------------------------------------------------------------------------- label screen

def label_screen(studio: Studio, project_dd: gr.Dropdown, author_tb: gr.Textbox) -> gr.Blocks:
    with gr.Blocks() as screen:
        loaded_st = gr.State(None)      # Loaded of the open image
        base_st = gr.State(None)        # class map at the last sync (for snap)
        prompt_st = gr.State(None)      # boolean mask of the last text prompt
        with gr.Row():
            with gr.Column(scale=1, min_width=260):
                upload = gr.File(label="Upload images (files or a zip)", file_count="multiple",
                                 elem_id="segui-upload")
                filter_rd = gr.Radio(list(FILTERS), value="unlabelled", label="Queue filter")
                next_btn = gr.Button("Next image (most uncertain first)", elem_id="segui-next")
                with gr.Row():
                    open_id = gr.Number(label="Image id", precision=0, minimum=0)
                    open_btn = gr.Button("Open")
                status_md = gr.Markdown("Open an image.", elem_id="segui-status")
                opacity = gr.Slider(0.3, 1.0, value=DEFAULT_OPACITY, step=0.05, label="Mask opacity")
                legend = gr.HTML(elem_id="segui-legend")
                with gr.Accordion("Revisions", open=False):
                    rev_dd = gr.Dropdown(label="Saved revisions", choices=[], interactive=True)
                    rev_btn = gr.Button("Load revision")
            with gr.Column(scale=3):
                editor = _editor(studio, None)
                with gr.Row():
                    save_btn = gr.Button("Save draft", elem_id="segui-save")
                    submit_btn = gr.Button("Submit & next", variant="primary", elem_id="segui-submit")
            with gr.Column(scale=2):
                preview = gr.Image(label="Overlay (click: superpixel fill with the tool class)",
                                   interactive=False, elem_id="segui-preview", format="jpeg")
                tool_cls = gr.Dropdown(label="Tool class", choices=[], interactive=True)
                with gr.Row():
                    snap_btn = gr.Button("Snap strokes to superpixels")
                with gr.Row():
                    min_size = gr.Number(value=64, precision=0, minimum=1, label="Clean-up: min region (px)")
                    clean_btn = gr.Button("Clean up")
                with gr.Group():
                    phrase = gr.Textbox(label="Text prompt", placeholder="white van, traffic light, ...")
                    prompt_btn = gr.Button("Segment phrase")
                    accept_name = gr.Textbox(label="Accept as class (name)")
                    accept_btn = gr.Button("Accept")

        def show(project, loaded: Loaded, cm, op, note="", stale=None):
            """Outputs for SHOW. ``stale``: the editor's map before a tool replaced it."""
            value = studio.editor_value(project, loaded, cm, op)
            loaded.sent_map = cm.copy() if stale is not None else None
            loaded.stale_map = stale
            status = (f"**{loaded.filename}** (id {loaded.image_id}) - {loaded.source}"
                      + (f", uncertainty {loaded.uncertainty:.3f}" if loaded.uncertainty is not None else "")
                      + (f"\n\n{note}" if note else ""))
            revs = studio.revisions(loaded.image_id)
            h, w = loaded.image.shape[:2]
            # the canvas must have the image's size: with a larger canvas Gradio 6.31
            # scales the background but draws the layer unscaled and offset
            return (gr.update(value=value, brush=_brush(studio, project), canvas_size=(w, h)),
                    studio.overlay(project, loaded.image, cm, op), status, loaded, cm.copy(),
                    gr.update(choices=revs, value=None))

        SHOW = [editor, preview, status_md, loaded_st, base_st, rev_dd]

        def nothing(note):
            return (gr.update(), gr.update(), note, gr.update(), gr.update(), gr.update())

        def current(project, value, loaded):
            if loaded is None:
                raise UserError("no image is open: upload one or press Next")
            h, w = loaded.image.shape[:2]
            return studio.read_editor(project, value, h, w)

        @_user_errors
        def on_project(project):
            if not project:
                return (gr.update(),) * 8
            p = studio.store.get_project(project)
            choices = _class_choices(studio, project)
            iid = studio.next_image(project, "unlabelled") or studio.next_image(project, "any")
            if iid is None:
                return (gr.update(value=None, brush=_brush(studio, project)), None, "No images yet: upload some.",
                        None, None, gr.update(choices=[], value=None), legend_html(p),
                        gr.update(choices=choices, value=choices[0]))
            loaded = studio.open_image(iid)
            return (*show(project, loaded, loaded.class_map, DEFAULT_OPACITY), legend_html(p),
                    gr.update(choices=choices, value=choices[0]))

        project_dd.change(on_project, project_dd, SHOW + [legend, tool_cls], api_name="select_project")
        screen.project_refresh = (on_project, [project_dd], SHOW + [legend, tool_cls])

        def on_label_set(project):
            """After the label set was edited elsewhere: palette, legend and tool classes."""
            if not project:
                return gr.update(), gr.update(), gr.update()
            choices = _class_choices(studio, project)
            return (gr.update(brush=_brush(studio, project)), legend_html(studio.store.get_project(project)),
                    gr.update(choices=choices))

        screen.label_set_refresh = (on_label_set, [project_dd], [editor, legend, tool_cls])

        @_user_errors
        def on_upload(project, files, op):
            if not files:
                return nothing("")
            paths = [getattr(f, "name", f) for f in files]
            rep = studio.upload(project, paths)
            if rep.skipped:
                gr.Warning(rep.message())
            if not rep.added:
                if not rep.duplicates:
                    raise gr.Error(rep.message())
                return nothing(rep.message())
            loaded = studio.open_image(rep.added[0])
            return show(project, loaded, loaded.class_map, op, rep.message())

        upload.upload(on_upload, [project_dd, upload, opacity], SHOW, api_name="upload")

        def unsaved(project, value, loaded) -> bool:
            """The editor (or a tool's result it is still loading) differs from what was opened or saved."""
            if loaded is None or value is None:
                return False
            if loaded.sent_map is not None and not np.array_equal(loaded.sent_map, loaded.class_map):
                return True
            return not np.array_equal(current(project, value, loaded), loaded.class_map)

        @_user_errors
        def on_next(project, flt, value, loaded, author, op, request: gr.Request):
            if not project:
                raise UserError("pick or create a project first")
            if unsaved(project, value, loaded):
                # moving on never drops edits: they are saved as a draft first (a conflict stays here)
                return _save(project, value, loaded, _author(author, request), op, "draft", True, flt)
            exclude = (loaded.image_id,) if loaded is not None else ()
            iid = studio.next_image(project, flt, exclude)
            if iid is None:
                return nothing(f"No more images with status '{flt}'.")
            nl = studio.open_image(iid)
            return show(project, nl, nl.class_map, op)

        next_btn.click(on_next, [project_dd, filter_rd, editor, loaded_st, author_tb, opacity], SHOW,
                       api_name="next_image")

        @_user_errors
        def on_open(project, iid, op):
            if iid is None:
                raise UserError("type an image id")
            try:
                loaded = studio.open_image(int(iid))
            except LookupError as e:
                raise UserError(str(e)) from None
            if project and studio.store.get_project(project).id != studio.store.get_image(loaded.image_id).project_id:
                raise UserError(f"image {int(iid)} belongs to another project")
            return show(project, loaded, loaded.class_map, op)

        open_btn.click(on_open, [project_dd, open_id, opacity], SHOW, api_name="open_image")

        @_user_errors
        def on_revision(project, loaded, rev, op):
            if loaded is None or not rev:
                raise UserError("open an image and pick a revision")
            nl = studio.open_image(loaded.image_id, int(str(rev).split(":")[0]))
            # keep the latest revision as base: saving this one is a new revision on top
            nl.base_revision = studio.store.get_image(loaded.image_id).revision
            return show(project, nl, nl.class_map, op)

        rev_btn.click(on_revision, [project_dd, loaded_st, rev_dd, opacity], SHOW, api_name="load_revision")

        @_user_errors
        def on_opacity(project, value, loaded, op):
            if loaded is None:
                return gr.update(), gr.update()
            cm = current(project, value, loaded)
            return (gr.update(value=studio.editor_value(project, loaded, cm, op)),
                    studio.overlay(project, loaded.image, cm, op))

        opacity.release(on_opacity, [project_dd, editor, loaded_st, opacity], [editor, preview],
                        api_name="set_opacity")

        def _save(project, value, loaded, author, op, status, go_next, flt="unlabelled"):
            if loaded is None:
                raise UserError("nothing to save: open an image first")
            cm = current(project, value, loaded)
            late = ""
            if (loaded.stale_map is not None and loaded.sent_map is not None
                    and np.array_equal(cm, loaded.stale_map) and not np.array_equal(cm, loaded.sent_map)):
                # the editor (~2 s to reload a layer) still held the map from before the last
                # tool, unedited: save the tool's result, which the overlay already showed
                cm, late = loaded.sent_map, " The editor was still loading the last tool's result; that result was saved."
            res = studio.save(loaded.image_id, cm, author, status, loaded.base_revision)
            loaded.base_revision = res.revision
            loaded.class_map = cm
            loaded.source = f"annotation revision {res.revision} by {author.strip()} ({res.status})"
            note = f"Saved revision {res.revision} ({res.status}).{late}"
            if res.conflict:
                gr.Warning(res.conflict)
                note = res.conflict
            else:
                gr.Info(note)
            if go_next and not res.conflict:
                iid = studio.next_image(project, flt, (loaded.image_id,))
                if iid is not None:
                    nl = studio.open_image(iid)
                    return show(project, nl, nl.class_map, op, note)
                note += " The queue is empty."
            out = show(project, loaded, cm, op, note)
            if late:
                return out
            # the editor already shows exactly what was saved: leave it (and its undo history) alone
            return (gr.update(),) + out[1:]

        def _author(author, request):
            # with --auth the login name is the author, whatever the textbox says
            user = getattr(request, "username", None) if request is not None else None
            return user or author

        @_user_errors
        def on_save(project, value, loaded, author, op, request: gr.Request):
            return _save(project, value, loaded, _author(author, request), op, "draft", False)

        @_user_errors
        def on_submit(project, value, loaded, author, op, flt, request: gr.Request):
            return _save(project, value, loaded, _author(author, request), op, "submitted", True, flt)

        save_btn.click(on_save, [project_dd, editor, loaded_st, author_tb, opacity], SHOW, api_name="save")
        submit_btn.click(on_submit, [project_dd, editor, loaded_st, author_tb, opacity, filter_rd], SHOW,
                         api_name="submit")

        @_user_errors
        def on_fill(project, value, loaded, cls, op, evt: gr.SelectData):
            before = current(project, value, loaded)
            x, y = evt.index
            cm = studio.superpixel_fill(project, loaded, before, int(x), int(y), cls or VOID)
            return show(project, loaded, cm, op, f"Filled the superpixel at ({x}, {y}) with {cls}.", before)

        preview.select(on_fill, [project_dd, editor, loaded_st, tool_cls, opacity], SHOW, api_name="fill")

        @_user_errors
        def on_fill_xy(project, value, loaded, cls, op, x, y):
            """The same as clicking the overlay at (x, y), for API clients."""
            before = current(project, value, loaded)
            cm = studio.superpixel_fill(project, loaded, before, int(x), int(y), cls or VOID)
            return show(project, loaded, cm, op, f"Filled the superpixel at ({int(x)}, {int(y)}) with {cls}.",
                        before)

        fill_x = gr.Number(visible=False, precision=0)
        fill_y = gr.Number(visible=False, precision=0)
        fill_btn = gr.Button(visible=False)
        fill_btn.click(on_fill_xy, [project_dd, editor, loaded_st, tool_cls, opacity, fill_x, fill_y], SHOW,
                       api_name="fill_at")

        @_user_errors
        def on_snap(project, value, loaded, base, op):
            cm = current(project, value, loaded)
            before = base if base is not None else loaded.class_map
            out = studio.snap(loaded, before, cm)
            n = int((out != cm).sum())
            return show(project, loaded, out, op, f"Snap: {n} pixel(s) added to the superpixels your strokes cover.",
                        cm)

        snap_btn.click(on_snap, [project_dd, editor, loaded_st, base_st, opacity], SHOW, api_name="snap")

        @_user_errors
        def on_clean(project, value, loaded, n, op):
            cm = current(project, value, loaded)
            out = studio.clean_up(project, cm, n)
            return show(project, loaded, out, op,
                        f"Clean-up: {int((out != cm).sum())} pixel(s) in regions under {int(n)} px reassigned.", cm)

        clean_btn.click(on_clean, [project_dd, editor, loaded_st, min_size, opacity], SHOW, api_name="clean_up")

        @_user_errors
        def on_prompt(project, value, loaded, text, op):
            cm = current(project, value, loaded)
            mask = studio.text_prompt(project, loaded, text)
            pct = 100.0 * mask.mean()
            # show the phrase's pixels in white over the current mask, not yet applied
            ov = studio.overlay(project, loaded.image, cm, op)
            ov[mask] = (0.4 * ov[mask] + 0.6 * 255).astype(np.uint8)
            note = (f"'{text.strip()}' covers {pct:.1f} % of the image (white in the overlay). "
                    "Accept it as a class to apply it.")
            return ov, note, mask, gr.update(value=text.strip())

        prompt_btn.click(on_prompt, [project_dd, editor, loaded_st, phrase, opacity],
                         [preview, status_md, prompt_st, accept_name], api_name="text_prompt")

        @_user_errors
        def on_accept(project, value, loaded, mask, name, op):
            cm = current(project, value, loaded)
            p, out = studio.accept_prompt(project, cm, mask, name)
            choices = _class_choices(studio, project)
            return (*show(project, loaded, out, op, f"{int(mask.sum())} pixel(s) labelled '{name.strip()}'.", cm),
                    legend_html(p), gr.update(choices=choices, value=name.strip()), None)

        accept_btn.click(on_accept, [project_dd, editor, loaded_st, prompt_st, accept_name, opacity],
                         SHOW + [legend, tool_cls, prompt_st], api_name="accept_prompt")
    return screen


# --------------------------------------------------------------------------- projects screen

def _class_table(studio: Studio, project: str | None) -> pd.DataFrame:
    rows = []
    if project:
        rows = [[c.index, c.name, hex_color(c.color)] for c in studio.store.get_project(project).classes]
    return pd.DataFrame(rows, columns=["index", "name", "colour"])


def projects_screen(studio: Studio, project_dd: gr.Dropdown) -> gr.Blocks:
    with gr.Blocks() as screen:
        with gr.Row():
            with gr.Column():
                gr.Markdown("### New project")
                new_name = gr.Textbox(label="Project name")
                new_classes = gr.Textbox(label="Label set: one class per line, optional #rrggbb colour",
                                         lines=6, placeholder="road\ncar #4000ff\ntraffic light")
                create_btn = gr.Button("Create project", variant="primary")
            with gr.Column():
                gr.Markdown("### Label set of the selected project")
                table = gr.Dataframe(headers=["index", "name", "colour"], datatype=["number", "str", "str"],
                                     interactive=True, label="Edit names and colours, then apply")
                apply_btn = gr.Button("Apply label-set changes")
                with gr.Row():
                    add_name = gr.Textbox(label="Add a class by name")
                    add_color = gr.ColorPicker(label="Colour", value="#ff8800")
                add_btn = gr.Button("Add class")
                counts = gr.Markdown()

        def summary(project):
            if not project:
                return ""
            c = studio.store.count_images(project)
            return (f"{c['total']} image(s): {c['unlabelled']} unlabelled, {c['draft']} draft, "
                    f"{c['submitted']} submitted")

        @_user_errors
        def on_create(name, classes):
            p = studio.create_project(name, classes)
            gr.Info(f"Project '{p.name}' created with {len(p.classes)} classes.")
            return gr.update(choices=studio.project_names(), value=p.name), "", ""

        create_btn.click(on_create, [new_name, new_classes], [project_dd, new_name, new_classes],
                         api_name="create_project")

        def on_project(project):
            return _class_table(studio, project), summary(project)

        project_dd.change(on_project, project_dd, [table, counts], api_name="label_set")
        screen.project_refresh = (on_project, [project_dd], [table, counts])

        @_user_errors
        def on_apply(project, df):
            if not project:
                raise UserError("pick a project first")
            rows = df.values.tolist() if isinstance(df, pd.DataFrame) else (df or [])
            studio.update_classes(project, rows)
            gr.Info("Label set updated.")
            return _class_table(studio, project)

        screen.label_set_events = [apply_btn.click(on_apply, [project_dd, table], table, api_name="update_classes")]

        @_user_errors
        def on_add(project, name, color):
            if not project:
                raise UserError("pick a project first")
            studio.add_class(project, name, _color(color))
            return _class_table(studio, project), ""

        screen.label_set_events.append(
            add_btn.click(on_add, [project_dd, add_name, add_color], [table, add_name], api_name="add_class"))
    return screen


def _color(c: Any) -> str | None:
    """ColorPicker values can be '#rrggbb' or 'rgba(r, g, b, a)'."""
    if not c:
        return None
    c = str(c).strip()
    if c.startswith("rgb"):
        nums = [float(v) for v in c[c.index("(") + 1:c.index(")")].split(",")[:3]]
        return hex_color([round(v) for v in nums])
    return c[:7]


# --------------------------------------------------------------------------- model screen

def model_screen(studio: Studio, project_dd: gr.Dropdown) -> gr.Blocks:
    with gr.Blocks() as screen:
        with gr.Row():
            with gr.Column():
                summary = gr.Markdown(elem_id="segui-model-summary")
                versions = gr.Dropdown(label="Model versions", choices=[], interactive=True)
                activate_btn = gr.Button("Switch to this version")
            with gr.Column():
                plot = gr.BarPlot(x="class", y="IoU", title="Validation IoU per class", y_lim=[0, 1],
                                  sort=None)
        with gr.Row():
            fmt = gr.Radio(["folder", "voc", "coco"], value="folder", label="Export format")
            drafts = gr.Checkbox(label="Include drafts", value=False)
            export_btn = gr.Button("Export")
            export_file = gr.File(label="Export (zip)")
        with gr.Column(elem_id="segui-finetune-panel"):
            finetune_panel.render(studio, project_dd)

        def refresh(project):
            if not project:
                return "", gr.update(choices=[]), pd.DataFrame({"class": [], "IoU": []})
            text, per_class = studio.model_summary(project)
            vs = studio.model_versions(project)
            active = next((v for label, v in vs if label.endswith("(active)")), None)
            df = pd.DataFrame({"class": [c for c, _ in per_class], "IoU": [v for _, v in per_class]})
            return text, gr.update(choices=vs, value=active), df

        project_dd.change(refresh, project_dd, [summary, versions, plot], api_name="model_panel")
        screen.project_refresh = (refresh, [project_dd], [summary, versions, plot])

        @_user_errors
        def on_activate(project, vid):
            if not project or vid is None:
                raise UserError("pick a model version")
            studio.activate_model(project, int(vid))
            gr.Info(f"Model version {int(vid)} is now active; new predictions use it.")
            return refresh(project)

        activate_btn.click(on_activate, [project_dd, versions], [summary, versions, plot],
                           api_name="activate_model")

        @_user_errors
        def on_export(project, f, include_drafts):
            return str(studio.export(project, f, include_drafts))

        export_btn.click(on_export, [project_dd, fmt, drafts], export_file, api_name="export")
    return screen


# --------------------------------------------------------------------------- app

def build_app(studio: Studio, auth_enabled: bool = False) -> gr.Blocks:
    with gr.Blocks(title="Segmentation labelling studio") as app:
        with gr.Row():
            gr.Markdown(f"## Segmentation labelling studio\nInference on **{studio.device_name}**",
                        elem_id="segui-device")
            project_dd = gr.Dropdown(label="Project", choices=studio.project_names(), interactive=True,
                                     elem_id="segui-project")
            author_tb = gr.Textbox(label="Your name (saved with annotations)", value="labeller",
                                   interactive=not auth_enabled, elem_id="segui-author")
        with gr.Tabs():
            with gr.Tab("Label"):
                screens = [label_screen(studio, project_dd, author_tb)]
            with gr.Tab("Projects"):
                screens.append(projects_screen(studio, project_dd))
            with gr.Tab("Model"):
                screens.append(model_screen(studio, project_dd))

        def on_load(request: gr.Request):
            names = studio.project_names()
            user = getattr(request, "username", None) if request is not None else None
            return (gr.update(choices=names, value=names[0] if names else None),
                    gr.update(value=user) if user else gr.update())

        # label-set edits on the projects screen update the label screen's palette and legend
        fn, inputs, outputs = screens[0].label_set_refresh
        for i, ev in enumerate(screens[1].label_set_events):
            ev.success(fn, inputs, outputs, api_name=f"refresh_palette_{i}")
        # a value set by a load event does not fire .change: refresh every screen explicitly
        ev = app.load(on_load, None, [project_dd, author_tb], api_name="init")
        for i, screen in enumerate(screens):
            fn, inputs, outputs = screen.project_refresh
            ev = ev.then(fn, inputs, outputs, api_name=f"init_screen_{i}")
    return app
