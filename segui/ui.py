"""The labelling studio's Gradio app: the header, the tabs, and how they refresh.

:func:`build_app` renders the screens of ``segui.screens`` (Label, Explore, Projects,
Model, Activity, Try words) into tabs under one header (the project picker and the author name, shared
by all screens) and puts ``segui.guard`` in front of every event; every event has an
``api_name``. :data:`LAUNCH_OPTIONS` are the ``launch()`` options every way of serving
the app uses.
"""
from __future__ import annotations

import html

import gradio as gr

from common import limits

from . import access
from .access import Act
from .guard import guard_events
from .handlers import Studio
from .screens import TYPED_OUTPUTS, Screen  # noqa: F401  (Screen: re-exported)
from .screens.activity import activity_screen
from .screens.explore import explore_screen
from .screens.label import LABEL_CSS, label_screen
from .screens.model import model_screen
from .screens.projects import projects_screen
from .screens.try_words import try_words_screen


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
  // "#id": a part of a screen the role cannot use (the server refuses it anyway)
  for (const [key, on] of Object.entries(shown)) {
    const el = key.startsWith('#') && document.getElementById(key.slice(1));
    if (el) el.style.display = on ? '' : 'none';
  }
  return [];
}"""


# launch() options every way of serving the app uses (app.py, the tests, the benchmarks).
# Gradio's run history would copy every event's inputs and outputs (photos, class maps)
# into the browser's localStorage, rewriting up to 100 of them on each event: Next got
# ~60 ms slower per event until it took over a second, and labelling data stayed behind.
# max_file_size: the upload route refuses a bigger file (HTTP 413) while it streams in,
# before any handler runs (common.limits, SEGUI_MAX_UPLOAD_MB).
LAUNCH_OPTIONS = {"css": APP_CSS + LABEL_CSS, "run_history": False, "max_file_size": limits.MAX_UPLOAD_BYTES}
# Gradio copies a file an event returns (an export's zip) into its cache folder, served to
# anyone logged in who has the URL: copies older than the export TTL are deleted, checked
# every minute (and all of them when the server stops).
DELETE_CACHE = (60, max(1, int(limits.EXPORT_TTL_SECONDS)))


PROJECT_PICKER_ID = "segui-project"


def project_name_in(payload):
    """The Project picker's ``preprocess``: it is built with no choices, so the page
    served at startup (and the API description Gradio embeds in it, even before a login)
    names no project, and the ``init`` load event fills in the caller's own projects.
    A name a client sends is therefore not held against the choices: every event's
    guard checks it against the caller's memberships (``Studio.authorize``) and maps
    the old name of a renamed project to its new one. An event queued before a rename or
    a removal still carries the old name, which the session's new choices no longer hold."""
    if payload is None or isinstance(payload, str):
        return payload
    raise gr.Error(f"Project: a name, not {type(payload).__name__}")


def _dropdown_preprocess(self, payload, __gradio=gr.Dropdown.preprocess):
    """``gr.Dropdown.preprocess``, except for the Project picker (:func:`project_name_in`).
    A class-level hook: Gradio keeps a session's copy of an updated component as a new
    instance of its class (an instance attribute is lost), and it writes a .pyi file
    next to the module of every component subclass."""
    if getattr(self, "elem_id", None) == PROJECT_PICKER_ID:
        return project_name_in(payload)
    return __gradio(self, payload)


if getattr(gr.Dropdown.preprocess, "__name__", "") != _dropdown_preprocess.__name__:
    gr.Dropdown.preprocess = _dropdown_preprocess


