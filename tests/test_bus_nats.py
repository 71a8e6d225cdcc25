"""NatsBus against the real NATS JetStream server at 127.0.0.1:4222 (VIGIL_TEST_NATS), including a real outage:
the bus talks through a local TCP proxy that the test cuts and restores; and a private nats-server restarted."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlparse

import pytest

from vigil.bench.faults.services import NATS_SERVER, PrivateNats
from vigil.events.bus import Bus, BusUnavailable
from vigil.events.nats_bus import NatsBus, event_subject
from vigil.events.outbox import EventWriter, OutboxRelay
from vigil.store.db import open_store
from vigil.store.events import EventStore
from vigil.types import Event

NATS_URL = os.environ.get("VIGIL_TEST_NATS", "nats://127.0.0.1:4222")
T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
pytestmark = pytest.mark.integration


def nats_reachable() -> bool:
    parsed = urlparse(NATS_URL)
    try:
        socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 4222), timeout=1).close()
        return True
    except OSError:
        return False


requires_nats = pytest.mark.skipif(not nats_reachable(), reason=f"NATS not reachable at {NATS_URL}")


@contextlib.asynccontextmanager
async def throwaway_bus(url: str = NATS_URL, **options: float) -> AsyncIterator[tuple[NatsBus, str, str]]:
    """A NatsBus on a throw-away stream and subject prefix, deleted afterwards."""
    tag = os.urandom(4).hex()
    stream, prefix = f"VIGIL_TEST_{tag}", f"vigiltest{tag}.events"
    bus = await NatsBus.connect(url, stream=stream, prefix=prefix, **options)
    try:
        yield bus, stream, prefix
    finally:
        with contextlib.suppress(Exception):
            await bus.jetstream.delete_stream(stream)
        await bus.close()


async def take(sub, n: int, timeout: float = 5.0) -> list[Event]:  # type: ignore[no-untyped-def]
    out: list[Event] = []
    async with asyncio.timeout(timeout):
        while len(out) < n:
            out.append(await anext(sub))
    return out


def test_subjects_follow_the_contract() -> None:
    assert event_subject(Event("line_cross", "gate-2", T0)) == "vigil.events.gate-2.line_cross"
    assert event_subject(Event("zone_enter", "cam.1", T0)) == "vigil.events.cam%2E1.zone_enter"


@requires_nats
def test_publish_subscribe_filters_dedupe_and_durable() -> None:
    async def scenario() -> None:
        async with throwaway_bus() as (bus, stream, prefix):
            assert isinstance(bus, Bus)
            everything = bus.subscribe()
            cam2 = bus.subscribe(cameras=["cam.2"])
            two_kinds = bus.subscribe(kinds=["loitering", "line_cross"])
            events = [Event(k, c, T0) for c in ("cam1", "cam.2") for k in ("zone_enter", "loitering", "line_cross")]
            for event in events:
                await bus.publish(event)
            await bus.publish(events[0])  # a retried publish: JetStream keeps one copy
            info = await bus.jetstream.stream_info(stream)
            assert info.state.messages == 6
            assert [e.id for e in await take(everything, 6)] == [e.id for e in events]
            assert [e.id for e in await take(cam2, 3)] == [e.id for e in events[3:]]
            assert [e.kind for e in await take(two_kinds, 4)] == ["loitering", "line_cross"] * 2
            late = bus.subscribe(durable=f"store-{os.urandom(3).hex()}")  # a durable consumer starts at the beginning
            assert [e.id for e in await take(late, 6)] == [e.id for e in events]
            msg = await bus.jetstream.get_msg(stream, seq=2)
            assert msg.subject == f"{prefix}.cam1.loitering"
            for sub in (everything, cam2, two_kinds, late):
                await sub.close()

    asyncio.run(scenario())


@requires_nats
def test_a_group_shares_its_events_between_processes() -> None:
    """Two command centres (two connections) with the same sink group: each event reaches exactly one of them,
    and none from before the group existed."""

    async def scenario() -> None:
        async with throwaway_bus() as (bus, stream, prefix):
            other = await NatsBus.connect(NATS_URL, stream=stream, prefix=prefix)
            try:
                await bus.publish(Event("zone_enter", "cam1", T0, id="before-the-group"))
                group = f"sink-{os.urandom(3).hex()}"
                mine, theirs = bus.subscribe(group=group), other.subscribe(group=group)
                got: list[str] = []

                async def drain(sub) -> None:  # type: ignore[no-untyped-def]
                    with contextlib.suppress(TimeoutError):
                        while True:
                            got.append((await asyncio.wait_for(anext(sub), 2.0)).id)

                first = asyncio.ensure_future(drain(mine))
                second = asyncio.ensure_future(drain(theirs))
                await asyncio.sleep(0.5)  # both consumers bound before anything is published
                events = [Event("zone_enter", f"cam{i % 3}", T0) for i in range(30)]
                for event in events:
                    await bus.publish(event)
                await asyncio.gather(first, second)
                assert sorted(got) == sorted(e.id for e in events)  # each once, the earlier one not at all
                assert mine.delivered and theirs.delivered  # shared, not all to one
                for sub in (mine, theirs):
                    await sub.close()
            finally:
                await other.close()

    asyncio.run(scenario())


def test_unreachable_server_is_one_line_error() -> None:
    async def scenario() -> None:
        with pytest.raises(BusUnavailable, match=r"nats://u:\*\*\*@127.0.0.1:1") as err:
            await NatsBus.connect("nats://u:secret@127.0.0.1:1", connect_timeout_s=1)
        assert "secret" not in str(err.value)

    asyncio.run(scenario())


class CuttableProxy:
    """A TCP proxy to the NATS server that can be cut (all connections closed, port shut) and restored."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.writers):
            writer.close()
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.writers |= {writer, up_writer}

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        self.writers -= {writer, up_writer}


