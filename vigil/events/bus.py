"""The event bus: a ``Bus`` protocol and the in-process asyncio implementation (the default).

A subscriber gets an async iterator of events, optionally filtered by kind and camera. The in-process bus
never blocks the publisher: each subscriber has a bounded queue, and a subscriber that falls behind loses
its oldest events, which are counted in ``Subscription.dropped``.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Protocol, runtime_checkable

from vigil.errors import VigilError
from vigil.types import Event

log = logging.getLogger(__name__)


class BusUnavailable(VigilError):
    """The bus did not accept an event (server down or no acknowledgement in time)."""


@runtime_checkable
class Subscription(Protocol):
    """An async iterator of events; ``close()`` ends it."""

    def __aiter__(self) -> AsyncIterator[Event]: ...

    async def __anext__(self) -> Event: ...

    async def close(self) -> None: ...


@runtime_checkable
class Bus(Protocol):
    """Where events go after the outbox; sinks subscribe to it."""

    async def publish(self, event: Event) -> None:
        """Hand the event to the bus; returns once the bus accepted it, raises if it did not."""
        ...

    def subscribe(self, kinds: Iterable[str] | None = None, cameras: Iterable[str] | None = None,
                  group: str | None = None) -> Subscription:
        """Events published from now on whose kind and camera are in the given sets (None: all). Subscribers of
        several processes with one ``group`` share its events, each going to one of them."""
        ...

    async def close(self) -> None: ...


class EventFilter:
    """Kind and camera filter shared by the bus implementations."""

    def __init__(self, kinds: Iterable[str] | None, cameras: Iterable[str] | None) -> None:
        self.kinds = frozenset(kinds) if kinds is not None else None
        self.cameras = frozenset(cameras) if cameras is not None else None

    def __call__(self, event: Event) -> bool:
        return (self.kinds is None or event.kind in self.kinds) and (
            self.cameras is None or event.camera_id in self.cameras
        )


class QueueSubscription:
    """A bounded queue feeding one subscriber: when full, the oldest event is dropped and counted."""

    def __init__(
        self, accepts: EventFilter, maxsize: int, on_close: Callable[[QueueSubscription], None] | None = None
    ) -> None:
        self.accepts = accepts
        self.maxsize = maxsize
        self.dropped = 0
        self.delivered = 0
        self._queue: collections.deque[Event] = collections.deque()
        self._ready = asyncio.Event()
        self._closed = False
        self._on_close = on_close

    def offer(self, event: Event) -> None:
        """Queue the event if it passes the filter, dropping the oldest when full. Never blocks."""
        if self._closed or not self.accepts(event):
            return
        if len(self._queue) >= self.maxsize:
            self._queue.popleft()
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("slow event subscriber: dropped %d oldest events so far", self.dropped)
        self._queue.append(event)
        self._ready.set()

    @property
    def pending(self) -> int:
        return len(self._queue)

    def __aiter__(self) -> QueueSubscription:
        return self

    async def __anext__(self) -> Event:
        while not self._queue:
            if self._closed:
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()
        self.delivered += 1
        return self._queue.popleft()

    async def close(self) -> None:
        self._closed = True
        self._ready.set()
        if self._on_close is not None:
            self._on_close(self)


class InProcessBus:
    """Fan-out to asyncio subscribers in this process. Use from one event loop."""

    def __init__(self, queue_size: int = 1000) -> None:
        self.queue_size = queue_size
        self._subscribers: list[QueueSubscription] = []
        self.published = 0

    async def publish(self, event: Event) -> None:
        self.published += 1
        for sub in list(self._subscribers):
            sub.offer(event)

    def subscribe(
        self, kinds: Iterable[str] | None = None, cameras: Iterable[str] | None = None, group: str | None = None,
        queue_size: int | None = None,
    ) -> QueueSubscription:
        """``group`` changes nothing here: the in-process bus serves one process."""
        sub = QueueSubscription(EventFilter(kinds, cameras), queue_size or self.queue_size, self._unsubscribe)
        self._subscribers.append(sub)
        return sub

    def _unsubscribe(self, sub: QueueSubscription) -> None:
        if sub in self._subscribers:
            self._subscribers.remove(sub)

    @property
    def dropped(self) -> int:
        """Events dropped across the current subscribers."""
        return sum(s.dropped for s in self._subscribers)

    async def close(self) -> None:
        for sub in list(self._subscribers):
            await sub.close()
