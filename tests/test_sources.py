"""Camera sources on real and generated video files: sampling, queueing, masks, motion gate, bad files."""

from __future__ import annotations

import contextlib
import itertools
import logging
import socket
import time
from datetime import UTC, datetime
from pathlib import Path

import av
import numpy as np
import pytest

from vigil.bench.rtsp_camera import free_port
from vigil.config import CameraConfig
from vigil.paths import data_root
from vigil.sources.masks import PrivacyMasker, apply_privacy_masks
from vigil.sources.motion import MotionGate
from vigil.sources.reader import ReaderState, StreamReader
from vigil.sources.sampling import FrameQueue, FrameSampler
from vigil.types import Event, Frame

START = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def vtest_h264() -> Path:
    path = data_root() / "video" / "vtest_h264.mp4"
    if not path.exists():
        pytest.skip(f"test video {path} not found (set VIGIL_DATA)")
    return path


def write_clip(path: Path, frames: list[np.ndarray] | np.ndarray, fps: int) -> Path:
    """Encode BGR frames as an H.264 MP4 with PyAV."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "23", "g": str(2 * fps), "bf": "0"}
        for image in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
        out.mux(stream.encode())
    return path


def counter_clip(path: Path, seconds: float, fps: int, size: tuple[int, int] = (160, 96)) -> Path:
    """A small clip whose frame n has a bright bar at column 2n (so frames are told apart)."""
    height, width = size[1], size[0]
    frames = []
    for n in range(round(seconds * fps)):
        image = np.full((height, width, 3), 60, np.uint8)
        image[:, (2 * n) % width : (2 * n) % width + 2] = 250
        frames.append(image)
    return write_clip(path, frames, fps)


def quiet_clip(path: Path, background: np.ndarray, person: np.ndarray, seconds: int = 20, fps: int = 10,
               moving: tuple[float, float] = (8.0, 12.0)) -> Path:  # fmt: skip
    """A still scene with sensor noise; ``person`` walks across it during ``moving`` seconds."""
    rng = np.random.default_rng(0)
    noise = [rng.normal(0, 3, background.shape).astype(np.int16) for _ in range(8)]
    frames = []
    for n in range(seconds * fps):
        t = n / fps
        image = np.clip(background.astype(np.int16) + noise[n % len(noise)], 0, 255).astype(np.uint8)
        if moving[0] <= t < moving[1]:
            x = int(50 + (t - moving[0]) / (moving[1] - moving[0]) * 600)
            image[300 : 300 + person.shape[0], x : x + person.shape[1]] = person
        frames.append(image)
    return write_clip(path, frames, fps)


def read_all(reader: StreamReader, limit: float = 30.0) -> list[Frame]:
    """Every frame a reader delivers until its thread ends (or ``limit`` seconds pass)."""
    frames: list[Frame] = []
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        frame = reader.get(timeout=0.2)
        if frame is not None:
            frames.append(frame)
        elif not reader.running:
            frames.extend(reader.queue.drain())
            break
    return frames


def camera(url: Path | str, **fields: object) -> CameraConfig:
    return CameraConfig(id=str(fields.pop("id", "cam1")), url=str(url), **fields)


# -- sampling and queue ------------------------------------------------------------------------------


@pytest.mark.parametrize(("source_fps", "target_fps"), [(10, 5), (25, 5), (30, 7), (25, 10), (8, 15)])
def test_sampler_keeps_target_rate_by_timestamp(source_fps: int, target_fps: int) -> None:
    sampler = FrameSampler(target_fps)
    times = [n / source_fps for n in range(source_fps * 20)]
    kept = [t for t in times if sampler.accept(t)]
    assert len(kept) == pytest.approx(20 * min(source_fps, target_fps), abs=1)
    gaps = np.diff(kept)
    assert gaps.max() < 1 / target_fps + 1 / source_fps + 1e-9


def test_sampler_restarts_after_a_backward_jump() -> None:
    sampler = FrameSampler(5)
    assert [sampler.accept(t) for t in (10.0, 10.1, 10.2)] == [True, False, True]
    assert sampler.accept(0.0)  # stream restarted at 0: a new timeline, not 50 s of silence


def test_queue_drops_oldest_when_full() -> None:
    queue = FrameQueue(maxlen=3)
    for n in range(10):
        queue.put(Frame("c", START, n, np.zeros((2, 2, 3), np.uint8)))
    assert queue.drops == 7
    assert [f.index for f in queue.drain()] == [7, 8, 9]


# -- file reading ----------------------------------------------------------------------------------


def test_file_is_sampled_at_analysis_fps_with_deterministic_times() -> None:
    path = vtest_h264()  # 795 frames at 10 fps: 79.5 s
    with StreamReader(camera(path, fps=5, realtime=False), start_time=START) as reader:
        frames = read_all(reader)
        stats = reader.stats()
    assert len(frames) == pytest.approx(79.5 * 5, abs=2)
    assert stats.decoded == 795 and stats.delivered == len(frames) and stats.drops == 0
    assert stats.state == ReaderState.ENDED
    assert [f.index for f in frames] == list(range(len(frames)))
    assert frames[0].captured_at == START
    steps = {round((b.captured_at - a.captured_at).total_seconds(), 3) for a, b in itertools.pairwise(frames)}
    assert steps == {0.2}
    assert frames[0].image.shape == (576, 768, 3) and frames[0].image.dtype == np.uint8


def test_non_multiple_rate_and_loop_keep_times_increasing(tmp_path: Path) -> None:
    clip = counter_clip(tmp_path / "c30.mp4", seconds=2, fps=30)
    cam = camera(clip, fps=7, realtime=False, loop=True)
    frames: list[Frame] = []
    with StreamReader(cam, start_time=START) as reader:
        while len(frames) < 3 * 14:
            frame = reader.get(timeout=5)
            assert frame is not None
            frames.append(frame)
    times = [(f.captured_at - START).total_seconds() for f in frames]
    assert all(b > a for a, b in itertools.pairwise(times))
    # 7 per second of video over 3 passes of 2 s: the third pass starts near 4 s
    assert times[28] == pytest.approx(4.0, abs=0.1)
    assert max(np.diff(times)) < 1 / 7 + 1 / 30 + 1e-6


def test_realtime_file_is_paced_like_a_camera(tmp_path: Path) -> None:
    clip = counter_clip(tmp_path / "c.mp4", seconds=10, fps=10)
    with StreamReader(camera(clip, fps=5, realtime=True)) as reader:
        started = time.monotonic()
        frames = [reader.get(timeout=2) for _ in range(8)]
        elapsed = time.monotonic() - started
        stats = reader.stats()
    assert all(f is not None for f in frames)
    assert elapsed == pytest.approx(7 * 0.2, abs=0.4)  # 8 frames 0.2 s apart
    assert stats.fps == pytest.approx(5, abs=1.0)
    assert stats.lag_s is not None and abs(stats.lag_s) < 0.5


def test_unconsumed_live_like_reader_drops_oldest_and_stays_bounded(tmp_path: Path) -> None:
    clip = counter_clip(tmp_path / "c.mp4", seconds=10, fps=10)
    with StreamReader(camera(clip, fps=10, realtime=True), queue_size=4) as reader:
        time.sleep(2.0)  # nobody consumes: ~20 frames produced into a queue of 4
        stats = reader.stats()
        queued = reader.queue.drain()
    assert len(queued) == 4
    assert stats.drops >= 10 and stats.drops == stats.delivered - 4
    assert [f.index for f in queued] == list(range(stats.delivered - 4, stats.delivered))  # the newest


def test_non_realtime_file_never_drops_for_a_slow_consumer(tmp_path: Path) -> None:
    clip = counter_clip(tmp_path / "c.mp4", seconds=3, fps=10)
    with StreamReader(camera(clip, fps=10, realtime=False), queue_size=2) as reader:
        time.sleep(0.5)
        frames = read_all(reader)
        assert reader.stats().drops == 0
    assert [f.index for f in frames] == list(range(30))


def test_packet_hook_sees_every_encoded_packet(tmp_path: Path) -> None:
    clip = counter_clip(tmp_path / "c.mp4", seconds=2, fps=10)
    packets: list[av.Packet] = []
    with StreamReader(camera(clip, realtime=False), on_packet=packets.append) as reader:
        read_all(reader)
    assert len(packets) == 20
    assert packets[0].is_keyframe and packets[0].stream.codec_context.name == "h264"


# -- bad input -------------------------------------------------------------------------------------


def bad_file(kind: str, tmp_path: Path) -> Path:
    if kind == "corrupt":
        path = tmp_path / "corrupt.mp4"
        path.write_bytes(np.random.default_rng(1).integers(0, 256, 300_000, dtype=np.uint8).tobytes())
    elif kind == "truncated":
        data = vtest_h264().read_bytes()
        path = tmp_path / "truncated.mp4"
        path.write_bytes(data[: len(data) * 40 // 100])
    else:
        path = tmp_path / "missing.mp4"
    return path


@pytest.mark.parametrize("kind", ["corrupt", "truncated", "missing"])
def test_bad_file_gives_one_line_error_while_other_camera_runs(
    kind: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = bad_file(kind, tmp_path)
    good_clip = counter_clip(tmp_path / "good.mp4", seconds=20, fps=10)
    events: list[Event] = []
    caplog.set_level(logging.DEBUG, logger="vigil")
    with (
        StreamReader(camera(good_clip, id="good", fps=5), on_event=events.append) as good,
        StreamReader(camera(path, id="bad", realtime=False), on_event=events.append) as bad,
    ):
        delivered = read_all(bad, limit=15)
        errors = [e for e in events if e.kind == "camera_error"]
        assert len(errors) == 1
        message = errors[0].payload["error"]
        assert "\n" not in message and message.startswith("camera bad (") and path.name in message
        assert message == bad.last_error
        time.sleep(0.5)
        before = good.stats().delivered
        assert good.get(timeout=1) is not None
        time.sleep(1.0)
        assert good.stats().delivered >= before + 4  # still delivering at 5 fps
        assert good.stats().state == ReaderState.ONLINE
    assert not any(r.exc_info for r in caplog.records)  # no stack trace anywhere
    if kind == "truncated":
        # plays what is readable (32 s of 79.5 s), then says so
        assert len(delivered) == pytest.approx(160, abs=4)
        assert bad.stats().state == ReaderState.ENDED and "truncated" in message
    else:
        assert delivered == [] and bad.stats().state == ReaderState.FAILED
        assert ("cannot open" if kind == "corrupt" else "file not found") in message


def test_unreachable_camera_goes_offline_once_and_hides_the_password() -> None:
    url = f"rtsp://admin:hunter2@127.0.0.1:{free_port()}/cam"
    events: list[Event] = []
    with StreamReader(camera(url), on_event=events.append, backoff_initial=0.2, backoff_max=0.4) as reader:
        time.sleep(2.0)  # several failed attempts
        stats = reader.stats()
    assert [e.kind for e in events] == ["camera_offline"]
    assert stats.state == ReaderState.OFFLINE and stats.last_error is not None
    text = repr(events) + stats.last_error
    assert "hunter2" not in text and "admin:***@127.0.0.1" in text and "cannot open" in text


def test_a_lost_camera_is_retried_at_least_every_reconnect_max_s() -> None:
    """The reconnect delay doubles from 1 s but never grows past ``cameras[].reconnect_max_s``."""
    attempts: list[float] = []
    with socket.create_server(("127.0.0.1", 0)) as server:  # accepts and hangs up: every attempt fails
        server.settimeout(0.1)
        url = f"rtsp://127.0.0.1:{server.getsockname()[1]}/cam"
        with StreamReader(camera(url, reconnect_max_s=1.0)):
            deadline = time.monotonic() + 4.6
            while time.monotonic() < deadline:
                with contextlib.suppress(TimeoutError):
                    connection, _ = server.accept()
                    attempts.append(time.monotonic())
                    connection.close()
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert len(attempts) >= 4 and max(gaps) < 1.6  # uncapped, it would wait 1, 2, 4 s: 3 attempts
    assert CameraConfig(id="c", url=url).reconnect_max_s == 5.0


# -- privacy masks ---------------------------------------------------------------------------------


def test_masked_pixels_are_exactly_zero_and_the_rest_untouched() -> None:
    path = vtest_h264()
    masks = [[(10.0, 10.0), (300.0, 20.0), (250.0, 300.0), (20.0, 200.0)], [(500, 300), (700, 310), (690, 560)]]
    with StreamReader(camera(path, realtime=False, privacy_masks=masks), start_time=START) as masked_reader:
        masked = [masked_reader.get(timeout=5) for _ in range(3)]
    with StreamReader(camera(path, realtime=False), start_time=START) as plain_reader:
        plain = [plain_reader.get(timeout=5) for _ in range(3)]
    hidden = PrivacyMasker(masks).mask(576, 768) > 0
    assert 0.1 < hidden.mean() < 0.3
    for m, p in zip(masked, plain, strict=True):
        assert m is not None and p is not None and m.index == p.index
        assert not m.image[hidden].any()
        assert p.image[hidden].any()  # there was something to hide
        assert np.array_equal(m.image[~hidden], p.image[~hidden])


def test_apply_privacy_masks_function_works_in_place() -> None:
    image = np.full((100, 100, 3), 200, np.uint8)
    out = apply_privacy_masks(image, [[(0, 0), (49, 0), (49, 49), (0, 49)]])
    assert out is image and not image[:50, :50].any() and (image[50:, 50:] == 200).all()


# -- motion gate -----------------------------------------------------------------------------------


def test_motion_gate_skips_a_quiet_scene_and_fires_on_a_busy_one(tmp_path: Path) -> None:
    source = vtest_h264()
    with StreamReader(camera(source, fps=10, realtime=False)) as reader:
        first = [reader.get(timeout=5) for _ in range(101)]
    background = first[0].image
    person = first[100].image[170:262, 372:416].copy()  # pedestrian 9 of the PETS ground truth at frame 100
    clip = quiet_clip(tmp_path / "quiet.mp4", background, person, seconds=20, moving=(8.0, 12.0))

    gate = MotionGate()
    with StreamReader(camera(clip, fps=5, realtime=False), start_time=START) as reader:
        quiet = [(f.pts, gate.update(f.image)) for f in read_all(reader)]
    assert len(quiet) == 100
    moving = [flag for t, flag in quiet if 8.0 <= t < 12.0]
    assert all(moving)  # never misses the walker
    still = [flag for t, flag in quiet if t >= 1.0 and not 8.0 <= t < 13.0]
    assert sum(still) == 0  # noise and compression flicker are not motion
    assert sum(flag for _, flag in quiet) / len(quiet) < 0.3  # the detector runs on under 30% of frames

    gate = MotionGate()
    with StreamReader(camera(source, fps=5, realtime=False)) as reader:
        busy = [gate.update(f.image) for f in read_all(reader)]
    assert sum(busy) / len(busy) > 0.95
