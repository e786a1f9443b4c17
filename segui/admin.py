"""Who is calling and what they may do; members, accounts and the activity log.

:class:`AdminMixin` is the part of :class:`segui.handlers.Studio` about people: the
login check, the one permission check (:meth:`AdminMixin.authorize`), project
members, the training source, accounts (admins) and the activity log.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

from common.effort import correction_words
from storage import LoginPolicy, NotFoundError, TrainingSource, ValidationError

from . import access
from .access import Act, Forbidden, Principal
from .errors import UserError


SESSION_NAMES_KEPT = 1000   # browser sessions whose typed name is remembered (the oldest go first)

# What the Activity screen's "Show" picks: a kind of record -> the actions it lists (None: all)
ACTIVITY_KINDS: dict[str, tuple[str, ...] | None] = {
    "everything": None,
    "saved revisions": ("revision_saved",),
    "reviews": ("review",),
    "jobs and model versions": ("job_started", "job_finished", "job_cancelled", "model_promoted", "model_activated"),
    "images: uploads, removals, exports": ("import", "export", "image_removed", "image_restored"),
    "project settings and classes": ("project_created", "classes_changed", "training_source_changed",
                                     "project_renamed", "project_removed", "project_restored"),
    "members": ("member_added", "member_removed"),
}


class AdminMixin:
    """Studio's people: logins, permissions, members, accounts, activity."""

    def uses_accounts(self) -> bool:
        """Accounts exist in the database: people log in with them and roles apply.
        Decided once, when first asked (app.py asks before it launches), because
        Gradio's login is fixed at launch: accounts added while an app without a login
        runs take effect when it is started again (until then it stays one person's,
        instead of refusing everyone who has no way to log in)."""
        if self._accounts is None:
            self._accounts = self.store.has_users()
        return self._accounts

    login_policy: LoginPolicy = LoginPolicy()   # per-account throttling (segui.security sets it)
    login_concurrency: int = 1                  # argon2 checks at once in login_async
    _login_limiter = None

    def login(self, username: str, password: str) -> bool:
        """An enabled account with that password, throttled per account (backoff, then
        a lockout an admin lifts: ``storage.LoginPolicy``). Blocking (argon2): Gradio
        gets :meth:`login_async`. What happened is noted for the /login request's
        middleware (``segui.security``): the refusal's reason, the session epoch."""
        from . import security
        r = self.store.attempt_login(username, password, self.login_policy)
        security.note_login(refusal=r.refusal, retry_after=r.retry_after_s,
                            epoch=r.user.session_epoch if r.user is not None else None)
        return r.user is not None

    async def login_async(self, username: str, password: str) -> bool:
        """Gradio's ``auth``: :meth:`login` in a worker thread, at most
        ``login_concurrency`` at once (its own limiter, so a login flood neither stalls
        the event loop nor takes the threads other requests run in)."""
        import anyio
        if self._login_limiter is None:
            self._login_limiter = anyio.CapacityLimiter(self.login_concurrency)
        return await anyio.to_thread.run_sync(self.login, username, password, limiter=self._login_limiter)

    def unlock_account(self, name: str, who: Principal | None = None) -> str:
        """An admin lifts a login lockout (too many wrong passwords)."""
        return self.manage_user("unlock", name, who=who)

    def principal(self, username: str | None) -> Principal:
        """Who a request's logged-in name is. Without accounts: the one person (an
        admin). With accounts: their role; unknown, disabled or no login -> Forbidden
        (a user disabled while logged in is refused from their next request)."""
        if not self.uses_accounts():
            return Principal(username or self.single_user, access.Role.ADMIN)
        if not username:
            raise Forbidden("Not logged in: log in with your account.")
        try:
            u = self.store.get_user(username)
        except NotFoundError:
            raise Forbidden(f"Not allowed: there is no account {username!r}.") from None
        if u.disabled:
            raise Forbidden(f"Not allowed: the account {u.name!r} is disabled.")
        return Principal(u.name, u.role, member_only=u.role != access.Role.ADMIN)

    def authorize(self, username: str | None, act: Act | str, project: str | int | None = None,
                  image_id: int | None = None, open_image: int | None = None) -> Principal:
        """The one permission check: may ``username`` do ``act`` (in ``project``, on
        ``image_id``)? Returns who they are; raises Forbidden with the reason.
        ``open_image``: the image the caller's session has open (the server's own
        state, whatever project the client names): the caller must still be a member
        of the project it really belongs to, so a removed member cannot save, submit or
        review it by naming no project."""
        who = self.principal(username)
        if not who.can(act):
            raise Forbidden(access.refusal(who, act))
        if open_image is not None:
            self._check_member(who, self._image_or_refuse(open_image).project_id)
        if image_id is not None:
            info = self._image_or_refuse(image_id)
            self._check_member(who, info.project_id)
            if not access.sees_image(who, info.status, info.annotated_by):
                raise Forbidden(f"Not allowed: image {info.id} is someone else's work; "
                                "reviewers and admins open every image.")
        if project not in (None, ""):
            self._check_member(who, project)
        return who

    def _image_or_refuse(self, image_id):
        """The image's row info, or Forbidden when there is no such image."""
        try:
            return self.store.get_image(int(image_id))
        except (NotFoundError, TypeError, ValueError):
            raise Forbidden(f"there is no image {image_id}") from None

    def _check_member(self, who: Principal, project: str | int) -> None:
        if not who.member_only:
            return
        try:
            ok = self.store.can_access(who.name, project)
        except NotFoundError:
            ok = False
        if not ok:
            name = project
            if isinstance(project, int):   # an image's own project: say its name
                try:
                    name = self.store.get_project(project).name
                except NotFoundError:
                    pass
            raise Forbidden(f"Not allowed: {who.name} is not a member of project {name!r}; "
                            "an admin adds members on the Projects screen.")

    def caller(self, who: Principal | None = None) -> Principal:
        """Who is calling (see :meth:`_who`), for code outside Studio."""
        return self._who(who)

    @staticmethod
    def _who(who: Principal | None) -> Principal:
        """The caller: given, else the one the app's guard set for this event, else
        the one person of an app without accounts."""
        return who or access.current() or access.NOBODY_ADMIN

    def session_typed_name(self, session: str | None, typed: Any = None) -> str | None:
        """In an app without accounts: the name last typed in *Your name* in this browser
        session (``typed``, when an event carries it, is remembered first), for the
        activity log of the session's other screens (Model, Projects: their events do not
        carry the name). None when none was typed, or the name is refused."""
        from .labelling import author_name
        names = self.__dict__.setdefault("_session_names", OrderedDict())
        if not session:
            return None
        with self._cache_lock:
            if typed is not None:
                try:
                    names[session] = author_name(typed)
                except UserError:
                    pass
            if session in names:
                names.move_to_end(session)
                while len(names) > SESSION_NAMES_KEPT:
                    names.popitem(last=False)
            return names.get(session)

    def activity(self, project: str | int, limit: int = 200, kind: str = "everything",
                 who: str | None = None) -> list[list[Any]]:
        """The project's activity, newest first: when, who, what, on what (an image by
        its file name: "0016E5_07959.jpg, revision 2", not its id). ``kind``: one of
        :data:`ACTIVITY_KINDS`; ``who``: one person's records (their exact name)."""
        if kind not in ACTIVITY_KINDS:
            raise UserError(f"show one of: {', '.join(ACTIVITY_KINDS)}")
        who = (who or "").strip() or None
        records = self.store.list_activity(project, limit=limit, action=ACTIVITY_KINDS[kind], user=who)
        names = self.store.image_filenames(project, [i for a in records
                                                     if isinstance(i := (a.details or {}).get("image_id"), int)])

        def what(a) -> str:
            d = a.details or {}
            if a.action == "review" and d.get("decision"):
                return f"review: {d['decision']}"
            if a.action == "revision_saved" and d.get("status"):
                c = d.get("correction")
                if isinstance(c, dict) and "changed" in c:
                    return f"revision saved ({d['status']}; {correction_words(c['changed'], c.get('fixes') or 0)})"
                return f"revision saved ({d['status']})"
            if a.action == "import":
                return "images added"
            return a.action.replace("_", " ")

        def on(a) -> str:
            d = a.details or {}
            subject = a.subject
            name = names.get(d.get("image_id")) if isinstance(d.get("image_id"), int) else None
            if name is not None:
                subject = name + (f", revision {d['revision']}" if d.get("revision") is not None else "")
            if a.action == "review" and d.get("comment"):
                return f"{subject}: “{d['comment']}”"
            return subject

        def by(a) -> str:
            # no name: the system (a job's promotion), else a person of an app without accounts
            return a.user or ("(system)" if a.action == "model_promoted" else "(no login)")

        return [[f"{a.created_at:%Y-%m-%d %H:%M:%S}", by(a), what(a), on(a)] for a in records]

    def record(self, action: str, project: str | int | None, subject: str, details: dict | None = None,
               who: Principal | None = None) -> None:
        self.store.record_activity(action, self._who(who).actor, project, subject, details)

    def members(self, project: str | int) -> str:
        ms = self.store.list_members(project) if project else []
        if not self.uses_accounts():
            return "No accounts yet: everyone who opens the app works as one person (see README, Accounts)."
        if not ms:
            return "No members yet: only admins see this project."
        return "**Members:** " + ", ".join(f"{u.name} ({u.role}{', disabled' if u.disabled else ''})" for u in ms)

    def set_member(self, project: str | int, user: str, add: bool, who: Principal | None = None) -> str:
        if not project:
            raise UserError("pick a project first")
        user = (user or "").strip()
        if not user:
            raise UserError("type the user's name")
        try:
            u = self.store.get_user(user)
            changed = self.store.add_member(project, u.id) if add else self.store.remove_member(project, u.id)
        except NotFoundError as e:
            raise UserError(f"{e} (add the account first, under Accounts below)") from None
        if changed:
            self.record("member_added" if add else "member_removed", project, f"user {u.name}",
                        {"name": u.name, "role": u.role}, who)
        verb = ("added to" if changed else "already a member of") if add else \
            ("removed from" if changed else "not a member of")
        return f"{u.name} {verb} {project}."

    def training_source(self, project: str | int) -> tuple[str, str]:
        """Which annotations jobs and exports use: (the setting, "auto" when none; what
        it means now, "accepted" or "submitted")."""
        p = self.store.get_project(project)
        return getattr(p, "training_source", None) or "auto", self.store.effective_training_source(project)

    def set_training_source(self, project: str | int, value: str, who: Principal | None = None) -> str:
        """Which annotations jobs and exports use: "accepted", "submitted" or "auto"."""
        if not project:
            raise UserError("pick a project first")
        if value not in ("auto", *TrainingSource):
            raise UserError("the training source is auto, accepted or submitted")
        try:
            self.store.set_training_source(project, None if value == "auto" else value)
        except ValidationError as e:
            raise UserError(str(e)) from None
        now = self.store.effective_training_source(project)
        self.record("training_source_changed", project, f"training source {value}", {"setting": value, "now": now},
                    who)
        return now

    def others_unlabelled(self, project: str | int) -> bool:
        """Whether the project's predictions leave the pixels that are none of its classes
        unlabelled (``models.open_set``) instead of painting them with the nearest class."""
        return bool(self.store.get_project(project).others_unlabelled)

    def catch_all_classes(self, project: str | int) -> list[str]:
        """The project's classes that read as "everything else" ("background", ...): with
        one, leaving the others unlabelled would take its pixels (``models.open_set``)."""
        from models.open_set import catch_all

        return catch_all(self.store.get_project(project).class_names)

    def set_others_unlabelled(self, project: str | int, on: bool, who: Principal | None = None) -> bool:
        """Turn that on or off; the stored predictions were made the other way, so they are
        dropped and the queue predicted again (annotations are untouched). -> the setting."""
        if not project:
            raise UserError("pick a project first")
        if not isinstance(on, bool):
            raise UserError("others unlabelled is on or off (true or false)")
        p = self.store.get_project(project)
        if bool(p.others_unlabelled) == on:
            return on
        self.store.set_others_unlabelled(p.id, on)
        what = "left unlabelled" if on else "painted as the nearest class"
        self.record("classes_changed", p.id, f"pixels that are none of the classes: {what}",
                    {"others_unlabelled": on}, who)
        self.label_set_changed(p.id)      # the model is asked for other words from now on
        return on

    def users_table(self) -> list[list[Any]]:
        """Every account: name, role, enabled, projects (admins: all)."""
        member_of: dict[int, list[str]] = {}
        for p in self.store.list_projects():
            for u in self.store.list_members(p.id):
                member_of.setdefault(u.id, []).append(p.name)
        return [[u.name, u.role, ("disabled" if u.disabled else "enabled") + (", locked" if u.locked else ""),
                 "(all)" if u.is_admin else ", ".join(member_of.get(u.id, [])) or "-"]
                for u in self.store.list_users()]

    def manage_user(self, action: str, name: str, role: str | None = None, password: str | None = None,
                    who: Principal | None = None) -> str:
        """An admin's change to an account: "add" (with role and password), "set_role",
        "disable", "enable", "password", "unlock". Disabling and a new password end
        the account's sessions (storage's session epoch). The password is hashed by storage (argon2) and
        never logged. Returns what happened, for the page."""
        who = self._who(who)
        if not who.can(Act.ADMIN):
            raise Forbidden(access.refusal(who, Act.ADMIN))
        name = (name or "").strip()
        if not name:
            raise UserError("type the account's name")
        try:
            if action == "add":
                u = self.store.add_user(name, password or "", role or "annotator")
                self.record("user_added", None, f"user {u.name}", {"name": u.name, "role": u.role}, who)
                note = f"Account {u.name} ({u.role}) added. Add it to projects with Add member."
                if not self.uses_accounts():
                    note += " Start the app again to require logins."
                return note
            before = self.store.get_user(name)
            if action == "set_role":
                u = self.store.set_role(before.id, role or "")
                if u.role != before.role:
                    self.record("role_changed", None, f"user {u.name}",
                                {"name": u.name, "from": before.role, "to": u.role}, who)
                return f"{u.name} is {u.role}."
            if action in ("disable", "enable"):
                u = (self.store.disable_user if action == "disable" else self.store.enable_user)(before.id)
                if u.disabled != before.disabled:
                    self.record("user_disabled" if u.disabled else "user_enabled", None, f"user {u.name}",
                                {"name": u.name}, who)
                return f"{u.name} is {'disabled' if u.disabled else 'enabled'}."
            if action == "unlock":
                u = self.store.unlock_user(before.id)
                return f"{u.name} is unlocked: failed logins forgotten."
            if action == "password":
                u = self.store.set_password(before.id, password or "")
                self.record("password_changed", None, f"user {u.name}", {"name": u.name}, who)
                return f"The password of {u.name} was changed."
        except (ValidationError, NotFoundError) as e:
            raise UserError(str(e)) from None
        raise UserError(f"unknown account action {action!r}")
