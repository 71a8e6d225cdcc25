"""Store: migrations up/down, events with handling, tracks and counts — on SQLite and on real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from vigil.store.db import (
    Base,
    EventNotFound,
    Store,
    StoreError,
    make_engine,
    open_store,
    resolve_database_url,
)
from vigil.store.events import EventStore, TrackSummary, downsample, summarise_track
from vigil.store.migrations import current_revisions, downgrade, head_revisions, load_schemas, upgrade
from vigil.types import CountSample, Event, Track

TABLES = {"events", "event_comments", "tracks", "counts", "outbox"}
T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def flatten(diff: object) -> list[object]:
    """Every leaf of an Alembic diff entry (tuples, lists, tables, columns) to find the tables it touches."""
    if isinstance(diff, tuple | list):
        return [leaf for part in diff for leaf in flatten(part)]
    table = getattr(diff, "table", None)
    return [diff, getattr(diff, "name", None), getattr(table, "name", None)]


def tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_migrations_up_and_down(db_url: str) -> None:
    upgrade(db_url)
    assert tables(db_url) >= TABLES
    load_schemas()
    engine = make_engine(db_url)
    try:
        assert current_revisions(engine) == head_revisions()
        with engine.connect() as conn:  # the migration creates exactly what the ORM describes (for these tables)
            diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
        assert [d for d in diffs if TABLES & set(map(str, flatten(d)))] == []
    finally:
        engine.dispose()
    downgrade(db_url)
    assert tables(db_url) == set()
    upgrade(db_url, "0001")  # and up again, to the first revision only
    assert tables(db_url) == TABLES


def test_relative_sqlite_path_is_resolved_against_data_dir(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = resolve_database_url("sqlite:///vigil.db", tmp_path / "data")
    assert url == f"sqlite:///{tmp_path / 'data' / 'vigil.db'}"
    with open_store("sqlite:///vigil.db", data_dir=tmp_path / "data") as store:
        EventStore(store).add_event(Event("zone_enter", "cam1", T0))
    assert (tmp_path / "data" / "vigil.db").is_file()
    assert resolve_database_url("postgresql://u:pw@db/vigil").startswith("postgresql+psycopg://u:pw@db/")


def test_unreachable_database_is_one_line_error_without_password() -> None:
    with pytest.raises(StoreError) as err:
        open_store("postgresql://vigil:s3cret@127.0.0.1:1/vigil")
    message = str(err.value)
    assert "s3cret" not in message and "127.0.0.1:1/vigil" in message and "\n" not in message
    with pytest.raises(StoreError, match="unsupported backend"):
        resolve_database_url("mysql://x@y/z")


def test_event_round_trip_and_outbox_row_in_same_transaction(store: Store) -> None:
    events = EventStore(store)
    event = Event(
        "line_cross", "cam-1", T0, "warning", track_id=7, label="person", zone="gate",
        payload={"direction": "in", "speed": np.float32(1.5), "box": np.array([1, 2, 3, 4])},
    )  # fmt: skip
    events.add_event(event)
    events.add_event(event)  # the same id again is ignored
    record = events.get_event(event.id)
    assert record.status == "open"
    assert record.event.at == T0 and record.event.at.tzinfo is not None
    assert record.event.payload == {"direction": "in", "speed": 1.5, "box": [1, 2, 3, 4]}
    assert (record.event.kind, record.event.track_id, record.event.zone) == ("line_cross", 7, "gate")
    with store.session() as session:
        assert session.scalar(text("SELECT count(*) FROM outbox WHERE event_id = :i"), {"i": event.id}) == 1
    with pytest.raises(EventNotFound, match="nope"):
        events.get_event("nope")


def test_list_events_filters_and_pages(store: Store) -> None:
    events = EventStore(store)
    batch = [
        Event(kind, cam, T0 + timedelta(seconds=i), severity="critical" if i % 5 == 0 else "info")
        for i in range(30)
        for kind, cam in [(("zone_enter", "loitering")[i % 2], ("cam1", "cam2", "cam3")[i % 3])]
    ]
    events.add_events(batch)
    assert events.count_events() == 30
    assert events.count_events(cameras=["cam1"]) == 10
    assert events.count_events(kinds=["loitering"], cameras=["cam1", "cam2"]) == 10
    assert events.count_events(severities=["critical"]) == 6
    window = events.list_events(start=T0 + timedelta(seconds=10), end=T0 + timedelta(seconds=20), limit=100)
    assert [r.event.at for r in window.items] == [T0 + timedelta(seconds=s) for s in range(19, 9, -1)]
    seen, cursor, pages = [], None, 0
    while True:
        page = events.list_events(cameras=["cam2", "cam3"], limit=7, cursor=cursor)
        seen += [r.event.id for r in page.items]
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    expected = [e.id for e in sorted(batch, key=lambda e: e.at, reverse=True) if e.camera_id != "cam1"]
    assert seen == expected and pages == 3
    with pytest.raises(StoreError, match="cursor"):
        events.list_events(cursor="garbage")


def test_acknowledge_resolve_comment(store: Store) -> None:
    events = EventStore(store)
    event = Event("loitering", "cam1", T0)
    events.add_event(event)
    acked = events.acknowledge(event.id, "alice")
    assert (acked.status, acked.acknowledged_by) == ("acknowledged", "alice")
    assert acked.acknowledged_at is not None and acked.acknowledged_at.tzinfo is not None
    events.add_comment(event.id, "alice", "sent a patrol")
    resolved = events.resolve(event.id, "bob", note="false alarm: a delivery")
    assert (resolved.status, resolved.resolved_by, resolved.acknowledged_by) == ("resolved", "bob", "alice")
    assert [(c.author, c.text) for c in events.comments(event.id)] == [
        ("alice", "sent a patrol"),
        ("bob", "false alarm: a delivery"),
    ]
    assert events.count_events(statuses=["resolved"]) == 1 and events.count_events(statuses=["open"]) == 0
    with pytest.raises(EventNotFound):
        events.acknowledge("missing", "alice")
    with pytest.raises(StoreError, match="empty"):
        events.add_comment(event.id, "alice", "  ")


def test_track_summaries(store: Store) -> None:
    events = EventStore(store)
    track = Track("cam1", 4, "person", T0, T0 + timedelta(seconds=40), trajectory=[(i, 2 * i) for i in range(100)])
    track.attributes["colour"] = "red"
    summary = summarise_track(track, zones=["door", "hall", "door"], thumbnail="thumbnails/cam1/x.jpg")
    assert len(summary.path) == 32 and summary.path[0] == (0, 0) and summary.path[-1] == (99, 198)
    events.save_track(summary)
    summary.last_seen = T0 + timedelta(seconds=60)
    events.save_track(summary)  # same track updated, not duplicated
    events.save_track(TrackSummary("cam1", 4, "car", T0 + timedelta(hours=1), T0 + timedelta(hours=1, seconds=5)))
    events.save_track(TrackSummary("cam2", 1, "person", T0, T0 + timedelta(seconds=5)))
    found = events.tracks(cameras=["cam1"], start=T0, end=T0 + timedelta(minutes=30))
    assert len(found) == 1
    assert (found[0].colour, found[0].zones, found[0].last_seen) == (
        "red",
        ["door", "hall"],
        T0 + timedelta(seconds=60),
    )
    assert found[0].path == summary.path
    assert [t.label for t in events.tracks(cameras=["cam1"])] == ["car", "person"]
    assert len(events.tracks(labels=["person"])) == 2
    assert downsample([(0, 0), (1, 1)], 32) == [(0.0, 0.0), (1.0, 1.0)]


def test_counts_over_time_per_zone(store: Store) -> None:
    events = EventStore(store)
    samples = [CountSample("cam1", T0 + timedelta(seconds=s), "door", "person", s // 60 + 1) for s in range(180)]
    samples += [CountSample("cam1", T0 + timedelta(seconds=s), None, "person", 10) for s in range(0, 180, 2)]
    samples += [CountSample("cam2", T0 + timedelta(seconds=s), "door", "person", 99) for s in range(10)]
    assert events.add_counts(samples) == 280
    door = events.counts_over_time("cam1", T0, T0 + timedelta(minutes=3), bucket_s=60, zones=["door"])
    assert [(b.start, b.max, b.mean, b.samples) for b in door] == [
        (T0 + timedelta(minutes=m), m + 1, float(m + 1), 60) for m in range(3)
    ]
    whole = events.counts_over_time("cam1", T0, T0 + timedelta(minutes=3), bucket_s=90, zones=[None])
    assert [(b.zone, b.max, b.samples) for b in whole] == [(None, 10, 45), (None, 10, 45)]
    both = events.counts_over_time("cam1", T0, T0 + timedelta(seconds=60), bucket_s=60)
    assert sorted((b.zone or "", b.samples) for b in both) == [("", 30), ("door", 60)]


def test_workers_starting_together_migrate_a_new_database_once(fresh_pg_url: str) -> None:
    """A cluster's workers open the new shared database at the same moment: each waits for the migration lock
    instead of racing to create the same tables (which failed with a duplicate pg_type key)."""
    import threading

    errors: list[Exception] = []

    def open_it() -> None:
        try:
            open_store(fresh_pg_url).close()
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
