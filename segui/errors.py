"""The one error type the screens show: a mistake the user can fix.

Every layer of the app (the handlers, the fine-tuning panel) raises
:class:`UserError` with a message meant to be shown as is; the screens' guard
(``segui.guard``) turns it into a visible message. Nothing is stored when one is
raised. Refusals by role or membership are :class:`segui.access.Forbidden`.
"""
from __future__ import annotations


class UserError(ValueError):
    """A mistake the labeller can fix; the message is shown in the UI unchanged."""
