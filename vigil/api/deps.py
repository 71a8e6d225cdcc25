"""Authentication and authorisation for every route, and the per-app state the routes use.

- ``AuthMiddleware`` (pure ASGI) resolves the session cookie or bearer token into a governance ``User`` for
  every request, and answers 401 for any ``/api/`` path except the public ones, before routing, body parsing
  or validation: a route added later cannot be left open by mistake.
- ``require(permission)`` and ``require_camera(permission)`` are the route dependencies (403 with the reason
  from ``UserStore.require``); ``check_camera`` is the same check for a camera named in a body or query.
- ``ApiState`` hangs off ``app.state.vigil``: no globals.
- ``DbId`` / ``DbIdQuery`` are the one declaration of an integer id taken from the path or the query: bounded to
  the database id range (every id column is a 64-bit ``BigInteger``), so an id too large for the database answers
  422 naming the parameter instead of overflowing the driver (500).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import anyio
from fastapi import Depends, HTTPException, Query, Request, Security
from fastapi import Path as PathParam
from fastapi.security import APIKeyCookie, HTTPBearer
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from vigil.config import CameraConfig, Config
from vigil.governance.audit import AuditLog
from vigil.governance.authorisations import AuthorisationStore
from vigil.governance.errors import PermissionDenied
from vigil.governance.roles import ROLE_PERMISSIONS
from vigil.governance.users import ALL_CAMERAS, User, UserStore

if TYPE_CHECKING:
    from vigil.api.live import EventBridge
    from vigil.api.live_state import LiveState
    from vigil.assembly import Services
    from vigil.store.lists import ListStore
    from vigil.store.recordings import RecordingIndex
    from vigil.vision.enrichers import RecognitionModels

log = logging.getLogger(__name__)

SESSION_COOKIE = "vigil_session"
PUBLIC_API_PATHS = frozenset({"/api/auth/login", "/api/health", "/api/openapi.json", "/api/docs",
                              "/api/docs/oauth2-redirect"})
#: paths that check their own credentials: the middleware neither resolves a session for them nor refuses them
#: (``/metrics`` takes a Prometheus scrape token, which must not cost a session lookup or fail with the database)
SELF_AUTHENTICATED_PATHS = frozenset({"/metrics"})
USER_KEY = "vigil.user"
TOKEN_KEY = "vigil.token"
NOT_SIGNED_IN = "not signed in: log in with POST /api/auth/login (cookie vigil_session or Authorization: Bearer)"

#: the largest id the database holds: every id (and the audit ``seq``) is a signed 64-bit ``BigInteger``
#: (``BigId`` in vigil/store/schema.py; SQLite's INTEGER is 64-bit as well)
MAX_DB_ID = 2**63 - 1
#: an integer id in the path: 1 .. MAX_DB_ID, else 422 "path.<name>: ..."
DbId = Annotated[int, PathParam(ge=1, le=MAX_DB_ID)]
#: an optional integer id (or audit seq) in the query: 1 .. MAX_DB_ID, else 422 "query.<name>: ..."
DbIdQuery = Annotated[int | None, Query(ge=1, le=MAX_DB_ID)]


class LoginThrottle:
    """Failed logins per client address: more than ``max_failures`` within ``window_s`` → wait (429).

    Complements the per-account lockout of ``UserStore.login``, which cannot slow down guessing of usernames.
    """

    def __init__(self, max_failures: int = 10, window_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> float:
        """Seconds this client must wait before trying again (0: go ahead)."""
        now = self.clock()
        with self._lock:
            recent = self._failures.get(client)
            while recent and now - recent[0] > self.window_s:
                recent.popleft()
            if not recent or len(recent) < self.max_failures:
                return 0.0
            return max(0.1, self.window_s - (now - recent[0]))

    def failed(self, client: str) -> None:
        with self._lock:
            self._failures.setdefault(client, deque(maxlen=self.max_failures * 2)).append(self.clock())

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)


class AuditTrail:
    """Writes API actions to the governance audit log; repeated views of the same thing by the same user within
    ``dedupe_s`` (a live grid refreshing snapshots) are written once per window."""

    def __init__(self, audit: AuditLog | None, dedupe_s: float = 60.0) -> None:
        self.audit = audit
        self.dedupe_s = dedupe_s
        self._recent: dict[tuple[str, str, str], float] = {}
        self._lock = threading.Lock()

    def record(self, user: User, action: str, obj: str, details: dict[str, Any] | None = None,
               purpose: str | None = None, dedupe: bool = False) -> None:
        if self.audit is None:
            return
        if dedupe:
            key, now = (user.username, action, obj), time.monotonic()
            with self._lock:
                if now - self._recent.get(key, -1e9) < self.dedupe_s:
                    return
                self._recent[key] = now
                if len(self._recent) > 10_000:
                    self._recent = {k: t for k, t in self._recent.items() if now - t < self.dedupe_s}
        self.audit.append(user.username, action, obj, purpose=purpose, details=details)


@dataclass
class ApiState:
    """Everything the routes need, built by ``create_app``."""

    config: Config
    services: Services
    users: UserStore
    audit: AuditTrail
    authorisations: AuthorisationStore | None
    config_path: Path | None
    live: LiveState
    bridge: EventBridge
    recordings: RecordingIndex
    lists: ListStore
    recognition: RecognitionModels
    basemap: Path | None
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    mjpeg_clients: dict[str, int] = field(default_factory=dict)
    config_lock: threading.Lock = field(default_factory=threading.Lock)

    def camera(self, camera_id: str) -> CameraConfig | None:
        return next((c for c in self.config.cameras if c.id == camera_id), None)


def api_state(request: Request) -> ApiState:
    return request.app.state.vigil


# ---------------------------------------------------------------------- the middleware

def session_token(scope: Scope) -> str | None:
    """The session token the request carries (``Authorization: Bearer`` or the session cookie), if any."""
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer " and auth[7:].strip():
        return auth[7:].strip()
    cookie = headers.get("cookie")
    if cookie:
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(cookie)
        except Exception:  # a malformed cookie header is as good as none
            return None
        morsel = jar.get(SESSION_COOKIE)
        if morsel is not None and morsel.value:
            return morsel.value
    return None


class AuthMiddleware:
    """Resolves the caller for every HTTP request and refuses unauthenticated ``/api/`` calls with 401."""

    def __init__(self, app: ASGIApp, users: UserStore) -> None:
        self.app = app
        self.users = users

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["path"].startswith(("/static/", "/vendor/"))
                or scope["path"] in SELF_AUTHENTICATED_PATHS):
            await self.app(scope, receive, send)
            return
        token = session_token(scope)
        user = None
        if token is not None and len(token) < 512:
            user = await anyio.to_thread.run_sync(self.users.verify_session, token)
        scope[USER_KEY] = user
        scope[TOKEN_KEY] = token if user is not None else None
        path = scope["path"]
        if user is None and path.startswith("/api/") and path not in PUBLIC_API_PATHS:
            response = JSONResponse({"detail": NOT_SIGNED_IN}, status_code=401,
                                    headers={"WWW-Authenticate": 'Bearer realm="vigil"'})
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


# ---------------------------------------------------------------------- route dependencies

_cookie_scheme = APIKeyCookie(name=SESSION_COOKIE, auto_error=False, description="session from /api/auth/login")
_bearer_scheme = HTTPBearer(auto_error=False, description="the token from /api/auth/login")


def current_user(request: Request, _cookie: Any = Security(_cookie_scheme),
                 _bearer: Any = Security(_bearer_scheme)) -> User:
    """The signed-in user (resolved by ``AuthMiddleware``); 401 when there is none."""
    user = request.scope.get(USER_KEY)
    if user is None:
        raise HTTPException(401, NOT_SIGNED_IN, headers={"WWW-Authenticate": 'Bearer realm="vigil"'})
    return user


def check(user: User, permission: str | None) -> None:
    """403 saying why, when the user's role lacks ``permission``."""
    if permission is None:
        return
    try:
        UserStore.require(user, permission)
    except PermissionDenied as exc:
        raise HTTPException(403, str(exc)) from None


