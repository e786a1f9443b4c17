"""Who may do what in the app: the role table and the action behind every endpoint.

Pure rules, no Gradio and no database: :class:`segui.handlers.Studio` decides who the
caller is (:meth:`Studio.principal`) and enforces these rules
(:meth:`Studio.authorize`); ``segui.ui`` runs that check before every event handler
and server function, for the page and for ``gradio_client`` alike.

Roles (``storage.models.Role``): an *annotator* labels, saves and submits, and sees
unlabelled images and their own work; a *reviewer* also accepts or rejects, sees
every image of their projects and the activity; an *admin* also changes label sets
and projects, model versions, fine-tuning, export and members, and sees every project.
Without accounts (no ``python -m storage users add``) the one person using the app is
an admin, as before accounts existed.
"""
from __future__ import annotations

import contextvars
from dataclasses import dataclass
from enum import StrEnum

from storage.models import Role


class Act(StrEnum):
    """What an endpoint does, from the role table's point of view."""
    VIEW = "view"          # open a project's images on the Label screen
    LABEL = "label"        # edit, save, submit, upload, smart tools, set a split
    REVIEW = "review"      # accept / reject, the review queue, the activity view, removing images
    ADMIN = "admin"        # projects, label sets, model versions, fine-tuning, export, members


ALLOWED: dict[str, frozenset[Act]] = {
    Role.ANNOTATOR: frozenset({Act.VIEW, Act.LABEL}),
    Role.REVIEWER: frozenset({Act.VIEW, Act.LABEL, Act.REVIEW}),
    Role.ADMIN: frozenset(Act),
}

WHAT = {Act.VIEW: "open this project's images", Act.LABEL: "label images",
        Act.REVIEW: "review annotations", Act.ADMIN: "manage projects, models and exports"}

# Every api_name of the app (and every canvas server function) and its action. An
# endpoint missing here makes build_app fail, and the role test calls every one.
ENDPOINTS: dict[str, Act] = {
    # the Label screen
    "init": Act.VIEW, "init_role": Act.VIEW, "select_project": Act.VIEW,
    "next_image": Act.VIEW, "open_image": Act.VIEW, "superpixels": Act.VIEW, "peek_next": Act.VIEW,
    "heatmap": Act.VIEW, "strip_page": Act.VIEW, "thumbnails": Act.VIEW,
    "uncertainty": Act.VIEW, "what_changed": Act.VIEW, "click_object": Act.LABEL,
    "refresh_palette_0": Act.VIEW, "refresh_palette_1": Act.VIEW, "refresh_palette_2": Act.VIEW,
    "refresh_palette_3": Act.VIEW,
    "save": Act.LABEL, "submit": Act.LABEL, "set_split": Act.LABEL, "snap": Act.LABEL,
    "clean_up": Act.LABEL, "text_prompt": Act.LABEL, "accept_prompt": Act.LABEL, "fill_at": Act.LABEL,
    "upload": Act.LABEL, "load_revision": Act.LABEL, "store_edit": Act.LABEL,
    "revision_maps": Act.VIEW, "alive": Act.VIEW, "your_name": Act.VIEW,
    "review_image": Act.REVIEW,
    "remove_image": Act.REVIEW, "restore_image": Act.REVIEW, "removed_images": Act.REVIEW,
    # the Explore screen (explore_rows: the grid's server function for further pages)
    "explore": Act.REVIEW, "explore_page": Act.REVIEW, "explore_rows": Act.REVIEW, "explore_cell": Act.REVIEW,
    "explore_confusion": Act.REVIEW, "open_explore_tab": Act.REVIEW, "init_screen_4": Act.REVIEW,
    "explore_for_project": Act.REVIEW, "open_explore_tab_after": Act.REVIEW, "init_screen_4_after": Act.REVIEW,
    "explore_for_project_after": Act.REVIEW,
    # the Activity screen
    "activity": Act.REVIEW, "open_activity_tab": Act.REVIEW, "init_screen_3": Act.REVIEW,
    "activity_for_project": Act.REVIEW, "activity_kind": Act.REVIEW, "activity_who": Act.REVIEW,
    # the Projects screen
    "create_project": Act.ADMIN, "label_set_from_file": Act.ADMIN, "label_set": Act.ADMIN, "update_classes": Act.ADMIN,
    "add_class": Act.ADMIN, "open_projects_tab": Act.ADMIN, "init_screen_1": Act.ADMIN,
    "add_member": Act.ADMIN, "remove_member": Act.ADMIN, "training_source": Act.ADMIN,
    "others_unlabelled": Act.ADMIN, "remove_class": Act.ADMIN,
    "rename_project": Act.ADMIN, "remove_project": Act.ADMIN, "restore_project": Act.ADMIN,
    "project_settings": Act.ADMIN, "account_add": Act.ADMIN, "account_set_role": Act.ADMIN,
    "account_password": Act.ADMIN, "account_disable": Act.ADMIN, "account_enable": Act.ADMIN,
    "account_unlock": Act.ADMIN,
    # the Model screen
    "model_panel": Act.ADMIN, "evaluate_version": Act.ADMIN, "activate_model": Act.ADMIN,
    "export": Act.ADMIN, "start_finetune": Act.ADMIN, "finetune_status_after_start": Act.ADMIN,
    "cancel_finetune": Act.ADMIN, "finetune_status_after_cancel": Act.ADMIN,
    "finetune_status": Act.ADMIN, "finetune_status_for_project": Act.ADMIN,
    "finetune_cancel_state": Act.ADMIN, "finetune_cancel_state_for_project": Act.ADMIN,
    "open_model_tab": Act.ADMIN, "init_screen_2": Act.ADMIN,
    "auto_finetune": Act.ADMIN, "auto_finetune_value": Act.ADMIN, "auto_finetune_editable": Act.ADMIN,
    "model_views": Act.ADMIN, "model_views_after_evaluate": Act.ADMIN, "model_views_after_activate": Act.ADMIN,
    "compare_versions": Act.ADMIN,
    # the Try words view (a demo: no project, anyone who may open the app)
    "try_words": Act.VIEW, "try_words_submit": Act.VIEW, "try_words_demo": Act.VIEW,
    "try_words_after_demo": Act.VIEW,
}

