"""The command-centre API on a real uvicorn server, a real SQLite store and real governance users (argon2).

Covers login, authentication on every route (enumerated from the OpenAPI document), per-camera permissions,
event handling, bad requests, scene editing and auditing. Live frames and SSE are in ``test_api_live.py``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support import login as signed_in
from tests.support import served_api
from vigil.api.app import create_app
from vigil.api.deps import LoginThrottle
from vigil.api.server import serve_in_thread
from vigil.config import load_config
from vigil.types import Event

PASSWORD = "correct horse 1"
PUBLIC = {("POST", "/api/auth/login"), ("GET", "/api/health")}
CONFIG = {
    "data_dir": "data",
    "cameras": [
        {"id": "cam-a", "url": "a.mp4", "name": "North gate", "fps": 5, "lat": 47.14, "lon": 9.52, "purpose": "test",
         "zones": [{"name": "gate", "polygon": [[0, 0], [100, 0], [100, 100]], "classes": ["person"]}]},
        {"id": "cam-b", "url": "b.mp4", "name": "South gate", "fps": 5},
    ],
}
T0 = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory):
    users = (("admin", "admin", ["*"]), ("op", "operator", ["cam-a"]), ("sup", "supervisor", ["*"]),
             ("aud", "auditor", ["*"]), ("inv", "investigator", ["cam-a"]), ("victim", "operator", ["*"]))
    with served_api(tmp_path_factory.mktemp("api"), CONFIG, users, PASSWORD) as env:
        yield env


def login(env, username: str) -> httpx.Client:
    return signed_in(env["url"], username, PASSWORD)


def add_event(env, camera: str, kind: str = "zone_enter", at: datetime = T0, severity: str = "info") -> Event:
    event = Event(kind=kind, camera_id=camera, at=at, severity=severity, track_id=7, label="person", zone="gate")
    env["services"].events.add_event(event)
    return event


def openapi_routes(env) -> list[tuple[str, str]]:
    doc = httpx.get(env["url"] + "/api/openapi.json").json()
    return [(method.upper(), path) for path, item in doc["paths"].items() for method in item]


def fill(path: str, camera: str = "cam-a") -> str:
    path = path.replace("{camera_id}", camera).replace("{relative}", f"snapshots/{camera}/2026-01-15/x.jpg")
    return re.sub(r"\{[^}]+\}", "1", path)


# ---------------------------------------------------------------------- login

def test_login_sets_session_cookie_and_token(env) -> None:
    client = httpx.Client(base_url=env["url"])
    response = client.post("/api/auth/login", json={"username": "op", "password": PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert body["user"] == {"username": "op", "display_name": "", "roles": ["operator"], "cameras": ["cam-a"],
                            "permissions": ["events.ack", "events.read", "video.live"]}
    cookie = response.headers["set-cookie"]
    assert "vigil_session=" in cookie and "HttpOnly" in cookie and "samesite=strict" in cookie.lower()
    assert client.get("/api/auth/me").json()["username"] == "op"  # by cookie
    bearer = httpx.get(env["url"] + "/api/auth/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert bearer.json()["username"] == "op"
    assert client.post("/api/auth/logout").status_code == 204
    assert httpx.get(env["url"] + "/api/auth/me", headers={"Authorization": f"Bearer {body['token']}"}).status_code \
        == 401


def test_bad_login_is_401_and_repeated_failures_are_throttled(env) -> None:
    url = env["url"] + "/api/auth/login"
    assert httpx.post(url, json={"username": "nobody", "password": "x"}).status_code == 401
    for _ in range(5):
        response = httpx.post(url, json={"username": "victim", "password": "wrong password"})
        assert response.status_code == 401
        assert response.json()["detail"].startswith("unknown user or wrong password")
    locked = httpx.post(url, json={"username": "victim", "password": PASSWORD})  # even the right password
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) > 0
    assert "locked" in locked.json()["detail"]


def test_guessing_from_one_address_is_throttled(env) -> None:
    app = create_app(env["app"].state.vigil.config, env["services"], users=env["app"].state.vigil.users,
                     throttle=LoginThrottle(max_failures=3, window_s=60))
    server = serve_in_thread(app)
    try:
        codes = [httpx.post(server.url + "/api/auth/login", json={"username": f"guess{i}", "password": "x"})
                 for i in range(4)]
        assert [r.status_code for r in codes] == [401, 401, 401, 429]
        assert int(codes[-1].headers["Retry-After"]) > 0
    finally:
        server.stop()


# ---------------------------------------------------------------------- authentication on every route

def test_every_route_rejects_unauthenticated_calls(env) -> None:
    routes = openapi_routes(env)
    assert len(routes) > 25
    for method, path in routes:
        if (method, path) in PUBLIC:
            continue
        for headers in ({}, {"Authorization": "Bearer not-a-session"}, {"Cookie": "vigil_session=forged"}):
            response = httpx.request(method, env["url"] + fill(path), headers=headers, json={})
            assert response.status_code == 401, (method, path, headers, response.text)
            assert response.json()["detail"].startswith("not signed in")


def test_operator_cannot_reach_a_camera_outside_their_grant(env) -> None:
    op = login(env, "op")
    event_b = add_event(env, "cam-b")
    camera_routes = [(m, p) for m, p in openapi_routes(env) if "{camera_id}" in p or "{relative}" in p]
    assert len(camera_routes) >= 8
    for method, path in camera_routes:
        response = op.request(method, fill(path, "cam-b"), json={"zones": [], "lines": []})
        assert response.status_code in (403, 404), (method, path, response.status_code)
        assert response.json()["detail"]
    for method, path in (("GET", f"/api/events/{event_b.id}"), ("POST", f"/api/events/{event_b.id}/ack"),
                         ("POST", f"/api/events/{event_b.id}/resolve"), ("GET", "/api/events?camera=cam-b"),
                         ("GET", "/api/counts?camera=cam-b"), ("GET", "/api/lines?camera=cam-b"),
                         ("GET", "/api/cameras/cam-b/live.mjpg"), ("GET", "/api/cameras/cam-b/snapshot.jpg")):
        response = op.request(method, path)
        assert response.status_code == 403, (method, path)
        assert "cam-b" in response.json()["detail"]
    assert op.post(f"/api/events/{event_b.id}/comments", json={"text": "hi"}).status_code == 403
    assert [c["id"] for c in op.get("/api/cameras").json()] == ["cam-a"]
    assert event_b.id not in {e["id"] for e in op.get("/api/events?limit=500").json()["items"]}
    inv = login(env, "inv")
    assert inv.post("/api/search", json={"cameras": ["cam-b"]}).status_code == 403


def test_auditor_and_admin_see_no_video(env) -> None:
    for name in ("aud", "admin"):
        client = login(env, name)
        for path in ("/api/cameras/cam-a/snapshot.jpg", "/api/cameras/cam-a/live.mjpg",
                     "/api/snapshots/snapshots/cam-a/2026-01-15/x.jpg",
                     "/api/recordings/cam-a/playlist.m3u8?from=2026-01-15T09:00:00Z&to=2026-01-15T10:00:00Z"):
            response = client.get(path)
            assert response.status_code == 403, (name, path)
            assert "does not allow video" in response.json()["detail"]


# ---------------------------------------------------------------------- events

def test_events_list_filter_and_handling_persist(env) -> None:
    start = T0 + timedelta(days=10)
    made = [add_event(env, "cam-a", kind, start + timedelta(seconds=i), severity)
            for i, (kind, severity) in enumerate([("zone_enter", "info"), ("loitering", "warning"),
                                                  ("crowd_threshold", "critical")])]
    sup = login(env, "sup")
    window = {"from": start.isoformat(), "to": (start + timedelta(minutes=1)).isoformat()}
    listed = sup.get("/api/events", params=window).json()
    assert [e["id"] for e in listed["items"]] == [e.id for e in reversed(made)]
    assert listed["items"][0]["status"] == "open" and listed["items"][0]["at"].startswith("2026-01-25T09:00:02")
    only = sup.get("/api/events", params={**window, "kind": "loitering"}).json()["items"]
    assert [e["id"] for e in only] == [made[1].id]
    page = sup.get("/api/events", params={**window, "limit": 2}).json()
    rest = sup.get("/api/events", params={**window, "limit": 2, "cursor": page["next_cursor"]}).json()
    assert [e["id"] for e in page["items"] + rest["items"]] == [e.id for e in reversed(made)]
    assert rest["next_cursor"] is None

    assert sup.post(f"/api/events/{made[0].id}/ack").json()["acknowledged_by"] == "sup"
    resolved = sup.post(f"/api/events/{made[1].id}/resolve", json={"note": "false alarm"}).json()
    assert resolved["status"] == "resolved" and resolved["resolved_by"] == "sup"
    assert sup.post(f"/api/events/{made[2].id}/comments", json={"text": "checking"}).status_code == 201
    statuses = {e["id"]: e["status"] for e in sup.get("/api/events", params=window).json()["items"]}
    assert statuses == {made[0].id: "acknowledged", made[1].id: "resolved", made[2].id: "open"}
    assert [e["id"] for e in sup.get("/api/events", params={**window, "status": "open"}).json()["items"]] \
        == [made[2].id]
    detail = login(env, "op").get(f"/api/events/{made[1].id}").json()  # another user sees the same state
    assert detail["status"] == "resolved" and [c["text"] for c in detail["comments"]] == ["false alarm"]
    assert login(env, "aud").post(f"/api/events/{made[2].id}/ack").status_code == 403  # auditors read only


# ---------------------------------------------------------------------- bad requests

def test_bad_requests_get_a_4xx_with_a_clear_detail(env) -> None:
    sup = login(env, "sup")
    cases = [
        sup.post("/api/search", content=b'{"from": ', headers={"Content-Type": "application/json"}),
        sup.get("/api/events", params={"from": "yesterday"}),
        sup.get("/api/events", params={"limit": 10**9}),
        sup.get("/api/events", params={"status": "maybe"}),
        sup.get("/api/events", params={"cursor": "garbage"}),
        sup.get("/api/events/does-not-exist"),
        sup.get("/api/events/bad id!"),
        sup.post("/api/search", json={"limit": -1}),
        sup.post("/api/search", json={"unknown_field": 1}),
        sup.get("/api/counts", params={"camera": "cam-a", "bucket_s": 0}),
        sup.get("/api/counts", params={"camera": "cam-a", "from": "2026-01-02T00:00:00Z", "to": "2026-01-01"}),
        sup.get("/api/cameras/nope/snapshot.jpg"),
        sup.get("/api/snapshots/snapshots/cam-a/..%2F..%2F..%2F..%2Fetc%2Fpasswd"),
        sup.get("/api/snapshots/snapshots/cam-a/../../vigil.db"),
        sup.get("/api/snapshots/..%2Fvigil.yaml"),
        sup.get("/api/snapshots/%2Fetc%2Fpasswd"),
        sup.get("/api/recordings/cam-a/playlist.m3u8", params={"from": T0.isoformat(), "to": "soon"}),
        sup.get("/api/recordings/cam-a/playlist.m3u8",
                params={"from": T0.isoformat(), "to": (T0 + timedelta(hours=1)).isoformat()}),
    ]
    for response in cases:
        assert 400 <= response.status_code < 500, (response.request.url, response.status_code, response.text)
        detail = response.json()["detail"]
        assert isinstance(detail, str) and detail, response.request.url
    assert cases[0].status_code == 400 and "not valid JSON" in cases[0].json()["detail"]
    assert "from" in cases[1].json()["detail"] and "limit" in cases[2].json()["detail"]
    assert "no recording" in cases[-1].json()["detail"]


# ---------------------------------------------------------------------- scene editing

def test_scene_put_validates_and_rewrites_the_yaml(env) -> None:
    admin, op = login(env, "admin"), login(env, "op")
    path: Path = env["config_path"]
    scene = {"zones": [{"name": "plaza", "polygon": [[10, 10], [200, 10], [200, 150], [10, 150]]}],
             "lines": [{"name": "door", "start": [5, 5], "end": [5, 90], "allowed_direction": "in"}]}
    assert op.put("/api/cameras/cam-a/scene", json=scene).status_code == 403
    before = path.read_text()
    bad = [{"zones": [{"name": "tri", "polygon": [[0, 0], [1, 1]]}]},  # too few points
           {"zones": scene["zones"], "lines": [{**scene["lines"][0], "name": "plaza"}]},  # name used twice
           {"zones": [{"name": "z", "polygon": [[0, 0], [1, 1], [2, 0]], "colour": "red"}]}]  # unknown field
    for body in bad:
        response = admin.put("/api/cameras/cam-a/scene", json=body)
        assert response.status_code in (400, 422), response.text
        assert response.json()["detail"]
        assert path.read_text() == before
    saved = admin.put("/api/cameras/cam-a/scene", json=scene)
    assert saved.status_code == 200, saved.text
    written = yaml.safe_load(path.read_text())["cameras"][0]
    assert written["zones"] == [{"name": "plaza", "polygon": [[10.0, 10.0], [200.0, 10.0], [200.0, 150.0],
                                                                [10.0, 150.0]]}]
    assert written["lines"][0]["allowed_direction"] == "in"
    assert written["name"] == "North gate" and written["lat"] == 47.14  # other fields kept
    assert load_config(path).camera("cam-a").zones[0].name == "plaza"
    assert [z["name"] for z in op.get("/api/cameras/cam-a/scene").json()["zones"]] == ["plaza"]
    entry = env["audit"].entries(action="config.scene_update", limit=1)[0]
    assert entry.actor == "admin" and entry.object == "camera:cam-a"


# ---------------------------------------------------------------------- search, lists, audit

def test_search_is_limited_to_granted_cameras_and_audited(env) -> None:
    start = T0 + timedelta(days=20)
    add_event(env, "cam-a", "loitering", start)
    add_event(env, "cam-b", "loitering", start)
    inv = login(env, "inv")
    body = {"from": start.isoformat(), "to": (start + timedelta(minutes=1)).isoformat(), "kinds": ["event"]}
    found = inv.post("/api/search", json=body).json()
    assert found["total"] == 1 and found["items"][0]["camera_id"] == "cam-a"
    assert found["items"][0]["clip"]["playlist_url"].startswith("/api/recordings/cam-a/playlist.m3u8?from=")
    entry = env["audit"].entries(actor="inv", action="search", limit=1)[0]
    assert '"cameras":["cam-a"]' in entry.details_json and '"kinds":["event"]' in entry.details_json
    refused = inv.post("/api/search/face", files={"image": ("p.jpg", b"\xff\xd8", "image/jpeg")})
    assert refused.status_code == 403 and "no active authorisation" in refused.json()["detail"]


def test_hotlist_changes_are_audited(env) -> None:
    sup = login(env, "sup")
    created = sup.post("/api/hotlists", json={"name": "stolen", "description": "stolen cars"})
    assert created.status_code == 201
    list_id = created.json()["id"]
    entry = sup.post(f"/api/hotlists/{list_id}/entries",
                     json={"text": "ab-123 cd", "reason": "stolen", "authority": "case 42"}).json()
    assert entry["plate_text"] == "AB123CD"
    assert [e["id"] for e in sup.get("/api/hotlists").json()[0]["entries"]] == [entry["id"]]
    assert sup.delete(f"/api/hotlists/{list_id}/entries/{entry['id']}").status_code == 204
    assert sup.post("/api/hotlists", json={"name": "stolen"}).status_code == 409
    assert login(env, "op").get("/api/hotlists").status_code == 403
    actions = [e.action for e in env["audit"].entries(actor="sup", limit=10)]
    assert {"hotlist.create", "hotlist.entry_add", "hotlist.entry_remove"} <= set(actions)


def test_basemap_is_roads_as_geojson(env) -> None:
    if env["app"].state.vigil.basemap is None:
        pytest.skip("no map/*.osm.pbf in the test data (set VIGIL_DATA)")
    data = login(env, "op").get("/api/map/basemap.geojson")
    assert data.status_code == 200 and data.headers["content-type"].startswith("application/geo+json")
    features = data.json()["features"]
    assert len(features) > 100
    assert all(f["geometry"]["type"] == "LineString" and "highway" in f["properties"] for f in features)


def test_pages_redirect_to_login_without_a_session(env) -> None:
    response = httpx.get(env["url"] + "/alerts")
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    assert httpx.get(env["url"] + "/").headers["location"] == "/login"
    assert httpx.get(env["url"] + "/static/does-not-exist.js").status_code == 404
