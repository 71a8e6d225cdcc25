"""A capital city on one command centre (issue 12 §4): 1,000 cameras at 800 locations, served by the real app on a
real uvicorn server, a real SQLite store and real governance users.

- ``/api/cameras``: search, filters and paging return the right cameras; open alerts per camera are right and
  are counted in one query however many cameras there are;
- ``/api/nodes``: the node of a real ``Node`` analysing real video (``NodeLiveState``), only for the roles allowed.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import event

from tests.support import governance_with_users, login, served_api
from vigil.config import load_config, parse_config
from vigil.types import Event

PASSWORD = "correct horse 12"
DISTRICTS = ("Altstadt", "Harbour", "Nordend", "Westpark", "Südbahnhof", "Messe", "Oberdorf", "Riverside")
CITY = (52.45, 13.30, 52.58, 13.50)  # lat/lon box of a capital city's centre
DISABLED = {f"cam-{i:04d}" for i in range(5, 1000, 100)}  # ten cameras switched off: "stopped"
USERS = (("admin", "admin", ["*"]), ("sup", "supervisor", ["*"]), ("op", "operator", ["*"]),
         ("aud", "auditor", ["*"]), ("inv", "investigator", ["*"]),
         ("op3", "operator", ["cam-0001", "cam-0500", "cam-0777"]), ("sup1", "supervisor", ["cam-0003"]))


def city_cameras(count: int = 1000, locations: int = 800) -> list[dict]:
    """``count`` cameras at ``locations`` places on a grid over ``CITY`` (a few corners have two or three)."""
    side = int(locations ** 0.5) + 1
    lat0, lon0, lat1, lon1 = CITY
    cameras = []
    for i in range(count):
        place = i % locations
        row, col = divmod(place, side)
        cameras.append({
            "id": f"cam-{i:04d}", "url": f"rtsp://192.0.2.{1 + place % 250}/stream{i}", "fps": 5,
            "name": f"{DISTRICTS[place % len(DISTRICTS)]} {place}" + (f" ({i // locations + 1})" if i >= locations
                                                                      else ""),
            "lat": round(lat0 + (lat1 - lat0) * (row + 0.5) / side, 6),
            "lon": round(lon0 + (lon1 - lon0) * (col + 0.5) / side, 6),
            "enabled": f"cam-{i:04d}" not in DISABLED,
        })
    return cameras


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("city")
    config = {"data_dir": str(folder / "data"), "cameras": city_cameras()}
    with served_api(folder, config, USERS, PASSWORD) as env:
        yield env


def client(env, username: str) -> httpx.Client:
    """A signed-in client of ``username``, kept for the module."""
    clients = env.setdefault("clients", {})
    if username not in clients:
        clients[username] = login(env["url"], username, PASSWORD)
    return clients[username]


def get(env, username: str, path: str, **params) -> httpx.Response:
    return client(env, username).get(path, params=params)


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [c["id"] for c in response.json()]


def total(response: httpx.Response) -> int:
    return int(response.headers["X-Total-Count"])


# ---------------------------------------------------------------------- filters and paging

def test_without_parameters_every_camera_comes_back_as_before(city) -> None:
    answer = get(city, "op", "/api/cameras")
    cameras = answer.json()
    assert [c["id"] for c in cameras] == [f"cam-{i:04d}" for i in range(1000)]  # config order, a plain list
    assert total(answer) == 1000
    assert {c["state"] for c in cameras if c["id"] in DISABLED} == {"stopped"}
    assert {c["state"] for c in cameras if c["id"] not in DISABLED} == {"unknown"}  # no node reports them
    assert all(c["node"] is None for c in cameras)
    assert cameras[0]["name"] == "Altstadt 0" and cameras[800]["name"] == "Altstadt 0 (2)"
    assert all(CITY[0] < c["lat"] < CITY[2] and CITY[1] < c["lon"] < CITY[3] for c in cameras)
    assert len({(c["lat"], c["lon"]) for c in cameras}) == 800


def test_pages_cover_the_list_once_with_the_total(city) -> None:
    seen = []
    for offset in range(0, 1000, 16):
        answer = get(city, "op", "/api/cameras", limit=16, offset=offset)
        assert total(answer) == 1000
        seen += ids(answer)
    assert seen == [f"cam-{i:04d}" for i in range(1000)]
    assert ids(get(city, "op", "/api/cameras", limit=9, offset=18)) == [f"cam-{i:04d}" for i in range(18, 27)]
    beyond = get(city, "op", "/api/cameras", limit=9, offset=1000)
    assert ids(beyond) == [] and total(beyond) == 1000
    for bad in ({"limit": 0}, {"offset": -1}, {"state": "asleep"}, {"alerts": "closed"}, {"q": "x" * 101}):
        refused = get(city, "op", "/api/cameras", **bad)
        assert refused.status_code == 422, bad
        assert refused.json()["detail"].startswith("query.")


def test_search_by_name_or_id_any_case_exact_match_first(city) -> None:
    cameras = city_cameras()
    harbour = [c["id"] for c in cameras if "harbour" in c["name"].lower()]
    answer = get(city, "op", "/api/cameras", q="HARBOUR")
    assert ids(answer) == harbour and total(answer) == len(harbour) == 125
    assert ids(get(city, "op", "/api/cameras", q="cam-0042")) == ["cam-0042"]
    # "Messe 5" is a name; "Messe 45", "Messe 205", ... contain it: the exact one comes first
    answer = get(city, "op", "/api/cameras", q="messe 5")
    found = ids(answer)
    assert found[0] == "cam-0005" and len(found) == len(set(found)) > 1
    assert set(found) == {c["id"] for c in cameras if "messe 5" in c["name"].lower()}
    assert ids(get(city, "op", "/api/cameras", q="no such place")) == []


def test_state_filter_paged_with_search(city) -> None:
    stopped = get(city, "op", "/api/cameras", state="stopped")
    assert ids(stopped) == sorted(DISABLED) and total(stopped) == 10
    both = get(city, "op", "/api/cameras", state=["stopped", "online"], limit=3, offset=2)
    assert ids(both) == sorted(DISABLED)[2:5] and total(both) == 10
    narrowed = get(city, "op", "/api/cameras", state="unknown", q="altstadt", limit=5)
    altstadt = [c["id"] for c in city_cameras() if c["name"].startswith("Altstadt") and c["id"] not in DISABLED]
    assert ids(narrowed) == altstadt[:5] and total(narrowed) == len(altstadt)
    assert ids(get(city, "op", "/api/cameras", node="nowhere")) == []


def test_open_alerts_per_camera_and_the_alerts_filter(city) -> None:
    events = city["services"].events
    at = datetime.now(UTC) - timedelta(minutes=5)

    def add(camera: str, severity: str, kind: str = "loitering") -> Event:
        happened = Event(kind=kind, camera_id=camera, at=at, severity=severity, track_id=1)
        events.add_event(happened)
        return happened

    for _ in range(3):
        add("cam-0007", "warning")
    add("cam-0500", "critical")
    add("cam-0777", "warning")
    events.acknowledge(add("cam-0009", "warning").id, "op")
    events.resolve(add("cam-0500", "critical").id, "op")
    for _ in range(4):
        add("cam-0011", "info", "zone_enter")  # records, not alerts
    add("cam-gone", "critical")  # a camera no longer configured: nobody's row

    answer = get(city, "op", "/api/cameras")
    alerts = {c["id"]: c["open_alerts"] for c in answer.json() if c["open_alerts"]}
    assert alerts == {"cam-0007": 3, "cam-0500": 1, "cam-0777": 1}
    only = get(city, "op", "/api/cameras", alerts="open")
    assert ids(only) == ["cam-0007", "cam-0500", "cam-0777"] and total(only) == 3
    assert [c["open_alerts"] for c in only.json()] == [3, 1, 1]
    # a user granted three cameras sees those only, filtered and counted among them
    mine = get(city, "op3", "/api/cameras", alerts="open")
    assert ids(mine) == ["cam-0500", "cam-0777"] and total(mine) == 2
    assert ids(get(city, "op3", "/api/cameras", q="cam-0")) == ["cam-0001", "cam-0500", "cam-0777"]


def test_the_list_of_1000_cameras_costs_one_events_query(city) -> None:
    engine = city["services"].store.engine
    statements: list[str] = []

    def note(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    signed_in = client(city, "op")
    event.listen(engine, "before_cursor_execute", note)
    try:
        started = time.perf_counter()
        answer = signed_in.get("/api/cameras")
        elapsed = time.perf_counter() - started
    finally:
        event.remove(engine, "before_cursor_execute", note)
    assert len(answer.json()) == 1000
    on_events = [s for s in statements if "FROM events" in s]
    assert len(on_events) == 1, on_events  # was one count per camera
    assert "GROUP BY events.status, events.severity, events.camera_id" in on_events[0]
    assert elapsed < 5, f"1,000 cameras took {elapsed:.2f} s"


def test_grouped_count_on_both_databases(store) -> None:
    """``EventStore.count_by_camera`` on SQLite and PostgreSQL: statuses, severities and cameras filter it."""
    from vigil.store.events import EventStore

    events = EventStore(store)
    at = datetime(2026, 3, 1, 12, tzinfo=UTC)
    rows = [("cam-a", "warning"), ("cam-a", "critical"), ("cam-a", "info"), ("cam-b", "warning"), ("cam-c", "info")]
    added = [Event(kind="loitering", camera_id=c, at=at, severity=sev, track_id=i) for i, (c, sev) in enumerate(rows)]
    events.add_events(added)
    events.resolve(added[3].id, "op")  # cam-b's only alert
    alerts = ("warning", "critical")
    assert events.count_by_camera(statuses=["open"], severities=alerts) == {"cam-a": 2}
    assert events.count_by_camera(severities=alerts) == {"cam-a": 2, "cam-b": 1}
    assert events.count_by_camera() == {"cam-a": 3, "cam-b": 1, "cam-c": 1}
    assert events.count_by_camera(cameras=["cam-b", "cam-c"], statuses=["open", "resolved"]) == {"cam-b": 1,
                                                                                                  "cam-c": 1}
    assert events.count_by_camera(cameras=[]) == {}


def test_open_alert_count_reads_its_index(city) -> None:
    """On SQLite the grouped count is a range scan of ``ix_events_status_severity_camera`` (revision 0008)."""
    from sqlalchemy import text

    engine = city["services"].store.engine
    if engine.dialect.name != "sqlite":
        pytest.skip("the plan is checked on SQLite")
    with engine.connect() as conn:
        plan = " ".join(str(row[-1]) for row in conn.execute(text(
            "EXPLAIN QUERY PLAN SELECT status, severity, camera_id, count(*) FROM events WHERE status IN ('open') "
            "AND severity IN ('warning', 'critical') GROUP BY status, severity, camera_id")))
    assert "COVERING INDEX ix_events_status_severity_camera" in plan, plan


# ---------------------------------------------------------------------- nodes, with a real node

@pytest.fixture(scope="module")
def city_node(data_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """The city's config, with ``cam-0100`` on real video analysed by a real ``Node`` in this process."""
    from vigil.api.app import create_app
    from vigil.api.server import serve_in_thread
    from vigil.assembly import open_services
    from vigil.runtime import Node
    from vigil.vision.detector import create_detector
    from vigil.vision.models import ModelError

    folder = tmp_path_factory.mktemp("city-node")
    video = {"url": str(data_dir / "video" / "vtest.avi"), "fps": 2, "realtime": True, "loop": True}
    cameras = [{**c, **video} if c["id"] == "cam-0100" else c for c in city_cameras()]
    config_path = folder / "vigil.yaml"
    config_path.write_text(yaml.safe_dump({"data_dir": str(folder / "data"), "cameras": cameras}, sort_keys=False))
    config = load_config(config_path)
    node_config = parse_config({"data_dir": str(folder / "data"), "detector": {"sessions": 1},
                                "cameras": [{"id": "cam-0100", **video}]})
    try:
        detector = create_detector(node_config.detector)
    except ModelError as exc:
        pytest.skip(f"detector model not installed: {exc}")
    services = open_services(config).start()
    governance = governance_with_users(services, USERS, PASSWORD)
    node = Node(node_config, detector)
    app = create_app(config, services, node, users=governance.users, audit=governance.audit, basemap=None)
    server = serve_in_thread(app)
    worker = threading.Thread(target=node.start().run, name="city-node", daemon=True)
    worker.start()
    deadline = time.monotonic() + 90
    while node.pipelines["cam-0100"].stats.frames < 4:
        assert time.monotonic() < deadline, f"the node analysed too few frames: {node.status()}"
        time.sleep(0.2)
    try:
        yield {"url": server.url, "node": node}
    finally:
        node.stop()
        worker.join(10)
        server.stop()
        services.close()