# Refreshes of screens a role does not see fire for everyone (a project change, the
# job poll): refused without a message on the page (the caller still gets the error).
QUIET = frozenset({"removed_images", "label_set", "project_settings", "open_projects_tab", "init_screen_1", "model_panel",
                   "finetune_status", "finetune_status_for_project", "finetune_cancel_state",
                   "finetune_cancel_state_for_project", "open_model_tab", "init_screen_2",
                   "open_activity_tab", "init_screen_3", "activity", "activity_for_project",
                   "model_views",
                   "open_explore_tab", "init_screen_4", "explore_for_project", "open_explore_tab_after",
                   "init_screen_4_after", "explore_for_project_after"})


class Forbidden(PermissionError):
    """The caller may not do this; the message says why and is shown as is."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: ``name`` None when nobody is logged in (no accounts, no
    --auth); ``member_only``: their projects are the ones they are a member of;
    ``typed``: with no login, the name typed in the header's *Your name* in this
    session (the guard sets it): what the activity log names, never a right."""
    name: str | None
    role: str
    member_only: bool = False
    typed: str | None = None

    @property
    def actor(self) -> str | None:
        """The name the activity log gives this caller's actions: the login, else the
        typed name, else None (shown as "(no login)")."""
        return self.name or self.typed

    def can(self, act: Act | str) -> bool:
        return Act(act) in ALLOWED[Role(self.role)]

    @property
    def sees_every_image(self) -> bool:
        return self.can(Act.REVIEW)


NOBODY_ADMIN = Principal(None, Role.ADMIN)   # the app without accounts: one person, every right


def refusal(who: Principal, act: Act | str) -> str:
    name = who.name or "you"
    return f"Not allowed: {name} ({who.role}) may not {WHAT[Act(act)]}. Ask an admin for another role."


def sees_image(who: Principal, status: str, annotated_by: str | None) -> bool:
    """An annotator sees unlabelled images and the ones whose latest revision is
    theirs; reviewers and admins see every image of their projects."""
    return who.sees_every_image or status == "unlabelled" or (
        who.name is not None and annotated_by is not None and annotated_by.casefold() == who.name.casefold())


_current: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("segui_principal", default=None)


def current() -> Principal | None:
    """The caller of the event being handled (set by the app's guard), None outside one."""
    return _current.get()


def acting_as(who: Principal):
    """Context token: ``_current`` is ``who`` until ``reset(token)``."""
    return _current.set(who)


def reset(token) -> None:
    _current.reset(token)


def username_of(request) -> str | None:
    """The logged-in name of a Gradio request (events) or of the raw FastAPI request
    a ``gr.HTML`` server function gets; None when nobody is logged in."""
    if request is None:
        return None
    name = getattr(request, "username", None)
    if name:
        return name
    app = getattr(request, "app", None)
    cookies = getattr(request, "cookies", None)
    tokens, cookie_id = getattr(app, "tokens", None), getattr(app, "cookie_id", None)
    if not tokens or cookies is None or cookie_id is None:
        return None
    token = cookies.get(f"access-token-{cookie_id}") or cookies.get(f"access-token-unsecure-{cookie_id}")
    return tokens.get(token)


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def open_host_refusal(host: str, accounts: bool, single_login: bool, allow_open: bool) -> str | None:
    """Why the app must not listen on ``host`` as configured (None: it may): without
    accounts and without --auth everybody who reaches the port would be an admin."""
    if accounts or single_login or allow_open or host in LOOPBACK or host.startswith("127."):
        return None
    return (f"refusing to serve {host} without a login: anyone who can reach it could change label sets, "
            "export and start jobs. Add accounts (python -m storage users add NAME --role admin), or pass "
            "--auth user:password, or --allow-anyone to serve it without a login anyway.")
