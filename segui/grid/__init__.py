"""The Explore screen's image grid: a ``gr.HTML`` component of our own.

Plain JavaScript, no bundler: ``gridcore.js`` (pure: the visible window of a
virtualised grid, the pages to fetch, a bounded page cache, captions; tested with
node, ``tests/js/grid.test.js``) and ``grid.js`` (the DOM: scrolling, cells, a click
opens the image on the Label screen, a click on the confusion matrix's Plotly heatmap
asks for the cell's images), with ``grid.html`` and ``grid.css`` beside them.

Server -> page: the value ``{"kind": "page", "seq", "project", "query", "total",
"offset", "rows", "page_size", "note"}`` (a new query and its first page); the page
fetches further pages itself through the server function ``explore_rows``.
Page -> server: ``{"kind": "cell", "cell": {"t", "p"}}`` with the custom event ``cell``.
"""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
SCRIPTS = ("gridcore.js", "grid.js")
_seq = itertools.count(1)


def script() -> str:
    return "\n".join((HERE / name).read_text() for name in SCRIPTS)


def page_value(project: str, query: dict, page: dict, page_size: int, note: str = "") -> dict:
    """The grid's value for a new query and its first page (``Studio.explore_page``)."""
    return {"kind": "page", "seq": next(_seq), "project": project, "query": query, "total": page["total"],
            "offset": page["offset"], "rows": page["rows"], "page_size": page_size, "note": note}


def image_grid(server_functions: list[Callable], elem_id: str = "segui-explore-grid"):
    import gradio as gr
    return gr.HTML(
        value=None, html_template=(HERE / "grid.html").read_text(),
        css_template=(HERE / "grid.css").read_text(), js_on_load=script(),
        server_functions=server_functions, apply_default_css=False, elem_id=elem_id,
        padding=False, container=False)
