"""Recorder: byte-copied fMP4 segments, their index, the transcoding fallback, events mode, kill -9, disk full."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import pytest

from vigil.config import CameraConfig, RecordingConfig
from vigil.sources.reader import StreamReader
from vigil.sources.recorder import Recorder
from vigil.store.db import Store, open_store
from vigil.store.migrations import upgrade
from vigil.store.recordings import ClipRef, RecordingIndex, probe_segment
from vigil.store.retention import Retention, RetentionPolicy

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parent.parent


def make_h264(path: Path, seconds: float, gop: int = 25, size: str = "640x360") -> Path:
    """A 25 fps H.264 test pattern, keyframe every ``gop`` frames, no B-frames."""
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25", "-t", str(seconds),
         "-c:v", "libx264", "-preset", "ultrafast", "-g", str(gop), "-bf", "0", "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )  # fmt: skip
    return path


def open_index(root: Path) -> tuple[Store, RecordingIndex]:
    url = f"sqlite:///{root / 'vigil.db'}"
    upgrade(url, "heads")
    store = open_store(url, migrate=False)
    return store, RecordingIndex(store, root)


def feed(video: Path, recorder: Recorder) -> None:
    """Give every packet of ``video`` to the recorder, as the reader's hook would."""
    with av.open(str(video)) as container:
        for packet in container.demux(container.streams.video[0]):
            if packet.size:
                recorder.on_packet(packet)
    recorder.close()


def record_with_reader(video: Path, index: RecordingIndex, config: RecordingConfig) -> Recorder:
    """Record ``video`` through a real ``StreamReader`` (its ``on_packet`` hook), file read at full speed."""
    recorder = Recorder("cam1", index, config, start_time=T0)
    camera = CameraConfig(id="cam1", url=str(video), realtime=False, fps=1)
    with StreamReader(camera, on_packet=recorder.on_packet, start_time=T0) as reader:
        while reader.running or len(reader.queue):
            reader.get(0.1)
    recorder.close()
    return recorder


def ffprobe(path: Path | str, *entries: str) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-show_entries", ":".join(entries), "-of", "json", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out)


def packet_bytes(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(container.streams.video[0]) if p.size]


def open_files() -> list[str]:
    names = []
    for fd in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):
            names.append(os.readlink(fd))
    return names


@pytest.fixture
def index(tmp_path: Path) -> Iterator[RecordingIndex]:
    store, index = open_index(tmp_path / "data")
    yield index
    store.close()


