"""Snapshots: JPEG with the track's box, dated path, atomic write, and a full disk (a real 64 KiB tmpfs)."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from vigil.paths import data_root
from vigil.store.snapshots import SnapshotStore

AT = datetime(2024, 5, 1, 23, 59, 59, tzinfo=UTC)


def frame() -> np.ndarray:
    video = data_root() / "video" / "vtest.avi"
    if video.is_file():
        capture = cv2.VideoCapture(str(video))
        ok, image = capture.read()
        capture.release()
        if ok:
            return image
    rng = np.random.default_rng(0)  # no test data: a generated textured picture
    return cv2.GaussianBlur(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8), (9, 9), 0)


def test_event_snapshot_has_box_and_dated_path(tmp_path: Path) -> None:
    snapshots = SnapshotStore(tmp_path)
    image = frame()
    box = (100.0, 80.0, 220.0, 300.0)
    relative = snapshots.save_event("cam1", "01abc", AT, image, box=box, label="person 7")
    assert relative == "snapshots/cam1/2024-05-01/01abc.jpg"
    saved = cv2.imread(str(tmp_path / relative))
    assert saved.shape == image.shape
    edge = saved[150:250, 99:102].astype(int)  # the left edge of the box is drawn red
    assert (edge[..., 2] > 180).mean() > 0.8 and (edge[..., 0] < 90).mean() > 0.8
    untouched = np.abs(saved[400:440, 500:540].astype(int) - image[400:440, 500:540].astype(int)).mean()
    assert untouched < 8  # elsewhere only JPEG noise
    assert [p.name for p in (tmp_path / "snapshots/cam1/2024-05-01").iterdir()] == ["01abc.jpg"]  # no temp left
    thumb = snapshots.save_thumbnail("cam1", 7, AT, image[80:300, 100:220])
    assert thumb == "thumbnails/cam1/2024-05-01/7-235959.jpg" and snapshots.path(thumb).is_file()


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "tiny"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill ({result.stderr.decode().strip()}); needs root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_full_disk_is_one_log_line_and_no_snapshot(tiny_disk: Path, caplog: pytest.LogCaptureFixture) -> None:
    snapshots = SnapshotStore(tiny_disk, quality=100)
    noise = np.random.default_rng(1).integers(0, 255, (400, 400, 3), dtype=np.uint8)  # ~200 KiB as JPEG
    with caplog.at_level(logging.ERROR, logger="vigil.store.snapshots"):
        assert snapshots.save_event("cam1", "01full", AT, noise) is None
    assert [r.getMessage() for r in caplog.records] == [
        f"snapshot for event 01full on camera cam1 not saved: disk full at {tiny_disk}; the event is kept without it"
    ]
    assert snapshots.failures == 1
    assert list((tiny_disk / "snapshots/cam1/2024-05-01").iterdir()) == []  # the partial temp file is removed
    small = snapshots.save_event("cam1", "01small", AT, np.zeros((32, 32, 3), np.uint8))
    assert small == "snapshots/cam1/2024-05-01/01small.jpg"  # space is back after the failed write


def test_full_disk_is_logged_once_per_outage(tiny_disk: Path, caplog: pytest.LogCaptureFixture) -> None:
    snapshots = SnapshotStore(tiny_disk, quality=100)
    noise = np.random.default_rng(2).integers(0, 255, (400, 400, 3), dtype=np.uint8)
    with caplog.at_level(logging.WARNING, logger="vigil.store.snapshots"):
        for i in range(3):
            assert snapshots.save_event("cam1", f"01full{i}", AT, noise) is None
        assert snapshots.save_event("cam1", "01small", AT, np.zeros((32, 32, 3), np.uint8)) is not None
        assert snapshots.save_event("cam1", "01full9", AT, noise) is None  # a new outage: logged again
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3 and snapshots.failures == 4
    assert "01full0" in messages[0] and "disk full" in messages[0]
    assert messages[1] == f"snapshots are saved again at {tiny_disk} (3 not saved while the disk was full)"
    assert "01full9" in messages[2]
