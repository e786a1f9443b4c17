"""Gradio screens of the labelling studio.

Each screen is its own ``gr.Blocks`` (``label_screen``, ``projects_screen``,
``model_screen``) rendered into one tab of :func:`build_app`; the project picker and
the author name live in the header and are shared. Screens hand back a
:class:`Screen` that says how to refresh them; every event has an ``api_name``.
Handlers only call :class:`segui.handlers.Studio` (the rules) and
``segui.canvas`` (the wire format); user mistakes become ``gr.Error`` (nothing
stored).
"""
from __future__ import annotations

import functools
import html
import inspect
import typing
from dataclasses import dataclass, field
from typing import Any, Callable

import gradio as gr
import numpy as np
import pandas as pd

from . import access, finetune_panel
from .access import Act, Forbidden
from .canvas import codec, failed_js, mask_canvas
from .canvas import payload as pl
from .handlers import FILTERS, VAL_EVERY, Studio, UserError
from .imageops import hex_color


@dataclass
class Screen:
    """A rendered screen and how the app refreshes it: ``refresh`` runs when the
    project changes (and at page load), ``label_set_refresh`` after the label set was
    edited elsewhere; ``label_set_events`` are this screen's label-set edits."""
    blocks: gr.Blocks
    refresh: tuple[Callable, list, list]
    label_set_refresh: tuple[Callable, list, list] | None = None
    label_set_events: list = field(default_factory=list)


