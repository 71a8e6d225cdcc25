"""Live parts of the API on a real uvicorn server: SSE from the outbox/bus, snapshot and MJPEG from ``LiveFrames``
fed with real decoded video frames."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import av
import cv2
import httpx
import numpy as np
import pytest
import supervision as sv

from tests.support import governance_with_users
from vigil.analytics import RuleOutput
from vigil.api.app import create_app
from vigil.api.live import LiveFrames
from vigil.api.server import serve_in_thread
from vigil.api.sse_client import event_stream
from vigil.assembly import open_services
from vigil.config import parse_config
from vigil.runtime import FrameResult
from vigil.types import Event, Frame, Track, TrackState
from vigil.vision.tracker import TrackUpdate

PASSWORD = "correct horse 2"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("api-live")
    config = parse_config({"data_dir": str(folder), "cameras": [{"id": "cam-a", "url": "a.mp4", "fps": 5},
                                                                 {"id": "cam-b", "url": "b.mp4", "fps": 5}]})
    services = open_services(config).start()
    governance = governance_with_users(services, [("op", "operator", ["cam-a"])], PASSWORD)
    live = LiveFrames()
    app = create_app(config, services, users=governance.users, live=live, basemap=None)
    server = serve_in_thread(app)
    token = httpx.post(server.url + "/api/auth/login", json={"username": "op", "password": PASSWORD}).json()["token"]
    yield {"url": server.url, "app": app, "services": services, "live": live, "config": config,
           "headers": {"Authorization": f"Bearer {token}"}, "audit": governance.audit}
    server.stop()
    services.close()


def video_frames(data_dir, count: int) -> list[np.ndarray]:
    with av.open(str(data_dir / "video" / "vtest_h264.mp4")) as container:
        frames = []
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="bgr24"))
            if len(frames) == count:
                return frames
    return frames


def feed(live: LiveFrames, config, image: np.ndarray, index: int) -> None:
    """One real ``FrameResult`` through the hook, with a confirmed track whose box is drawn."""
    at = datetime.now(UTC)
    track = Track("cam-a", 42, "person", at, at, TrackState.CONFIRMED, boxes=[(100.0, 100.0, 200.0, 300.0)],
                  box_times=[at], trajectory=[(150.0, 300.0)])
    frame = Frame("cam-a", at, index, image)
    live(FrameResult(config.camera("cam-a"), frame, TrackUpdate(sv.Detections.empty(), [track], []),
                     RuleOutput(), True))


def test_sse_delivers_outbox_events_within_two_seconds(env) -> None:
    received: list[tuple[float, dict]] = []
    connected = threading.Event()

    def listen() -> None:
        for body in event_stream(env["url"], env["headers"], timeout=10):
            if body is None:
                connected.set()
            else:
                received.append((time.monotonic(), body))
                return

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    assert connected.wait(5)
    hidden = Event(kind="zone_enter", camera_id="cam-b", at=datetime.now(UTC))  # not the operator's camera
    shown = Event(kind="loitering", camera_id="cam-a", at=datetime.now(UTC), severity="warning", track_id=3)
    sent = time.monotonic()
    env["services"].writer.write(hidden)
    env["services"].writer.write(shown)  # persisted with its outbox row, then published by the relay
    thread.join(5)
    assert received, "no event arrived"
    arrived, body = received[0]
    assert body["id"] == shown.id and body["camera_id"] == "cam-a" and body["status"] == "open"
    assert arrived - sent < 2.0


def test_snapshot_is_the_latest_frame_with_boxes(env, data_dir) -> None:
    client = httpx.Client(base_url=env["url"], headers=env["headers"])
    assert client.get("/api/cameras/cam-a/snapshot.jpg").status_code == 404  # nothing analysed yet
    image = video_frames(data_dir, 1)[0]
    feed(env["live"], env["config"], image, 0)
    response = client.get("/api/cameras/cam-a/snapshot.jpg")
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    picture = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_COLOR)
    assert picture.shape == image.shape
    inside = np.abs(picture[150:250, 130:170].astype(int) - image[150:250, 130:170].astype(int)).mean()
    edge = np.abs(picture[150:250, 99:102].astype(int) - image[150:250, 99:102].astype(int)).mean()
    assert inside < 12 and edge > 40  # the picture is the frame, with the box outline drawn
    cameras = client.get("/api/cameras").json()
    assert (cameras[0]["width"], cameras[0]["height"]) == (image.shape[1], image.shape[0])
    assert env["audit"].entries(actor="op", action="video.snapshot", limit=1)[0].object == "camera:cam-a"


def test_mjpeg_streams_new_frames_and_stops_when_the_client_goes(env, data_dir) -> None:
    images = video_frames(data_dir, 12)
    state = env["app"].state.vigil
    stop = threading.Event()

    def producer() -> None:
        for i, image in enumerate(images[1:], 1):  # frame 0 may already be there
            if stop.wait(0.2):
                return
            feed(env["live"], env["config"], image, i)

    thread = threading.Thread(target=producer, daemon=True)
    thread.start()
    parts: list[bytes] = []
    viewers = -1
    with httpx.stream("GET", env["url"] + "/api/cameras/cam-a/live.mjpg", headers=env["headers"],
                      timeout=10) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("multipart/x-mixed-replace; boundary=")
        buffer = b""
        for chunk in response.iter_bytes():
            buffer += chunk
            while (start := buffer.find(b"\xff\xd8")) >= 0 and (end := buffer.find(b"\xff\xd9", start)) >= 0:
                parts.append(buffer[start:end + 2])
                buffer = buffer[end + 2:]
            if len(parts) >= 3:
                viewers = state.mjpeg_clients["cam-a"]  # read before leaving the loop closes the stream
                break
    assert viewers == 1
    stop.set()
    decoded = [cv2.imdecode(np.frombuffer(p, np.uint8), cv2.IMREAD_COLOR) for p in parts]
    assert all(d is not None and d.shape == images[0].shape for d in decoded)
    assert len({p[-2000:] for p in parts}) == 3  # three different frames
    deadline = time.monotonic() + 3
    while state.mjpeg_clients["cam-a"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert state.mjpeg_clients["cam-a"] == 0  # the server noticed the client went
    assert env["audit"].entries(actor="op", action="video.live", limit=1)


def test_counts_series_come_from_the_store(env) -> None:
    from vigil.types import CountSample

    start = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
    env["services"].events.add_counts(CountSample("cam-a", start + timedelta(seconds=s), "gate", "person", s % 4)
                                      for s in range(120))
    response = httpx.get(env["url"] + "/api/counts", headers=env["headers"],
                         params={"camera": "cam-a", "from": start.isoformat(),
                                 "to": (start + timedelta(minutes=2)).isoformat(), "bucket_s": 60})
    series = response.json()["series"]
    assert [(s["zone"], s["label"]) for s in series] == [("gate", "person")]
    assert [(p[1], p[2]) for p in series[0]["points"]] == [(3, 1.5), (3, 1.5)]
