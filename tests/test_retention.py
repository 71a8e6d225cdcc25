"""Retention by age and size, evidence holds, index/disk consistency, data classes; migration 0002 up and down."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select
from test_recording import T0, feed, make_h264, open_index, record_with_reader

from vigil.config import RecordingConfig
from vigil.sources.recorder import Recorder
from vigil.store.db import Base, make_engine
from vigil.store.events import EventStore
from vigil.store.migrations import downgrade, upgrade
from vigil.store.recording_schema import HoldRow, SegmentRow
from vigil.store.recordings import RecordingIndex
from vigil.store.retention import CameraLimits, Retention, RetentionPolicy
from vigil.store.schema import EventRow
from vigil.types import Event

HOUR = timedelta(hours=1)


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_h264(tmp_path_factory.mktemp("video") / "pattern.mp4", 6)


@pytest.fixture
def index(tmp_path: Path, video: Path) -> Iterator[RecordingIndex]:
    """Six 1-second segments of cam1 at T0..T0+6 s."""
    store, index = open_index(tmp_path / "data")
    feed(video, Recorder("cam1", index, RecordingConfig(mode="continuous", segment_seconds=1), start_time=T0))
    assert len(index.segments("cam1")) == 6
    yield index
    store.close()


def starts(index: RecordingIndex) -> list[float]:
    return [(s.start - T0).total_seconds() for s in index.segments("cam1")]


def files(index: RecordingIndex) -> set[str]:
    return {p.relative_to(index.data_dir).as_posix() for p in (index.data_dir / "recordings").rglob("*.mp4")}


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_age_limit_deletes_oldest_and_holds_survive(index: RecordingIndex) -> None:
    policy = RetentionPolicy(cameras={"cam1": CameraLimits(max_age_hours=1)})
    retention = Retention(index, policy, clock=lambda: T0 + HOUR + timedelta(seconds=3))  # cutoff T0+3 s
    hold = retention.add_hold("case-7", "investigator@city", "assault report", at(0.2), at(0.4), camera_id="cam1")
    report = retention.run()
    assert starts(index) == [0, 2, 3, 4, 5]  # [1, 2) went; [0, 1) is held; [2, 3) ends at the cutoff
    assert [(d.data_class, d.reason, d.start) for d in report.deletions] == [("continuous", "age", at(1))]
    assert report.held == 1
    assert files(index) == {s.path for s in index.segments()}
    assert retention.holds() == [hold]
    assert retention.release_hold(hold.id)  # type: ignore[arg-type]
    retention.run()
    assert starts(index) == [2, 3, 4, 5]


def test_size_limit_deletes_oldest_until_under(index: RecordingIndex) -> None:
    sizes = [s.size_bytes for s in index.segments("cam1")]
    limit = sum(sizes) - sizes[0] - sizes[1] // 2  # two oldest must go
    retention = Retention(index, RetentionPolicy(default=CameraLimits(max_size_bytes=limit)))
    report = retention.run()
    assert starts(index) == [2, 3, 4, 5]
    assert report.freed_bytes == sizes[0] + sizes[1]
    assert index.total_size("cam1") <= limit
    assert files(index) == {s.path for s in index.segments()}


def test_size_limit_skips_held_segments(index: RecordingIndex) -> None:
    sizes = [s.size_bytes for s in index.segments("cam1")]
    retention = Retention(index, RetentionPolicy(default=CameraLimits(max_size_bytes=sum(sizes) - sizes[0])))
    retention.add_hold("case-8", "sup", "evidence", at(0), at(0.5))  # every camera
    retention.run()
    assert starts(index) == [0, 2, 3, 4, 5]


def test_reconcile_index_and_disk(index: RecordingIndex) -> None:
    segments = index.segments("cam1")
    index.file(segments[2]).unlink()  # a file lost on disk
    old_orphan = index.data_dir / "recordings/cam1/2024-04-30/235959-000.mp4"
    old_orphan.parent.mkdir(parents=True)
    old_orphan.write_bytes(index.file(segments[0]).read_bytes())
    os.utime(old_orphan, (time.time() - 3600, time.time() - 3600))
    fresh = index.data_dir / "recordings/cam1/2024-05-01/120010-000.mp4"  # e.g. a segment being written
    fresh.write_bytes(b"\0" * 100)
    report = Retention(index, RetentionPolicy(orphan_grace_s=600)).reconcile()
    assert sorted((d.data_class, d.reason) for d in report.deletions) == [
        ("index", "missing-file"),
        ("orphan", "orphan-file"),
    ]
    assert starts(index) == [0, 1, 3, 4, 5]
    assert not old_orphan.exists() and fresh.exists()
    assert files(index) == {s.path for s in index.segments()} | {fresh.relative_to(index.data_dir).as_posix()}


def test_data_class_ages_for_events_snapshots_and_purgers(index: RecordingIndex) -> None:
    events = EventStore(index.store)
    for hours, camera in ((-50, "cam1"), (-49, "cam2"), (-1, "cam1")):
        events.add_event(Event(kind="zone_enter", camera_id=camera, at=T0 + hours * HOUR), outbox=False)
    old_snapshot = index.data_dir / "snapshots/cam2/2024-04-29/e1.jpg"
    new_snapshot = index.data_dir / "snapshots/cam2/2024-05-01/e2.jpg"
    for path in (old_snapshot, new_snapshot):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\xff\xd8\xff\xd9")
    os.utime(old_snapshot, ((T0 - 50 * HOUR).timestamp(),) * 2)
    os.utime(new_snapshot, (T0.timestamp(),) * 2)
    purged: list[datetime] = []

    def purge_sightings(cutoff: datetime, holds: list) -> int:
        purged.append(cutoff)
        return 3

    ages = {"events": 24, "snapshots": 24, "sightings": 12, "event_clips": 1}
    retention = Retention(index, RetentionPolicy(class_ages_hours=ages), purgers={"sightings": purge_sightings},
                          clock=lambda: T0)  # fmt: skip
    retention.add_hold("case-9", "inv", "robbery", T0 - 50 * HOUR - HOUR, T0 - 49 * HOUR - HOUR / 2, "cam1")
    report = retention.run()
    with index.store.session() as session:
        kept = sorted((r.camera_id, r.at) for r in session.scalars(select(EventRow)))
    assert kept == [("cam1", T0 - 50 * HOUR), ("cam1", T0 - HOUR)]  # held one kept, cam2's old one gone
    assert not old_snapshot.exists() and new_snapshot.exists()
    assert purged == [T0 - 12 * HOUR]
    assert {d.data_class for d in report.deletions} == {"events", "snapshots", "sightings"}
    assert starts(index) == [0, 1, 2, 3, 4, 5]  # continuous video has no age limit here
    assert report.to_dict()["deletions"]


def test_free_space_deletes_oldest_first(index: RecordingIndex) -> None:
    import shutil

    sizes = [s.size_bytes for s in index.segments("cam1")]
    free = shutil.disk_usage(index.data_dir).free
    freed = Retention(index, RetentionPolicy()).free_space(free + sizes[0] + sizes[1] // 2)
    assert freed >= sizes[0] + sizes[1] // 2
    assert starts(index)[0] >= 2 and starts(index) == sorted(starts(index))


def test_retention_while_recording_keeps_index_and_disk_consistent(tmp_path: Path) -> None:
    video = make_h264(tmp_path / "v.mp4", 4)
    store, index = open_index(tmp_path / "data")
    retention = Retention(index, RetentionPolicy(default=CameraLimits(max_size_bytes=600_000), orphan_grace_s=60))
    done = threading.Event()
    reports = []

    def keep_deleting() -> None:
        while not done.is_set():
            reports.append(retention.run())
            time.sleep(0.02)

    worker = threading.Thread(target=keep_deleting)
    worker.start()
    try:
        record_with_reader(video, index, RecordingConfig(mode="continuous", segment_seconds=0.5))
    finally:
        done.set()
        worker.join()
    reports.append(retention.run())
    assert files(index) == {s.path for s in index.segments()}  # nothing half-deleted, no orphan left
    assert index.total_size("cam1") <= 600_000
    assert not any(d.reason == "orphan-file" for r in reports for d in r.deletions)  # open segments untouched
    assert sum(len(r.deletions) for r in reports) > 0
    store.close()


# -- migration ------------------------------------------------------------------------------------


def test_migration_0002_up_and_down(db_url: str) -> None:
    upgrade(db_url, "heads")
    engine = make_engine(db_url)
    try:
        names = set(inspect(engine).get_table_names())
        assert {"recording_segments", "holds"} <= names
        with engine.connect() as conn:  # the revision creates exactly what recording_schema describes
            mine = {SegmentRow.__tablename__, HoldRow.__tablename__}
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
            assert [d for d in diff if _table_of(d) in mine] == []
        downgrade(db_url, "0001")
        names = set(inspect(engine).get_table_names())
        assert not {"recording_segments", "holds"} & names and "events" in names
        upgrade(db_url, "heads")
        assert {"recording_segments", "holds"} <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
        downgrade(db_url, "base")


def _table_of(diff: object) -> str | None:
    item = diff[0] if isinstance(diff, list) else diff
    for part in item[1:] if isinstance(item, tuple) else ():
        name = getattr(part, "name", None) if not hasattr(part, "table") else part.table.name
        if name:
            return name
        if isinstance(part, str):
            return part
    return None
