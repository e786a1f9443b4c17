"""User accounts (argon2id password hashes, roles, disabling) and project members."""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from common import labels

from .errors import NotFoundError, ValidationError
from .info import ProjectInfo, UserInfo, _user_info
from .models import Project, ProjectMember, Role, User, utcnow
from .store_base import StoreBase, _clean_name, _enum_value

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024     # argon2 takes any length; this bounds the work per login


def check_password(password: Any) -> str:
    """The password as given, or ValidationError; messages never contain it."""
    if not isinstance(password, str):
        raise ValidationError(f"a password must be text, got {type(password).__name__}")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValidationError(f"a password has at most {MAX_PASSWORD_LENGTH} characters")
    return password


@dataclass(frozen=True)
class LoginPolicy:
    """Per-account login throttling (issue 17), the same in every process because the
    counts live in the users table. After ``free_failures`` consecutive wrong
    passwords each attempt waits ``base_delay_s`` doubled per further failure (at most
    ``max_delay_s``) after the last failure; ``lock_after`` consecutive failures lock
    the account until an admin unlocks it (0: never). A right password resets the
    count. An attempt refused by the wait or the lock is not checked and not counted."""
    free_failures: int = 5
    base_delay_s: float = 1.0
    max_delay_s: float = 60.0
    lock_after: int = 20

    def delay_s(self, failures: int) -> float:
        """How long after the last failure the next attempt must wait."""
        if failures < self.free_failures:
            return 0.0
        return min(self.base_delay_s * 2 ** (failures - self.free_failures), self.max_delay_s)


@dataclass(frozen=True)
class LoginResult:
    """The answer to :meth:`AccountsMixin.attempt_login`: ``user`` when the login is
    right; else ``refusal`` (None: wrong name or password, said the same way for both)
    and ``retry_after_s`` (the wait before the next attempt is checked, 0 if none)."""
    user: UserInfo | None
    refusal: str | None = None
    retry_after_s: float = 0.0


LOCKED = ("this account is locked after too many failed logins: ask an admin to unlock it "
          "(python -m storage users unlock NAME, or Accounts on the Projects screen)")


def _utc(dt: datetime | None) -> datetime | None:
    if dt is not None and dt.tzinfo is None:       # SQLite gives naive UTC
        dt = dt.replace(tzinfo=timezone.utc)
    return dt


