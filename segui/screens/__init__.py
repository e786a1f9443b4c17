"""The app's screens, one module each (label, projects, model, activity).

Each screen is its own ``gr.Blocks`` rendered into one tab by
:func:`segui.ui.build_app` and hands back a :class:`Screen` that says how to refresh
it. Screens call :class:`segui.handlers.Studio` only (and ``segui.canvas``, the wire
format); ``segui.guard`` turns user mistakes into visible messages and checks access.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import gradio as gr

# A refused action (gr.Error) leaves Gradio's full progress display on each of its outputs:
# an "Error" over the component that takes every click until the next event writes to it.
# Over a box a person types in (a project's name and label set, a password, the label-set
# table, a dropdown) that box cannot be fixed after the refusal, only reloaded away, with
# what was typed. Events that write to such a box show minimal progress instead (a small
# spinner; the error still shows as a message), so the box stays usable and keeps its text.
TYPED_OUTPUTS = {"show_progress": "minimal"}


@dataclass
class Screen:
    """A rendered screen and how the app refreshes it: ``refresh`` runs when the
    project changes (and at page load), ``label_set_refresh`` after the label set was
    edited elsewhere; ``label_set_events`` are this screen's label-set edits;
    ``after_refresh`` follows ``refresh`` (the Explore grid shows before its matrix)."""
    blocks: gr.Blocks
    refresh: tuple[Callable, list, list]
    label_set_refresh: tuple[Callable, list, list] | None = None
    label_set_events: list = field(default_factory=list)
    # run after ``refresh`` wherever it runs (a slower part, so the first shows at once)
    after_refresh: tuple[Callable, list, list] | None = None
