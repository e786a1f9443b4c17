"""The server's own defences around Gradio's login and sessions (issue 17).

Gradio 6 keeps sessions as random cookie tokens in ``app.tokens`` (token -> user
name, in the process's memory, never expiring) and calls the ``auth`` callable from
its async ``/login`` route: a plain function there would run argon2 on the event
loop and stall every other request. :func:`launch_options` gives ``launch()``:

- ``auth``: :meth:`Studio.login_async`, the argon2 check in a worker thread behind a
  small limiter of its own (a login flood cannot take the threads other requests
  use), with per-account backoff and lockout in the database
  (``storage.LoginPolicy``);
- :class:`ServerGuard`, an ASGI middleware on the app (``app_kwargs['middleware']``):
  per client address backoff on ``/login`` (in memory: one process), a 429 with the
  reason for a throttled or locked login, the end of sessions whose account changed
  password or was disabled (``users.session_epoch``) or that stayed idle longer than
  :attr:`Settings.session_idle_s`, and ``X-Frame-Options: DENY``,
  ``Content-Security-Policy: frame-ancestors 'none'`` and
  ``X-Content-Type-Options: nosniff`` on every response.

Settings come from the environment (:meth:`Settings.from_env`, README "Security").
"""
from __future__ import annotations

import contextvars
import json
import math
import os
import time
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any

from storage import LoginPolicy

SECURITY_HEADERS = ((b"x-frame-options", b"DENY"),
                    (b"content-security-policy", b"frame-ancestors 'none'"),
                    (b"x-content-type-options", b"nosniff"))