@pytest.fixture(scope="module")
def h264(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_h264(tmp_path_factory.mktemp("video") / "pattern.mp4", 7)


def test_segments_are_byte_copies_with_the_right_length_and_index(h264: Path, index: RecordingIndex) -> None:
    recorder = record_with_reader(h264, index, RecordingConfig(mode="continuous", segment_seconds=2))
    segments = index.segments("cam1")
    assert [s.start - T0 for s in segments] == [timedelta(seconds=s) for s in (0, 2, 4, 6)]
    assert not recorder.transcoding
    copied: list[bytes] = []
    for seg in segments:
        file = index.file(seg)
        assert file.is_file() and seg.size_bytes == file.stat().st_size
        assert seg.path == f"recordings/cam1/2024-05-01/{seg.start:%H%M%S}-000.mp4"
        probe = ffprobe(file, "format=duration,start_time", "stream=codec_name,width,height,nb_read_frames")
        fmt, stream = probe["format"], probe["streams"][0]
        length = float(fmt["duration"]) - float(fmt["start_time"])  # media time is capture time since 2020
        assert length == pytest.approx(seg.duration_s, abs=0.5)
        assert (stream["codec_name"], stream["width"], stream["height"]) == ("h264", 640, 360)
        assert int(stream["nb_read_frames"]) == round(seg.duration_s * 25)
        assert seg.keyframes == round(seg.duration_s)  # one keyframe a second
        copied += packet_bytes(file)
    assert [s.duration_s for s in segments] == pytest.approx([2, 2, 2, 1], abs=0.05)
    assert copied == packet_bytes(h264)  # every packet, byte for byte: nothing was re-encoded


def test_segments_refused_by_a_locked_database_are_indexed_once_it_frees(h264: Path, tmp_path: Path,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    """Many cameras closing segments together can hold SQLite's write lock longer than a writer waits: the
    recorder tries again instead of losing the segment's index row."""
    url = f"sqlite:///{tmp_path / 'vigil.db'}"
    upgrade(url, "heads")
    store = open_store(url, migrate=False, timeout_s=0.1)
    index = RecordingIndex(store, tmp_path)
    locker = sqlite3.connect(tmp_path / "vigil.db", check_same_thread=False, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")  # another writer holds the database
    threading.Timer(1.5, locker.rollback).start()
    recorder = Recorder("cam1", index, RecordingConfig(mode="continuous", segment_seconds=2), start_time=T0)
    recorder.index_retry_s = (0.25,) * 12
    with caplog.at_level(logging.ERROR):
        feed(h264, recorder)  # ends with close(), which waits for the indexing
    assert [s.start - T0 for s in index.segments("cam1")] == [timedelta(seconds=s) for s in (0, 2, 4, 6)]
    assert "cannot index" not in caplog.text
    locker.close()
    store.close()


def test_clip_reference_lists_the_overlapping_segments(h264: Path, index: RecordingIndex) -> None:
    feed(h264, Recorder("cam1", index, RecordingConfig(mode="continuous", segment_seconds=2), start_time=T0))
    clip = index.clip_for("cam1", T0 + timedelta(seconds=3), pre_s=1.5, post_s=2)
    assert (clip.start, clip.end) == (T0 + timedelta(seconds=1.5), T0 + timedelta(seconds=5))
    assert [s.start - T0 for s in index.clip_segments(clip)] == [timedelta(seconds=s) for s in (0, 2, 4)]
    assert ClipRef.parse(str(clip)) == clip
    assert index.segments("other") == []


def test_mpeg4_part2_source_is_reencoded_to_h264(data_dir: Path, index: RecordingIndex, tmp_path: Path) -> None:
    source = tmp_path / "vtest_4s.avi"  # PETS09 (MS-MPEG4 v3): cannot go into MP4 as is
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(data_dir / "video/vtest.avi"), "-t", "4", "-c", "copy", str(source)],
        check=True,
    )
    with av.open(str(source)) as container:
        assert container.streams.video[0].codec_context.name == "msmpeg4"
    recorder = Recorder("cam1", index, RecordingConfig(mode="continuous", segment_seconds=2), start_time=T0)
    feed(source, recorder)
    assert recorder.transcoding
    segments = index.segments("cam1")
    assert len(segments) == 2 and {s.codec for s in segments} == {"h264"}
    frames = sum(int(ffprobe(index.file(s), "stream=nb_read_frames")["streams"][0]["nb_read_frames"]) for s in segments)
    assert frames == 40  # 4 s at 10 fps, every frame kept
    duration, keyframes, codec = probe_segment(index.file(segments[0]))
    assert (codec, keyframes) == ("h264", 1) and duration == pytest.approx(2.0, abs=0.15)


def test_events_mode_keeps_only_segments_around_events(h264: Path, index: RecordingIndex) -> None:
    config = RecordingConfig(mode="events", segment_seconds=1, pre_roll_s=1, post_roll_s=0.8)
    recorder = Recorder("cam1", index, config, start_time=T0)
    clip = recorder.mark_event(T0 + timedelta(seconds=3.5))  # keep [2.5, 4.3]
    feed(h264, recorder)
    kept = index.segments("cam1")
    assert [s.start - T0 for s in kept] == [timedelta(seconds=s) for s in (2, 3, 4)]
    assert {s.kind for s in kept} == {"event"}
    on_disk = {p.relative_to(index.data_dir).as_posix() for p in index.data_dir.rglob("*.mp4")}
    assert on_disk == {s.path for s in kept}  # the rest of the rolling buffer is gone
    assert index.clip_segments(clip) == kept


KILL_SCRIPT = """
import sys, time
from datetime import datetime, UTC
from vigil.config import CameraConfig, RecordingConfig
from vigil.sources.reader import StreamReader
from vigil.sources.recorder import Recorder
from vigil.store.db import open_store
from vigil.store.recordings import RecordingIndex
video, root = sys.argv[1], sys.argv[2]
index = RecordingIndex(open_store(f"sqlite:///{root}/vigil.db", migrate=False), root)
recorder = Recorder("cam1", index, RecordingConfig(mode="continuous", segment_seconds=60))
reader = StreamReader(CameraConfig(id="cam1", url=video, realtime=True, fps=2), on_packet=recorder.on_packet).start()
print("recording", flush=True)
while True:
    reader.get(0.5)
"""


def test_kill_9_while_recording_leaves_finished_fragments_playable(tmp_path: Path) -> None:
    video = make_h264(tmp_path / "long.mp4", 20, gop=5)  # a fragment every 0.2 s
    root = tmp_path / "data"
    open_index(root)[0].close()
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(video), str(root)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "recording"
        time.sleep(3.0)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    files = list((root / "recordings" / "cam1").rglob("*.mp4"))
    assert len(files) == 1  # the open segment, never closed or indexed
    decode = subprocess.run(["ffmpeg", "-v", "error", "-i", str(files[0]), "-f", "null", "-"], capture_output=True)
    assert decode.returncode == 0 and not decode.stderr.strip()
    frames = int(ffprobe(files[0], "stream=nb_read_frames")["streams"][0]["nb_read_frames"])
    assert 25 <= frames <= 3.5 * 25  # about 2-3 s recorded, whole fragments only
    assert frames % 5 == 0


def test_disk_full_frees_space_pauses_and_resumes(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    video = make_h264(tmp_path / "big.mp4", 8, size="1280x720")
    root = tmp_path / "small-disk"
    root.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(root)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root) to fill a disk")
    store = None
    try:
        url = f"sqlite:///{tmp_path / 'vigil.db'}"
        upgrade(url, "heads")
        store = open_store(url, migrate=False)
        index = RecordingIndex(store, root)
        retention = Retention(index, RetentionPolicy())
        freed: list[int] = []

        def free() -> int:
            freed.append(retention.free_space(1_500_000))
            return freed[-1]

        config = RecordingConfig(mode="continuous", segment_seconds=1)
        recorder = Recorder("cam1", index, config, start_time=T0, free_space=free, resume_after_s=0.0)
        with caplog.at_level(logging.ERROR, logger="vigil.sources.recorder"):
            feed(video, recorder)  # never raises
        assert recorder.last_error == "disk full"
        assert any("disk full" in r.getMessage() and "camera cam1" in r.getMessage() for r in caplog.records)
        assert sum(freed) > 0  # retention deleted the oldest segments
        segments = index.segments("cam1")
        assert segments and segments[-1].end >= T0 + timedelta(seconds=6)  # recording resumed after each pause
        assert all(index.file(s).is_file() for s in segments)
        assert not [fd for fd in open_files() if str(root) in fd]  # failed segments' files were closed
    finally:
        if store is not None:
            store.close()
        subprocess.run(["umount", str(root)], check=False)
