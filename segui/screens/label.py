"""The Label screen: the mask canvas, uploads, revisions and the server-side tools.

:func:`label_screen` wires the canvas's events (open, Next, save, submit, split,
review, snap, clean-up, text prompt, fill) and the canvas's server functions
(superpixels, the next image's payload, a word's heatmap, the uncertainty map, what changed between model versions,
click-to-object) to :class:`segui.handlers.Studio`.
"""
from __future__ import annotations

import html
from typing import Callable

import gradio as gr

from ..access import Act, Forbidden
from ..canvas import codec, failed_js, mask_canvas
from ..canvas import payload as pl
from ..errors import UserError
from ..guard import Refused, acting, login, user_errors
from ..handlers import FILTERS, VAL_EVERY, Studio
from ..uploads import LABELS_NOT_IMPORTED
from ..uploads import discard_uploads
from . import Screen


def forget_uploads(paths) -> None:
    """Uploaded files leave Gradio's shared upload folder as soon as they are stored."""
    discard_uploads(paths, gr.utils.get_upload_folder())


def _upload_log(rep) -> str:
    """One line per uploaded file, under the upload box."""
    icon = {"added": "✓", "duplicate": "↺", "skipped": "✗", "warn": "!"}
    # an image added without the labels that came with it: marked, its line says why
    kinds = [("warn" if LABELS_NOT_IMPORTED in msg else kind) for _, kind, msg in rep.files]
    rows = "".join(
        f'<li class="segui-up-{kind}"><span class="segui-up-icon">{icon[kind]}</span> '
        f'<b>{html.escape(name)}</b>: {html.escape(msg)}</li>' for (name, _, msg), kind in zip(rep.files, kinds))
    if rep.swapped:     # the imported labels seem to exchange two names: first, before the files
        rows = (f'<li class="segui-up-warn"><span class="segui-up-icon">!</span> '
                f'{html.escape(rep.swap_warning().strip())}</li>') + rows
    return f'<ul class="segui-uploads">{rows}</ul>'


# the drawer (segui-drawer): fixed over the left of the image, under the toolbar; shown
# while data-open="1" (the canvas's toggleDrawer); it takes no room in the page
LABEL_CSS = """
#segui-drawer { position: fixed; z-index: 60; top: 140px; left: 24px; width: 420px; max-height: calc(100vh - 200px);
  overflow-y: auto; padding: 10px 12px; background: var(--background-fill-primary, #fff);
  border: 1px solid var(--border-color-primary, #ccc); border-radius: 8px; box-shadow: 0 8px 28px rgba(0,0,0,0.28); }
#segui-drawer:not([data-open="1"]) { display: none !important; }
#segui-drawer .segui-drawer-title p { margin: 4px 0; }
"""

UPLOAD_CSS = """
.segui-uploads { list-style: none; margin: 0; padding: 0; font-size: 13px; max-height: 160px; overflow-y: auto; }
.segui-uploads li { padding: 1px 0; word-break: break-all; }
.segui-up-added .segui-up-icon { color: #15803d; } .segui-up-duplicate .segui-up-icon { color: #1d4ed8; }
.segui-up-skipped { color: #991b1b; }
.segui-up-warn .segui-up-icon { color: #b45309; font-weight: 700; }
"""


def _request(args):
    """A canvas server function's request object (the page sends it alone or in a list)."""
    return args[0] if isinstance(args, list) and args else args


def _image_id(req, refusal: str) -> int:
    """The request's image id, or a clear 400 saying ``refusal``."""
    try:
        return int(req["image_id"])
    except (KeyError, TypeError, ValueError, AttributeError):
        raise Refused(refusal, 400) from None


