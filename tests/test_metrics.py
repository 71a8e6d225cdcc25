"""``GET /metrics`` (issue #17): a real node over real video behind a real uvicorn server, scraped like Prometheus.

The outbox relay is not started, so the outbox depth is whatever the test wrote; the test publishes it by hand
(once through a bus that refuses, once through the working one) and reads the counters move.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime

import httpx
import prometheus_client
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.support import governance_with_users, login
from vigil.api.app import create_app
from vigil.api.metrics import address_allowed
from vigil.api.server import serve_in_thread
from vigil.assembly import open_services
from vigil.config import MetricsConfig, parse_config
from vigil.errors import ConfigError
from vigil.runtime import Node
from vigil.types import Event
from vigil.vision.detector import create_detector
from vigil.vision.models import ModelError

TOKEN = "scrape-token-3f9a1c7e52b04d68"
PASSWORD = "correct horse 17"
CAMERAS = ("cam-a", "cam-b")

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition, keyed by (sample name, sorted labels)."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def camera(samples: Samples, name: str, camera_id: str) -> float:
    return samples[(name, (("camera", camera_id),))]


def scrape(url: str, token: str | None = TOKEN, **kwargs) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(url + "/metrics", headers=headers, timeout=20, **kwargs)


@pytest.fixture(scope="module")
def env(data_dir, tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("metrics")
    videos = (data_dir / "video" / "vtest.avi", data_dir / "video" / "vtest_h264.mp4")
    config = parse_config({
        "data_dir": str(folder),
        "detector": {"sessions": 1},
        "metrics": {"token": TOKEN, "allow_from": ["10.0.0.0/8"]},
        "cameras": [{"id": cid, "url": str(video), "fps": 5, "realtime": True, "loop": True}
                    for cid, video in zip(CAMERAS, videos, strict=True)],
    })
    try:
        detector = create_detector(config.detector)
    except ModelError as exc:
        pytest.skip(f"detector model not installed: {exc}")
    services = open_services(config)
    services.run_loop()  # the bus and loop, but no relay: the test publishes the outbox itself
    governance = governance_with_users(services, (("admin", "admin", ["*"]), ("admin-a", "admin", ["cam-a"]),
                                                  ("op", "operator", ["*"])), PASSWORD)
    node = Node(config, detector)
    node.on_camera_event.append(services.writer.write)  # camera_online events land in the outbox
    app = create_app(config, services, node, users=governance.users, basemap=None)
    server = serve_in_thread(app)
    worker = threading.Thread(target=node.start().run, name="metrics-node", daemon=True)
    worker.start()
    deadline = time.monotonic() + 90
    while min(p.stats.frames for p in node.pipelines.values()) < 10:
        assert time.monotonic() < deadline, f"the node analysed too few frames: {node.status()}"
        time.sleep(0.2)
    yield {"url": server.url, "app": app, "config": config, "services": services, "node": node,
           "users": governance.users}
    node.stop()
    worker.join(10)
    server.stop()
    services.close()


# ---------------------------------------------------------------------- the series

def test_per_camera_and_detector_series_while_the_node_runs(env) -> None:
    response = scrape(env["url"])
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples = parse(response.text)
    node = env["node"]
    for camera_id in CAMERAS:
        assert 0 < camera(samples, "vigil_camera_analysed_fps", camera_id) <= 10  # 5 fps wanted
        assert camera(samples, "vigil_camera_online", camera_id) == 1
        assert camera(samples, "vigil_camera_frames_analysed_total", camera_id) >= 10
        detected = camera(samples, "vigil_camera_frames_detected_total", camera_id)
        assert 0 < detected <= camera(samples, "vigil_camera_frames_analysed_total", camera_id)
        assert camera(samples, "vigil_camera_frames_dropped_total", camera_id) >= 0
        assert -1 < camera(samples, "vigil_camera_lag_seconds", camera_id) < 30  # realtime: capture ≈ wall clock
        assert camera(samples, "vigil_camera_live_tracks", camera_id) >= 0
        assert camera(samples, "vigil_camera_reconnects_total", camera_id) == 0
        assert camera(samples, "vigil_camera_events_total", camera_id) >= 0
    assert sum(camera(samples, "vigil_camera_live_tracks", c) for c in CAMERAS) >= 1  # vtest: people walking

    model = (("model", env["config"].detector.model),)
    count = samples[("vigil_detector_inference_seconds_count", model)]
    assert 0 < count <= node.batches
    assert 0 < samples[("vigil_detector_inference_seconds_sum", model)] <= node.inference_s
    buckets = sorted((float(dict(labels)["le"]), value) for (name, labels), value in samples.items()
                     if name == "vigil_detector_inference_seconds_bucket")
    assert buckets[-1] == (float("inf"), count)
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)  # cumulative
    assert ("process_resident_memory_bytes", ()) in samples


def test_outbox_depth_age_published_and_bus_errors(env, monkeypatch: pytest.MonkeyPatch) -> None:
    services = env["services"]
    relay = services.relay
    for i in range(3):
        services.writer.write(Event(kind="zone_enter", camera_id="cam-a", at=datetime.now(UTC), track_id=i))
    time.sleep(0.3)
    samples = parse(scrape(env["url"]).text)
    assert samples[("vigil_database_up", ())] == 1
    assert samples[("vigil_outbox_pending", ())] == relay.pending() >= 3
    assert samples[("vigil_outbox_oldest_pending_age_seconds", ())] >= 0.3
    assert samples[("vigil_events_published_total", ())] == relay.published == 0
    assert samples[("vigil_bus_errors_total", ())] == 0
    assert samples[("vigil_event_buffer_events", ())] == 0

    async def refuse(_event: Event) -> None:
        raise ConnectionError("bus down")

    monkeypatch.setattr(services.bus, "publish", refuse)
    services.call(relay.publish_pending())
    samples = parse(scrape(env["url"]).text)
    assert samples[("vigil_bus_errors_total", ())] == 1
    assert samples[("vigil_outbox_pending", ())] == relay.pending() >= 3

    monkeypatch.undo()
    pending = relay.pending()
    services.call(relay.publish_pending())
    samples = parse(scrape(env["url"]).text)
    assert samples[("vigil_outbox_pending", ())] == relay.pending() == 0
    assert samples[("vigil_outbox_oldest_pending_age_seconds", ())] == 0
    assert samples[("vigil_events_published_total", ())] == relay.published >= pending


# ---------------------------------------------------------------------- who may scrape

def test_missing_or_wrong_token_is_401_with_one_line_detail(env) -> None:
    for token in (None, "not-the-token", TOKEN + "x"):
        response = scrape(env["url"], token)
        assert response.status_code == 401, (token, response.text)
        assert response.headers["www-authenticate"].startswith("Bearer")
        detail = response.json()["detail"]
        assert "\n" not in detail and "token" in detail
        assert TOKEN not in response.text
    assert "127.0.0.1 is not in metrics.allow_from" in scrape(env["url"], None).json()["detail"]


def test_address_allow_list(env) -> None:
    def app_with(metrics: dict):
        config = env["config"].model_copy(update={"metrics": MetricsConfig.model_validate(metrics)})
        return create_app(config, env["services"], users=env["users"], basemap=None)

    server = serve_in_thread(app_with({"allow_from": ["127.0.0.0/8"]}))  # a second app: its own registry
    try:
        response = scrape(server.url, None)
        assert response.status_code == 200, response.text
        assert ("vigil_outbox_pending", ()) in parse(response.text)
    finally:
        server.stop()
    other = app_with({"allow_from": ["10.0.0.0/8", "192.168.0.0/16"]})
    server = serve_in_thread(other)
    try:
        response = scrape(server.url, None)
        assert response.status_code == 403
        assert response.json() == {"detail": "client address 127.0.0.1 is not in metrics.allow_from"}
    finally:
        server.stop()
    # Starlette's TestClient calls itself "testclient": no network contains that name
    assert TestClient(other).get("/metrics").status_code == 403
    assert TestClient(other, client=("10.20.30.40", 5000)).get("/metrics").status_code == 200
    assert TestClient(other, client=("192.168.1.9", 5000)).get("/metrics").status_code == 200
    assert TestClient(other, client=("172.16.0.1", 5000)).get("/metrics").status_code == 403
    assert other.state.metrics.registry is not prometheus_client.REGISTRY
    assert other.state.metrics.registry is not env["app"].state.metrics.registry


def test_address_matching() -> None:
    networks = MetricsConfig.model_validate({"allow_from": ["127.0.0.1/32", "10.0.0.0/8", "fd00::/8"]}).allow_from
    assert address_allowed(networks, "127.0.0.1") and address_allowed(networks, "10.255.0.1")
    assert address_allowed(networks, "::ffff:10.1.2.3")  # IPv4-mapped, from a dual-stack socket
    assert address_allowed(networks, "fd12::1")
    for host in ("127.0.0.2", "11.0.0.1", "::1", "testclient", "", None):
        assert not address_allowed(networks, host), host


def test_sessions_without_scrape_credentials(env) -> None:
    config = env["config"].model_copy(update={"metrics": MetricsConfig()})
    server = serve_in_thread(create_app(config, env["services"], env["node"], users=env["users"], basemap=None))
    try:
        response = scrape(server.url, None)
        assert response.status_code == 403
        assert response.json()["detail"].startswith("metrics are not enabled: set metrics.token or metrics.allow_from")
        assert scrape(server.url, TOKEN).status_code == 403  # no token configured: no token works
        admin = login(server.url, "admin", PASSWORD)
        samples = parse(admin.get("/metrics").text)
        assert {dict(labels)["camera"] for (name, labels) in samples if name == "vigil_camera_online"} == set(CAMERAS)
        restricted = parse(login(server.url, "admin-a", PASSWORD).get("/metrics").text)
        assert {dict(labels)["camera"] for (name, labels) in restricted if name == "vigil_camera_online"} == {"cam-a"}
        assert ("vigil_outbox_pending", ()) in restricted
        operator = login(server.url, "op", PASSWORD).get("/metrics")
        assert operator.status_code == 403 and "config.manage" in operator.json()["detail"]
    finally:
        server.stop()
    # with a token configured, an administrator's session still works (its bearer is not the scrape token)
    assert login(env["url"], "admin", PASSWORD).get("/metrics").status_code == 200


def test_the_token_is_never_logged(env, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server = serve_in_thread(create_app(env["config"], env["services"], users=env["users"], basemap=None),
                             log_level="debug")  # a new app: its refusal log has not seen these clients yet
    try:
        assert scrape(server.url).status_code == 200
        assert scrape(server.url, TOKEN + "-typo").status_code == 401
        assert scrape(server.url, None).status_code == 401
        time.sleep(0.2)
    finally:
        server.stop()
    assert "GET /metrics from 127.0.0.1 refused" in caplog.text  # refusals are logged ...
    assert TOKEN not in caplog.text  # ... without the token, right or wrong
    with pytest.raises(ConfigError) as raised:
        parse_config({"metrics": {"token": "short-secret"}})
    assert "metrics.token" in str(raised.value) and "short-secret" not in str(raised.value)
    assert TOKEN not in repr(env["config"].metrics)


# ---------------------------------------------------------------------- config and OpenAPI

@pytest.mark.parametrize("entry", ["10.0.0.1/8", "10.0.0.0/33", "not-a-network"])
def test_allow_from_must_be_networks(entry: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config({"metrics": {"allow_from": ["127.0.0.1/32", entry]}})
    message = str(raised.value)
    assert message.startswith("config: metrics.allow_from: ") and repr(entry) in message


def test_metrics_is_left_out_of_the_openapi_document(env) -> None:
    document = httpx.get(env["url"] + "/api/openapi.json").json()
    assert "/metrics" not in document["paths"]
