"""Browser-facing protections (issue 17 §3): security headers, cross-site writes refused, sessions that expire and
that an admin ends, and the password policy at the API's edge.

On a real uvicorn server over a real SQLite store and real governance users, like ``test_api.py``.
"""

from __future__ import annotations

import httpx
import pytest

from tests.support import login as signed_in
from tests.support import served_api
from vigil.api.deps import SESSION_COOKIE

PASSWORD = "correct horse 1"
CONFIG = {
    "data_dir": "data",
    "governance": {"session_hours": 0.5},
    "api": {"allowed_origins": ["https://vigil.example.org"]},
    "cameras": [{"id": "cam1", "url": "a.mp4", "name": "Gate", "fps": 5}],
}
USERS = (("sup", "supervisor", ["*"]), ("adm", "admin", ["*"]), ("olga", "operator", ["cam1"]))


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory):
    with served_api(tmp_path_factory.mktemp("api-security"), CONFIG, USERS, PASSWORD) as env:
        yield env


def cookie_session(env, username: str) -> httpx.Client:
    """A browser-like client: signed in with the session cookie only (no bearer header)."""
    client = httpx.Client(base_url=env["url"], timeout=20)
    response = client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200 and SESSION_COOKIE in client.cookies
    return client


def test_every_response_carries_the_security_headers(env) -> None:
    for path in ("/login", "/api/health", "/api/cameras", "/static/does-not-exist.js"):
        headers = httpx.get(env["url"] + path).headers
        csp = headers["content-security-policy"]
        assert "script-src 'self';" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
        assert "frame-ancestors 'self'" in csp and headers["x-frame-options"] == "SAMEORIGIN"
        assert headers["x-content-type-options"] == "nosniff" and headers["referrer-policy"] == "no-referrer"


def test_a_write_from_another_origin_is_refused_and_changes_nothing(env) -> None:
    browser = cookie_session(env, "sup")
    body = {"name": "csrf-list"}
    evil = browser.post("/api/watchlists", json=body, headers={"Origin": "https://evil.example"})
    assert evil.status_code == 403 and "cross-site request refused" in evil.json()["detail"]
    assert "https://evil.example" in evil.json()["detail"]
    by_referer = browser.post("/api/watchlists", json=body, headers={"Referer": "https://evil.example/page"})
    assert by_referer.status_code == 403
    assert all(w["name"] != "csrf-list" for w in browser.get("/api/watchlists").json())
    # the same request from the server's own origin, from an allowed proxy origin, or a script: accepted
    own = browser.post("/api/watchlists", json=body, headers={"Origin": env["url"]})
    assert own.status_code in (200, 201), own.text
    proxied = browser.post("/api/watchlists", json={**body, "name": "csrf-list-2"},
                           headers={"Origin": "https://vigil.example.org"})
    assert proxied.status_code in (200, 201), proxied.text
    # a bearer token is never sent by a browser on its own: another origin does not matter
    bearer = signed_in(env["url"], "sup", PASSWORD)
    assert bearer.post("/api/watchlists", json={**body, "name": "csrf-list-3"},
                       headers={"Origin": "https://evil.example"}).status_code in (200, 201)
    # the cookie itself is SameSite=Strict and HttpOnly
    login = httpx.post(env["url"] + "/api/auth/login", json={"username": "sup", "password": PASSWORD})
    cookie = login.headers["set-cookie"].lower()
    assert "samesite=strict" in cookie and "httponly" in cookie and "max-age=1800" in cookie


def test_an_admin_ends_a_users_sessions(env) -> None:
    operator = signed_in(env["url"], "olga", PASSWORD)
    assert operator.get("/api/auth/me").status_code == 200
    admin = signed_in(env["url"], "adm", PASSWORD)
    accounts = {a["username"]: a for a in admin.get("/api/users").json()}
    assert accounts["olga"]["active_sessions"] >= 1 and accounts["olga"]["role"] == "operator"
    assert operator.get("/api/users").status_code == 403  # users.manage only
    assert operator.post("/api/users/sup/sessions/revoke").status_code == 403
    ended = admin.post("/api/users/olga/sessions/revoke")
    assert ended.status_code == 200 and ended.json()["revoked"] >= 1
    assert operator.get("/api/auth/me").status_code == 401
    assert admin.post("/api/users/nobody/sessions/revoke").status_code == 404
    assert admin.post("/api/users/NOT%20A%20NAME/sessions/revoke").status_code == 422
    actions = [e.action for e in env["users"].audit.entries(object_prefix="user:olga")]
    assert "user.sessions_revoked" in actions


def test_sessions_expire_after_the_configured_hours(env) -> None:
    users = env["users"]
    assert users.session_ttl.total_seconds() == 1800
    olga = users.get("olga")
    token = users.create_session(olga)
    assert users.verify_session(token) is not None
    real_clock = users.clock
    users.clock = lambda: real_clock() + users.session_ttl
    try:
        response = httpx.get(env["url"] + "/api/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401
    finally:
        users.clock = real_clock
