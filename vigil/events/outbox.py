"""The outbox (DESIGN §7): events are persisted first, then published; outages delay them, never lose them.

- ``EventWriter.write(event)`` stores the event row and its outbox row in one transaction. If the database is
  unreachable it keeps the event in a bounded in-memory buffer, logs one line naming the database (password
  hidden) and retries, in order, on the next write or ``flush()``.
- ``OutboxRelay.run()`` publishes outbox rows to the bus in id order and sets ``published_at`` only after the bus
  accepted each one. While the bus is down the rows stay; they go out, in order, once it is back.

Delivery is at least once: a crash between the bus's acceptance and ``published_at`` republishes that event
(``NatsBus`` drops such repeats by message id). Run one relay per database.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import timedelta

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from vigil.events.bus import Bus
from vigil.events.codec import CodecError, decode_event
from vigil.store.db import Store, utcnow
from vigil.store.events import EventStore
from vigil.store.schema import OutboxRow
from vigil.types import Event

log = logging.getLogger(__name__)

#: outbox rows published at once, their acknowledgements awaited together
PUBLISH_WINDOW = 50


def is_outage(exc: BaseException) -> bool:
    """True for errors that mean 'the database is not reachable now' (worth retrying), not bad data."""
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    return lines[0] if lines else type(orig).__name__


class EventWriter:
    """Persists events with their outbox rows; buffers them in memory while the database is down. Thread-safe.

    When more than ``max_buffer`` events wait, the oldest is dropped and counted in ``dropped`` (logged).
    """

    def __init__(
        self,
        events: EventStore,
        max_buffer: int = 100_000,
        retry_interval_s: float = 1.0,
        on_written: Callable[[], None] | None = None,
        fence: Callable[[Session, Sequence[Event]], list[Event]] | None = None,
    ) -> None:
        """``fence``: a cluster worker's ``CameraLeases.fence``, applied inside each write's transaction;
        ``origin``: the name its outbox rows carry, for its own relay (``OutboxRelay(origin=)``)."""
        self.events = events
        self.fence = fence
        self.origin: str | None = None
        self.max_buffer = max_buffer
        self.retry_interval_s = retry_interval_s
        self.on_written = on_written  # e.g. OutboxRelay.notify
        self.written = 0
        self.dropped = 0
        self._buffer: collections.deque[Event] = collections.deque()
        self._lock = threading.Lock()
        self._next_retry = 0.0
        self._down_since: float | None = None

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def write(self, event: Event) -> bool:
        """Persist ``event`` (after any buffered ones). True if it is in the database, False if buffered."""
        return self.write_many([event])

    def write_many(self, events: Sequence[Event]) -> bool:
        with self._lock:
            for event in events:
                if len(self._buffer) >= self.max_buffer:
                    self._buffer.popleft()
                    self.dropped += 1
                    log.error("database %s: event buffer full, dropped the oldest (%d so far)", self._db, self.dropped)
                self._buffer.append(event)
            if self._down_since is not None and time.monotonic() < self._next_retry:
                return False
            return self._flush_locked() and not self._buffer

    def flush(self) -> int:
        """Retry the buffered events now; returns how many were written."""
        with self._lock:
            before = len(self._buffer)
            self._flush_locked()
            return before - len(self._buffer)

    @property
    def _db(self) -> str:
        return self.events.store.url

    def _flush_locked(self, chunk: int = 500) -> bool:
        while self._buffer:
            batch = [self._buffer[i] for i in range(min(chunk, len(self._buffer)))]
            try:
                self.events.add_events(batch, fence=self.fence, origin=self.origin)
            except Exception as exc:
                if not is_outage(exc):
                    raise
                if self._down_since is None:
                    self._down_since = time.monotonic()
                    log.error(
                        "database %s unreachable (%s): keeping events in memory and retrying", self._db, _reason(exc)
                    )
                self._next_retry = time.monotonic() + self.retry_interval_s
                return False
            for _ in batch:
                self._buffer.popleft()
            self.written += len(batch)
            if self._down_since is not None:
                log.warning(
                    "database %s is back after %.0f s: buffered events written",
                    self._db,
                    time.monotonic() - self._down_since,
                )
                self._down_since = None
            if self.on_written is not None:
                self.on_written()
        return True


class OutboxRelay:
    """Publishes the outbox to a bus, in order, marking each row once the bus accepted it."""

    def __init__(
        self,
        store: Store,
        bus: Bus,
        writer: EventWriter | None = None,
        batch_size: int = 200,
        poll_interval_s: float = 0.5,
        max_backoff_s: float = 10.0,
        keep_published_s: float = 3600.0,
        orphan_after_s: float = 30.0,
    ) -> None:
        """In a cluster each worker's relay publishes the rows its writer stored (``origin``), and any row left
        unpublished for ``orphan_after_s`` (a worker that died): relays racing over one shared outbox published
        every row once per worker (measured: 3.7 publishes per event with four workers, alerts 89 s late)."""
        self.origin: str | None = None
        self.orphan_after_s = orphan_after_s
        self.store = store
        self.bus = bus
        self.writer = writer
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        self.max_backoff_s = max_backoff_s
        self.keep_published_s = keep_published_s
        self.published = 0
        self.failures = 0
        self._wake: asyncio.Event | None = None
        self._bus_back: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._bus_down = False
        #: one publisher at a time: the final drain on close runs beside the relay loop, and two passes over the
        #: same unpublished rows would publish them twice (the in-process bus does not drop repeats)
        self._publishing = asyncio.Lock()

    def notify(self) -> None:
        """Wake the relay: new rows are in the outbox. Safe to call from any thread."""
        if self._loop is not None and self._wake is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                self._loop.call_soon_threadsafe(self._wake.set)

    def bus_reconnected(self) -> None:
        """Wake the relay out of its backoff: the bus is back (``NatsBus.on_reconnected``). Any thread."""
        if self._loop is not None and self._bus_back is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._bus_back.set)

    def pending(self) -> int:
        """Rows not yet published."""
        with self.store.session() as session:
            return int(session.scalar(select(func.count()).where(OutboxRow.published_at.is_(None))) or 0)

    def oldest_pending_age_s(self) -> float | None:
        """Seconds since the oldest unpublished row was written; None when every row is published."""
        query = select(OutboxRow.created_at).where(OutboxRow.published_at.is_(None)).order_by(OutboxRow.id).limit(1)
        with self.store.session() as session:
            created = session.scalar(query)
        return None if created is None else max(0.0, (utcnow() - created).total_seconds())

    def _fetch(self) -> list[tuple[int, str]]:
        query = (
            select(OutboxRow.id, OutboxRow.payload)
            .where(OutboxRow.published_at.is_(None))
            .order_by(OutboxRow.id)
            .limit(self.batch_size)
        )
        if self.origin is not None:
            orphaned = utcnow() - timedelta(seconds=self.orphan_after_s)
            query = query.where(or_(OutboxRow.origin == self.origin, OutboxRow.origin.is_(None),
                                    OutboxRow.created_at < orphaned))
        with self.store.session() as session:
            return [(row_id, payload) for row_id, payload in session.execute(query)]

    def _mark(self, published: list[int], failed: tuple[int, str] | None) -> None:
        with self.store.session() as session:
            if published:
                session.execute(update(OutboxRow).where(OutboxRow.id.in_(published)).values(published_at=utcnow()))
            if failed is not None:
                session.execute(
                    update(OutboxRow)
                    .where(OutboxRow.id == failed[0])
                    .values(attempts=OutboxRow.attempts + 1, last_error=failed[1][:500])
                )

    def _prune(self) -> int:
        cutoff = utcnow() - timedelta(seconds=self.keep_published_s)
        with self.store.session() as session:
            result = session.execute(
                delete(OutboxRow).where(OutboxRow.published_at.is_not(None), OutboxRow.published_at < cutoff)
            )
            return int(getattr(result, "rowcount", 0) or 0)

    async def publish_pending(self) -> int:
        """Publish unpublished rows in order until none are left or the bus refuses one; returns how many went."""
        async with self._publishing:
            return await self._publish_all()

    async def _publish_all(self) -> int:
        total = 0
        while True:
            rows = await asyncio.to_thread(self._fetch)
            if not rows:
                return total
            done, failed = await self._publish_batch(rows)
            await asyncio.to_thread(self._mark, done, failed)
            self.published += len(done)
            total += len(done)
            if failed is not None:
                self.failures += 1
                if not self._bus_down:
                    log.error("event bus refused event (%s): events wait in the outbox and are retried", failed[1])
                    self._bus_down = True
                return total
            if self._bus_down:
                log.warning("event bus is back: publishing the outbox")
                self._bus_down = False

    async def _publish_batch(self, rows: list[tuple[int, str]]) -> tuple[list[int], tuple[int, str] | None]:
        """Publish rows in order, ``PUBLISH_WINDOW`` at a time awaiting their acknowledgements together (one by
        one, each waits a round trip: ≈ 5× fewer events per second). Returns the ids acknowledged up to the first
        refusal, and that refusal: rows after it are published again later (the bus drops repeats by id)."""
        done: list[int] = []
        for start in range(0, len(rows), PUBLISH_WINDOW):
            window: list[tuple[int, Event]] = []
            for row_id, payload in rows[start:start + PUBLISH_WINDOW]:
                try:
                    window.append((row_id, decode_event(payload)))
                except CodecError as exc:
                    log.error("outbox row %d is not an event (%s): skipped", row_id, exc)
                    done.append(row_id)
            results = await asyncio.gather(*(self.bus.publish(event) for _, event in window), return_exceptions=True)
            for (row_id, _), result in zip(window, results, strict=True):
                if isinstance(result, BaseException):
                    if isinstance(result, asyncio.CancelledError):
                        raise result
                    return done, (row_id, str(result) or type(result).__name__)
                done.append(row_id)
        return done, None

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Relay until ``stop`` is set (or the task is cancelled), retrying with backoff through outages."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._bus_back = asyncio.Event()
        stop = stop or asyncio.Event()
        backoff = self.poll_interval_s
        last_prune = 0.0
        while not stop.is_set():
            self._wake.clear()
            self._bus_back.clear()
            ok = True
            db_down = False
            try:
                if self.writer is not None and self.writer.buffered:
                    await asyncio.to_thread(self.writer.flush)
                await self.publish_pending()
                ok = not self._bus_down
                if time.monotonic() - last_prune > 60.0:
                    await asyncio.to_thread(self._prune)
                    last_prune = time.monotonic()
            except Exception as exc:
                if not is_outage(exc):
                    raise
                ok = False  # the database is down: the writer logs it; keep trying
                db_down = True
            backoff = self.poll_interval_s if ok else min(backoff * 2, self.max_backoff_s)
            wait = self.poll_interval_s if ok else backoff
            waiters = [asyncio.ensure_future(stop.wait())]
            if ok or db_down:  # after a database outage, the writer's first success (``notify``) says it is back
                waiters.append(asyncio.ensure_future(self._wake.wait()))
            else:  # the bus refused: new rows must not shorten the backoff, but the bus coming back does
                waiters.append(asyncio.ensure_future(self._bus_back.wait()))
            _, undone = await asyncio.wait(waiters, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
            for task in undone:
                task.cancel()
