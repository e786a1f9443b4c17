"""The Label screen's mask canvas: a ``gr.HTML`` component of our own.

The browser side is plain JavaScript: ``core.js`` (pure logic: edits, one undo
history, brush, polygon, superpixel and region fills), ``nav.js`` (pure: the
requests to the server, the optimistic Next and its settling or rollback),
``input.js`` (pure tables: the key map and the tools), ``shapes.js`` (pure: editable
polygons, click-to-object clicks), ``strip.js`` (pure: the image strip's summary and
which thumbnails to fetch), ``journal.js`` (pure: the journal of edits the server has
not confirmed, the outbox, restore), all tested with node,
and ``canvas.js`` (the DOM: drawing, pointer and keyboard, talking to the server),
``heatmap.js`` (the word heatmap layer, in canvas.js's scope), ``objects.js``
(click-to-object and editable polygons on the page, in canvas.js's scope),
``conflict.js`` (the compare view of a save conflict, in canvas.js's scope),
with ``canvas.html`` and ``canvas.css`` beside them. This module builds the
component and owns the wire format between the page and Python (``codec``).

Server -> page: the component's value is a dict with ``kind`` ("load", "saved",
"result", "prompt", "classes", "info") and a fresh ``seq``; see ``payload.py``.
Page -> server: ``{"image_id", "map", "edited", "request", "args"}``, where ``map``
is the class map as an index PNG data URL (``codec.encode_map``); the page sets it
and then triggers one of the events in :data:`EVENTS`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent

# custom events the page triggers (each is wired to a handler with an api_name)
EVENTS = ("save_draft", "submit_next", "go_next", "open_image", "run_snap", "run_cleanup",
          "run_prompt", "accept_prompt", "set_split", "review_image")

def failed_js(event: str) -> str:
    """JS run when the page's event ``event`` failed (Gradio showed the error): the
    page stops waiting for that event's answer (and undoes an anticipated Next)."""
    return ("() => { for (const r of document.querySelectorAll('.seg-root')) "
            f"if (r.__seg && r.__seg.failed) r.__seg.failed({event!r}); }}")


SCRIPTS = ("core.js", "nav.js", "input.js", "shapes.js", "strip.js", "journal.js", "canvas.js", "heatmap.js",
           "objects.js", "conflict.js")


def script() -> str:
    """The js_on_load: SCRIPTS in order, concatenated (no bundler, no build step)."""
    return "\n".join((HERE / name).read_text() for name in SCRIPTS)


def mask_canvas(server_functions: list[Callable], elem_id: str = "segui-canvas"):
    import gradio as gr
    return gr.HTML(
        value=None, html_template=(HERE / "canvas.html").read_text(),
        css_template=(HERE / "canvas.css").read_text(), js_on_load=script(),
        server_functions=server_functions, apply_default_css=False, elem_id=elem_id,
        padding=False, container=False)