def build_app(studio: Studio, auth_enabled: bool = False) -> gr.Blocks:
    with gr.Blocks(title="Segmentation labelling studio", fill_width=True, delete_cache=DELETE_CACHE) as app:
        with gr.Row(elem_id="segui-header", equal_height=True):
            gr.Markdown(f"**Segmentation labelling studio** · inference on **{studio.device_name}**",
                        elem_id="segui-device")
            gr.Markdown("Project", elem_classes="segui-hlabel")
            # no project names at build time (issue 17): on_load fills in the caller's
            project_dd = gr.Dropdown(label="Project", choices=[], value=None, interactive=True,
                                     elem_id=PROJECT_PICKER_ID, container=False, show_label=False,
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
            with gr.Tab("Explore") as explore_tab:
                explore = explore_screen(studio, project_dd)
            with gr.Tab("Projects") as projects_tab:
                projects = projects_screen(studio, project_dd)
            with gr.Tab("Model") as model_tab:
                model = model_screen(studio, project_dd)
            with gr.Tab("Activity") as activity_tab:
                activity = activity_screen(studio, project_dd)
            with gr.Tab("Try words"):        # the demo view: no project, any logged-in person
                try_words_screen(studio)

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
                    {"Projects": who.can(Act.ADMIN), "Model": who.can(Act.ADMIN), "Activity": who.can(Act.REVIEW),
                     "Explore": who.can(Act.REVIEW), "#segui-image-removal": who.can(Act.REVIEW)})

        # label-set edits on the projects screen update the canvas's palette and class list
        fn, inputs, outputs = label.label_set_refresh
        for i, ev in enumerate(projects.label_set_events):
            ev.success(fn, inputs, outputs, api_name=f"refresh_palette_{i}", show_progress="hidden")
        # counts and versions change while one labels: refresh a tab when it is opened
        for tab, screen, name in [(projects_tab, projects, "projects"), (model_tab, model, "model"),
                                  (activity_tab, activity, "activity"), (explore_tab, explore, "explore")]:
            ev = tab.select(*screen.refresh, api_name=f"open_{name}_tab", **TYPED_OUTPUTS)
            if screen.after_refresh:
                ev.then(*screen.after_refresh, api_name=f"open_{name}_tab_after", show_progress="hidden")
        project_dd.change(*activity.refresh, api_name="activity_for_project", show_progress="hidden")
        project_dd.change(*explore.refresh, api_name="explore_for_project", show_progress="hidden").then(
            *explore.after_refresh, api_name="explore_for_project_after", show_progress="hidden")
        # The project that on_load puts in the dropdown fires its .change (Gradio 6 fires it for
        # a function's update too), and with it each screen's own project handler: the Label
        # screen opens its first image there (/select_project), and only there. It used to be
        # opened a second time by the chain below, both at once with no open image in the
        # session; when the page's restored edits were saved in between, the second chose
        # another image, and the page and the session went to it (seen in CI). The other
        # screens' refreshes stay in the chain (idempotent; scripts call /init_screen_N).
        ev = app.load(on_load, None, [project_dd, author_tb], api_name="init", **TYPED_OUTPUTS)
        ev = ev.then(on_role, None, [name_lbl, author_tb, signed_in, rights],
                     api_name="init_role", show_progress="hidden")
        # Gradio 6 does not apply a Tab's visibility from an event (the button stays):
        # the page hides the tab buttons of screens the role cannot use (the server refuses them anyway)
        ev = ev.then(None, rights, None, js=SHOW_TABS_JS, api_name="show_role_tabs")
        for i, screen in enumerate([label, projects, model, activity, explore]):
            if screen is label:
                continue
            fn, inputs, outputs = screen.refresh
            ev = ev.then(fn, inputs, outputs, api_name=f"init_screen_{i}", show_progress="hidden")
        ev.then(*explore.after_refresh, api_name="init_screen_4_after", show_progress="hidden")

        def your_name(author):
            """Nothing to do here: the guard remembers the name for this browser session
            (``Studio.session_typed_name``), so that a Model- or Projects-screen action
            right after typing it is recorded under it. Unqueued: it runs before the
            click that took the focus away."""
            return None

        author_tb.blur(your_name, [author_tb], None, api_name="your_name", queue=False)
    guard_events(app, studio, project_dd)
    return app
