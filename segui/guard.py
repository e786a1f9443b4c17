"""The screens' guard: user mistakes become visible messages, and every event is checked.

:func:`user_errors` wraps a handler so that :class:`segui.errors.UserError` (and a
refusal, or a map the page sent that cannot be read) is shown as a ``gr.Error`` with
nothing stored; :func:`guard_events` puts :meth:`Studio.authorize` in front of every
event of the app (the role table ``segui.access.ENDPOINTS`` and project membership);
:class:`acting` does the same for the canvas's server functions; :func:`login` is the
logged-in name of a request.
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
import typing

import gradio as gr
from fastapi import HTTPException

from storage import NotFoundError

from . import access
from .access import Forbidden
from .canvas import codec
from .errors import UserError
from .handlers import Studio
from .labelling import Loaded


# said after what an event or a server function named and no longer exists (a project
# renamed or gone in another window, or never there)
RELOAD = "reload the page to see the projects as they are now."


def user_errors(fn):
    """UserError (and a map the page sent that cannot be read) -> visible gr.Error;
    the app keeps working and nothing is stored."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (UserError, codec.MapFormatError, Forbidden) as e:
            raise gr.Error(str(e)) from None
    return wrapper


def login(request) -> str | None:
    return access.username_of(request)


class Refused(HTTPException, Forbidden):
    """A server function's refusal: an HTTP 403 (400 for a user's mistake) whose body
    says why, instead of a 500 with a traceback in the log; still a Forbidden."""

    def __init__(self, message: str, status_code: int = 403):
        HTTPException.__init__(self, status_code=status_code, detail=message)

    def __str__(self) -> str:
        return str(self.detail)


class acting:
    """``with acting(studio, request, name, project=..., image_id=...) as a``: the caller
    may call endpoint ``name`` (``access.ENDPOINTS``) or :class:`Refused` (403); inside,
    Studio knows who (``a.who``), ``a.project`` is the project's name now (a renamed
    project's old name, from a page that still shows it, is mapped as the events' guard
    does), and a UserError or Forbidden raised inside is a clear refusal too."""

    def __init__(self, studio: Studio, request, name: str, project=None, image_id=None):
        self.project = project = studio.current_project_name(project)
        try:
            self.who = studio.authorize(access.username_of(request), access.ENDPOINTS[name], project, image_id)
        except Forbidden as e:
            raise Refused(str(e)) from None

    def __enter__(self):
        self.token = access.acting_as(self.who)
        return self

    def __exit__(self, exc_type, exc, tb):
        access.reset(self.token)
        if exc is not None and not isinstance(exc, Refused):
            if isinstance(exc, Forbidden):
                raise Refused(str(exc)) from None
            if isinstance(exc, (UserError, codec.MapFormatError)):
                raise Refused(str(exc), 400) from None
            if isinstance(exc, NotFoundError):   # renamed or gone meanwhile: not a server error
                raise Refused(f"{exc}: {RELOAD}", 404) from None
        return False


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
    event names and of the project the session's open image really belongs to. An endpoint without a rule is a programming error, caught here."""
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
            binding = __sig.bind_partial(*args, **kwargs)
            bound = binding.arguments
            project = bound.get(__project) if __project is not None else None
            current = studio.current_project_name(project)   # a page still showing a renamed project's old name
            request = LocalContext.request.get(None)
            renamed = (project, current) if current != project else None
            if renamed:
                project = bound[__project] = current
                args, kwargs = binding.args, binding.kwargs
            # the image the session has open (server state): checked against its own project
            held = next((a.image_id for a in bound.values() if isinstance(a, Loaded)), None)
            try:
                who = studio.authorize(access.username_of(request), access.ENDPOINTS[__name], project,
                                       open_image=held)
            except Forbidden as e:
                raise gr.Error(str(e), visible=__name not in access.QUIET, print_exception=False) from None
            if renamed and __name not in access.QUIET:   # (told to a member only)
                notice = studio.renamed_notice(getattr(request, "session_hash", None), *renamed)
                if notice:
                    gr.Info(notice)      # once a session: its menus show the old name until a reload
            if who.name is None:    # no login: the activity log names the session's typed *Your name*
                typed = studio.session_typed_name(getattr(request, "session_hash", None), bound.get("author"))
                if typed:
                    who = dataclasses.replace(who, typed=typed)
            token = access.acting_as(who)
            try:
                return __fn(*args, **kwargs)
            except NotFoundError as e:   # gone meanwhile (in another window), or never there
                raise gr.Error(f"{e}: {RELOAD}",
                               visible=__name not in access.QUIET, print_exception=False) from None
            finally:
                access.reset(token)

        functools.update_wrapper(guarded, fn)
        block_fn.fn = guarded
