"""The cluster bus: NATS JetStream (nats-py).

Events go to stream ``VIGIL_EVENTS`` on subjects ``vigil.events.<camera>.<kind>`` (tokens escaped by
``codec.subject_token``). Publishes wait for the stream's acknowledgement and carry ``Nats-Msg-Id`` = the
event id, so a publish retried by the outbox after a lost acknowledgement is stored only once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import nats
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from vigil.config import redact_url
from vigil.events.bus import BusUnavailable, EventFilter
from vigil.events.codec import CodecError, decode_event, encode_event, subject_token
from vigil.types import Event

log = logging.getLogger(__name__)

STREAM = "VIGIL_EVENTS"
PREFIX = "vigil.events"


def event_subject(event: Event, prefix: str = PREFIX) -> str:
    return f"{prefix}.{subject_token(event.camera_id)}.{subject_token(event.kind)}"


def filter_subject(kinds: frozenset[str] | None, cameras: frozenset[str] | None, prefix: str = PREFIX) -> str:
    """The narrowest single subject covering the filter; wider filters are finished client-side."""
    camera = subject_token(next(iter(cameras))) if cameras and len(cameras) == 1 else "*"
    kind = subject_token(next(iter(kinds))) if kinds and len(kinds) == 1 else "*"
    return f"{prefix}.{camera}.{kind}"


#: idle heartbeat of the ordered consumers (s): two missed ones and nats-py recreates the consumer
HEARTBEAT_S = 2.0


class NatsSubscription:
    """Events from a JetStream consumer. The consumer is created on first use, starting at the time of
    ``subscribe()`` (or, for a durable consumer, where it left off).

    The non-durable one is nats-py's ordered consumer, which the server keeps in memory only: after a restart of
    the server it is gone, and nats-py recreates it (two missed heartbeats later) from the stream sequence after
    the last one delivered. It therefore starts at a stream *sequence* (the first message at or after the time
    of ``subscribe()``), not at a start time: nats-py's recreated consumer would carry both, which the server
    refuses (10094), and the subscription would stay silent for ever after the first restart.
    """

    def __init__(self, bus: NatsBus, accepts: EventFilter, durable: str | None, group: str | None = None) -> None:
        self._bus = bus
        self._accepts = accepts
        self._durable = durable or group
        self._group = group
        self._since = datetime.now(UTC)
        self._sub: Any = None
        self._first_seq = 0  # stream sequences below this one are older than the subscription
        self._closed = False
        self.delivered = 0

    async def _start(self) -> None:
        js = self._bus.jetstream
        subject = filter_subject(self._accepts.kinds, self._accepts.cameras, self._bus.prefix)
        if self._group:  # one consumer shared by every process of the group: each event goes to one of them
            # a deliver subject of its own name: processes that create the consumer at the same moment create the
            # same one (with an inbox each, the last creator's inbox would take every message)
            config = ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.NEW,
                                    deliver_subject=f"_vigil.group.{self._bus.stream}.{self._group}")
            self._sub = await js.subscribe(subject, queue=self._group, durable=self._group, stream=self._bus.stream,
                                           config=config)
        elif self._durable:
            config = ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL)
            self._sub = await js.subscribe(subject, durable=self._durable, stream=self._bus.stream, config=config)
        else:
            self._first_seq = await self._start_sequence()
            config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=self._first_seq)
            self._sub = await js.subscribe(subject, stream=self._bus.stream, ordered_consumer=True,
                                           idle_heartbeat=HEARTBEAT_S, config=config)
            jsi = getattr(self._sub, "_jsi", None)  # nats-py's state: a consumer recreated before anything was
            if jsi is not None and getattr(jsi, "_sseq", None) == 0:  # delivered would start at sequence 1
                jsi._sseq = self._first_seq - 1

    async def _start_sequence(self, scan: int = 1000) -> int:
        """The stream sequence of the first message at or after ``_since`` (the next one when there is none):
        the messages published since are few (``_start`` runs on first use), so they are looked at from the end."""
        state = (await self._bus.jetstream.stream_info(self._bus.stream)).state
        seq = state.last_seq
        while seq >= max(state.first_seq, 1, state.last_seq - scan):
            try:
                message = await self._bus.jetstream.get_msg(self._bus.stream, seq=seq)
            except NotFoundError:  # deleted meanwhile
                break
            if message.time is None or message.time < self._since:
                break
            seq -= 1
        return seq + 1

    def __aiter__(self) -> NatsSubscription:
        return self

    async def __anext__(self) -> Event:
        if self._closed:
            raise StopAsyncIteration
        if self._sub is None:
            await self._start()
        while True:
            try:
                msg = await self._sub.next_msg(timeout=None)
            except (NatsError, asyncio.CancelledError):
                if self._closed:
                    raise StopAsyncIteration from None
                raise
            if self._durable:
                await msg.ack()
            elif self._stream_seq(msg) < self._first_seq:
                continue  # replayed from before the subscription (a consumer recreated from too far back)
            try:
                event = decode_event(msg.data)
            except CodecError as exc:
                log.warning("NATS %s: skipped a message that is not an event: %s", msg.subject, exc)
                continue
            if self._accepts(event):
                self.delivered += 1
                return event

    @staticmethod
    def _stream_seq(msg: Any) -> int:
        try:
            return int(msg.metadata.sequence.stream)
        except (AttributeError, ValueError, TypeError, IndexError):
            return 1 << 62  # no metadata: deliver it

    async def close(self) -> None:
        self._closed = True
        if self._sub is not None:
            with contextlib.suppress(NatsError):
                await self._sub.unsubscribe()


class NatsBus:
    """``Bus`` over NATS JetStream. Create with ``await NatsBus.connect(servers)``."""

    def __init__(
        self, client: Client, servers: str, stream: str = STREAM, prefix: str = PREFIX, publish_timeout: float = 2.0
    ) -> None:
        self.client = client
        self.jetstream: JetStreamContext = client.jetstream()
        self.servers = servers
        self.stream = stream
        self.prefix = prefix
        self.publish_timeout = publish_timeout
        #: called (on the bus's loop) each time the connection is back after a loss: the relay retries at once
        self.on_reconnected: list[Callable[[], None]] = []

    @classmethod
    async def connect(
        cls,
        servers: str = "nats://127.0.0.1:4222",
        stream: str = STREAM,
        prefix: str = PREFIX,
        max_age_s: float = 7 * 24 * 3600,
        publish_timeout: float = 2.0,
        reconnect_wait_s: float = 1.0,
        connect_timeout_s: float = 5.0,
        user: str | None = None,
        password: str | None = None,
        token: str | None = None,
    ) -> NatsBus:
        """Connect (reconnecting for ever after), and create the stream if it does not exist.

        Raises ``BusUnavailable`` naming the server (password hidden) when it cannot be reached.
        """
        shown = redact_url(servers)
        hooks: list[Callable[[], None]] = []

        async def _disconnected() -> None:
            log.warning("NATS %s: disconnected; events wait in the outbox until it is back", shown)

        async def _reconnected() -> None:
            log.info("NATS %s: reconnected", shown)
            for hook in hooks:
                hook()

        async def _error(exc: Exception) -> None:
            log.debug("NATS %s: %s", shown, exc)

        try:
            client = await nats.connect(
                servers.split(","),
                connect_timeout=connect_timeout_s,
                reconnect_time_wait=reconnect_wait_s,
                max_reconnect_attempts=1,  # the first connection fails fast ...
                allow_reconnect=True,
                disconnected_cb=_disconnected,
                reconnected_cb=_reconnected,
                error_cb=_error,
                user=user,
                password=password,
                token=token,
            )
        except (TimeoutError, OSError, NatsError) as exc:
            raise BusUnavailable(f"NATS {shown}: cannot connect ({exc or type(exc).__name__})") from None
        client.options["max_reconnect_attempts"] = -1  # ... later ones retry for ever
        bus = cls(client, servers, stream, prefix, publish_timeout)
        bus.on_reconnected = hooks
        try:
            await bus.ensure_stream(max_age_s)
        except NatsError as exc:
            await client.close()
            raise BusUnavailable(f"NATS {shown}: JetStream stream {stream} unavailable ({exc})") from None
        return bus

    async def ensure_stream(self, max_age_s: float) -> None:
        try:
            await self.jetstream.stream_info(self.stream)
        except NotFoundError:
            await self.jetstream.add_stream(
                StreamConfig(
                    name=self.stream,
                    subjects=[f"{self.prefix}.>"],
                    storage=StorageType.FILE,
                    max_age=max_age_s,
                    duplicate_window=120.0,
                )
            )

    async def publish(self, event: Event) -> None:
        """Publish and wait for JetStream's ack; raises ``BusUnavailable`` if it does not come."""
        try:
            await self.jetstream.publish(
                event_subject(event, self.prefix),
                encode_event(event),
                timeout=self.publish_timeout,
                stream=self.stream,
                headers={"Nats-Msg-Id": event.id},
            )
        except (TimeoutError, NatsError, OSError) as exc:
            raise BusUnavailable(
                f"NATS {redact_url(self.servers)}: event {event.id} not acknowledged ({type(exc).__name__})"
            ) from None

    def subscribe(
        self, kinds: Iterable[str] | None = None, cameras: Iterable[str] | None = None, durable: str | None = None,
        group: str | None = None,
    ) -> NatsSubscription:
        """Events from now on (or, with ``durable``, everything the named consumer has not yet acked). With
        ``group``, the subscribers of every process using that name share one consumer and each event reaches
        one of them (two command centres deliver each event to an MQTT broker or webhook once)."""
        return NatsSubscription(self, EventFilter(kinds, cameras), durable, group)

    async def close(self) -> None:
        if not self.client.is_closed:
            await self.client.drain() if self.client.is_connected else await self.client.close()