def _user_errors(fn):
    """UserError (and a map the page sent that cannot be read) -> visible gr.Error;
    the app keeps working and nothing is stored."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (UserError, codec.MapFormatError, Forbidden) as e:
            raise gr.Error(str(e)) from None
    return wrapper


# --------------------------------------------------------------------------- label screen

def _upload_log(rep) -> str:
    """One line per uploaded file, under the upload box."""
    icon = {"added": "✓", "duplicate": "↺", "skipped": "✗"}
    rows = "".join(
        f'<li class="segui-up-{kind}"><span class="segui-up-icon">{icon[kind]}</span> '
        f'<b>{html.escape(name)}</b>: {html.escape(msg)}</li>' for name, kind, msg in rep.files)
    return f'<ul class="segui-uploads">{rows}</ul>'


UPLOAD_CSS = """
.segui-uploads { list-style: none; margin: 0; padding: 0; font-size: 13px; max-height: 160px; overflow-y: auto; }
.segui-uploads li { padding: 1px 0; word-break: break-all; }
.segui-up-added .segui-up-icon { color: #15803d; } .segui-up-duplicate .segui-up-icon { color: #1d4ed8; }
.segui-up-skipped { color: #991b1b; }
"""


def label_screen(studio: Studio, project_dd: gr.Dropdown, author_tb: gr.Textbox) -> Screen:
    def superpixels(args, request: gr.Request):
        """Server function of the canvas: the SLIC map of an image, once per image."""
        req = args[0] if isinstance(args, list) and args else args
        iid = int(req["image_id"])
        with _acting(studio, request, "superpixels", image_id=iid):
            ready = studio.prepare(iid)
            return {"image_id": iid, "data": codec.encode_segments(studio.segments(iid, ready.loaded.image))}

    def peek_next(args, request: gr.Request):
        """Server function of the canvas: the load payload of the image Next would open
        after ``current`` (nothing is saved or changed), so the page can show it at once."""
        req = args[0] if isinstance(args, list) and args else args
        try:
            project, current = req["project"], int(req["current"])
            flt = req.get("filter", "unlabelled")
            with _acting(studio, request, "peek_next", project=project):
                iid = studio.next_image(project, flt if flt in FILTERS else "unlabelled", (current,))
                return None if iid is None else pl.load(studio, project, studio.open_in_project(project, iid))
        except (UserError, Forbidden, KeyError, TypeError, ValueError, LookupError):
            return None

    with gr.Blocks() as blocks:
        loaded_st = gr.State(None)      # handlers.Loaded of the open image
        prompt_st = gr.State(None)      # (image id, boolean mask) of the last text prompt
        canvas = mask_canvas([superpixels, peek_next])
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=260):
                upload = gr.File(label="Upload images (files or a zip)", file_count="multiple",
                                 elem_id="segui-upload", height=120)
            with gr.Column(scale=3, min_width=260):
                upload_log = gr.HTML(elem_id="segui-upload-log", css_template=UPLOAD_CSS, js_on_load=None)
            with gr.Column(scale=2, min_width=240):
                with gr.Accordion("Revisions of this image", open=False):
                    rev_dd = gr.Dropdown(label="Saved revisions", choices=[], interactive=True)
                    rev_btn = gr.Button("Load revision", elem_id="segui-load-revision")
        # API only (scripts): superpixel fill at a point, as the canvas does in the page
        with gr.Row(visible=False):
            fill_cls = gr.Textbox()
            fill_x = gr.Number(precision=0)
            fill_y = gr.Number(precision=0)
            fill_btn = gr.Button()

        def revs(loaded):
            return gr.update(choices=studio.revisions(loaded.image_id) if loaded else [], value=None)

        def current(value, loaded):
            """The map the page sent for the open image (None: it sent none)."""
            if loaded is None:
                return None
            h, w = loaded.class_map.shape
            return codec.map_from_value(value, loaded.image_id, h, w)

        def need(value, loaded):
            cm = current(value, loaded)
            if cm is None:
                raise UserError("no image is open: upload one or press Next")
            return cm

        def opened(project, ready, note="", request=None, level="info", flt="unlabelled", back=False):
            """Outputs after opening an image: canvas, state, revisions; the next one is prepared."""
            studio.prefetch_next(project, flt, ready.loaded.image_id)
            return (pl.load(studio, project, ready, note, request, level, back), ready.loaded,
                    revs(ready.loaded))

        def left_note(res) -> str:
            return "" if res is None else f"Your edits were saved as draft revision {res.revision}. "

        def go_to(project, value, loaded, author, request, target: Callable[[], int | None],
                  nothing: str, flt="unlabelled", back=False):
            """Leave the open image (unsaved edits -> draft) and open ``target()``."""
            rid = codec.request_of(value)
            res = studio.leave(loaded, current(value, loaded), studio.author(author, _login(request)))
            if res is not None and res.conflict:   # stay: the labeller must see the conflict
                return pl.saved(studio, project, loaded, res, res.conflict, rid), loaded, revs(loaded)
            iid = target()
            if iid is None:
                note = left_note(res) + nothing
                if loaded is None:
                    return pl.empty(studio, project, nothing, rid), None, revs(None)
                if res is not None:
                    return pl.saved(studio, project, loaded, res, note, rid), loaded, revs(loaded)
                return pl.info(note, rid), loaded, revs(loaded)
            ready = studio.open_in_project(project, iid)
            return opened(project, ready, left_note(res), rid, flt=flt, back=back)

        OUT = [canvas, loaded_st, rev_dd]

        @_user_errors
        def on_project(project, value, loaded, author, request: gr.Request):
            if not project:
                return gr.update(), gr.update(), gr.update()
            if loaded is not None and loaded.project_id == studio.store.get_project(project).id:
                return gr.update(), gr.update(), gr.update()   # already showing this project
            studio.warm_up(project)
            # the other project's image is left (unsaved edits -> its draft, even on a conflict)
            res = studio.leave(loaded, current(value, loaded), studio.author(author, _login(request)))
            note = (res.conflict + " ") if res is not None and res.conflict else left_note(res)
            iid = studio.next_image(project, "unlabelled") or studio.next_image(project, "any")
            if iid is None:
                return (pl.empty(studio, project, "No images in this project yet: upload some below (files or a zip).",
                                 codec.request_of(value), note.strip()), None, revs(None))
            return opened(project, studio.open_in_project(project, iid), note, codec.request_of(value))

        def _flt(value):
            f = codec.args_of(value).get("filter", "unlabelled")
            if f not in FILTERS:
                raise UserError(f"filter must be one of {', '.join(FILTERS)}")
            return f

        @_user_errors
        def on_next(project, value, loaded, author, request: gr.Request):
            if not project:
                raise UserError("pick or create a project first")
            flt = _flt(value)
            exclude = (loaded.image_id,) if loaded is not None else ()
            return go_to(project, value, loaded, author, request,
                         lambda: studio.next_image(project, flt, exclude),
                         f"No more images with status '{flt}'.", flt)

        @_user_errors
        def on_open(project, value, loaded, author, request: gr.Request):
            a = codec.args_of(value)
            try:
                iid = int(a["open"])
            except (KeyError, TypeError, ValueError):
                raise UserError("say which image to open (args.open = an image id)") from None
            studio.open_in_project(project, iid)   # refuse another project's image before leaving
            return go_to(project, value, loaded, author, request, lambda: iid, "", _flt(value),
                         back=bool(a.get("back")))

        def _save(project, value, loaded, author, request, status):
            cm = need(value, loaded)
            res = studio.save_edits(loaded, cm, studio.author(author, _login(request)), status)
            note = res.conflict or f"Saved revision {res.revision} ({res.status})."
            return res, pl.saved(studio, project, loaded, res, note, codec.request_of(value))

        @_user_errors
        def on_save(project, value, loaded, author, request: gr.Request):
            _, out = _save(project, value, loaded, author, request, "draft")
            return out, loaded, revs(loaded)

        @_user_errors
        def on_submit(project, value, loaded, author, request: gr.Request):
            res, out = _save(project, value, loaded, author, request, "submitted")
            if res.conflict:
                return out, loaded, revs(loaded)
            flt = _flt(value)
            iid = studio.next_image(project, flt, (loaded.image_id,))
            if iid is None:
                out["note"] += " The queue is empty."
                return out, loaded, revs(loaded)
            return opened(project, studio.open_in_project(project, iid), out["note"], out["request"], flt=flt)

        common = dict(show_progress="hidden")
        ins = [project_dd, canvas, loaded_st, author_tb]
        project_dd.change(on_project, ins, OUT, api_name="select_project", **common)
        for event, fn, name in [("save_draft", on_save, "save"), ("submit_next", on_submit, "submit"),
                                ("go_next", on_next, "next_image"), ("open_image", on_open, "open_image")]:
            getattr(canvas, event)(fn, ins, OUT, api_name=name, **common).failure(
                None, None, None, js=failed_js(event), api_name=f"{name}_failed")

        @_user_errors
        def on_split(project, value, loaded):
            if loaded is None:
                raise UserError("no image is open: upload one or press Next")
            split = str(codec.args_of(value).get("split", ""))
            loaded.split = studio.set_split(project, loaded.image_id, split)
            note = (f"Split of {loaded.filename}: {loaded.split}." if loaded.split != "none" else
                    f"{loaded.filename} gets its split when it is submitted (one image in {VAL_EVERY} goes to val).")
            return pl.split(loaded, note, codec.request_of(value))

        canvas.set_split(on_split, [project_dd, canvas, loaded_st], canvas, api_name="set_split", **common).failure(
            None, None, None, js=failed_js("set_split"), api_name="set_split_failed")

        @_user_errors
        def on_review(project, value, loaded):
            """Accept or reject the open submission, then open the next one to review."""
            a = codec.args_of(value)
            decision = str(a.get("decision", ""))
            r = studio.review(loaded, current(value, loaded), decision, str(a.get("comment", "") or ""))
            note = (f"{loaded.filename}: revision {r.revision} {r.decision}"
                    + (f" ({r.comment})." if r.comment else ".") + " ")
            rid = codec.request_of(value)
            iid = studio.next_image(project, "review", (loaded.image_id,))
            if iid is None:
                note += "Nothing else awaits review."
                return opened(project, studio.open_in_project(project, loaded.image_id), note, rid, flt="review")
            return opened(project, studio.open_in_project(project, iid), note, rid, flt="review")

        canvas.review_image(on_review, [project_dd, canvas, loaded_st], OUT, api_name="review_image",
                            **common).failure(None, None, None, js=failed_js("review_image"),
                                              api_name="review_image_failed")

        @_user_errors
        def on_snap(project, value, loaded):
            cm = need(value, loaded)
            out = studio.snap(loaded, loaded.tool_base, cm)
            loaded.tool_base = out
            n = int((out != cm).sum())
            return pl.result(loaded, out, "snap", f"Snap: {n} px added to the superpixels your strokes cover.",
                             codec.request_of(value))

        @_user_errors
        def on_cleanup(project, value, loaded):
            cm = need(value, loaded)
            a = codec.args_of(value)
            keep = a.get("keep")
            if keep is not None and not (isinstance(keep, list) and all(isinstance(k, int) for k in keep)):
                raise UserError("args.keep must be a list of class indices, e.g. [2, 6]")
            out = studio.clean_up(project, cm, a.get("min_size", 64), keep)
            loaded.tool_base = out
            n = int((out != cm).sum())
            return pl.result(loaded, out, "clean-up",
                             f"Clean-up: {n} px in regions under {int(a.get('min_size', 64))} px reassigned.",
                             codec.request_of(value))

        for event, fn, name in [("run_snap", on_snap, "snap"), ("run_cleanup", on_cleanup, "clean_up")]:
            getattr(canvas, event)(fn, [project_dd, canvas, loaded_st], canvas, api_name=name, **common).failure(
                None, None, None, js=failed_js(event), api_name=f"{name}_failed")

        @_user_errors
        def on_prompt(project, value, loaded):
            if loaded is None:
                raise UserError("no image is open: upload one or press Next")
            phrase = str(codec.args_of(value).get("phrase", "")).strip()
            mask = studio.text_prompt(project, loaded, phrase)
            known = any(c.name.casefold() == phrase.casefold() for c in studio.store.get_project(project).classes)
            return pl.prompt(loaded, mask, phrase, known, codec.request_of(value)), (loaded.image_id, mask)

        canvas.run_prompt(on_prompt, [project_dd, canvas, loaded_st], [canvas, prompt_st],
                          api_name="text_prompt", **common).failure(
            None, None, None, js=failed_js("run_prompt"), api_name="text_prompt_failed")

        @_user_errors
        def on_accept(project, value, loaded, prompt):
            cm = need(value, loaded)
            if prompt is None or prompt[0] != loaded.image_id:
                raise UserError("no text prompt on this image: segment a phrase first")
            mask = prompt[1]
            a = codec.args_of(value)
            name = str(a.get("name", "")).strip()
            p, out = studio.accept_prompt(project, cm, mask, name, bool(a.get("add_class")))
            loaded.tool_base = out
            res = pl.result(loaded, out, "text prompt", f"{int(mask.sum())} px labelled '{name}'.",
                            codec.request_of(value), clear_prompt=True)
            return pl.with_classes(res, studio, p.id), None

        canvas.accept_prompt(on_accept, [project_dd, canvas, loaded_st, prompt_st], [canvas, prompt_st],
                             api_name="accept_prompt", **common).failure(
            None, None, None, js=failed_js("accept_prompt"), api_name="accept_prompt_failed")

        @_user_errors
        def on_fill_xy(project, value, loaded, cls, x, y):
            """API only: superpixel fill at (x, y) with class ``cls`` (the page fills in the browser)."""
            cm = need(value, loaded)
            out = studio.superpixel_fill(project, loaded, cm, int(x), int(y), cls or "void")
            loaded.tool_base = out
            return pl.result(loaded, out, "superpixel fill",
                             f"Filled the superpixel at ({int(x)}, {int(y)}) with {cls}.", codec.request_of(value))

        fill_btn.click(on_fill_xy, [project_dd, canvas, loaded_st, fill_cls, fill_x, fill_y], canvas,
                       api_name="fill_at", **common)

        @_user_errors
        def on_upload(project, files, value, loaded, author, request: gr.Request):
            if not files:
                return gr.update(), gr.update(), gr.update(), "", gr.update()
            paths = [getattr(f, "name", f) for f in files]
            rep = studio.upload(project, paths)
            log_html = _upload_log(rep)
            if rep.to_open is None:   # nothing usable: the list says why, the canvas stays as it is
                return gr.update(), gr.update(), gr.update(), log_html, None
            canvas_v, new_loaded, rv = go_to(project, value, loaded, author, request, lambda: rep.to_open, "")
            if canvas_v["kind"] == "load":
                canvas_v["note"] = (canvas_v["note"] + rep.message()).strip()
            return canvas_v, new_loaded, rv, log_html, None

        upload.upload(on_upload, [project_dd, upload, canvas, loaded_st, author_tb],
                      [canvas, loaded_st, rev_dd, upload_log, upload], api_name="upload", **common)

        @_user_errors
        def on_revision(project, value, loaded, rev, author, request: gr.Request):
            if loaded is None or not rev:
                raise UserError("open an image and pick a revision")
            number = int(str(rev).split(":")[0])
            res = studio.leave(loaded, current(value, loaded), studio.author(author, _login(request)))
            if res is not None and res.conflict:
                return pl.saved(studio, project, loaded, res, res.conflict), loaded, revs(loaded)
            ready = studio.open_in_project(project, loaded.image_id, number)
            # saving an older revision stores a new revision on top of the latest
            ready.loaded.base_revision = studio.store.get_image(loaded.image_id).revision
            return (pl.load(studio, project, ready, left_note(res) + f"Showing revision {number}; saving stores "
                            "it as a new revision."), ready.loaded, revs(ready.loaded))

        rev_btn.click(on_revision, [project_dd, canvas, loaded_st, rev_dd, author_tb], OUT,
                      api_name="load_revision", **common)

        def on_label_set(project):
            """After the label set was edited on the projects screen: palette, class list, keys."""
            return pl.label_set(studio, project) if project else gr.update()

    return Screen(blocks, refresh=(on_project, ins, OUT), label_set_refresh=(on_label_set, [project_dd], [canvas]))


def _login(request) -> str | None:
    return access.username_of(request)


class _acting:
    """``with _acting(studio, request, name, project=..., image_id=...)``: the caller may
    call endpoint ``name`` (``access.ENDPOINTS``) or Forbidden; inside, Studio knows who."""

    def __init__(self, studio: Studio, request, name: str, project=None, image_id=None):
        self.who = studio.authorize(access.username_of(request), access.ENDPOINTS[name], project, image_id)

    def __enter__(self):
        self.token = access.acting_as(self.who)
        return self.who

    def __exit__(self, *exc):
        access.reset(self.token)


def _input_params(fn) -> list[str]:
    """The names of ``fn``'s parameters that receive the event's inputs, in order
    (Gradio fills gr.Request and gr.Progress parameters itself)."""
    hints = typing.get_type_hints(fn) if inspect.isfunction(fn) else {}
    out = []
    for prm in inspect.signature(fn).parameters.values():
        if prm.kind not in (prm.POSITIONAL_ONLY, prm.POSITIONAL_OR_KEYWORD):
            break
        if hints.get(prm.name) in (gr.Request, typing.Optional[gr.Request]) or isinstance(prm.default, gr.Progress):
            continue
        out.append(prm.name)
    return out


def guard_events(app: gr.Blocks, studio: Studio, project_dd: gr.Dropdown) -> None:
    """Put :meth:`Studio.authorize` in front of every event handler of ``app``: the
    role table (``access.ENDPOINTS``) for the endpoint, membership of the project the
    event names. An endpoint without a rule is a programming error, caught here."""
    from gradio.context import LocalContext

    for block_fn in app.fns.values():
        if block_fn.fn is None:          # the page's own JS (e.g. *_failed): nothing runs here
            continue
        name = block_fn.api_name
        if name not in access.ENDPOINTS:
            raise RuntimeError(f"endpoint {name!r} has no rule in segui.access.ENDPOINTS: add one")
        fn = block_fn.fn
        if inspect.isgeneratorfunction(fn) or inspect.iscoroutinefunction(fn):
            raise RuntimeError(f"endpoint {name!r}: guard_events wraps plain functions only")
        params = _input_params(fn)
        pos = [i for i, c in enumerate(block_fn.inputs) if c is project_dd]
        project_param = params[pos[0]] if pos and pos[0] < len(params) else None
        signature = inspect.signature(fn)

        def guarded(*args, __fn=fn, __name=name, __project=project_param, __sig=signature, **kwargs):
            project = None
            if __project is not None:
                project = __sig.bind_partial(*args, **kwargs).arguments.get(__project)
            try:
                who = studio.authorize(access.username_of(LocalContext.request.get(None)),
                                       access.ENDPOINTS[__name], project)
            except Forbidden as e:
                raise gr.Error(str(e), visible=__name not in access.QUIET, print_exception=False) from None
            token = access.acting_as(who)
            try:
                return __fn(*args, **kwargs)
            finally:
                access.reset(token)

        functools.update_wrapper(guarded, fn)
        block_fn.fn = guarded


# --------------------------------------------------------------------------- projects screen

def _class_table(studio: Studio, project: str | None) -> pd.DataFrame:
    rows = []
    if project:
        rows = [[c.index, c.name, hex_color(c.color)] for c in studio.store.get_project(project).classes]
    return pd.DataFrame(rows, columns=["index", "name", "colour"])


def projects_screen(studio: Studio, project_dd: gr.Dropdown) -> Screen:
    with gr.Blocks() as blocks:
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
        with gr.Row():
            with gr.Column():
                gr.Markdown("### Members")
                members_md = gr.Markdown(elem_id="segui-members")
                with gr.Row():
                    member_name = gr.Textbox(label="User name", placeholder="an account's name (see Accounts below)")
                    member_add = gr.Button("Add member")
                    member_remove = gr.Button("Remove member")
            with gr.Column():
                gr.Markdown("### Review")
                source = gr.Radio([("automatic: accepted ones once the project has reviewers", "auto"),
                                   ("accepted annotations only", "accepted"),
                                   ("all submitted annotations", "submitted")], value="auto",
                                  label="Fine-tuning jobs and exports use", elem_id="segui-training-source")
                source_md = gr.Markdown()

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

        def source_state(project):
            if not project:
                return gr.update(value="auto"), ""
            p = studio.store.get_project(project)
            eff = studio.store.effective_training_source(project)
            raw = getattr(p, "training_source", None) or "auto"
            return gr.update(value=raw), f"Now: **{eff}** annotations."

        def on_label_set(project):
            return _class_table(studio, project), summary(project)

        def on_settings(project):
            return studio.members(project), *source_state(project)

        def on_project(project):
            return (*on_label_set(project), *on_settings(project), users_df())

        project_dd.change(on_label_set, project_dd, [table, counts], api_name="label_set")
        project_dd.change(on_settings, project_dd, [members_md, source, source_md], api_name="project_settings")

        @_user_errors
        def on_member(project, name, add):
            note = studio.set_member(project, name, add)
            gr.Info(note)
            return studio.members(project), ""

        member_add.click(lambda p, n: on_member(p, n, True), [project_dd, member_name], [members_md, member_name],
                         api_name="add_member")
        member_remove.click(lambda p, n: on_member(p, n, False), [project_dd, member_name],
                            [members_md, member_name], api_name="remove_member")

        @_user_errors
        def on_source(project, value):
            studio.set_training_source(project, value)
            return source_state(project)[1]

        source.input(on_source, [project_dd, source], source_md, api_name="training_source")

        with gr.Accordion("Accounts (admins)", open=False, elem_id="segui-accounts"):
            users = gr.Dataframe(headers=["name", "role", "state", "projects"], datatype=["str"] * 4,
                                 interactive=False, elem_id="segui-users")
            with gr.Row():
                acct_name = gr.Textbox(label="Name", elem_id="segui-acct-name")
                acct_role = gr.Dropdown(["annotator", "reviewer", "admin"], value="annotator", label="Role",
                                        elem_id="segui-acct-role")
                acct_pw = gr.Textbox(label="Password (new accounts, or a new password)", type="password",
                                     elem_id="segui-acct-pw")
            with gr.Row():
                acct_btns = {a: gr.Button(label) for a, label in [
                    ("add", "Add account"), ("set_role", "Set role"), ("password", "Set password"),
                    ("disable", "Disable"), ("enable", "Enable")]}
            acct_md = gr.Markdown(elem_id="segui-acct-status")

        def users_df():
            return pd.DataFrame(studio.users_table(), columns=["name", "role", "state", "projects"])

        def account_event(action):
            @_user_errors
            def on_account(name, role, password):
                note = studio.manage_user(action, name, role, password)
                return users_df(), note, ""      # the password box is emptied
            return on_account

        for action, btn in acct_btns.items():
            btn.click(account_event(action), [acct_name, acct_role, acct_pw], [users, acct_md, acct_pw],
                      api_name=f"account_{action}")

        @_user_errors
        def on_apply(project, df):
            if not project:
                raise UserError("pick a project first")
            rows = df.values.tolist() if isinstance(df, pd.DataFrame) else (df or [])
            studio.update_classes(project, rows)
            gr.Info("Label set updated.")
            return _class_table(studio, project)

        events = [apply_btn.click(on_apply, [project_dd, table], table, api_name="update_classes")]

        @_user_errors
        def on_add(project, name, color):
            if not project:
                raise UserError("pick a project first")
            studio.add_class(project, name, _color(color))
            return _class_table(studio, project), ""

        events.append(
            add_btn.click(on_add, [project_dd, add_name, add_color], [table, add_name], api_name="add_class"))
    PROJ_OUT = [table, counts, members_md, source, source_md, users]
    return Screen(blocks, refresh=(on_project, [project_dd], PROJ_OUT), label_set_events=events)


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
        project_dd.change(refresh, project_dd, MODEL_OUT, api_name="model_panel")

        @_user_errors
        def on_evaluate(project, vid, progress=gr.Progress()):
            if not project:
                raise UserError("pick a project first")
            ev = studio.evaluate_on_val(project, vid, progress=progress)
            df, conf = evaluated(ev)
            text, _, _, _, hist = refresh(project)
            text += f"\n\n**v{ev['version']} on this project's {ev['images']} val image(s):** mIoU {ev['miou']:.3f}."
            return text, df, conf, hist

        evaluate_btn.click(on_evaluate, [project_dd, versions], [summary, plot, confusion, history],
                           api_name="evaluate_version")

        @_user_errors
        def on_activate(project, vid):
            if not project or vid is None:
                raise UserError("pick a model version")
            studio.activate_model(project, int(vid))
            gr.Info(f"Model version {int(vid)} is now active; new predictions use it.")
            return refresh(project)

        activate_btn.click(on_activate, [project_dd, versions], MODEL_OUT, api_name="activate_model")

        @_user_errors
        def on_export(project, f, include_drafts):
            return str(studio.export(project, f, include_drafts))

        export_btn.click(on_export, [project_dd, fmt, drafts], export_file, api_name="export")

        with gr.Column(elem_id="segui-finetune-panel"):
            # when a job ends, the version list, summary and plots follow without re-picking the project
            finetune_panel.render(studio, project_dd, on_job_end=(refresh, MODEL_OUT))
    return Screen(blocks, refresh=(refresh, [project_dd], MODEL_OUT))


# --------------------------------------------------------------------------- activity screen

def activity_screen(studio: Studio, project_dd: gr.Dropdown) -> Screen:
    """Who did what and when in the project: revisions, review decisions, jobs,
    promotions, model switches, exports (reviewers and admins)."""
    with gr.Blocks() as blocks:
        with gr.Row():
            gr.Markdown("Every saved revision, review decision, job, promotion, model switch and export, newest first.")
            refresh_btn = gr.Button("Refresh", scale=0, min_width=100)
        table = gr.Dataframe(headers=["when (UTC)", "who", "what", "on"], datatype=["str"] * 4,
                             interactive=False, elem_id="segui-activity", wrap=True)

        def on_project(project):
            return pd.DataFrame(studio.activity(project) if project else [],
                                columns=["when (UTC)", "who", "what", "on"])

        refresh_btn.click(on_project, project_dd, table, api_name="activity")
    return Screen(blocks, refresh=(on_project, [project_dd], [table]))


# --------------------------------------------------------------------------- app

APP_CSS = """
#segui-header { align-items: center; gap: 10px; flex-wrap: nowrap; }
#segui-header > * { min-width: 0; }
#segui-device { flex: 1 1 auto; }
#segui-device p { margin: 0; font-size: 14px; }
#segui-project, #segui-author { flex: 0 0 240px; }
#segui-header .segui-hlabel { flex: 0 0 auto; width: auto; color: var(--body-text-color-subdued); }
#segui-header .segui-hlabel p { margin: 0; font-size: 13px; }
"""


SHOW_TABS_JS = """(shown) => {
  if (!shown) return [];
  for (const b of document.querySelectorAll('button[role=tab]')) {
    const name = b.textContent.trim();
    if (name in shown) b.style.display = shown[name] ? '' : 'none';
  }
  return [];
}"""


# launch() options every way of serving the app uses (app.py, the tests, the benchmarks).
# Gradio's run history would copy every event's inputs and outputs (photos, class maps)
# into the browser's localStorage, rewriting up to 100 of them on each event: Next got
# ~60 ms slower per event until it took over a second, and labelling data stayed behind.
LAUNCH_OPTIONS = {"css": APP_CSS, "run_history": False}


def build_app(studio: Studio, auth_enabled: bool = False) -> gr.Blocks:
    with gr.Blocks(title="Segmentation labelling studio", fill_width=True) as app:
        with gr.Row(elem_id="segui-header", equal_height=True):
            gr.Markdown(f"**Segmentation labelling studio** · inference on **{studio.device_name}**",
                        elem_id="segui-device")
            gr.Markdown("Project", elem_classes="segui-hlabel")
            project_dd = gr.Dropdown(label="Project", choices=studio.project_names(), interactive=True,
                                     elem_id="segui-project", container=False, show_label=False,
                                     info=None)
            name_lbl = gr.Markdown("Your name", elem_classes="segui-hlabel")
            author_tb = gr.Textbox(label="Your name", placeholder="Your name (saved with annotations)",
                                   value="labeller", interactive=not auth_enabled, elem_id="segui-author",
                                   container=False, show_label=False)
            signed_in = gr.Markdown(visible=False, elem_id="segui-signed-in", elem_classes="segui-hlabel")
            rights = gr.JSON(visible=False)
        with gr.Tabs():
            with gr.Tab("Label"):
                label = label_screen(studio, project_dd, author_tb)
            with gr.Tab("Projects") as projects_tab:
                projects = projects_screen(studio, project_dd)
            with gr.Tab("Model") as model_tab:
                model = model_screen(studio, project_dd)
            with gr.Tab("Activity") as activity_tab:
                activity = activity_screen(studio, project_dd)

        def logged_in(who) -> bool:
            return who.name is not None and (auth_enabled or studio.uses_accounts())

        def on_load():
            """Per person: their projects, and their login name as the author."""
            who = access.current()
            names = studio.project_names(who)
            return (gr.update(choices=names, value=names[0] if names else None),
                    gr.update(value=who.name) if logged_in(who) else gr.update())

        def on_role():
            """The screens of the caller's role; who is signed in instead of a typed name."""
            who = access.current()
            header = (f"Signed in as **{html.escape(who.name)}** ({who.role}) · [Log out](/logout)"
                      if logged_in(who) else "")
            return (gr.update(visible=not logged_in(who)), gr.update(visible=not logged_in(who)),
                    gr.update(value=header, visible=logged_in(who)),
                    {"Projects": who.can(Act.ADMIN), "Model": who.can(Act.ADMIN), "Activity": who.can(Act.REVIEW)})

        # label-set edits on the projects screen update the canvas's palette and class list
        fn, inputs, outputs = label.label_set_refresh
        for i, ev in enumerate(projects.label_set_events):
            ev.success(fn, inputs, outputs, api_name=f"refresh_palette_{i}", show_progress="hidden")
        # counts and versions change while one labels: refresh a tab when it is opened
        for tab, screen, name in [(projects_tab, projects, "projects"), (model_tab, model, "model"),
                                  (activity_tab, activity, "activity")]:
            tab.select(*screen.refresh, api_name=f"open_{name}_tab")
        project_dd.change(*activity.refresh, api_name="activity_for_project", show_progress="hidden")
        # a value set by a load event does not fire .change: refresh every screen explicitly
        ev = app.load(on_load, None, [project_dd, author_tb], api_name="init")
        ev = ev.then(on_role, None, [name_lbl, author_tb, signed_in, rights],
                     api_name="init_role", show_progress="hidden")
        # Gradio 6 does not apply a Tab's visibility from an event (the button stays):
        # the page hides the tab buttons of screens the role cannot use (the server refuses them anyway)
        ev = ev.then(None, rights, None, js=SHOW_TABS_JS, api_name="show_role_tabs")
        for i, screen in enumerate([label, projects, model, activity]):
            fn, inputs, outputs = screen.refresh
            ev = ev.then(fn, inputs, outputs, api_name=f"init_screen_{i}", show_progress="hidden")
    guard_events(app, studio, project_dd)
    return app
