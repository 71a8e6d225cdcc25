"""Alert sinks fed from the bus, and how they are fed: a bounded backlog per sink, retried with backoff.

``run_sink(bus, sink)`` moves a bus subscription into the sink's ``Backlog`` at once (so the bus never waits
for, nor drops events because of, a slow sink) and delivers from it in order, one event at a time. A failed
delivery is retried after ``backoff_s``, doubled on each failure up to ``max_backoff_s``; the event stays at
the head, so order is kept. When the backlog is full the oldest event is dropped and counted, with a warning
at most once a minute. An event the receiver refuses (``SinkRejected``, e.g. HTTP 400) is not retried.
A failing sink is logged once per outage and never stops the others: each runs in its own task.

Sinks: ``JsonLinesSink`` here, ``MqttSink`` (vigil/events/mqtt.py), ``WebhookSink`` (vigil/events/webhooks.py).
Each exposes ``backlog()`` (events not yet delivered) and ``dropped`` for status and metrics.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from vigil.errors import VigilError
from vigil.events.bus import Bus
from vigil.events.codec import encode_event
from vigil.types import Event

log = logging.getLogger(__name__)

#: at most one "backlog full" warning, and one "refused" error, per sink in this many seconds
DROP_WARNING_INTERVAL_S = 60.0


class SinkError(VigilError):
    """A sink could not deliver an event (worth retrying); ``run_sink`` logs it with the sink's name."""


class SinkRejected(SinkError):
    """The receiver refused the event itself: retrying it would not help."""


class Backlog:
    """Events waiting for one sink, oldest first, at most ``maxsize``: when full, the oldest is dropped.

    The event being delivered is taken out (``take``) and, if delivery failed, put back at the head
    (``put_back``), so an overflow during a long attempt never drops a newer event in its place.
    """

    def __init__(self, name: str, maxsize: int) -> None:
        self.name = name
        self.maxsize = maxsize
        self.dropped = 0
        self._queue: collections.deque[Event] = collections.deque()
        self._in_hand = 0
        self._evicted = False  # the event in hand lost its place to a newer one while being delivered
        self._ready = asyncio.Event()
        self._unwarned = 0
        self._warned_at = -math.inf

    def __len__(self) -> int:
        """Events not yet delivered, including the one being delivered."""
        return len(self._queue) + self._in_hand

    def put(self, event: Event) -> None:
        if len(self) >= self.maxsize:
            if self._queue:
                self._queue.popleft()
                self._count_drop()
            elif not self._evicted:  # the only full place is the event in hand: it will not be put back
                self._evicted = True
        self._queue.append(event)
        self._ready.set()

    async def take(self) -> Event:
        while not self._queue:
            self._ready.clear()
            await self._ready.wait()
        self._in_hand = 1
        return self._queue.popleft()

    def done(self) -> None:
        """The event in hand was delivered (or given up)."""
        self._in_hand = 0
        self._evicted = False

    def put_back(self, event: Event) -> None:
        """Delivery failed: the event goes back to the head, unless the backlog filled up meanwhile (it is
        then the oldest, and dropped)."""
        if self._evicted:
            self._count_drop()
        elif self._in_hand:
            self._queue.appendleft(event)
            self._ready.set()
        self.done()

    def _count_drop(self) -> None:
        self.dropped += 1
        self._unwarned += 1
        now = time.monotonic()
        if now - self._warned_at >= DROP_WARNING_INTERVAL_S:
            log.warning("sink %s: backlog full (%d events), dropped the %d oldest (%d in all)", self.name,
                        self.maxsize, self._unwarned, self.dropped)
            self._warned_at = now
            self._unwarned = 0


class Sink(Protocol):
    """Where ``run_sink`` delivers events: ``send`` one event (raise ``SinkError`` to have it retried).
    ``QueuedSink`` provides everything but ``send`` and ``close``."""

    name: str
    queue: Backlog
    retries: int | None
    backoff_s: float
    max_backoff_s: float
    delivered: int
    rejected: int
    given_up: int
    failing: bool

    async def send(self, event: Event) -> None: ...

    async def close(self) -> None: ...

    def backlog(self) -> int: ...

    @property
    def dropped(self) -> int: ...

    def stats(self) -> dict[str, object]: ...