class AccountsMixin(StoreBase):
    """Users and project members."""

    password_hasher: PasswordHasher
    _dummy_hash: str | None

    # ------------------------------------------------------------------ users

    @staticmethod
    def _user_row(s: Session, user: str | int, *, for_update: bool = False) -> User:
        if isinstance(user, int):
            q = select(User).where(User.id == user)
        elif isinstance(user, str) and user.strip():
            q = select(User).where(User.name_key == labels.name_key(user))
        else:
            raise NotFoundError(f"user {user!r} does not exist")
        row = s.scalar(q.with_for_update() if for_update else q)
        if row is None:
            raise NotFoundError(f"user {user!r} does not exist")
        return row

    def _hash(self, password: str) -> str:
        return self.password_hasher.hash(check_password(password))

    def add_user(self, name: str, password: str, role: str = "annotator") -> UserInfo:
        """Create an account. ``name``: whitespace collapsed, unique ignoring case;
        ``role``: admin / reviewer / annotator; the password (at least
        ``MIN_PASSWORD_LENGTH`` characters) is stored only as an argon2id hash."""
        name = _clean_name(name, "user name")
        role = _enum_value(Role, role, "role")
        pw_hash = self._hash(password)
        with self._session() as s, s.begin():
            other = s.scalar(select(User.name).where(User.name_key == labels.name_key(name)))
            if other is not None:
                same = "" if other == name else f" (as {other!r}: user names ignore case)"
                raise ValidationError(f"user {name!r} already exists{same}")
            u = User(name=name, name_key=labels.name_key(name), password_hash=pw_hash, role=role,
                     disabled=False, created_at=utcnow())
            s.add(u)
            try:
                s.flush()
            except IntegrityError:
                raise ValidationError(f"user {name!r} already exists (added concurrently)") from None
            return _user_info(u)

    def get_user(self, name: str | int) -> UserInfo:
        with self._session() as s:
            return _user_info(self._user_row(s, name))

    def list_users(self) -> list[UserInfo]:
        with self._session() as s:
            return [_user_info(u) for u in s.scalars(select(User).order_by(User.name_key))]

    def has_users(self) -> bool:
        """Whether any account exists (without accounts the app runs as one person)."""
        with self._session() as s:
            return s.scalar(select(User.id).limit(1)) is not None

    def verify_user(self, name: str, password: str) -> UserInfo | None:
        """The account when ``password`` is right and the user is enabled, else None
        (wrong password, unknown or disabled user: the caller cannot tell which). An
        unknown name still costs one argon2 verification, so timing does not reveal
        which names exist. A hash made with older parameters is replaced on success."""
        hasher = self.password_hasher
        u = None
        if isinstance(name, str) and name.strip() and len(name) <= 4 * labels.MAX_NAME_LENGTH:
            with self._session() as s:
                u = s.scalar(select(User).where(User.name_key == labels.name_key(name)))
        stored = u.password_hash if u is not None else self._dummy()
        try:
            ok = isinstance(password, str) and hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            ok = False
        if not ok or u is None or u.disabled:
            return None
        if hasher.check_needs_rehash(stored):
            with self._session() as s, s.begin():
                # conditional: a password changed meanwhile is not overwritten
                s.execute(update(User).where(User.id == u.id, User.password_hash == stored)
                          .values(password_hash=hasher.hash(password))
                          .execution_options(synchronize_session=False))
        return _user_info(u)

    def attempt_login(self, name: str, password: str, policy: LoginPolicy | None = None) -> LoginResult:
        """A login with throttling: refused without checking the password while the
        account is locked or must wait (see :class:`LoginPolicy`); else the password
        is checked (:meth:`verify_user`) and a failure counted, atomically, so several
        app processes share the counts. Unknown names are not counted (the caller
        throttles per client address as well)."""
        policy = policy or LoginPolicy()
        u = None
        if isinstance(name, str) and name.strip() and len(name) <= 4 * labels.MAX_NAME_LENGTH:
            with self._session() as s:
                u = s.scalar(select(User).where(User.name_key == labels.name_key(name)))
        if u is not None:
            if u.locked:
                return LoginResult(None, LOCKED)
            last = _utc(u.last_failed_login_at)
            wait = policy.delay_s(u.failed_logins or 0)
            if wait and last is not None:
                left = (last + timedelta(seconds=wait) - utcnow()).total_seconds()
                if left > 0:
                    return LoginResult(None, f"too many failed logins: wait {left:.0f} s before "
                                             "the next try", left)
        ok = self.verify_user(name, password)
        if u is None:
            return LoginResult(ok)
        with self._session() as s, s.begin():
            if ok is not None:
                if u.failed_logins or u.last_failed_login_at is not None:
                    s.execute(update(User).where(User.id == u.id)
                              .values(failed_logins=0, last_failed_login_at=None)
                              .execution_options(synchronize_session=False))
                return LoginResult(ok)
            n = User.failed_logins + 1
            values: dict[str, Any] = {"failed_logins": n, "last_failed_login_at": utcnow()}
            if policy.lock_after:
                values["locked"] = User.locked | (n >= policy.lock_after)
            s.execute(update(User).where(User.id == u.id).values(**values)
                      .execution_options(synchronize_session=False))
            failures = s.scalar(select(User.failed_logins).where(User.id == u.id))
        if policy.lock_after and failures >= policy.lock_after:
            return LoginResult(None, LOCKED)
        return LoginResult(None, None, policy.delay_s(failures))

    def unlock_user(self, name: str | int) -> UserInfo:
        """Lift a login lockout and forget the failed logins."""
        with self._session() as s, s.begin():
            u = self._user_row(s, name, for_update=True)
            u.locked, u.failed_logins, u.last_failed_login_at = False, 0, None
            s.flush()
            return _user_info(u)

    def session_epoch(self, name: str) -> int | None:
        """The account's session epoch (sessions logged in under an older one have
        ended), None for an unknown or disabled account: one small indexed query."""
        if not isinstance(name, str) or not name.strip():
            return None
        with self._session() as s:
            row = s.execute(select(User.session_epoch, User.disabled)
                            .where(User.name_key == labels.name_key(name))).first()
        if row is None or row.disabled:
            return None
        return int(row.session_epoch or 0)

    def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = self.password_hasher.hash(secrets.token_urlsafe(16))
        return self._dummy_hash

    def set_password(self, name: str | int, password: str) -> UserInfo:
        """A new password; the account's sessions logged in before end."""
        pw_hash = self._hash(password)
        with self._session() as s, s.begin():
            u = self._user_row(s, name, for_update=True)
            u.password_hash = pw_hash
            u.session_epoch = (u.session_epoch or 0) + 1      # the sessions logged in before end
            s.flush()
            return _user_info(u)

    def _check_not_last_admin(self, s: Session, u: User, doing: str) -> None:
        if u.role != Role.ADMIN or u.disabled:
            return
        others = s.scalar(select(func.count()).select_from(User).where(
            User.role == Role.ADMIN.value, User.disabled.is_(False), User.id != u.id))
        if not others:
            raise ValidationError(f"cannot {doing} {u.name!r}: the last enabled admin "
                                  "(add or enable another admin first)")

    def set_role(self, name: str | int, role: str) -> UserInfo:
        """Change a user's role; the last enabled admin cannot be demoted."""
        role = _enum_value(Role, role, "role")
        with self._session() as s, s.begin():
            u = self._user_row(s, name, for_update=True)
            if role != u.role:
                self._check_not_last_admin(s, u, f"make {role}")
                u.role = role
                s.flush()
            return _user_info(u)

    def disable_user(self, name: str | int) -> UserInfo:
        """A disabled user cannot log in (verify_user returns None) and sees no project;
        their sessions end (for good: enabling the account again does not bring them
        back); their revisions and reviews stay. The last enabled admin cannot be disabled."""
        with self._session() as s, s.begin():
            u = self._user_row(s, name, for_update=True)
            if not u.disabled:
                self._check_not_last_admin(s, u, "disable")
                u.disabled = True
                u.session_epoch = (u.session_epoch or 0) + 1  # enabling again does not revive them
                s.flush()
            return _user_info(u)

    def enable_user(self, name: str | int) -> UserInfo:
        with self._session() as s, s.begin():
            u = self._user_row(s, name)
            u.disabled = False
            s.flush()
            return _user_info(u)

    # ------------------------------------------------------------------ project members

    def add_member(self, project: str | int, user: str | int) -> bool:
        """Make ``user`` a member of ``project``; False when they already were."""
        with self._session() as s:
            p = self._project_row(s, project)
            u = self._user_row(s, user)
            if s.get(ProjectMember, (p.id, u.id)) is not None:
                return False
            s.add(ProjectMember(project_id=p.id, user_id=u.id, created_at=utcnow()))
            try:
                s.commit()
                return True
            except IntegrityError:      # added concurrently
                s.rollback()
                return False

    def remove_member(self, project: str | int, user: str | int) -> bool:
        """False when ``user`` was not a member."""
        with self._session() as s, s.begin():
            p = self._project_row(s, project)
            u = self._user_row(s, user)
            return s.execute(delete(ProjectMember).where(ProjectMember.project_id == p.id,
                                                         ProjectMember.user_id == u.id)
                             .execution_options(synchronize_session=False)).rowcount > 0

    def list_members(self, project: str | int) -> list[UserInfo]:
        """The project's members (admins see every project without being members)."""
        with self._session() as s:
            p = self._project_row(s, project)
            return [_user_info(u) for u in s.scalars(
                select(User).join(ProjectMember, ProjectMember.user_id == User.id)
                .where(ProjectMember.project_id == p.id).order_by(User.name_key))]

    def projects_for(self, user: str | int) -> list[ProjectInfo]:
        """The projects ``user`` sees: every project in use for an admin, the ones they
        are a member of otherwise, none for a disabled user (removed projects: none)."""
        with self._session() as s:
            u = self._user_row(s, user)
            if u.disabled:
                return []
            q = select(Project).where(Project.removed_at.is_(None)).order_by(Project.id)
            if u.role != Role.ADMIN:
                q = q.join(ProjectMember, ProjectMember.project_id == Project.id).where(
                    ProjectMember.user_id == u.id)
            return [self._project_info(s, p) for p in s.scalars(q)]

    def can_access(self, user: str | int, project: str | int) -> bool:
        """Whether ``user`` (enabled) sees ``project``: an admin, or a member."""
        with self._session() as s:
            u = self._user_row(s, user)
            p = self._project_row(s, project)
            if u.disabled:
                return False
            return u.role == Role.ADMIN or s.get(ProjectMember, (p.id, u.id)) is not None
