"""A capital city's command centre in headless Chromium (issue 12 §4): 1,000 cameras at 800 places, on the real app.

Forty cameras belong to a real ``Node`` whose sources are missing files (so they are ``failed``), the others are
not reported by any node; four open alerts are stored for two cameras. The pages must cluster the map, find
cameras, page the live grid without MJPEG streams in the background, and list the node.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml

from tests.browser.conftest import CHROMIUM, PASSWORD, page_opener, wait_until
from tests.support import governance_with_users
from tests.test_api_city import city_cameras

pytestmark = pytest.mark.browser
FAILED = [f"cam-{i:04d}" for i in range(10, 50)]  # on the node, sources missing (none of them disabled)
ALERTS = {"cam-0003": 3, "cam-0512": 1}  # open alerts
USERS = (("operator", "operator", ["*"]), ("admin", "admin", ["*"]))


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium not found at {CHROMIUM}")
    from vigil.api.app import create_app
    from vigil.api.server import serve_in_thread
    from vigil.assembly import open_services
    from vigil.config import load_config, parse_config
    from vigil.runtime import Node
    from vigil.types import Event
    from vigil.vision.detector import create_detector
    from vigil.vision.models import ModelError

    folder = tmp_path_factory.mktemp("city-browser")
    missing = {c: {"url": str(folder / f"{c}.mp4"), "realtime": False} for c in FAILED}
    cameras = [{**c, **missing.get(c["id"], {})} for c in city_cameras()]
    config_path = folder / "vigil.yaml"
    config_path.write_text(yaml.safe_dump({"data_dir": str(folder / "data"), "cameras": cameras}, sort_keys=False))
    config = load_config(config_path)
    node_config = parse_config({"data_dir": str(folder / "data"), "detector": {"sessions": 1},
                                "cameras": [{"id": c, **missing[c]} for c in FAILED]})
    try:
        detector = create_detector(node_config.detector)
    except ModelError as exc:
        pytest.skip(f"detector model not installed: {exc}")
    services = open_services(config).start()
    for camera, count in ALERTS.items():
        for _ in range(count):
            services.events.add_event(Event(kind="loitering", camera_id=camera, at=datetime.now(UTC),
                                            severity="warning", track_id=1))
    governance = governance_with_users(services, USERS, PASSWORD)
    node = Node(node_config, detector).start()  # readers only: the missing files fail at once
    deadline = time.monotonic() + 20
    while {row["state"] for row in node.status()} != {"failed"}:
        assert time.monotonic() < deadline, node.status()
        time.sleep(0.05)
    app = create_app(config, services, node, users=governance.users, audit=governance.audit,
                     authorisations=governance.authorisations, config_path=config_path, basemap=None)
    server = serve_in_thread(app)
    try:
        yield {"url": server.url, "app": app}
    finally:
        server.stop()
        node.stop()
        services.close()


@pytest.fixture
def city_page(browser: Any, city: dict[str, Any]) -> Iterator[Callable[..., Any]]:
    """``city_page("operator")``: signed in on /map of the 1,000-camera city (``page_opener``)."""
    with page_opener(browser, city["url"]) as open_page:
        yield open_page


def sums(page: Any) -> dict[str, int]:
    """Cameras, offline cameras and open alerts drawn on the map: in cluster icons plus single markers."""
    return page.evaluate("""() => {
      const total = (selector, key) => [...document.querySelectorAll(selector)]
        .reduce((n, e) => n + Number(e.dataset[key] || 0), 0);
      const singles = [...document.querySelectorAll('.cam-marker')];
      return {
        clusters: document.querySelectorAll('.marker-cluster.cam-cluster').length,
        cameras: total('.cam-cluster .cluster-body', 'cameras') + singles.length,
        down: total('.cam-cluster .cluster-body', 'down')
          + singles.filter((m) => m.matches('.state-failed, .state-offline')).length,
        alerts: total('.cam-cluster .cluster-body', 'alerts')
          + singles.reduce((n, m) => n + Number(m.querySelector('.count')?.textContent || 0), 0),
      };
    }""")


def list_ids(page: Any) -> list[str]:
    return page.eval_on_selector_all("#camera-list li", "items => items.map((li) => li.dataset.camera)")


def test_map_clusters_the_city_and_the_list_finds_cameras(city_page, shot) -> None:
    page = city_page("operator")
    page.wait_for_selector("#map[data-cameras='1000'][data-fitted] .marker-cluster")
    page.wait_for_selector(".leaflet-cluster-anim", state="detached")  # clusters splitting after the fit
    drawn = sums(page)
    assert drawn == {**drawn, "cameras": 1000, "down": len(FAILED), "alerts": sum(ALERTS.values())}
    assert drawn["clusters"] >= 5
    alerting = page.locator(".cam-cluster.alerting .cluster-alerts").first
    assert alerting.is_visible() and int(alerting.text_content()) >= 1
    assert page.locator(".cam-cluster.worst-offline .cluster-down").first.text_content().endswith(" off")
    shot(page, "map-city")

    assert page.text_content("#camera-count") == "1000" and len(list_ids(page)) == 50
    page.fill("#cf-q", "harbour")
    wait_until(page, "document.querySelector('#camera-count').textContent === '125'", 10)
    names = page.eval_on_selector_all("#camera-list li", "items => items.map((li) => li.textContent)")
    assert len(names) == 50 and all("Harbour" in name for name in names)
    page.fill("#cf-q", "")
    page.select_option("#cf-state", "offline,failed")
    wait_until(page, f"document.querySelector('#camera-count').textContent === '{len(FAILED)}'", 10)
    assert list_ids(page) == FAILED
    page.select_option("#cf-state", "")
    page.check("#cf-alerts")
    wait_until(page, "document.querySelector('#camera-count').textContent === '2'", 10)
    assert list_ids(page) == list(ALERTS)
    page.click("#camera-list li[data-camera='cam-0512']")  # zooms the cluster open and shows the camera
    popup = page.wait_for_selector(".cam-popup[data-camera='cam-0512']")
    assert "Open alerts1" in popup.text_content()


def test_live_grid_pages_snapshots_of_visible_tiles_and_one_stream(city_page, city, shot) -> None:
    page = city_page("operator")
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto("/live")
    page.wait_for_selector("#tiles .tile")
    tiles = lambda: page.eval_on_selector_all("#tiles .tile", "t => t.map((e) => e.dataset.camera)")  # noqa: E731
    assert tiles() == [f"cam-{i:04d}" for i in range(9)]
    page.select_option("#page-size", "16")
    wait_until(page, "document.querySelectorAll('#tiles .tile').length === 16", 10)
    page.click("#live-next")
    wait_until(page, "document.querySelector('#tiles .tile').dataset.camera === 'cam-0016'", 10)
    assert tiles() == [f"cam-{i:04d}" for i in range(16, 32)]
    assert page.text_content("#live-text").startswith("17–32 of 1000")
    page.wait_for_timeout(3200)  # a second round of pictures (every 2 s)
    on_screen, below = page.evaluate("""() => {
      const tiles = [...document.querySelectorAll('#tiles .tile')]
        .map((t) => [t.dataset.camera, t.getBoundingClientRect()]);
      return [tiles.filter(([, r]) => r.bottom < innerHeight - 10).map(([id]) => id),
              tiles.filter(([, r]) => r.top > innerHeight + 10).map(([id]) => id)];
    }""")
    assert on_screen and below, "the viewport should cut the page of 16"
    snapshots = [url.split("/api/cameras/")[1].split("/")[0] for url in requests if url.endswith("/snapshot.jpg")]
    assert not [url for url in requests if "live.mjpg" in url]
    assert all(snapshots.count(camera) >= 2 for camera in on_screen)  # refreshed every 2 s
    assert not set(below) & set(snapshots)  # tiles out of sight are not fetched
    assert set(snapshots) <= {f"cam-{i:04d}" for i in range(32)}
    assert "no picture yet" in page.text_content(f".tile[data-camera='{on_screen[0]}']")
    shot(page, "live-city")

    camera = on_screen[1]
    page.click(f".tile[data-camera='{camera}']")
    assert "enlarged" in page.get_attribute(f".tile[data-camera='{camera}']", "class")
    streams = city["app"].state.vigil.mjpeg_clients
    wait_until(page, f"document.querySelector(\".tile[data-camera='{camera}'] img\").src.endsWith('live.mjpg')", 5)
    deadline = page.evaluate("Date.now()") + 10_000
    while streams.get(camera, 0) != 1:
        assert page.evaluate("Date.now()") < deadline, f"no stream of {camera} on the server: {streams}"
        page.wait_for_timeout(100)
    page.keyboard.press("Escape")
    assert "enlarged" not in page.get_attribute(f".tile[data-camera='{camera}']", "class")
    deadline = page.evaluate("Date.now()") + 10_000
    while streams.get(camera, 0) != 0:  # closing the large view ends its stream
        assert page.evaluate("Date.now()") < deadline, f"the stream of {camera} stayed open: {streams}"
        page.wait_for_timeout(100)


def test_nodes_page_lists_the_node_for_admins_only(city_page, shot) -> None:
    page = city_page("admin")
    page.click("nav a[href='/nodes']")
    row = page.wait_for_selector("#node-rows tr[data-node]")
    text = " ".join(row.text_content().split())
    assert f"{len(FAILED)} cameras · {len(FAILED)} failed" in text and "reporting" in text and "MB" in text
    assert page.text_content("#node-count") == "1"
    shot(page, "nodes")
    operator = city_page("operator")
    assert operator.query_selector("nav a[href='/nodes']") is None
    operator.goto("/nodes")
    wait_until(operator, "document.querySelector('#nodes-error').textContent.length > 0", 10)
    assert "config.manage or authorisation.approve" in operator.text_content("#nodes-error")
