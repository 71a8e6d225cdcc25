"""Users, passwords (argon2), login throttling, sessions and camera permissions (DESIGN §6).

Every change to a user, and every login, is written to the audit log.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vigil.governance.audit import AuditLog
from vigil.governance.errors import PermissionDenied, UserError
from vigil.governance.passwords import check_password
from vigil.governance.roles import VIDEO_PERMISSIONS, check_permission, check_role, role_allows
from vigil.governance.schema import SessionRow, UserRow
from vigil.store.db import Store, utcnow

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{1,63}$")
CAMERA_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
ALL_CAMERAS = "*"
BAD_CREDENTIALS = "unknown user or wrong password"


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    display_name: str
    role: str
    cameras: tuple[str, ...]  # ("*",) for every camera
    disabled: bool
    created_at: datetime

    def can(self, permission: str) -> bool:
        """The role carries ``permission`` and the account is enabled (cameras not considered)."""
        return not self.disabled and role_allows(self.role, permission)

    def sees_camera(self, camera_id: str) -> bool:
        return ALL_CAMERAS in self.cameras or camera_id in self.cameras


@dataclass(frozen=True, slots=True)
class LoginResult:
    """``user`` when signed in, else None with ``reason``; ``retry_after_s`` > 0 while locked out."""

    user: User | None
    reason: str
    retry_after_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.user is not None


def _user(row: UserRow) -> User:
    return User(id=row.id, username=row.username, display_name=row.display_name, role=row.role,
                cameras=tuple(row.cameras), disabled=row.disabled, created_at=row.created_at)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_cameras(cameras: Iterable[str]) -> list[str]:
    """Validate a camera grant: camera ids, or ``*`` alone for all cameras."""
    ids = list(dict.fromkeys(c.strip() for c in cameras if c.strip()))
    if ALL_CAMERAS in ids:
        return [ALL_CAMERAS]
    for camera in ids:
        if not CAMERA_ID.match(camera):
            raise UserError(f"not a camera id: {camera!r}")
    return ids


class UserStore:
    """Users in the metadata database. ``hasher`` defaults to argon2id with argon2-cffi's parameters."""

    def __init__(self, store: Store, audit: AuditLog, hasher: PasswordHasher | None = None,
                 clock: Callable[[], datetime] = utcnow, max_failures: int = 5,
                 lockout: timedelta = timedelta(seconds=30), max_lockout: timedelta = timedelta(hours=1),
                 session_ttl: timedelta = timedelta(hours=8)) -> None:
        self.store = store
        self.audit = audit
        self.hasher = hasher or PasswordHasher()
        self.clock = clock
        self.max_failures = max_failures
        self.lockout = lockout
        self.max_lockout = max_lockout
        self.session_ttl = session_ttl
        self._dummy_hash: str | None = None  # hashed on first use: equal work for unknown users

    # ------------------------------------------------------------------ users

    def create(self, username: str, password: str, role: str, actor: str, cameras: Iterable[str] = (),
               display_name: str = "") -> User:
        """Add a user; ``cameras`` are the camera ids they may see (``["*"]`` for all)."""
        if not USERNAME.match(username):
            raise UserError(f"bad username {username!r}: 2-64 of a-z 0-9 . _ @ -, starting with a letter or digit")
        check_role(role)
        grant = check_cameras(cameras)
        digest = self.hasher.hash(check_password(username, password, display_name))
        now = self.clock()
        try:
            with self.store.session() as session:
                row = UserRow(username=username, display_name=display_name, password_hash=digest, role=role,
                              cameras=grant, disabled=False, failed_logins=0, created_at=now, updated_at=now)
                session.add(row)
                session.flush()
                user = _user(row)
        except IntegrityError:
            raise UserError(f"user {username!r} already exists") from None
        self.audit.append(actor, "user.create", f"user:{username}", details={"role": role, "cameras": grant})
        return user

    def update(self, username: str, actor: str, *, role: str | None = None, cameras: Iterable[str] | None = None,
               display_name: str | None = None, password: str | None = None) -> User:
        """Change a user's role, camera grant, name or password (audited; the password itself never is)."""
        changes: dict[str, Any] = {}
        if role is not None:
            changes["role"] = check_role(role)
        if cameras is not None:
            changes["cameras"] = check_cameras(cameras)
        if display_name is not None:
            changes["display_name"] = display_name
        digest = (self.hasher.hash(check_password(username, password, display_name or None))
                  if password is not None else None)
        with self.store.session() as session:
            row = self._row(session, username)
            before = {key: getattr(row, key) for key in changes}
            for key, value in changes.items():
                setattr(row, key, value)
            if digest is not None:  # a new password ends every session signed in with the old one
                row.password_hash, row.failed_logins, row.locked_until = digest, 0, None
                session.execute(update(SessionRow).where(SessionRow.user_id == row.id,
                                                         SessionRow.revoked_at.is_(None))
                                .values(revoked_at=self.clock()))
            row.updated_at = self.clock()
            user = _user(row)
        details: dict[str, Any] = {key: {"from": before[key], "to": value} for key, value in changes.items()}
        if digest is not None:
            details["password"] = "changed"
        self.audit.append(actor, "user.update", f"user:{username}", details=details)
        return user

    def grant_cameras(self, username: str, cameras: Iterable[str], actor: str) -> User:
        return self.update(username, actor, cameras=cameras)

    def disable(self, username: str, actor: str, reason: str | None = None) -> User:
        """Disable a user and end their sessions."""
        with self.store.session() as session:
            row = self._row(session, username)
            row.disabled, row.updated_at = True, self.clock()
            session.execute(update(SessionRow).where(SessionRow.user_id == row.id, SessionRow.revoked_at.is_(None))
                            .values(revoked_at=self.clock()))
            user = _user(row)
        self.audit.append(actor, "user.disable", f"user:{username}", details={"reason": reason} if reason else None)
        return user

    def enable(self, username: str, actor: str) -> User:
        with self.store.session() as session:
            row = self._row(session, username)
            row.disabled, row.failed_logins, row.locked_until, row.updated_at = False, 0, None, self.clock()
            user = _user(row)
        self.audit.append(actor, "user.enable", f"user:{username}")
        return user

    def get(self, username: str) -> User:
        """The user, or ``UserError`` naming the unknown username."""
        with self.store.session() as session:
            return _user(self._row(session, username))

    def find(self, username: str) -> User | None:
        with self.store.session() as session:
            row = session.scalars(select(UserRow).where(UserRow.username == username)).first()
            return _user(row) if row else None

    def list_users(self) -> list[User]:
        with self.store.session() as session:
            return [_user(row) for row in session.scalars(select(UserRow).order_by(UserRow.username))]

    def _row(self, session: Session, username: str) -> UserRow:
        row = session.scalars(select(UserRow).where(UserRow.username == username)).first()
        if row is None:
            raise UserError(f"no user {username!r}")
        return row

    # ------------------------------------------------------------------ login

    def login(self, username: str, password: str) -> LoginResult:
        """Check a password. After ``max_failures`` failures in a row the account is locked for ``lockout``,
        doubling with every further failure up to ``max_lockout``; a locked account refuses even the right password.
        """
        now = self.clock()
        with self.store.session() as session:
            row = session.scalars(select(UserRow).where(UserRow.username == username)).first()
            if row is None:
                self._dummy_hash = self._dummy_hash or self.hasher.hash(secrets.token_hex(16))
                self._verify(self._dummy_hash, password)
                result, action = LoginResult(None, BAD_CREDENTIALS), "user.login_failed"
            elif row.locked_until is not None and row.locked_until > now:
                wait = (row.locked_until - now).total_seconds()
                reason = (f"account {username!r} locked until {row.locked_until:%Y-%m-%d %H:%M:%S} UTC "
                          f"after {row.failed_logins} failed logins")
                result, action = LoginResult(None, reason, wait), "user.login_refused"
            elif not self._verify(row.password_hash, password):
                row.failed_logins += 1
                reason = BAD_CREDENTIALS
                extra = row.failed_logins - self.max_failures
                if extra >= 0:
                    row.locked_until = now + min(self.lockout * (2 ** min(extra, 30)), self.max_lockout)
                    reason += f"; account locked for {(row.locked_until - now).total_seconds():.0f} s"
                result, action = LoginResult(None, reason), "user.login_failed"
            elif row.disabled:
                result, action = LoginResult(None, f"account {username!r} is disabled"), "user.login_refused"
            else:
                row.failed_logins, row.locked_until = 0, None
                if self.hasher.check_needs_rehash(row.password_hash):
                    row.password_hash = self.hasher.hash(password)
                result, action = LoginResult(_user(row), "ok"), "user.login"
        name = username[:64] or "-"
        self.audit.append(name, action, f"user:{name}",
                          details=None if result.ok else {"reason": result.reason})
        return result

    def authenticate(self, username: str, password: str) -> User | None:
        """The user when ``password`` is right and the account enabled and not locked; see ``login`` for why not."""
        return self.login(username, password).user

    def _verify(self, digest: str, password: str) -> bool:
        try:
            return self.hasher.verify(digest, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    # ------------------------------------------------------------------ sessions

    def create_session(self, user: User, ttl: timedelta | None = None) -> str:
        """A new opaque session token for ``user`` (only its sha256 is stored)."""
        token = secrets.token_urlsafe(32)
        now = self.clock()
        with self.store.session() as session:
            session.add(SessionRow(token_sha256=token_digest(token), user_id=user.id, created_at=now,
                                   expires_at=now + (ttl or self.session_ttl)))
        return token

    def verify_session(self, token: str) -> User | None:
        """The user behind a live session token; None when unknown, expired, revoked or the user is disabled."""
        now = self.clock()
        with self.store.session() as session:
            found = session.execute(select(SessionRow, UserRow).join(UserRow, UserRow.id == SessionRow.user_id)
                                    .where(SessionRow.token_sha256 == token_digest(token))).first()
            if found is None:
                return None
            sess, row = found
            if sess.revoked_at is not None or sess.expires_at <= now or row.disabled:
                return None
            return _user(row)

    def revoke_session(self, token: str) -> bool:
        """End one session (logout); False when the token is unknown or already ended."""
        with self.store.session() as session:
            result = session.execute(update(SessionRow).where(SessionRow.token_sha256 == token_digest(token),
                                                              SessionRow.revoked_at.is_(None))
                                     .values(revoked_at=self.clock()))
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def active_sessions(self, username: str) -> int:
        """How many unexpired, unrevoked sessions the user has."""
        with self.store.session() as session:
            row = self._row(session, username)
            return int(session.scalar(select(func.count()).where(
                SessionRow.user_id == row.id, SessionRow.revoked_at.is_(None),
                SessionRow.expires_at > self.clock())) or 0)

    def revoke_sessions(self, username: str, actor: str) -> int:
        """End every session of a user; the number ended."""
        with self.store.session() as session:
            row = self._row(session, username)
            result = session.execute(update(SessionRow).where(SessionRow.user_id == row.id,
                                                              SessionRow.revoked_at.is_(None))
                                     .values(revoked_at=self.clock()))
            count = int(result.rowcount)  # type: ignore[attr-defined]
        self.audit.append(actor, "user.sessions_revoked", f"user:{username}", details={"count": count})
        return count

    # ------------------------------------------------------------------ permissions

    @staticmethod
    def can(user: User, permission: str) -> bool:
        return user.can(permission)

    @staticmethod
    def can_view_video(user: User, camera_id: str, kind: str = "video.live") -> bool:
        """True when the role may see video of ``kind`` (``video.live`` / ``video.playback``) and the camera is
        granted to the user."""
        if kind not in VIDEO_PERMISSIONS:
            raise UserError(f"not a video permission: {kind!r}")
        return user.can(kind) and user.sees_camera(camera_id)

    @staticmethod
    def require(user: User, permission: str, camera_id: str | None = None) -> None:
        """Raise ``PermissionDenied`` saying why ``user`` may not use ``permission`` (on ``camera_id``, which must
        then be in the user's camera grant)."""
        check_permission(permission)
        if user.disabled:
            raise PermissionDenied(f"user {user.username!r} is disabled")
        if not role_allows(user.role, permission):
            raise PermissionDenied(f"role {user.role!r} of {user.username!r} does not allow {permission}")
        if camera_id is not None and not user.sees_camera(camera_id):
            raise PermissionDenied(f"user {user.username!r} has no access to camera {camera_id!r}")