def label_screen(studio: Studio, project_dd: gr.Dropdown, author_tb: gr.Textbox) -> Screen:
    def superpixels(args, request: gr.Request):
        """Server function of the canvas: the SLIC map of an image, once per image."""
        req = _request(args)
        iid = int(req["image_id"])
        with acting(studio, request, "superpixels", image_id=iid):
            ready = studio.prepare(iid)
            return {"image_id": iid, "data": codec.encode_segments(studio.segments(iid, ready.loaded.image))}

    def peek_next(args, request: gr.Request):
        """Server function of the canvas: the load payload of the image Next would open
        after ``current`` (nothing is saved or changed), so the page can show it at once."""
        req = _request(args)
        try:
            project, current = req["project"], int(req["current"])
            flt = req.get("filter", "unlabelled")
            with acting(studio, request, "peek_next", project=project) as a:
                iid = studio.next_image(a.project, flt if flt in FILTERS else "unlabelled", (current,))
                return None if iid is None else pl.load(studio, a.project, studio.open_in_project(a.project, iid))
        except (UserError, Forbidden, KeyError, TypeError, ValueError, LookupError):
            return None

    def heatmap(args, request: gr.Request):
        """Server function of the canvas: the active model's probability map of a word
        or phrase over an image (``Studio.heatmap``), as a greyscale PNG (probability
        * 255) with the phrase and its range; a refusal or a mistake is a clear 403/400."""
        req = _request(args)
        iid = _image_id(req, "heatmap: give an image id and a phrase")
        phrase = str(req.get("phrase") or "")
        with acting(studio, request, "heatmap", image_id=iid):
            return pl.heatmap(iid, studio.heatmap(iid, phrase))

    def uncertainty(args, request: gr.Request):
        """Server function of the canvas: the active model's per-pixel uncertainty over
        an image (``Studio.uncertainty_map``, normalised entropy), as a greyscale PNG."""
        iid = _image_id(_request(args), "uncertainty: give an image id")
        with acting(studio, request, "uncertainty", image_id=iid):
            return pl.uncertainty(iid, studio.uncertainty_map(iid))

    def what_changed(args, request: gr.Request):
        """Server function of the canvas: the pixels whose predicted class changed from
        the previous active model version to the active one (``Studio.changes_since_previous``)."""
        iid = _image_id(_request(args), "what_changed: give an image id")
        with acting(studio, request, "what_changed", image_id=iid):
            return pl.changes(iid, studio.changes_since_previous(iid))

    def click_object(args, request: gr.Request):
        """Server function of the canvas: the object that positive and negative clicks
        describe (``Studio.click_object``), as a 0/1 PNG; the page previews it and
        paints it with the chosen class on Enter."""
        req = _request(args)
        iid = _image_id(req, "click_object: give an image id and the clicks")
        with acting(studio, request, "click_object", image_id=iid):
            if req.get("warm"):     # the O tool was picked: the image's features, no clicks yet
                return {"image_id": iid, "warm": True, **studio.warm_object(iid)}
            return pl.object_mask(iid, studio.click_object(iid, req.get("clicks")))

    def strip_page(args, request: gr.Request):
        """Server function of the canvas: one page of the image strip (``Studio.strip``)."""
        req = _request(args)
        project = req.get("project") if isinstance(req, dict) else None
        if not isinstance(project, str) or not project:
            raise Refused("strip_page: give a project and a page", 400)
        current = req.get("current")
        with acting(studio, request, "strip_page", project=project) as a:
            return studio.strip(a.project, current if isinstance(current, int) else None, page=req.get("page", 0))

    def thumbnails(args, request: gr.Request):
        """Server function of the canvas: thumbnails of a few images of the project
        (``Studio.thumbnails``: made once per revision, kept in a cache folder)."""
        req = _request(args)
        project = req.get("project") if isinstance(req, dict) else None
        ids = req.get("ids") if isinstance(req, dict) else None
        if not isinstance(project, str) or not project or not isinstance(ids, list):
            raise Refused("thumbnails: give a project and a list of image ids", 400)
        with acting(studio, request, "thumbnails", project=project) as a:
            return studio.thumbnails(a.project, ids)

    def store_edit(args, request: gr.Request):
        """Server function of the canvas: store an edit the page journaled but could not
        save with its image (its outbox; a restore after a reload or a lost connection)
        as a draft on top of the revision it was made on (``Studio.store_edit``:
        idempotent; someone else's newer revision is kept as a conflict). Checked
        against the project the image really belongs to."""
        req = _request(args)
        iid = _image_id(req, "store_edit: give an image id, its map and the revision it was edited from")
        try:
            base = int(req.get("base") or 0)
        except (TypeError, ValueError):
            raise Refused("store_edit: base must be a revision number", 400) from None
        with acting(studio, request, "store_edit", image_id=iid):
            info = studio.store.get_image(iid)
            cm = codec.decode_map(str(req.get("map") or ""), info.height, info.width)
            res = studio.store_edit(iid, cm, studio.author(str(req.get("author") or ""), login(request)), base)
            return {"image_id": iid, "revision": res.revision, "status": res.status, "same": res.same,
                    "conflict": res.conflict or "", "conflict_with": res.conflict_info(), "stamp": codec.stamp_of(req)}

    def revision_maps(args, request: gr.Request):
        """Server function of the canvas: the class maps of up to 3 revisions of an image
        (0: the prediction) for the compare view of a save conflict (``Studio.revision_maps``:
        checked as opening the image)."""
        req = _request(args)
        iid = _image_id(req, "revision_maps: give an image id and up to 3 revisions")
        with acting(studio, request, "revision_maps", image_id=iid):
            return pl.revision_maps(iid, studio.revision_maps(iid, req.get("revisions")), studio.revision_authors(iid))

    def alive(args, request: gr.Request):
        """Server function of the canvas: its heartbeat. The server process's id: another
        id than the page's means the server restarted and lost the page's open image
        (the page then reopens it, keeping its unsaved edits). With ``project``: that
        project's active model version too (``active``: id, name, ready, and its newest job,
        ``job``), so the page shows a job under way and learns that a job was promoted or
        another version activated (it shows the new prediction of an image it has open
        unedited); left out when the caller may not see the project."""
        req = _request(args)
        with acting(studio, request, "alive"):
            out = {"boot": studio.boot}
        project = req.get("project") if isinstance(req, dict) else None
        if isinstance(project, str) and 0 < len(project) <= 200:   # (a project name is shorter)
            try:
                with acting(studio, request, "alive", project=project) as a:
                    active = studio.active_version(a.project)
                    if active is not None:
                        out["active"] = {**active, "project": project, "job": studio.job_brief(a.project)}
            except (Refused, LookupError, UserError):
                pass                         # (the boot is what a heartbeat must get)
        return out

    with gr.Blocks() as blocks:
        loaded_st = gr.State(None)      # handlers.Loaded of the open image
        prompt_st = gr.State(None)      # (image id, boolean mask) of the last text prompt
        canvas = mask_canvas([superpixels, peek_next, heatmap, uncertainty, what_changed, click_object, strip_page, thumbnails,
                              store_edit, revision_maps, alive])
        # a drawer over the image (the canvas's "Upload · Revisions" button, Esc or Close):
        # what it shows never pushes the class list or Save / Submit (LABEL_CSS)
        with gr.Column(elem_id="segui-drawer"):
            with gr.Row():
                # a zip exported here (folder, voc or coco: Model screen), by CVAT (segmentation
                # masks, COCO) or Label Studio (COCO) brings its labels with it
                gr.Markdown("**Upload images** (files or a zip; an export of this studio, CVAT or Label "
                            "Studio brings its labels) · **revisions** of the open image",
                            elem_classes="segui-drawer-title")
                close_btn = gr.Button("× Close", size="sm", scale=0, min_width=70, elem_id="segui-drawer-close")
            upload = gr.File(label="Upload images (files or a zip)", file_count="multiple",
                             elem_id="segui-upload", height=110)
            upload_log = gr.HTML(elem_id="segui-upload-log", css_template=UPLOAD_CSS, js_on_load=None)
            rev_dd = gr.Radio(label="Saved revisions of the open image", choices=[], interactive=True,
                              elem_id="segui-revisions")
            rev_btn = gr.Button("Load revision", size="sm", elem_id="segui-load-revision")
            # reviewers and admins: take the open image out of the project, put one back
            with gr.Column(elem_id="segui-image-removal"):
                remove_btn = gr.Button("Remove this image from the project", size="sm", variant="stop",
                                       elem_id="segui-remove-image")
                with gr.Row():
                    removed_dd = gr.Dropdown(label="Removed images (kept with their revisions)", choices=[],
                                             value=None, interactive=True, elem_id="segui-removed", scale=3)
                    restore_btn = gr.Button("Put it back", size="sm", elem_id="segui-restore-image", scale=1)
        close_btn.click(None, None, None, api_name="close_drawer",
                        js="() => { const d = document.getElementById('segui-drawer'); if (d) d.dataset.open = ''; "
                           "for (const b of document.querySelectorAll('.seg-drawer-btn')) b.classList.remove('is-on'); }")
        # API only (scripts): superpixel fill at a point, as the canvas does in the page
        with gr.Row(visible=False):
            fill_cls = gr.Textbox()
            fill_x = gr.Number(precision=0)
            fill_y = gr.Number(precision=0)
            fill_btn = gr.Button()

        def revs(loaded):
            """The drawer's revision list, its label naming the open image."""
            if loaded is None:
                return gr.update(choices=[], value=None, label="Saved revisions: no image is open")
            choices = studio.revisions(loaded.image_id)[::-1]   # newest first
            return gr.update(choices=choices, value=None,
                             label=f"Saved revisions of {loaded.filename}: {len(choices) or 'none yet'}")

        def current(value, loaded):
            """The map the page sent for the open image (None: it sent none)."""
            if loaded is None:
                return None
            h, w = loaded.class_map.shape
            cm = codec.map_from_value(value, loaded.image_id, h, w)
            base = value.get("base") if isinstance(value, dict) else None
            if (cm is not None and isinstance(base, int) and not isinstance(base, bool)
                    and loaded.base_revision < base <= studio.latest_revision(loaded.image_id)):
                # the page stored this image's edits through its outbox (store_edit) meanwhile:
                # its next save builds on that revision, not a conflict with itself
                loaded.base_revision = base
            return cm

        def edits(value, loaded):
            """What leaving the open image keeps as a draft: the page's map, unless the page
            says it made no edit. The server may hold a newer prediction of the image (a newer
            instant fit or model reopened it) than the one the page still shows: that older
            prediction is nobody's work. A script that does not say is compared map to map."""
            if isinstance(value, dict) and value.get("edited") is False:
                return None
            return current(value, loaded)

        def held(project, value, loaded):
            """The session's open image; when the server holds none but the page shows one
            (the server restarted, the session ended), that image reopened as the page has
            it (``Studio.reopen``: checked as opening it). -> (loaded, a note saying so)."""
            if loaded is not None or not isinstance(value, dict) or value.get("image_id") is None or not project:
                return loaded, ""
            lo = studio.reopen(project, value.get("image_id"), value.get("base"))
            return lo, (f"The server had lost this page's open image (it restarted or the session ended): "
                        f"{lo.filename} is open again, your edits kept. ")

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

        def kept(out, value, loaded, res):
            """Tell the page which of its journaled states the server now holds: the map
            it sent for ``loaded`` (its stamp), stored as ``res`` or unchanged."""
            sent = isinstance(value, dict) and value.get("map") and value.get("image_id") in (None, loaded and loaded.image_id)
            if loaded is not None and isinstance(out, dict) and sent:
                out["kept"] = {"image_id": loaded.image_id, "stamp": codec.stamp_of(value),
                               "revision": res.revision if res is not None else loaded.base_revision}
            return out

        def left_note(res) -> str:
            return "" if res is None else f"Your edits were saved as draft revision {res.revision}. "

        def go_to(project, value, loaded, author, request, target: Callable[[], int | None],
                  nothing: str, flt="unlabelled", back=False):
            """Leave the open image (unsaved edits -> draft) and open ``target()``."""
            rid = codec.request_of(value)
            loaded, lost = held(project, value, loaded)
            res = studio.leave(loaded, edits(value, loaded), studio.author(author, login(request)))
            if res is not None and res.conflict:   # stay: the labeller must see the conflict
                return kept(pl.saved(studio, project, loaded, res, lost + res.conflict, rid), value, loaded, res), loaded, revs(loaded)
            iid = target()
            if iid is None:
                note = lost + left_note(res) + nothing
                if loaded is None:
                    return pl.empty(studio, project, nothing, rid), None, revs(None)
                if res is not None:
                    return kept(pl.saved(studio, project, loaded, res, note, rid), value, loaded, res), loaded, revs(loaded)
                return kept(pl.info(note, rid, until="filter"), value, loaded, None), loaded, revs(loaded)
            ready = studio.open_in_project(project, iid)
            out = opened(project, ready, lost + left_note(res), rid, flt=flt, back=back)
            return (kept(out[0], value, loaded, res), *out[1:])

        OUT = [canvas, loaded_st, rev_dd]

        @user_errors
        def on_project(project, value, loaded, author, request: gr.Request):
            if not project and loaded is None:
                return gr.update(), gr.update(), gr.update()
            if project and loaded is not None and loaded.project_id == studio.project(project).id:
                return gr.update(), gr.update(), gr.update()   # already showing this project
            if project:
                studio.warm_up_soon(project)
            # the image open is left (unsaved edits -> its draft, even on a conflict); no project:
            # the last one was removed
            res = studio.leave(loaded, edits(value, loaded), studio.author(author, login(request)))
            note = (res.conflict + " ") if res is not None and res.conflict else left_note(res)
            iid = (studio.next_image(project, "unlabelled") or studio.next_image(project, "any")) if project else None
            if iid is None:
                if project:
                    text = "No images in this project yet: upload some below (files or a zip)."
                elif studio.caller().can(Act.ADMIN):
                    text = "No project: create one, or restore a removed one, on the Projects screen."
                else:
                    text = "No project: an admin adds you to one."
                return (kept(pl.empty(studio, project or None, text, codec.request_of(value), note.strip()),
                             value, loaded, res), None, revs(None))
            out = opened(project, studio.open_in_project(project, iid), note, codec.request_of(value))
            return (kept(out[0], value, loaded, res), *out[1:])

        def _flt(value):
            f = codec.args_of(value).get("filter", "unlabelled")
            if f not in FILTERS:
                raise UserError(f"filter must be one of {', '.join(FILTERS)}")
            return f

        @user_errors
        def on_next(project, value, loaded, author, request: gr.Request):
            if not project:
                raise UserError("pick or create a project first")
            flt = _flt(value)
            loaded, _ = held(project, value, loaded)   # (go_to says so)
            exclude = (loaded.image_id,) if loaded is not None else ()
            return go_to(project, value, loaded, author, request,
                         lambda: studio.next_image(project, flt, exclude),
                         f"No more images with status '{flt}'.", flt)

        @user_errors
        def on_open(project, value, loaded, author, request: gr.Request):
            a = codec.args_of(value)
            try:
                iid = int(a["open"])
            except (KeyError, TypeError, ValueError):
                raise UserError("say which image to open (args.open = an image id)") from None
            ready = studio.open_in_project(project, iid)   # refuse another project's image before leaving
            if a.get("reopen"):
                # the page saw the server restart (its heartbeat): the same image again, nothing
                # left or saved; the page keeps its unsaved edits (its journal) on top
                lost = bool(a.get("lost_move"))   # a Next the old process never answered (the page let it go)
                return opened(project, ready, ("The server restarted before opening the next image: " if lost
                                               else "The server restarted: ")
                              + f"{ready.loaded.filename} is open again"
                              + (", your unsaved edits kept." if value.get("edited") else ".")
                              + (" Press Next again." if lost else ""),
                              codec.request_of(value), flt=_flt(value))
            return go_to(project, value, loaded, author, request, lambda: iid, "", _flt(value),
                         back=bool(a.get("back")))

        def _save(project, value, loaded, author, request, status):
            cm = need(value, loaded)
            res = studio.save_edits(loaded, cm, studio.author(author, login(request)), status)
            note = res.conflict or res.note(loaded.filename)
            return res, kept(pl.saved(studio, project, loaded, res, note, codec.request_of(value)), value, loaded, res)

        @user_errors
        def on_save(project, value, loaded, author, request: gr.Request):
            loaded, lost = held(project, value, loaded)
            _, out = _save(project, value, loaded, author, request, "draft")
            out["note"] = lost + out["note"]
            return out, loaded, revs(loaded)

        @user_errors
        def on_submit(project, value, loaded, author, request: gr.Request):
            loaded, lost = held(project, value, loaded)
            res, out = _save(project, value, loaded, author, request, "submitted")
            out["note"] = lost + out["note"]
            if res.conflict:
                return out, loaded, revs(loaded)
            flt = _flt(value)
            # the instant layer learns the submit first (about half a second), so the next image
            # is chosen and predicted with it; the page shows the image prepared ahead meanwhile
            studio.instant_wait(loaded.image_id)
            iid = studio.next_image(project, flt, (loaded.image_id,))
            if iid is None:
                out["note"] += " The queue is empty."
                return out, loaded, revs(loaded)
            nxt = opened(project, studio.open_in_project(project, iid), out["note"], out["request"], flt=flt)
            nxt[0]["kept"] = out.get("kept")
            return nxt

        common = dict(show_progress="hidden")
        ins = [project_dd, canvas, loaded_st, author_tb]
        project_dd.change(on_project, ins, OUT, api_name="select_project", **common)
        for event, fn, name in [("save_draft", on_save, "save"), ("submit_next", on_submit, "submit"),
                                ("go_next", on_next, "next_image"), ("open_image", on_open, "open_image")]:
            getattr(canvas, event)(fn, ins, OUT, api_name=name, **common).failure(
                None, None, None, js=failed_js(event), api_name=f"{name}_failed")

        @user_errors
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

        @user_errors
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

        @user_errors
        def on_snap(project, value, loaded):
            cm = need(value, loaded)
            out = studio.snap(loaded, loaded.tool_base, cm)
            loaded.tool_base = out
            n = int((out != cm).sum())
            return pl.result(loaded, out, "snap", f"Snap: {n} px added to the superpixels your strokes cover.",
                             codec.request_of(value))

        @user_errors
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

        @user_errors
        def on_prompt(project, value, loaded):
            if loaded is None:
                raise UserError("no image is open: upload one or press Next")
            phrase = str(codec.args_of(value).get("phrase", "")).strip()
            mask = studio.text_prompt(project, loaded, phrase)
            known = any(c.name.casefold() == phrase.casefold() for c in studio.project(project).classes)
            return pl.prompt(loaded, mask, phrase, known, codec.request_of(value)), (loaded.image_id, mask)

        canvas.run_prompt(on_prompt, [project_dd, canvas, loaded_st], [canvas, prompt_st],
                          api_name="text_prompt", **common).failure(
            None, None, None, js=failed_js("run_prompt"), api_name="text_prompt_failed")

        @user_errors
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

        @user_errors
        def on_fill_xy(project, value, loaded, cls, x, y):
            """API only: superpixel fill at (x, y) with class ``cls`` (the page fills in the browser)."""
            cm = need(value, loaded)
            out = studio.superpixel_fill(project, loaded, cm, int(x), int(y), cls or "void")
            loaded.tool_base = out
            return pl.result(loaded, out, "superpixel fill",
                             f"Filled the superpixel at ({int(x)}, {int(y)}) with {cls}.", codec.request_of(value))

        fill_btn.click(on_fill_xy, [project_dd, canvas, loaded_st, fill_cls, fill_x, fill_y], canvas,
                       api_name="fill_at", **common)

        @user_errors
        def on_upload(project, files, value, loaded, author, request: gr.Request):
            if not files:
                return gr.update(), gr.update(), gr.update(), "", gr.update()
            paths = [getattr(f, "name", f) for f in files]
            try:
                rep = studio.upload(project, paths)     # (the activity names the typed name: the guard)
            finally:
                forget_uploads(paths)
            log_html = _upload_log(rep)
            if rep.swapped:
                gr.Warning(rep.swap_warning().strip())
            if rep.to_open is None:   # nothing usable: the list says why, the canvas stays as it is
                return gr.update(), gr.update(), gr.update(), log_html, None
            canvas_v, new_loaded, rv = go_to(project, value, loaded, author, request, lambda: rep.to_open, "")
            if canvas_v["kind"] == "load":
                canvas_v["note"] = (canvas_v["note"] + rep.summary()).strip()
                # every file added: the drawer gets out of the way of the image to label (a
                # duplicate, a refused file or labels not imported keep it open: its list says
                # which and why)
                if all(kind == "added" for _, kind, _ in rep.files) and not rep.labels_refused and not rep.swapped:
                    canvas_v["drawer"] = "close"
            return canvas_v, new_loaded, rv, log_html, None

        upload.upload(on_upload, [project_dd, upload, canvas, loaded_st, author_tb],
                      [canvas, loaded_st, rev_dd, upload_log, upload], api_name="upload", **common)

        @user_errors
        def on_revision(project, value, loaded, rev, author, request: gr.Request):
            if loaded is None or not rev:
                raise UserError("open an image and pick a revision")
            number = int(str(rev).split(":")[0])
            res = studio.leave(loaded, edits(value, loaded), studio.author(author, login(request)))
            if res is not None and res.conflict:
                return pl.saved(studio, project, loaded, res, res.conflict), loaded, revs(loaded)
            old = studio.open_in_project(project, loaded.image_id, number)
            # the image as stored now; the page applies revision `number` on top as one
            # undoable edit: an unsaved edit like any other (journaled, saved on leaving)
            ready = studio.open_in_project(project, loaded.image_id)
            out = pl.load(studio, project, ready, left_note(res) + f"Revision {number} restored as an unsaved "
                          "edit: save it (Ctrl+S) or leave the image to store it as a new revision; Ctrl+Z "
                          "goes back to the latest.")
            # `map` stays the revision's (as scripts read it); `restore.latest` is what it goes on top of
            out["restore"] = {"revision": number, "latest": out["map"]}
            out["map"] = codec.encode_map(old.loaded.class_map)
            return kept(out, value, loaded, res), ready.loaded, revs(ready.loaded)

        rev_btn.click(on_revision, [project_dd, canvas, loaded_st, rev_dd, author_tb], OUT,
                      api_name="load_revision", **common)

        def removed_list(project):
            choices = studio.removed_images(project)
            label = "Removed images (kept with their revisions)" + ("" if choices else ": none")
            return gr.update(choices=choices, value=None, label=label)

        @user_errors
        def on_remove(project, value, loaded, author, request: gr.Request):
            """Take the open image out of the project (its unsaved edits saved as a draft
            first) and open the next one in the queue."""
            loaded, lost = held(project, value, loaded)
            if loaded is None:
                raise UserError("no image is open: open the image to remove")
            rid = codec.request_of(value)
            res = studio.leave(loaded, edits(value, loaded), studio.author(author, login(request)))
            if res is not None and res.conflict:   # stay: the labeller must see the conflict
                return (kept(pl.saved(studio, project, loaded, res, lost + res.conflict, rid), value, loaded, res),
                        loaded, revs(loaded), gr.update())
            note = lost + left_note(res) + studio.remove_image(project, loaded.image_id) + " "
            flt = _flt(value)
            iid = studio.next_image(project, flt) or studio.next_image(project, "any")
            if iid is None:
                return (kept(pl.empty(studio, project, note + "No other images in this project.", rid), value,
                             loaded, res), None, revs(None), removed_list(project))
            out = opened(project, studio.open_in_project(project, iid), note, rid, flt=flt)
            return kept(out[0], value, loaded, res), out[1], out[2], removed_list(project)

        remove_btn.click(on_remove, ins, [*OUT, removed_dd], api_name="remove_image", **common)

        @user_errors
        def on_restore(project, value, loaded, author, chosen, request: gr.Request):
            """Put the chosen removed image back and open it (the open one's unsaved edits
            saved as a draft first, as on Next)."""
            if chosen in (None, ""):
                raise UserError("pick a removed image to put back")
            note = studio.restore_image(project, chosen) + " "
            out = go_to(project, value, loaded, author, request, lambda: int(chosen), "")
            if isinstance(out[0], dict) and out[0].get("kind") == "load":
                out[0]["note"] = (note + out[0].get("note", "")).strip()
            return (*out, removed_list(project))

        restore_btn.click(on_restore, [*ins, removed_dd], [*OUT, removed_dd], api_name="restore_image", **common)
        project_dd.change(removed_list, project_dd, removed_dd, api_name="removed_images", **common)

        def on_label_set(project):
            """After the label set was edited on the projects screen: palette, class list, keys."""
            return pl.label_set(studio, project) if project else gr.update()

    return Screen(blocks, refresh=(on_project, ins, OUT), label_set_refresh=(on_label_set, [project_dd], [canvas]))
