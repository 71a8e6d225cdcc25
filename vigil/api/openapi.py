"""The OpenAPI document declares every status code a route can answer, with the error schema, and the
permissions each route needs, so a generated client (and the fuzz test's role matrix) expects what the server does.

``declare_errors(app)`` runs once all routes are added. It derives from each route what it can refuse:
- 401 (not signed in), 403 (role, camera grant, or a cross-site write) and 503 (database unavailable) on every
  authenticated route;
- 422 (a parameter or body field is invalid) where the route takes any, and 400 (a body that is not JSON or a
  request the core refuses) where it takes a body;
- 404 where the path names a thing (a camera, an event, a list).
A route adds what only it can answer (409 for a duplicate name, 413, 429) with ``responses=answers(...)``.

Permissions: ``x-vigil-permissions`` lists those a caller must hold all of (empty: any signed-in user), and
``x-vigil-permissions-any`` those of which one suffices; both come from the ``require*`` dependencies, or from a
route's ``openapi_extra`` where it checks inside (a permission that depends on the path). Public routes have
neither.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

from vigil.api.deps import PUBLIC_API_PATHS


class ErrorOut(BaseModel):
    """Every error answer: one line saying what is wrong and with which thing."""

    detail: str


ERRORS: dict[int, str] = {
    400: "The request is malformed (a body that is not JSON) or the core refused it; `detail` says why.",
    401: "Not signed in: log in with POST /api/auth/login.",
    403: "The caller's role or camera grant does not allow this, or a cookie write came from another origin.",
    404: "The thing named in the path does not exist.",
    409: "It conflicts with what exists (a duplicate name).",
    413: "The upload is too large.",
    422: "A parameter or body field is invalid; `detail` names it.",
    429: "Too many attempts; retry after the `Retry-After` seconds.",
    503: "The database (or another backend) is unavailable; nothing was changed.",
}


def _permissions(dependant: Dependant, attribute: str) -> set[str]:
    value = getattr(dependant.call, attribute, None)
    found = set([value] if isinstance(value, str) else value or ())
    for sub in dependant.dependencies:
        found |= _permissions(sub, attribute)
    return found


def answers(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route's decorator: the error codes only it answers."""
    return {code: {"description": ERRORS[code], "model": ErrorOut} for code in codes}


def _codes(route: APIRoute) -> set[int]:
    if route.path in PUBLIC_API_PATHS:
        codes: set[int] = set()
    else:
        codes = {401, 403, 503}
    dependant = route.dependant
    has_params = bool(dependant.query_params or dependant.path_params or dependant.body_params
                      or dependant.header_params or any(d.query_params or d.path_params
                                                        for d in dependant.dependencies))
    if has_params:
        codes.add(422)
    if dependant.body_params:
        codes.add(400)
    if "{" in route.path:
        codes.add(404)
    return codes


def api_routes(routes: Iterable[BaseRoute]) -> Iterator[APIRoute]:
    """Every ``APIRoute`` under ``routes``: FastAPI ≥ 0.165 keeps an included router as one node holding its own
    routes (``original_router``) instead of copying them into the app's list."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif (inner := getattr(route, "original_router", None) or getattr(route, "app", None)) is not None:
            yield from api_routes(getattr(inner, "routes", ()))


def allowed_methods(routes: Iterable[BaseRoute], scope: Scope) -> set[str]:
    """The methods of every API route whose path matches the request's."""
    return {method for route in api_routes(routes) if route.matches(scope)[0] is not Match.NONE
            for method in route.methods or ()}


def declare_errors(app: FastAPI) -> None:
    """Make ``app.openapi()`` declare each route's error responses and permissions."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = generate()
        components = document.setdefault("components", {}).setdefault("schemas", {})
        components["ErrorOut"] = ErrorOut.model_json_schema()
        error_content = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}
        for route in api_routes(app.routes):
            if not route.include_in_schema:
                continue
            public = route.path in PUBLIC_API_PATHS
            needs_all = sorted(_permissions(route.dependant, "permission"))
            needs_any = sorted(_permissions(route.dependant, "any_permission"))
            declared = {int(code) for code in route.responses if str(code).isdigit()}
            for method in route.methods:
                operation = document["paths"][route.path_format][method.lower()]
                responses = operation.setdefault("responses", {})
                for code in sorted((_codes(route) | declared) - {200, 201, 204, 206, 304}):
                    entry = responses.setdefault(str(code), {})
                    if not entry.get("description") or entry["description"] in ("Successful Response",
                                                                                "Additional Response"):
                        entry["description"] = ERRORS.get(code, "Error")
                    entry["content"] = error_content  # FastAPI's own 422 schema is not what the handler answers
                if not public:
                    operation.setdefault("x-vigil-permissions", needs_all)
                    if needs_any:
                        operation.setdefault("x-vigil-permissions-any", needs_any)
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