def check_camera(state: ApiState, user: User, camera_id: str, permission: str | None) -> CameraConfig:
    """The camera when ``user`` may use ``permission`` on it: 403 with the reason, 404 for an unknown camera."""
    check(user, permission)
    if not user.sees_camera(camera_id):
        raise HTTPException(403, f"user {user.username!r} has no access to camera {camera_id!r}")
    camera = state.camera(camera_id)
    if camera is None:
        raise HTTPException(404, f"no camera {camera_id!r}")
    return camera


def require(permission: str | None = None) -> Callable[..., User]:
    """Dependency: a signed-in user holding ``permission`` (None: any signed-in user)."""

    def dependency(user: User = Depends(current_user)) -> User:
        check(user, permission)
        return user

    dependency.permission = permission  # type: ignore[attr-defined]  # read by vigil.api.openapi
    return dependency


def require_any(*permissions: str) -> Callable[..., User]:
    """Dependency: a signed-in user holding at least one of ``permissions`` (403 naming them otherwise)."""

    def dependency(user: User = Depends(current_user)) -> User:
        if not any(user.can(p) for p in permissions):
            if user.disabled:
                raise HTTPException(403, f"user {user.username!r} is disabled")
            raise HTTPException(403, f"role {user.role!r} of {user.username!r} does not allow "
                                     f"{' or '.join(permissions)}")
        return user

    dependency.any_permission = permissions  # type: ignore[attr-defined]  # read by vigil.api.openapi
    return dependency


@dataclass(frozen=True, slots=True)
class CameraAccess:
    user: User
    camera: CameraConfig


def require_camera(permission: str | None) -> Callable[..., CameraAccess]:
    """Dependency for routes with a ``{camera_id}`` path parameter: the user may use ``permission`` on it.
    The role is checked before the path is validated, so a role without ``permission`` always gets 403."""

    def dependency(request: Request, camera_id: str = PathParam(max_length=64),
                   user: User = Depends(require(permission))) -> CameraAccess:
        return CameraAccess(user, check_camera(api_state(request), user, camera_id, permission))

    return dependency


def permitted_cameras(state: ApiState, user: User) -> list[str]:
    """Ids of the configured cameras the user may see."""
    return [c.id for c in state.config.cameras if user.sees_camera(c.id)]


def camera_filter(state: ApiState, user: User, wanted: list[str] | None) -> list[str] | None:
    """The cameras a query may touch: the requested ones (403 for any not granted), else every granted one
    (None when the user sees every camera, so cameras unknown to this config are not hidden from them)."""
    if wanted:
        for camera_id in wanted:
            if not user.sees_camera(camera_id):
                raise HTTPException(403, f"user {user.username!r} has no access to camera {camera_id!r}")
        return list(dict.fromkeys(wanted))
    return None if ALL_CAMERAS in user.cameras else list(user.cameras)


def user_out(user: User) -> dict[str, Any]:
    return {"username": user.username, "display_name": user.display_name, "roles": [user.role],
            "cameras": ALL_CAMERAS if ALL_CAMERAS in user.cameras else list(user.cameras),
            "permissions": sorted(ROLE_PERMISSIONS.get(user.role, ())) if not user.disabled else []}