def _env_num(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SystemExit(f"error: {name}={raw!r} is not a number") from None
    if value < 0 or not math.isfinite(value):
        raise SystemExit(f"error: {name}={raw!r} must be a number >= 0")
    return value


@dataclass
class Settings:
    """Limits of the login and the sessions; every one has an environment variable
    (:meth:`from_env`)."""
    account: LoginPolicy = field(default_factory=LoginPolicy)
    address_free_failures: int = 10      # wrong logins from one address before it waits
    address_base_delay_s: float = 1.0    # then this, doubled per failure ...
    address_max_delay_s: float = 60.0    # ... at most this
    address_forget_s: float = 900.0      # an address quiet this long starts again
    session_idle_s: float = 12 * 3600    # a session unused this long ends (0: never)
    epoch_cache_s: float = 1.0           # how stale a session's account check may be
    login_concurrency: int = 1           # argon2 checks at once (each ~64 MiB, one core)

    @classmethod
    def from_env(cls) -> Settings:
        a = LoginPolicy()
        account = LoginPolicy(
            free_failures=int(_env_num("SEGUI_LOGIN_FREE_FAILURES", a.free_failures)),
            base_delay_s=_env_num("SEGUI_LOGIN_BASE_DELAY_S", a.base_delay_s),
            max_delay_s=_env_num("SEGUI_LOGIN_MAX_DELAY_S", a.max_delay_s),
            lock_after=int(_env_num("SEGUI_LOGIN_LOCK_AFTER", a.lock_after)))
        d = cls()
        return cls(account=account,
                   address_free_failures=int(_env_num("SEGUI_ADDRESS_FREE_FAILURES", d.address_free_failures)),
                   address_base_delay_s=_env_num("SEGUI_ADDRESS_BASE_DELAY_S", d.address_base_delay_s),
                   address_max_delay_s=_env_num("SEGUI_ADDRESS_MAX_DELAY_S", d.address_max_delay_s),
                   session_idle_s=_env_num("SEGUI_SESSION_IDLE_HOURS", d.session_idle_s / 3600) * 3600,
                   login_concurrency=max(1, int(_env_num("SEGUI_LOGIN_CONCURRENCY", d.login_concurrency))))


# What Studio.login found out, for the middleware around the /login request: the
# refusal (throttled / locked) and the account's session epoch. A mutable dict, so a
# worker thread's write is seen by the request's task.
_login_note: contextvars.ContextVar[dict | None] = contextvars.ContextVar("segui_login_note", default=None)


def note_login(**facts: Any) -> None:
    """Called by Studio.login: tell the /login request's middleware what happened."""
    note = _login_note.get()
    if note is not None:
        note.update(facts)


class AddressThrottle:
    """Failed logins per client address, in this process's memory: after
    ``free_failures`` each attempt waits a doubling delay after the last failure."""

    MAX_ENTRIES = 100_000

    def __init__(self, settings: Settings):
        self.settings = settings
        self._seen: dict[str, tuple[int, float]] = {}

    def wait_s(self, address: str, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        n, last = self._entry(address, now)
        s = self.settings
        if n < s.address_free_failures:
            return 0.0
        delay = min(s.address_base_delay_s * 2 ** (n - s.address_free_failures), s.address_max_delay_s)
        return max(0.0, last + delay - now)

    def failed(self, address: str) -> None:
        now = time.monotonic()
        n, _ = self._entry(address, now)
        if len(self._seen) >= self.MAX_ENTRIES:     # a flood from many addresses: forget the oldest
            for key in sorted(self._seen, key=lambda k: self._seen[k][1])[: self.MAX_ENTRIES // 10]:
                del self._seen[key]
        self._seen[address] = (n + 1, now)

    def _entry(self, address: str, now: float) -> tuple[int, float]:
        n, last = self._seen.get(address, (0, 0.0))
        if n and now - last > self.settings.address_forget_s:
            self._seen.pop(address, None)
            return 0, 0.0
        return n, last


@dataclass
class _Session:
    user: str
    epoch: int | None          # None: no accounts (--auth): nothing to compare
    last_seen: float


class ServerGuard:
    """ASGI middleware: login throttling per address, session ending, headers."""

    def __init__(self, app, studio, settings: Settings):
        self.app = app
        self.studio = studio
        self.settings = settings
        self.addresses = AddressThrottle(settings)
        self.sessions: dict[str, _Session] = {}
        self._epochs: dict[str, tuple[float, int | None]] = {}
        studio.server_guard = self          # tests and the admin's view reach it here

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        gradio_app = scope.get("app")
        if scope["type"] == "http" and scope.get("method") == "POST" and \
                scope.get("path", "").rstrip("/").endswith("/login"):
            return await self._login(scope, receive, send, gradio_app)
        self._check_session(scope, gradio_app)
        if scope["type"] == "http" and "/file=" in scope.get("path", ""):
            refusal = self._download_refusal(scope, gradio_app)
            if refusal:
                return await self._refuse(send, 403, refusal)
        return await self.app(scope, receive, self._with_headers(send))

    def _download_refusal(self, scope, gradio_app) -> str | None:
        """A file Gradio serves by URL that is someone's export (Studio.protect_download):
        only its owner, or whoever may export its project, gets it (finding 7)."""
        check = getattr(self.studio, "download_refusal", None)
        if check is None:
            return None
        from urllib.parse import unquote
        path = unquote(scope["path"].split("/file=", 1)[1])
        return check(path, self._user(scope, gradio_app))

    @staticmethod
    def _user(scope, gradio_app) -> str | None:
        """The logged-in user of the request (None: no login, or an app without accounts)."""
        tokens = getattr(gradio_app, "tokens", None) or {}
        cookie_id = getattr(gradio_app, "cookie_id", None)
        cookies = _cookies(scope)
        for name in (f"access-token-{cookie_id}", f"access-token-unsecure-{cookie_id}"):
            tok = cookies.get(name)
            if tok and tok in tokens:
                return tokens[tok]
        return None

    # ------------------------------------------------------------------ headers

    @staticmethod
    def _with_headers(send):
        async def sending(message):
            if message["type"] == "http.response.start":
                have = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (k, v) for k, v in SECURITY_HEADERS if k not in have]
            await send(message)
        return sending

    async def _refuse(self, send, status: int, detail: str, retry_after: float = 0.0) -> None:
        body = json.dumps({"detail": detail}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if retry_after > 0:
            headers.append((b"retry-after", str(math.ceil(retry_after)).encode()))
        await self._with_headers(send)({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    # ------------------------------------------------------------------ login

    async def _login(self, scope, receive, send, gradio_app):
        address = (scope.get("client") or ("?",))[0]
        wait = self.addresses.wait_s(address)
        if wait > 0:
            return await self._refuse(send, 429, f"Too many failed logins from your address: wait "
                                                 f"{math.ceil(wait)} s before the next try.", wait)
        note: dict = {}
        token = _login_note.set(note)
        held: list = []
        try:
            async def sending(message):
                held.append(message)      # a login's answer is small: decide once it is complete
            await self.app(scope, receive, sending)
        finally:
            _login_note.reset(token)
        start = next((m for m in held if m["type"] == "http.response.start"), None)
        status = start["status"] if start else 500
        if status == 200:
            self._remember(start, gradio_app, note)
        elif status in (400, 401):
            self.addresses.failed(address)
            if note.get("refusal"):
                return await self._refuse(send, 429, f"Login refused: {note['refusal']}.",
                                          note.get("retry_after", 0.0))
        out = self._with_headers(send)
        for m in held:
            await out(m)

    def _remember(self, start, gradio_app, note: dict) -> None:
        tokens = getattr(gradio_app, "tokens", None) or {}
        cookie_id = getattr(gradio_app, "cookie_id", None)
        for t in [t for t in self.sessions if t not in tokens]:     # logged out: forget them
            del self.sessions[t]
        for k, v in start.get("headers", []):
            if k.lower() != b"set-cookie":
                continue
            c = SimpleCookie()
            c.load(v.decode("latin-1"))
            for name, morsel in c.items():
                if name in (f"access-token-{cookie_id}", f"access-token-unsecure-{cookie_id}") and \
                        morsel.value in tokens:
                    self.sessions[morsel.value] = _Session(tokens[morsel.value], note.get("epoch"),
                                                           time.monotonic())

    # ------------------------------------------------------------------ sessions

    def _check_session(self, scope, gradio_app) -> None:
        """Drop the request's Gradio token when its session has ended: Gradio then
        treats the request as logged out (401, or the login page)."""
        tokens = getattr(gradio_app, "tokens", None)
        cookie_id = getattr(gradio_app, "cookie_id", None)
        if not tokens or cookie_id is None:
            return
        cookies = _cookies(scope)
        for name in (f"access-token-{cookie_id}", f"access-token-unsecure-{cookie_id}"):
            tok = cookies.get(name)
            if tok and tok in tokens and not self._alive(tok):
                tokens.pop(tok, None)
                self.sessions.pop(tok, None)

    def _alive(self, tok: str) -> bool:
        s = self.sessions.get(tok)
        if s is None:                      # not logged in through this guard: refused
            return False
        now = time.monotonic()
        if self.settings.session_idle_s and now - s.last_seen > self.settings.session_idle_s:
            return False
        if s.epoch is not None and self._epoch(s.user, now) != s.epoch:
            return False
        s.last_seen = now
        return True

    def _epoch(self, user: str, now: float) -> int | None:
        hit = self._epochs.get(user)
        if hit is not None and now - hit[0] < self.settings.epoch_cache_s:
            return hit[1]
        epoch = self.studio.store.session_epoch(user)
        self._epochs[user] = (now, epoch)
        return epoch

    def end_sessions(self, user: str) -> int:
        """End every session of ``user`` in this process now (the database epoch ends
        them in every process within ``epoch_cache_s``)."""
        self._epochs.pop(user, None)
        gone = [t for t, s in self.sessions.items() if s.user.casefold() == user.casefold()]
        for t in gone:
            self.sessions.pop(t, None)
        return len(gone)


def _cookies(scope) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in scope.get("headers", []):
        if k == b"cookie":
            for part in v.decode("latin-1").split(";"):
                name, _, value = part.strip().partition("=")
                if name:
                    out.setdefault(name, value)
    return out


def launch_options(studio, auth, settings: Settings | None = None) -> dict[str, Any]:
    """``launch()`` keyword arguments: the ``auth`` to use (the accounts' check off the
    event loop when ``auth`` is Studio.login) and the :class:`ServerGuard` middleware
    (``app_kwargs``), also without a login (the headers)."""
    from starlette.middleware import Middleware

    settings = settings or Settings.from_env()
    studio.login_policy = settings.account
    studio.login_concurrency = settings.login_concurrency
    if callable(auth) and getattr(auth, "__func__", None) is type(studio).login:
        auth = studio.login_async
    return {"auth": auth,
            "app_kwargs": {"middleware": [Middleware(ServerGuard, studio=studio, settings=settings)]}}
