"""Browser-facing protections of the command centre: security headers on every response, and a cross-site
request check on state-changing requests that ride on the session cookie.

- ``SecurityHeadersMiddleware``: a Content-Security-Policy without inline script (every page loads its script
  from ``/static`` or ``/vendor``), framing only by its own pages (``frame-ancestors 'self'``,
  ``X-Frame-Options: SAMEORIGIN``: the reports page shows a report in a sandboxed frame),
  ``Referrer-Policy: no-referrer``, ``X-Content-Type-Options: nosniff`` and a restrictive Permissions-Policy.
- ``CrossSiteRequestMiddleware``: the session cookie is already ``SameSite=Strict``; as a second layer, a POST,
  PUT, PATCH or DELETE carrying the cookie (and no bearer token) is refused with 403 when its ``Origin`` (or,
  without one, its ``Referer``) is not this server or one of ``api.allowed_origins``. A request with neither
  header (a script, curl) passes: browsers always send ``Origin`` on cross-origin writes.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: styles may be inline (pages and Leaflet set ``style``); scripts may not. ``blob:`` is for hls.js's media
#: source and worker; ``data:`` images are Leaflet's and the canvas snapshots'.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                           "img-src 'self' data: blob:; media-src 'self' blob:; worker-src 'self' blob:; "
                           "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
                           "frame-ancestors 'self'")
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = tuple((k.encode(), v.encode()) for k, v in (
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-frame-options", "SAMEORIGIN"),
    ("referrer-policy", "no-referrer"),
    ("x-content-type-options", "nosniff"),
    ("cross-origin-opener-policy", "same-origin"),
    ("permissions-policy", "camera=(), microphone=(), geolocation=(), payment=()"),
))
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class SecurityHeadersMiddleware:
    """Adds ``SECURITY_HEADERS`` to every HTTP response (a header the route set itself is kept)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend((name, value) for name, value in SECURITY_HEADERS if name not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _origin_of(url: str) -> str | None:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


class CrossSiteRequestMiddleware:
    """Refuses cookie-authenticated writes that come from another origin (403, naming the origin)."""

    def __init__(self, app: ASGIApp, cookie_name: str, allowed_origins: Iterable[str] = ()) -> None:
        self.app = app
        self.cookie_name = cookie_name
        self.allowed = {o.rstrip("/").lower() for o in allowed_origins}

    def _refusal(self, scope: Scope) -> str | None:
        headers = Headers(scope=scope)
        if f"{self.cookie_name}=" not in headers.get("cookie", ""):
            return None
        if headers.get("authorization", "")[:7].lower() == "bearer ":
            return None  # a bearer token is not sent by a browser on its own: no CSRF
        claimed = headers.get("origin")
        source = "Origin"
        if claimed is None and headers.get("referer"):
            claimed, source = _origin_of(headers["referer"]) or "null", "Referer"
        if claimed is None:
            return None
        claimed = claimed.rstrip("/").lower()
        scheme = scope.get("scheme", "http")
        own = f"{scheme}://{headers.get('host', '')}".lower()
        if claimed == own or claimed in self.allowed:
            return None
        return (f"cross-site request refused: {source} {claimed!r} is not this server ({own!r}); "
                f"add it to api.allowed_origins if the command centre is served from there")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in UNSAFE_METHODS:
            reason = self._refusal(scope)
            if reason is not None:
                await JSONResponse({"detail": reason}, status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)
