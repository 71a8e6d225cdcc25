"""Segments an unclean stop left unindexed are re-indexed at start (trimmed to their last whole fragment), unreadable
ones quarantined, never deleted as orphans (issue 17 §2); the recorder's status says when recording is paused."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.test_recording import T0, feed, make_h264, open_index
from vigil.assembly import open_services
from vigil.config import RecordingConfig, parse_config
from vigil.events.outbox import EventWriter
from vigil.sources.recorder import Recorder
from vigil.store.events import EventStore
from vigil.store.recordings import RecordingIndex
from vigil.store.recovery import QUARANTINE_DIR, complete_length, recover_segments
from vigil.store.retention import Retention, RetentionPolicy
from vigil.types import Event


@pytest.fixture(scope="module")
def h264(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_h264(tmp_path_factory.mktemp("video") / "pattern.mp4", 7, gop=5)  # a fragment every 0.2 s


@pytest.fixture
def index(tmp_path: Path) -> Iterator[RecordingIndex]:
    store, index = open_index(tmp_path / "data")
    yield index
    store.close()


def decodes_cleanly(path: Path) -> bool:
    run = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"], capture_output=True, text=True)
    return run.returncode == 0 and not run.stderr.strip()


def test_unindexed_segments_are_reindexed_trimmed_or_quarantined(h264: Path, index: RecordingIndex) -> None:
    feed(h264, Recorder("cam1", index, RecordingConfig(mode="continuous", segment_seconds=2), start_time=T0))
    original = index.segments("cam1")
    assert len(original) == 4
    whole, cut, header_only, empty = original
    index.remove(original)  # as if killed before their rows were written
    cut_file = index.file(cut)
    good, fragments = complete_length(cut_file)
    assert good == cut_file.stat().st_size and fragments == 10  # 2 s of 0.2 s fragments
    size = cut_file.stat().st_size
    os.truncate(cut_file, size - 3000)  # killed in the middle of writing the last fragment
    assert not decodes_cleanly(cut_file)
    header_file = index.file(header_only)
    os.truncate(header_file, header_file.read_bytes().index(b"moof") + 100)  # ftyp, moov, part of a fragment
    empty_file = index.file(empty)
    os.truncate(empty_file, empty_file.read_bytes().index(b"moof") - 4)  # ftyp and moov: killed before a fragment

    report = recover_segments(index, {"cam1": RecordingConfig(mode="continuous")})

    assert sorted(report.reindexed) == sorted([whole.path, cut.path])
    assert set(report.trimmed) == {cut.path} and report.trimmed[cut.path] > 0
    assert set(report.quarantined) == {header_only.path}
    assert not header_file.exists() and (index.data_dir / QUARANTINE_DIR / header_only.path).is_file()
    assert report.empty == [empty.path] and not empty_file.exists()
    by_path = {s.path: s for s in index.segments("cam1")}
    assert set(by_path) == {whole.path, cut.path}
    again = by_path[whole.path]
    assert abs((again.start - whole.start).total_seconds()) < 0.002  # media time = the recorder's capture time
    assert abs((again.end - whole.end).total_seconds()) < 0.05 and again.keyframes == whole.keyframes
    trimmed = by_path[cut.path]
    assert abs((trimmed.start - cut.start).total_seconds()) < 0.002
    assert timedelta(seconds=1.5) <= trimmed.end - trimmed.start <= timedelta(seconds=1.85)  # the last fragment cut
    assert trimmed.size_bytes == cut_file.stat().st_size < size
    assert decodes_cleanly(cut_file)  # plays to its end
    assert not recover_segments(index)  # nothing left to do
    # the periodic reconcile no longer sees them as orphans
    old = os.path.getmtime(cut_file) - 3600
    os.utime(cut_file, (old, old))
    assert not Retention(index, RetentionPolicy(orphan_grace_s=60)).reconcile().deletions


def test_events_mode_keeps_only_what_a_stored_event_wants(h264: Path, index: RecordingIndex) -> None:
    feed(h264, Recorder("cam1", index, RecordingConfig(mode="continuous", segment_seconds=2), start_time=T0))
    segments = index.segments("cam1")
    index.remove(segments)
    EventWriter(EventStore(index.store)).write(Event("zone_enter", "cam1", T0 + timedelta(seconds=4.5)))
    config = RecordingConfig(mode="events", pre_roll_s=0.2, post_roll_s=0.2)  # keeps [4.3, 4.7]

    report = recover_segments(index, {"cam1": config})

    assert report.reindexed == [segments[2].path]
    assert sorted(report.discarded) == sorted(s.path for i, s in enumerate(segments) if i != 2)
    assert [(s.path, s.kind) for s in index.segments()] == [(segments[2].path, "event")]
    assert {p.relative_to(index.data_dir).as_posix() for p in index.data_dir.rglob("*.mp4")} == {segments[2].path}


def test_services_start_reindexes_before_retention(h264: Path, tmp_path: Path) -> None:
    data = tmp_path / "node"
    config = parse_config({"data_dir": str(data), "cameras": [
        {"id": "cam1", "url": str(h264), "recording": {"mode": "continuous", "segment_seconds": 2}}]})
    store, index = open_index(data)
    feed(h264, Recorder("cam1", index, config.cameras[0].recording, start_time=T0))
    left = index.segments("cam1")
    index.remove(left)
    store.close()
    for segment in left:  # older than retention's orphan grace: it would have deleted them
        os.utime(index.file(segment), (1e9, 1e9))
    services = open_services(config).start()
    try:
        assert services.recovery is not None and len(services.recovery.reindexed) == len(left)
        assert [s.path for s in services.recordings.segments("cam1")] == [s.path for s in left]
    finally:
        services.close()


def test_status_says_paused_until_a_write_succeeds(h264: Path, index: RecordingIndex) -> None:
    recorder = Recorder("cam1", index, RecordingConfig(mode="continuous", segment_seconds=2), start_time=T0,
                        resume_after_s=0.0)
    assert recorder.status() == "recording"
    recorder._pause(OSError(errno.ENOSPC, "No space left on device"))
    assert recorder.status() == "paused (disk full)"
    feed(h264, recorder)
    assert recorder.status() == "recording" and index.segments("cam1")
    assert Recorder("cam2", index, RecordingConfig(mode="off")).status() == "off"


def test_full_disk_keeps_the_interrupted_segment_up_to_its_last_fragment(h264: Path, tmp_path: Path) -> None:
    root = tmp_path / "small-disk"
    root.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(root)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root) to fill a disk")
    store = None
    try:
        store = open_index(tmp_path / "db")[0]  # the database off the small disk
        index = RecordingIndex(store, root)
        recorder = Recorder("cam1", index, RecordingConfig(mode="continuous", segment_seconds=60), start_time=T0,
                            resume_after_s=3600)  # stays paused: the disk is never freed
        feed(h264, recorder)  # 1.9 MB of video for 600 KB
        assert recorder.status() == "paused (disk full)" and recorder.pauses == 1
        kept = index.segments("cam1")
        assert len(kept) == 1 and kept[0].start == T0
        assert timedelta(seconds=0.5) < kept[0].end - T0 < timedelta(seconds=3)  # what fitted, whole fragments
        assert kept[0].size_bytes == index.file(kept[0]).stat().st_size
        assert decodes_cleanly(index.file(kept[0]))
        assert [p.name for p in root.rglob("*.mp4")] == [Path(kept[0].path).name]  # nothing half-written left
    finally:
        if store is not None:
            store.close()
        subprocess.run(["umount", str(root)], check=False)
