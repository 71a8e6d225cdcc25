"""Outbox: persisted first, then published; bus and database outages delay events but lose none (DESIGN §7).

Runs on SQLite and on real PostgreSQL. The database outage is real: PostgreSQL refuses connections to the
throw-away database (ALLOW_CONNECTIONS false, backends terminated); SQLite is held under an exclusive lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import create_engine, make_url, select, text

from vigil.events.bus import BusUnavailable, InProcessBus
from vigil.events.outbox import EventWriter, OutboxRelay
from vigil.events.store_sink import StoreSink
from vigil.store.db import Store, StoreError, open_store, temporary_database
from vigil.store.events import EventStore
from vigil.store.migrations import downgrade
from vigil.store.schema import OutboxRow
from vigil.types import CountSample, Event

PG_SERVER = os.environ.get("VIGIL_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    try:
        with temporary_database(PG_SERVER) as url:
            yield make_url(url).set(password="hunter2").render_as_string(hide_password=False)  # trust auth ignores it
    except StoreError as exc:
        pytest.skip(f"PostgreSQL not reachable ({exc}); set VIGIL_TEST_POSTGRES")


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path) -> Iterator[Store]:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'vigil.db'}"
    else:
        url = request.getfixturevalue("pg_url")
        downgrade(url)
    with open_store(url, timeout_s=0.3) as opened:
        yield opened


class SwitchableBus(InProcessBus):
    """The real in-process bus, with a switch that makes it refuse publishes (a bus outage)."""

    def __init__(self) -> None:
        super().__init__(queue_size=10_000)
        self.down = False
        self.refused = 0

    async def publish(self, event: Event) -> None:
        if self.down:
            self.refused += 1
            raise BusUnavailable("bus down (test outage)")
        await super().publish(event)


@contextlib.contextmanager
def database_outage(store: Store) -> Iterator[None]:
    """Make the store's database refuse writes (SQLite) or connections (PostgreSQL) for the block."""
    url = store.engine.url
    if store.dialect == "sqlite":
        locker = sqlite3.connect(url.database, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        return
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    name = url.database
    try:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"), {"n": name})
        yield
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        admin.dispose()


def outbox_order(store: Store) -> list[str]:
    with store.session() as session:
        return list(session.scalars(select(OutboxRow.event_id).order_by(OutboxRow.id)))


def make_events(n: int, start: int = 0) -> list[Event]:
    return [Event("zone_enter", "cam1", T0 + timedelta(seconds=start + i), payload={"n": start + i}) for i in range(n)]


async def collect(sub, n: int, timeout: float = 10.0) -> list[Event]:  # type: ignore[no-untyped-def]
    out: list[Event] = []
    async with asyncio.timeout(timeout):
        async for event in sub:
            out.append(event)
            if len(out) == n:
                break
    return out


def test_bus_outage_loses_nothing_and_keeps_order(store: Store) -> None:
    async def scenario() -> None:
        bus = SwitchableBus()
        received = bus.subscribe()
        relay = OutboxRelay(store, bus, poll_interval_s=0.05, max_backoff_s=0.2)
        writer = EventWriter(EventStore(store), on_written=relay.notify)
        stop = asyncio.Event()
        task = asyncio.create_task(relay.run(stop))
        events = make_events(60)
        for event in events[:20]:
            assert await asyncio.to_thread(writer.write, event)
        await asyncio.sleep(0.2)
        bus.down = True
        for event in events[20:50]:
            assert await asyncio.to_thread(writer.write, event)  # persisted even though the bus is down
        await asyncio.sleep(0.6)  # the relay keeps retrying meanwhile
        assert bus.refused >= 2
        assert relay.pending() == 30
        bus.down = False
        for event in events[50:]:
            await asyncio.to_thread(writer.write, event)
        got = await collect(received, 60)
        stop.set()
        await task
        assert [e.id for e in got] == [e.id for e in events]  # all, once, in order
        assert [e.payload["n"] for e in got] == list(range(60))
        assert relay.pending() == 0 and relay.published == 60
        await asyncio.sleep(0.1)
        assert received.pending == 0  # nothing published twice
        with store.session() as session:
            retried = session.scalar(select(OutboxRow.attempts).where(OutboxRow.event_id == events[20].id))
        assert retried is not None and retried >= 2

    asyncio.run(scenario())


def test_database_outage_buffers_in_memory_then_writes_in_order(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    writer = EventWriter(EventStore(store), retry_interval_s=60.0)
    events = make_events(26)
    for event in events[:5]:
        assert writer.write(event)
    with caplog.at_level(logging.ERROR, logger="vigil.events.outbox"), database_outage(store):
        for event in events[5:25]:
            assert not writer.write(event)  # only the first tries the database: retries wait retry_interval_s
        assert writer.buffered == 20
        assert writer.flush() == 0
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors  # one clear line per outage, not one per event
    assert store.url.split("@")[-1] in errors[0] and "hunter2" not in errors[0]
    assert writer.flush() == 20  # database back: the buffer is written in order
    assert writer.write(events[25])
    assert writer.buffered == 0 and writer.dropped == 0
    assert outbox_order(store) == [e.id for e in events]

    async def publish() -> list[Event]:
        bus = InProcessBus()
        sub = bus.subscribe()
        assert await OutboxRelay(store, bus).publish_pending() == 26
        return await collect(sub, 26)

    assert [e.id for e in asyncio.run(publish())] == [e.id for e in events]


def test_full_buffer_drops_oldest_and_counts(store: Store) -> None:
    writer = EventWriter(EventStore(store), max_buffer=5, retry_interval_s=60.0)
    events = make_events(8)
    with database_outage(store):
        for event in events:
            writer.write(event)
    assert writer.dropped == 3
    assert writer.flush() == 5
    assert outbox_order(store) == [e.id for e in events[3:]]


def test_relay_publishes_at_once_when_the_database_is_back(store: Store) -> None:
    """Through a database outage the relay backs off (here up to 30 s); the writer's first success after it
    wakes the relay, so the outbox is published then, not at the end of the relay's backoff."""
    if store.dialect == "sqlite":
        pytest.skip("an exclusive SQLite lock does not block the relay's reads (WAL): it never backs off")

    async def scenario() -> list[Event]:
        bus = InProcessBus()
        sub = bus.subscribe()
        relay = OutboxRelay(store, bus, poll_interval_s=0.05, max_backoff_s=30.0)
        writer = EventWriter(EventStore(store), retry_interval_s=0.05, on_written=relay.notify)
        relay.writer = writer
        stop = asyncio.Event()
        task = asyncio.create_task(relay.run(stop))
        events = make_events(4)
        await asyncio.sleep(0.1)
        with database_outage(store):
            for event in events[:3]:
                await asyncio.to_thread(writer.write, event)
            await asyncio.sleep(3.5)  # the relay's backoff is at 3.2 or 6.4 s by now
        await asyncio.to_thread(writer.write, events[3])  # succeeds: the buffered events and this one
        got = await collect(sub, 4, timeout=1.0)
        stop.set()
        await task
        return got

    assert [e.payload["n"] for e in asyncio.run(scenario())] == [0, 1, 2, 3]


def test_store_sink_keeps_events_and_counts_what_an_outage_costs(store: Store,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    """During an outage the sink's events wait in the writer; the live counts it cannot store are counted and
    logged once, not raised on every frame."""
    writer = EventWriter(EventStore(store), retry_interval_s=0.0)
    sink = StoreSink(EventStore(store), writer, snapshots=None)

    def result(i: int) -> SimpleNamespace:
        return SimpleNamespace(
            camera=SimpleNamespace(id="cam1"), frame=None,
            update=SimpleNamespace(active=[], ended=[]),
            output=SimpleNamespace(events=make_events(1, start=i),
                                   counts=[CountSample("cam1", T0 + timedelta(seconds=i), None, "person", 2)]))

    with caplog.at_level(logging.ERROR, logger="vigil.events.store_sink"), database_outage(store):
        for i in range(3):
            sink(result(i))  # type: ignore[arg-type]
    assert sink.counts_lost == 3 and writer.buffered == 3
    assert len([r for r in caplog.records if r.name == "vigil.events.store_sink"]) == 1
    sink(result(3))  # type: ignore[arg-type]
    assert writer.buffered == 0 and len(outbox_order(store)) == 4 and sink.counts_lost == 3


class RecordingBus(InProcessBus):
    """Keeps the ids it was asked to publish, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []

    async def publish(self, event: Event) -> None:
        self.ids.append(event.id)
        await super().publish(event)


def test_cluster_relays_publish_their_own_rows_then_a_dead_writers(store: Store) -> None:
    """Workers share one outbox: each relay publishes what its own writer stored (not every row once per worker),
    and rows a dead worker left behind once they are older than ``orphan_after_s``."""
    events = EventStore(store)
    writers = {name: EventWriter(events) for name in ("a", "b", "dead")}
    for name, writer in writers.items():
        writer.origin = name
        writer.write_many([Event("zone_enter", f"cam-{name}", T0, id=f"{name}-{i}") for i in range(3)])
    relays = {}
    for name in ("a", "b"):
        relays[name] = OutboxRelay(store, RecordingBus(), orphan_after_s=1.0)
        relays[name].origin = name
        asyncio.run(relays[name].publish_pending())
    assert relays["a"].bus.ids == ["a-0", "a-1", "a-2"]
    assert relays["b"].bus.ids == ["b-0", "b-1", "b-2"]
    assert relays["a"].pending() == 3  # the dead worker's rows wait ...
    time.sleep(1.2)
    asyncio.run(relays["a"].publish_pending())  # ... until they are orphans, then any relay takes them
    assert relays["a"].bus.ids[3:] == ["dead-0", "dead-1", "dead-2"]
    assert relays["a"].pending() == 0


def test_a_batching_sink_writes_a_whole_step_in_one_transaction_each(store: Store) -> None:
    """A node's step over many cameras: with ``batching`` (what ``Services.attach`` sets), nothing is written per
    camera; ``flush`` at the step's end writes every camera's events in one transaction and counts in another."""
    from sqlalchemy import event as sa_event

    writer = EventWriter(EventStore(store))
    sink = StoreSink(EventStore(store), writer, snapshots=None)
    sink.batching = True
    commits: list[int] = []
    sa_event.listen(store.engine, "commit", lambda _conn: commits.append(1))
    for i in range(12):  # twelve cameras, one frame each
        sink(SimpleNamespace(  # type: ignore[arg-type]
            camera=SimpleNamespace(id=f"cam{i}"), frame=None, update=SimpleNamespace(active=[], ended=[]),
            output=SimpleNamespace(events=make_events(2, start=2 * i),
                                   counts=[CountSample(f"cam{i}", T0, None, "person", i)])))
    assert commits == []
    assert outbox_order(store) == []
    commits.clear()  # that query's own session
    sink.flush()
    assert len(commits) == 2  # events with their outbox rows, then the counts
    assert len(outbox_order(store)) == 24
