"""Camera leases with fencing, on SQLite and on the real PostgreSQL: one holder at a time, takeover only after
expiry, renewal tells a worker what it lost, and the store refuses a stale holder's late events."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest

from vigil.cluster.leases import SAFETY_MARGIN_S, CameraLeases, lease_table
from vigil.events.outbox import EventWriter
from vigil.store.db import Store
from vigil.store.events import EventStore
from vigil.types import Event

TTL = 2.5


def test_one_holder_at_a_time_and_takeover_only_after_expiry(store: Store) -> None:
    a, b = CameraLeases(store, "node-a", TTL), CameraLeases(store, "node-b", TTL)
    first = a.acquire("cam-1")
    assert first is not None and first.token == 1
    assert b.acquire("cam-1") is None  # held and unexpired
    assert a.acquire("cam-1").token == 1  # re-acquiring one's own lease keeps the token
    assert a.valid("cam-1") and not b.valid("cam-1")
    time.sleep(TTL + 0.3)  # a stops renewing (a lost node)
    assert not a.valid("cam-1")  # its own deadline passed before the database's expiry
    taken = b.acquire("cam-1")
    assert taken is not None and taken.token == 2  # a new holder: the fencing token grows
    assert a.renew() == {"cam-1"}  # a learns that it lost the camera
    assert "cam-1" not in a.held
    assert [row["holder"] for row in lease_table(store)] == [b.holder]


def test_renewal_keeps_a_lease_and_release_frees_it(store: Store) -> None:
    a, b = CameraLeases(store, "node-a", TTL), CameraLeases(store, "node-b", TTL)
    a.acquire("cam-1")
    a.acquire("cam-2")
    for _ in range(3):  # renewed past its first TTL
        time.sleep(TTL / 3)
        assert a.renew() == set()
    assert b.acquire("cam-1") is None
    deadline = a.held["cam-1"].valid_until - time.monotonic()
    assert TTL - SAFETY_MARGIN_S - 0.5 < deadline <= TTL - SAFETY_MARGIN_S
    a.release(["cam-1"])
    assert b.acquire("cam-1") is not None  # at once, without waiting for expiry
    assert set(a.held) == {"cam-2"}


def test_only_one_of_many_racing_workers_gets_the_camera(store: Store) -> None:
    workers = [CameraLeases(store, f"node-{i}", TTL) for i in range(6)]
    won: list[str] = []
    barrier = threading.Barrier(len(workers))

    def race(worker: CameraLeases) -> None:
        barrier.wait()
        if worker.acquire("cam-1") is not None:
            won.append(worker.holder)

    threads = [threading.Thread(target=race, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1


def test_the_store_refuses_a_stale_holders_events_after_the_takeover(store: Store) -> None:
    """A worker paused past its lease (GC, SIGSTOP) wakes up and writes: what it saw before the new holder took
    over is kept, what it 'saw' after is refused; cameras without a lease are not fenced (one box)."""
    events = EventStore(store)
    stale, fresh = CameraLeases(store, "node-a", TTL), CameraLeases(store, "node-b", TTL)
    stale.acquire("cam-1")
    before = datetime.now(UTC)
    time.sleep(TTL + 0.3)
    fresh.acquire("cam-1")
    after = datetime.now(UTC)
    writer = EventWriter(events, fence=stale.fence)
    writer.write_many([Event("zone_enter", "cam-1", before, id="e-before"),
                       Event("zone_enter", "cam-1", after, id="e-after"),
                       Event("zone_enter", "cam-free", after, id="e-free")])
    stored = {r.event.id for r in events.list_events(limit=10).items}
    assert stored == {"e-before", "e-free"}
    EventWriter(events, fence=fresh.fence).write(Event("zone_enter", "cam-1", after, id="e-new-holder"))
    assert "e-new-holder" in {r.event.id for r in events.list_events(limit=10).items}


def test_a_ttl_too_short_for_the_margin_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="too short"):
        CameraLeases(store, "node-a", 1.5)