class QueuedSink:
    """Base of the sinks: the backlog, the retry policy ``run_sink`` applies, and delivery counters.

    ``retries``: failed attempts of one event before it is given up (counted in ``dropped``); None: until
    delivered (or dropped from a full backlog).
    """

    def __init__(self, name: str, max_backlog: int = 1000, retries: int | None = None, backoff_s: float = 0.5,
                 max_backoff_s: float = 30.0) -> None:
        self.name = name
        self.queue = Backlog(name, max_backlog)
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.delivered = 0
        self.rejected = 0  # refused by the receiver (not retried)
        self.given_up = 0  # out of retries
        self.failing = False  # the last attempt failed

    def backlog(self) -> int:
        """Events waiting for delivery."""
        return len(self.queue)

    @property
    def dropped(self) -> int:
        """Events that will not be delivered: dropped from a full backlog, or out of retries."""
        return self.queue.dropped + self.given_up

    def stats(self) -> dict[str, object]:
        """For status pages and metrics."""
        return {"name": self.name, "backlog": self.backlog(), "delivered": self.delivered, "dropped": self.dropped,
                "rejected": self.rejected, "failing": self.failing}


async def run_sink(
    bus: Bus, sink: Sink, kinds: Iterable[str] | None = None, cameras: Iterable[str] | None = None,
    group: str | None = None,
) -> None:
    """Forward events from ``bus`` to ``sink`` through its backlog until cancelled, then close the sink.

    ``group`` (NATS only): the name under which every command centre's copy of this sink shares one consumer."""
    subscription = bus.subscribe(kinds=kinds, cameras=cameras, group=group)

    async def fill() -> None:
        async for event in subscription:
            sink.queue.put(event)

    filler = asyncio.create_task(fill())
    try:
        await _deliver(sink)
    finally:
        filler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await filler
        await subscription.close()
        await sink.close()


async def _deliver(sink: Sink) -> None:
    failures = 0  # consecutive failed attempts of the event at the head
    outage_since: float | None = None
    given_up = 0  # in this outage
    refused_logged_at = -math.inf
    while True:
        event = await sink.queue.take()
        try:
            await sink.send(event)
        except asyncio.CancelledError:
            sink.queue.put_back(event)
            raise
        except SinkRejected as exc:
            sink.queue.done()
            sink.rejected += 1
            if time.monotonic() - refused_logged_at >= DROP_WARNING_INTERVAL_S:  # a receiver may refuse them all
                refused_logged_at = time.monotonic()
                log.error("sink %s: event %s (%s) refused, not retried: %s (%d refused in all)", sink.name,
                          event.id, event.kind, exc, sink.rejected)
            failures = 0
            continue
        except Exception as exc:
            failures += 1
            delay = min(sink.max_backoff_s, sink.backoff_s * 2 ** min(failures - 1, 30))
            if outage_since is None:
                outage_since = time.monotonic()
                log.error("sink %s: %s; retrying with backoff, %d events waiting", sink.name, exc, sink.backlog())
            sink.failing = True
            if sink.retries is not None and failures > sink.retries:
                sink.queue.done()
                sink.given_up += 1
                given_up += 1
                if given_up == 1:
                    log.error("sink %s: event %s given up after %d retries (further ones are counted)", sink.name,
                              event.id, sink.retries)
                failures = 0
            else:
                sink.queue.put_back(event)
            await asyncio.sleep(delay)
            continue
        sink.queue.done()
        sink.delivered += 1
        failures = 0
        if outage_since is not None:
            log.warning("sink %s: delivering again after %.1f s (%d events given up), %d waiting", sink.name,
                        time.monotonic() - outage_since, given_up, sink.backlog())
            outage_since, given_up = None, 0
        sink.failing = False


class JsonLinesSink(QueuedSink):
    """Appends one JSON event per line to a file (created with its folder)."""

    def __init__(self, path: Path | str, max_backlog: int = 10_000) -> None:
        self.path = Path(path)
        super().__init__(f"jsonl:{self.path}", max_backlog=max_backlog, backoff_s=0.5, max_backoff_s=10.0)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("ab")

    async def send(self, event: Event) -> None:
        try:
            self._file.write(encode_event(event) + b"\n")
            self._file.flush()
        except OSError as exc:
            raise SinkError(f"{self.path}: cannot write event ({exc.strerror})") from None

    async def close(self) -> None:
        self._file.close()
