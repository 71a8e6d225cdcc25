"""Network cameras on 127.0.0.1 read end to end: RTSP (GStreamer RTSP server), lost and found again, and
MJPEG over HTTP (``ffmpeg -listen``)."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from vigil.bench.rtsp_camera import RtspCamera, free_port
from vigil.config import CameraConfig
from vigil.paths import data_root
from vigil.sources.reader import ReaderState, StreamReader
from vigil.types import Event, Frame

pytestmark = pytest.mark.integration


@pytest.fixture
def rtsp_camera() -> Iterator[RtspCamera]:
    why_not = RtspCamera.available()
    if why_not:
        pytest.skip(why_not)
    video = data_root() / "video" / "vtest_h264.mp4"
    if not video.exists():
        pytest.skip(f"test video {video} not found (set VIGIL_DATA)")
    server = RtspCamera(video, user="operator", password="pa55word")
    try:
        yield server.start()
    finally:
        server.close()


def collect(reader: StreamReader, seconds: float) -> list[Frame]:
    frames: list[Frame] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        frame = reader.get(timeout=0.2)
        if frame is not None:
            frames.append(frame)
    return frames


def wait_for(events: list[Event], kind: str, seconds: float, after: int = 0) -> Event:
    """The latest ``kind`` event among ``events[after:]``, waiting up to ``seconds`` for it."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = [e for e in events[after:] if e.kind == kind]
        if found:
            return found[-1]
        time.sleep(0.05)
    raise AssertionError(f"no {kind} event within {seconds} s; got {[e.kind for e in events]}")


def test_rtsp_camera_delivers_frames_at_analysis_fps(rtsp_camera: RtspCamera) -> None:
    events: list[Event] = []
    with StreamReader(CameraConfig(id="gate", url=rtsp_camera.url, fps=5), on_event=events.append) as reader:
        wait_for(events, "camera_online", 10)
        collect(reader, 1.0)  # let the probe burst pass
        frames = collect(reader, 4.0)
        stats = reader.stats()
    assert 15 <= len(frames) <= 25  # ~5 fps over 4 s of a 10 fps camera
    assert all(f.image.shape == (576, 768, 3) for f in frames)
    times = [f.captured_at for f in frames]
    assert all(b > a for a, b in itertools.pairwise(times))
    assert abs((datetime.now(UTC) - times[-1]).total_seconds()) < 1.0  # live: wall-clock capture times
    pts = [f.pts for f in frames]
    assert all(p is not None for p in pts) and all(b > a for a, b in itertools.pairwise(pts))
    assert stats.state == ReaderState.ONLINE and stats.fps == pytest.approx(5, abs=1.5)
    assert stats.lag_s is not None and stats.lag_s < 1.0
    assert "pa55word" not in repr(events) and "operator:***@" in events[0].payload["url"]


def test_rtsp_camera_killed_and_restarted_goes_offline_then_online(rtsp_camera: RtspCamera) -> None:
    events: list[Event] = []
    cam = CameraConfig(id="gate", url=rtsp_camera.url, fps=5)
    with StreamReader(cam, on_event=events.append, backoff_initial=0.5, backoff_max=2.0) as reader:
        wait_for(events, "camera_online", 10)
        assert collect(reader, 1.0)
        rtsp_camera.kill()
        offline = wait_for(events, "camera_offline", 5)
        assert "\n" not in offline.payload["error"] and "camera gate (" in offline.payload["error"]
        time.sleep(2.0)  # several reconnect attempts fail while it is down
        assert reader.stats().state == ReaderState.OFFLINE
        rtsp_camera.start()
        online = wait_for(events, "camera_online", 15, after=1)
        assert online.payload["recovered"] is True and online.payload["outage_s"] > 2.0
        frames = collect(reader, 2.0)
        stats = reader.stats()
    assert [e.kind for e in events] == ["camera_online", "camera_offline", "camera_online"]  # offline once
    assert len(frames) >= 6 and stats.reconnects == 1 and stats.state == ReaderState.ONLINE
    assert "pa55word" not in repr(events)


def test_a_hung_camera_is_noticed_within_the_read_timeout(rtsp_camera: RtspCamera) -> None:
    events: list[Event] = []
    cam = CameraConfig(id="gate", url=rtsp_camera.url, fps=5)
    with StreamReader(cam, on_event=events.append, read_timeout=2.0, backoff_initial=0.5) as reader:
        wait_for(events, "camera_online", 10)
        collect(reader, 0.5)
        assert rtsp_camera.process is not None
        os.kill(rtsp_camera.process.pid, signal.SIGSTOP)  # connection stays open, no data comes
        try:
            stalled = time.monotonic()
            wait_for(events, "camera_offline", 6)
            assert time.monotonic() - stalled < 5.0
        finally:
            os.kill(rtsp_camera.process.pid, signal.SIGCONT)
        wait_for(events, "camera_online", 15, after=1)
        assert reader.get(timeout=3) is not None


def test_mjpeg_over_http_is_sampled_by_arrival_time() -> None:
    video = data_root() / "video" / "vtest_h264.mp4"
    if not video.exists() or shutil.which("ffmpeg") is None:
        pytest.skip("needs ffmpeg and the test video")
    url = f"http://127.0.0.1:{free_port()}/cam.mjpg"
    # a one-client MJPEG camera at 10 fps; FFmpeg's reader would assume 25 fps from its made-up timestamps
    server = subprocess.Popen(
        ["ffmpeg", "-v", "quiet", "-re", "-t", "12", "-i", str(video), "-an", "-c:v", "mjpeg", "-q:v", "8",
         "-f", "mpjpeg", "-listen", "1", url],
    )  # fmt: skip
    events: list[Event] = []
    try:
        with StreamReader(CameraConfig(id="mj", url=url, fps=5), on_event=events.append, backoff_initial=0.3) as reader:
            wait_for(events, "camera_online", 10)
            collect(reader, 0.5)
            frames = collect(reader, 3.0)
    finally:
        server.kill()
        server.wait(5)
    assert 12 <= len(frames) <= 18  # ~5 fps of wall-clock time, not 2 (pts) or 10 (every frame)
    assert all(f.image.shape == (576, 768, 3) for f in frames)
    assert all(b.captured_at > a.captured_at for a, b in itertools.pairwise(frames))
