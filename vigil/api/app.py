"""The command-centre app: ``create_app(config, services, node)`` → FastAPI (API under ``/api``, web pages).

Everything hangs off ``app.state.vigil`` (``ApiState``); there are no globals, so several apps can run in one
process (tests). ``services`` must be started (``open_services(config).start()``): live events come from its bus.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

import vigil.web
from vigil.api.deps import SESSION_COOKIE, USER_KEY, ApiState, AuditTrail, AuthMiddleware, LoginThrottle
from vigil.api.live import EventBridge, LiveFrames
from vigil.api.live_state import LiveState, NodeLiveState
from vigil.api.openapi import allowed_methods, declare_errors
from vigil.api.routes import analytics, auth, cameras, events, governance, lists, map, media, metrics, nodes, search
from vigil.api.routes import users as user_routes
from vigil.api.security import CrossSiteRequestMiddleware, SecurityHeadersMiddleware
from vigil.config import Config, redact_url
from vigil.errors import DataError, VigilError
from vigil.governance.audit import AuditLog
from vigil.governance.authorisations import AuthorisationStore
from vigil.governance.errors import AuthorisationError, PermissionDenied
from vigil.governance.users import UserStore
from vigil.paths import data_root
from vigil.store.db import EventNotFound
from vigil.store.lists import ListError
from vigil.store.recordings import RecordingError

if TYPE_CHECKING:
    from vigil.assembly import Services
    from vigil.runtime import Node
    from vigil.vision.enrichers import RecognitionModels

log = logging.getLogger(__name__)

WEB_DIR = Path(vigil.web.__file__).resolve().parent
#: page route → candidate file names in ``vigil/web/pages`` (first existing one is served)
PAGES: dict[str, tuple[str, ...]] = {
    "/login": ("login",),
    "/map": ("map",),
    "/alerts": ("alerts",),
    "/events/{event_id}": ("event", "events"),
    "/live": ("live",),
    "/search": ("search",),
    "/dashboards": ("dashboards",),
    "/admin/cameras": ("admin_cameras", "admin-cameras"),
    "/authorisations": ("authorisations",),
    "/audit": ("audit",),
    "/reports": ("reports",),
    "/holds": ("holds",),
    "/nodes": ("nodes",),
}


def create_app(config: Config, services: Services, node: Node | None = None, *, users: UserStore | None = None,
               audit: AuditLog | None = None, authorisations: AuthorisationStore | None = None,
               config_path: Path | str | None = None, live: LiveFrames | None = None,
               recognition: RecognitionModels | None = None, basemap: Path | str | None = None,
               web_dir: Path | None = None, throttle: LoginThrottle | None = None,
               live_state: LiveState | None = None) -> FastAPI:
    """The FastAPI app over a node's services. The routes read live state (status, frames, heatmaps, line
    counts) only through ``LiveState``: here ``NodeLiveState`` over ``node`` (a node running in this process;
    None: an API without live analysis) and ``live`` (its ``LiveFrames``, added to ``node.on_result``), unless
    ``live_state`` is given (a command centre on its own: ``BusLiveState``, fed by the workers over NATS).

    ``users``/``audit``/``authorisations`` default to the services' governance layer. ``basemap``: an
    ``.osm.pbf`` extract (default: the first ``map/*.osm.pbf`` of the data root)."""
    from vigil.vision.enrichers import RecognitionModels

    users = users or services.governance.users
    audit = audit or users.audit
    authorisations = authorisations or services.governance.authorisations
    live_state = live_state or NodeLiveState(node, live or LiveFrames(), config.cluster.node_id)
    state = ApiState(
        config=config, services=services, users=users, audit=AuditTrail(audit),
        authorisations=authorisations, config_path=Path(config_path) if config_path else None, live=live_state,
        bridge=EventBridge(services), recordings=services.recordings, lists=services.lists,
        recognition=recognition or RecognitionModels(config.recognition.plates.region, config.recognition.faces),
        basemap=Path(basemap) if basemap else default_basemap(), throttle=throttle or LoginThrottle())

    app = FastAPI(title="Vigil command centre", version="1", openapi_url="/api/openapi.json",
                  docs_url="/api/docs", redoc_url=None)
    app.state.vigil = state
    for module in (auth, cameras, events, media, search, lists, analytics, map, governance, user_routes, metrics,
                   nodes):
        app.include_router(module.router)

    @app.get("/api/health", tags=["health"])
    def health() -> dict[str, bool]:
        """Liveness (no authentication)."""
        return {"ok": True}

    _add_error_handlers(app)
    declare_errors(app)
    _add_web(app, web_dir or WEB_DIR)
    app.add_middleware(AuthMiddleware, users=users)
    app.add_middleware(CrossSiteRequestMiddleware, cookie_name=SESSION_COOKIE,
                       allowed_origins=config.api.allowed_origins)
    app.add_middleware(CatchAllMiddleware)
    app.add_middleware(SecurityHeadersMiddleware)  # outermost: even a 500 carries the headers
    return app


def default_basemap() -> Path | None:
    extracts = sorted((data_root() / "map").glob("*.osm.pbf"))
    return extracts[0] if extracts else None


# ---------------------------------------------------------------------- errors

def status_for(exc: VigilError) -> int:
    """The HTTP status of a user error from the core."""
    text = str(exc)
    if isinstance(exc, PermissionDenied | AuthorisationError):
        return 403
    if isinstance(exc, EventNotFound | RecordingError):
        return 404
    if isinstance(exc, ListError):
        return 404 if text.startswith("no ") else 409 if "already exists" in text else 400
    if isinstance(exc, DataError):
        return 503
    return 400


def _validation_detail(exc: RequestValidationError) -> tuple[int, str]:
    errors = exc.errors()
    if not errors:
        return 422, "invalid request"
    first = errors[0]
    if first.get("type") == "json_invalid":
        return 400, "request body is not valid JSON"
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body",)]
    where = ".".join(loc) or "request"
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return 422, f"{where}: {message}{more}"


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        status, detail = _validation_detail(exc)
        return JSONResponse({"detail": detail}, status_code=status)

    @app.exception_handler(405)
    async def method_not_allowed(request: Request, _exc: Exception) -> JSONResponse:
        """Starlette's ``Allow`` names only the first route on the path; list every method the path serves."""
        allowed = sorted(allowed_methods(request.app.routes, request.scope))
        return JSONResponse({"detail": f"{request.method} is not allowed on {request.url.path}; "
                                       f"allowed: {', '.join(allowed)}"},
                            status_code=405, headers={"Allow": ", ".join(allowed)})

    @app.exception_handler(VigilError)
    async def user_error(request: Request, exc: VigilError) -> JSONResponse:
        status = status_for(exc)
        log.info("%s %s: %d %s", request.method, request.url.path, status, redact_url(str(exc)))
        return JSONResponse({"detail": redact_url(str(exc))}, status_code=status)


class CatchAllMiddleware:
    """An unexpected error becomes one log line (password-free) and a 500 with a generic detail."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            log.error("unexpected error on %s %s: %s: %s", scope.get("method"), scope.get("path"),
                      type(exc).__name__, redact_url(str(exc)).splitlines()[0] if str(exc) else "")
            log.debug("traceback", exc_info=True)
            if not started:
                await JSONResponse({"detail": "internal error; the server log has the details"},
                                   status_code=500)(scope, receive, send)


# ---------------------------------------------------------------------- web pages and assets

class _OptionalStatic(StaticFiles):
    """Static files from a folder that may not exist (yet): 404 instead of an error."""

    async def check_config(self) -> None:
        return None


def _add_web(app: FastAPI, web_dir: Path) -> None:
    app.mount("/static", _OptionalStatic(directory=web_dir / "static", check_dir=False), name="static")
    app.mount("/vendor", _OptionalStatic(directory=web_dir / "vendor", check_dir=False), name="vendor")
    pages = web_dir / "pages"

    def page_route(names: tuple[str, ...], public: bool):  # type: ignore[no-untyped-def]
        def serve(request: Request) -> Response:
            if not public and request.scope.get(USER_KEY) is None:
                return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
            for name in names:
                file = pages / f"{name}.html"
                if file.is_file():
                    return FileResponse(file, media_type="text/html", headers={"Cache-Control": "no-store"})
            return JSONResponse({"detail": f"page {names[0]}.html is not installed"}, status_code=404)

        return serve

    for path, names in PAGES.items():
        app.add_api_route(path, page_route(names, path == "/login"), methods=["GET"], include_in_schema=False,
                          name=f"page_{names[0]}")

    @app.get("/", include_in_schema=False)
    def root(request: Request) -> RedirectResponse:
        return RedirectResponse("/map" if request.scope.get(USER_KEY) is not None else "/login", status_code=303)