def test_nodes_lists_the_running_node_with_its_camera(city_node) -> None:
    cameras = get(city_node, "sup", "/api/cameras", state="online").json()
    assert [c["id"] for c in cameras] == ["cam-0100"]
    node_id = cameras[0]["node"]
    assert node_id
    assert ids(get(city_node, "sup", "/api/cameras", node=node_id)) == ["cam-0100"]
    answer = get(city_node, "sup", "/api/nodes")
    assert answer.status_code == 200, answer.text
    [node] = answer.json()
    assert node["node"] == node_id and node["cameras"] == ["cam-0100"] and node["camera_count"] == 1
    assert node["states"] == {"online": 1}
    assert node["lost"] is False and 0 <= node["age_s"] < 60
    assert 0 < node["analysed_fps"] <= 4 and node["drops"] >= 0  # 2 fps wanted
    assert node["cores"] >= 1 and node["rss_mb"] > 50 and node["cpu_percent"] >= 0 and node["load_1m"] >= 0
    assert node["host"]
    assert get(city_node, "admin", "/api/nodes").json()[0]["node"] == node_id


def test_nodes_refuses_roles_without_the_permission_and_hides_other_cameras(city_node) -> None:
    for username in ("op", "aud", "inv"):
        answer = get(city_node, username, "/api/nodes")
        assert answer.status_code == 403, username
        assert "config.manage or authorisation.approve" in answer.json()["detail"]
    [node] = get(city_node, "sup1", "/api/nodes").json()  # a supervisor for cam-0003 only
    assert node["cameras"] == [] and node["camera_count"] == 1 and node["states"] == {}
    assert httpx.get(city_node["url"] + "/api/nodes").status_code == 401
