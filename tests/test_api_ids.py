"""Integer ids in the path or query are bounded to the database id range (issue 17): an id too large for a 64-bit
``BigInteger`` answers 422 naming the parameter, never a 500 from the database driver.

On a real uvicorn server, a real SQLite store and real governance users, like ``test_api.py``. The route list is
taken from the OpenAPI document (every router in ``vigil.api.routes``), and checked against the running app's own.
"""

from __future__ import annotations

import importlib
import pkgutil
import re

import httpx
import pytest
from fastapi import APIRouter, FastAPI

import vigil.api.routes
from tests.support import login as signed_in
from tests.support import served_api
from vigil.api.deps import MAX_DB_ID

PASSWORD = "correct horse 1"
CONFIG = {
    "data_dir": "data",
    "cameras": [{"id": "campus-junction", "url": "a.mp4", "name": "Campus junction", "fps": 5}],
}
USERS = (("sup", "supervisor", ["*"]), ("aud", "auditor", ["*"]))
TOO_BIG = 2**70
#: values for the other query parameters a route requires (unknown ones are ignored): only the id is wrong
QUERY_DEFAULTS = {"camera": "campus-junction"}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory):
    with served_api(tmp_path_factory.mktemp("api-ids"), CONFIG, USERS, PASSWORD) as env:
        yield env


def login(env, username: str) -> httpx.Client:
    return signed_in(env["url"], username, PASSWORD)


def integer_params(openapi: dict) -> list[tuple[str, str, tuple[str, ...], tuple[str, ...]]]:
    """(method, path, integer path parameters, integer query parameters) of every operation with one."""
    found = []
    for path, item in openapi["paths"].items():
        for method, operation in item.items():
            params = operation.get("parameters", [])
            ints = {where: tuple(p["name"] for p in params if p["in"] == where and _is_int(p["schema"]))
                    for where in ("path", "query")}
            if ints["path"] or ints["query"]:
                found.append((method.upper(), path, ints["path"], ints["query"]))
    return sorted(found)


def _is_int(schema: dict) -> bool:
    return schema.get("type") == "integer" or any(s.get("type") == "integer" for s in schema.get("anyOf", ()))


def _routers_openapi() -> dict:
    """The OpenAPI document of every router in ``vigil.api.routes`` (known at collection time, no services)."""
    app = FastAPI()
    for info in pkgutil.iter_modules(vigil.api.routes.__path__):
        router = getattr(importlib.import_module(f"vigil.api.routes.{info.name}"), "router", None)
        if isinstance(router, APIRouter):
            app.include_router(router)
    return app.openapi()


INTEGER_ROUTES = integer_params(_routers_openapi())


def user_for(path: str) -> str:
    return "aud" if path.startswith("/api/audit") else "sup"  # a role allowed past the route's permission check


def fill(path: str, value: int) -> str:
    path = path.replace("{camera_id}", "campus-junction")
    return re.sub(r"\{[^}]+\}", str(value), path)


def assert_names(response: httpx.Response, param: str) -> None:
    assert response.status_code in (404, 422), (response.request.url, response.status_code, response.text)
    detail = response.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and param in detail, detail


# ---------------------------------------------------------------------- the two URLs from the issue

def test_issue_17_segment_id_too_large_for_the_database(env) -> None:
    response = login(env, "sup").get(
        "/api/recordings/campus-junction/segments/320651444811217682907628200769093632")
    assert_names(response, "segment_id")
    assert response.status_code == 422


def test_issue_17_authorisation_id_too_large_for_the_database(env) -> None:
    response = login(env, "sup").post("/api/authorisations/33883543183974901743616/approve")
    assert_names(response, "auth_id")
    assert response.status_code == 422


def test_ids_at_the_edge_of_the_range(env) -> None:
    sup = login(env, "sup")
    largest = sup.get(f"/api/recordings/campus-junction/segments/{MAX_DB_ID}")
    assert largest.status_code == 404, largest.text  # a valid id the database can look up: simply not there
    assert "segment" in largest.json()["detail"]
    assert_names(sup.get(f"/api/recordings/campus-junction/segments/{MAX_DB_ID + 1}"), "segment_id")
    assert_names(sup.get("/api/recordings/campus-junction/segments/0"), "segment_id")
    assert_names(login(env, "aud").get("/api/audit", params={"before_seq": MAX_DB_ID + 1}), "before_seq")


# ---------------------------------------------------------------------- every integer parameter

def test_the_parametrised_routes_are_the_apps(env) -> None:
    assert integer_params(env["app"].openapi()) == INTEGER_ROUTES
    assert any(path_ints for _, _, path_ints, _ in INTEGER_ROUTES)


@pytest.mark.parametrize(("method", "path", "path_ints", "query_ints"), INTEGER_ROUTES,
                         ids=[f"{m} {p}" for m, p, _, _ in INTEGER_ROUTES])
def test_every_integer_parameter_rejects_an_id_too_large(env, method: str, path: str, path_ints: tuple[str, ...],
                                                         query_ints: tuple[str, ...]) -> None:
    client = login(env, user_for(path))
    if path_ints:
        response = client.request(method, fill(path, TOO_BIG))
        assert response.status_code < 500, (response.request.url, response.status_code, response.text)
        assert response.status_code == 422, response.text
        assert response.json()["detail"].startswith(f"path.{path_ints[0]}:"), response.text
    for name in query_ints:
        response = client.request(method, fill(path, 1), params={**QUERY_DEFAULTS, name: TOO_BIG})
        assert response.status_code < 500, (response.request.url, response.status_code, response.text)
        assert response.status_code in (404, 422) and name in response.json()["detail"], response.text