@requires_nats
def test_outbox_through_a_nats_outage_loses_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        parsed = urlparse(NATS_URL)
        proxy = CuttableProxy(parsed.hostname or "127.0.0.1", parsed.port or 4222)
        await proxy.start()
        store = open_store(f"sqlite:///{tmp_path / 'vigil.db'}")
        async with throwaway_bus(NATS_URL) as (direct, stream, prefix):
            watcher = direct.subscribe()
            flaky = await NatsBus.connect(
                f"nats://127.0.0.1:{proxy.port}",
                stream=stream,
                prefix=prefix,
                publish_timeout=0.5,
                reconnect_wait_s=0.2,
            )
            relay = OutboxRelay(store, flaky, poll_interval_s=0.05, max_backoff_s=0.3)
            writer = EventWriter(EventStore(store), on_written=relay.notify)
            stop = asyncio.Event()
            task = asyncio.create_task(relay.run(stop))
            events = [Event("zone_enter", "cam1", T0 + timedelta(seconds=i), payload={"n": i}) for i in range(25)]
            for event in events[:10]:
                await asyncio.to_thread(writer.write, event)
            assert len(await take(watcher, 10)) == 10
            for _ in range(100):  # the watcher can see an event before its ack reaches the relay
                if relay.pending() == 0:
                    break
                await asyncio.sleep(0.05)
            assert relay.pending() == 0
            await proxy.cut()
            for event in events[10:20]:
                await asyncio.to_thread(writer.write, event)
            await asyncio.sleep(1.5)
            assert relay.failures >= 1 and relay.pending() == 10
            await proxy.start()  # the server is reachable again on the same port
            for event in events[20:]:
                await asyncio.to_thread(writer.write, event)
            rest = await take(watcher, 15, timeout=15)
            assert [e.payload["n"] for e in rest] == list(range(10, 25))  # in order, none lost
            stop.set()
            await task
            assert relay.pending() == 0
            info = await direct.jetstream.stream_info(stream)
            assert info.state.messages == 25  # retries after lost acks were not stored twice
            await watcher.close()
            await flaky.close()
        await proxy.cut()
        store.close()

    asyncio.run(scenario())


@pytest.mark.skipif(not os.access(NATS_SERVER, os.X_OK), reason=f"{NATS_SERVER} is not installed")
def test_subscriptions_survive_a_restart_of_the_server() -> None:
    """A private nats-server restarted (its JetStream store kept): the ordered consumers behind ``subscribe()``
    are in the server's memory only, so nats-py recreates them; they must resume after the last event delivered
    (one that had received nothing yet must not replay the stream from its start)."""

    async def scenario(server: PrivateNats) -> None:
        bus = await NatsBus.connect(server.url, reconnect_wait_s=0.2)
        await bus.publish(Event("zone_enter", "cam2", T0, payload={"n": -1}))  # before the subscriptions
        everything, cam2 = bus.subscribe(), bus.subscribe(cameras=["cam2"])
        events = [Event("zone_enter", "cam1" if i < 3 else "cam2", T0 + timedelta(seconds=i), payload={"n": i})
                  for i in range(6)]
        for event in events[:3]:
            await bus.publish(event)
        assert [e.payload["n"] for e in await take(everything, 3)] == [0, 1, 2]
        await asyncio.to_thread(server.stop)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(server.start)
        for event in events[3:]:
            async with asyncio.timeout(10):
                while True:
                    try:
                        await bus.publish(event)
                        break
                    except BusUnavailable:
                        await asyncio.sleep(0.2)
        assert [e.payload["n"] for e in await take(everything, 3, timeout=15)] == [3, 4, 5]
        assert [e.payload["n"] for e in await take(cam2, 3, timeout=15)] == [3, 4, 5]  # no replay of n=-1
        for sub in (everything, cam2):
            await sub.close()
        await bus.close()

    with PrivateNats() as server:
        asyncio.run(scenario(server))


@pytest.mark.skipif(not os.access(NATS_SERVER, os.X_OK), reason=f"{NATS_SERVER} is not installed")
def test_relay_retries_as_soon_as_the_server_is_back(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """After a long outage the relay's backoff is long (here up to 30 s); the bus coming back wakes it at once."""

    async def scenario(server: PrivateNats) -> None:
        store = open_store(f"sqlite:///{tmp_path / 'vigil.db'}")
        bus = await NatsBus.connect(server.url, reconnect_wait_s=0.2, publish_timeout=0.3)
        relay = OutboxRelay(store, bus, poll_interval_s=0.5, max_backoff_s=30.0)
        bus.on_reconnected.append(relay.bus_reconnected)
        writer = EventWriter(EventStore(store), on_written=relay.notify)
        stop = asyncio.Event()
        task = asyncio.create_task(relay.run(stop))
        await asyncio.to_thread(server.stop)
        await asyncio.to_thread(writer.write, Event("zone_enter", "cam1", T0, payload={"n": 1}))
        await asyncio.sleep(8.5)  # failed tries at about 0.5, 1.8, 4.1 and 8.4 s: the next one waits 8 s
        assert relay.pending() == 1 and relay.failures >= 2
        await asyncio.to_thread(server.start)
        back = time.monotonic()
        while relay.pending() and time.monotonic() - back < 20:
            await asyncio.sleep(0.05)
        assert relay.pending() == 0 and time.monotonic() - back < 3.0  # not at the end of the backoff
        stop.set()
        await task
        await bus.close()
        store.close()

    with PrivateNats() as server:
        asyncio.run(scenario(server))
