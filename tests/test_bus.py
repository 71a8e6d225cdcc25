"""In-process bus, the event codec, and the JSON-lines and webhook sinks."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from vigil.events.bus import Bus, InProcessBus
from vigil.events.codec import CodecError, decode_event, encode_event, event_to_dict, subject_token
from vigil.events.sinks import Backlog, JsonLinesSink, SinkError, SinkRejected, run_sink
from vigil.events.webhooks import WebhookSink, public_url
from vigil.types import Event

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def test_codec_round_trip_and_errors() -> None:
    local = datetime(2024, 5, 1, 14, 0, 0, tzinfo=timezone(timedelta(hours=2)))
    event = Event(
        "crowd_threshold", "cam.1", local, "critical", track_id=np.int64(3), zone="square",
        payload={"count": np.int32(25), "density": np.float64(0.5), "ids": {3, 1}, "since": T0},
        snapshot="snapshots/cam.1/2024-05-01/x.jpg",
    )  # fmt: skip
    wire = encode_event(event)
    back = decode_event(wire)
    assert back.at == T0 and back.at.tzinfo == UTC
    assert back.payload == {"count": 25, "density": 0.5, "ids": [1, 3], "since": "2024-05-01T12:00:00Z"}
    assert (back.id, back.kind, back.camera_id, back.track_id, back.snapshot) == (
        event.id, "crowd_threshold", "cam.1", 3, event.snapshot,
    )  # fmt: skip
    assert json.loads(wire)["at"] == "2024-05-01T12:00:00Z" == event_to_dict(event)["at"]
    with pytest.raises(CodecError, match="not JSON"):
        decode_event(b"{nope")
    with pytest.raises(CodecError, match="'at'"):
        decode_event(b'{"id": "1", "kind": "k", "camera_id": "c", "at": "yesterday"}')
    with pytest.raises(CodecError, match="camera_id"):
        decode_event(b'{"id": "1", "kind": "k", "at": "2024-01-01T00:00:00Z"}')
    assert subject_token("cam.1*>") == "cam%2E1%2A%3E"


def test_in_process_bus_filters_by_kind_and_camera() -> None:
    async def scenario() -> None:
        bus = InProcessBus()
        assert isinstance(bus, Bus)
        everything = bus.subscribe()
        loiter_cam2 = bus.subscribe(kinds=["loitering"], cameras=["cam2"])
        events = [Event(k, c, T0) for k in ("zone_enter", "loitering") for c in ("cam1", "cam2")]
        for event in events:
            await bus.publish(event)
        got = [await anext(everything) for _ in range(4)]
        assert [e.id for e in got] == [e.id for e in events]
        only = await anext(loiter_cam2)
        assert (only.kind, only.camera_id) == ("loitering", "cam2") and loiter_cam2.pending == 0
        await loiter_cam2.close()
        with pytest.raises(StopAsyncIteration):
            await anext(loiter_cam2)

    asyncio.run(scenario())


def test_slow_subscriber_drops_oldest_and_never_blocks_publisher() -> None:
    async def scenario() -> None:
        bus = InProcessBus(queue_size=10)
        slow = bus.subscribe()
        fast = bus.subscribe(queue_size=1000)
        events = [Event("zone_enter", "cam1", T0 + timedelta(seconds=i)) for i in range(100)]
        loop = asyncio.get_running_loop()
        started = loop.time()
        for event in events:
            await bus.publish(event)  # nobody reads meanwhile: the publisher must not wait
        assert loop.time() - started < 0.5
        assert slow.dropped == 90 and slow.pending == 10 and fast.dropped == 0
        kept = [await anext(slow) for _ in range(10)]
        assert [e.id for e in kept] == [e.id for e in events[90:]]  # the newest survive
        assert bus.dropped == 90

    asyncio.run(scenario())


def test_jsonl_sink_via_run_sink(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        bus = InProcessBus()
        sink = JsonLinesSink(tmp_path / "out" / "events.jsonl")
        task = asyncio.create_task(run_sink(bus, sink, kinds=["line_cross"]))
        await asyncio.sleep(0)
        events = [Event(k, "cam1", T0 + timedelta(seconds=i)) for i, k in enumerate(["line_cross", "zone_enter"] * 5)]
        for event in events:
            await bus.publish(event)
        await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await sink.close()
        lines = (tmp_path / "out" / "events.jsonl").read_text().splitlines()
        assert [decode_event(line).id for line in lines] == [e.id for e in events if e.kind == "line_cross"]

    asyncio.run(scenario())


class Receiver(BaseHTTPRequestHandler):
    """A webhook receiver that answers 503 to the first ``fail_first`` requests."""

    fail_first = 0
    bodies: list[bytes] = []  # noqa: RUF012
    calls = 0

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).calls += 1
        if type(self).calls <= type(self).fail_first:
            self.send_response(503)
        else:
            type(self).bodies.append(body)
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _deliver_one(sink: WebhookSink, event: Event, wait_s: float = 5.0) -> None:
    """Run ``run_sink`` until the sink delivered, refused or gave up the event."""

    async def scenario() -> None:
        bus = InProcessBus()
        task = asyncio.create_task(run_sink(bus, sink))
        await asyncio.sleep(0)
        await bus.publish(event)
        deadline = asyncio.get_running_loop().time() + wait_s
        while sink.delivered + sink.rejected + sink.given_up == 0 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())


def test_webhook_sink_retries_then_delivers_refuses_or_gives_up() -> None:
    Receiver.fail_first, Receiver.calls, Receiver.bodies = 2, 0, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    event = Event("loitering", "cam1", T0, payload={"seconds": 31})
    try:
        sink = WebhookSink(url, backoff_s=0.01)
        _deliver_one(sink, event)
        assert Receiver.calls == 3 and decode_event(Receiver.bodies[0]).id == event.id
        assert (sink.delivered, sink.dropped, sink.backlog()) == (1, 0, 0)
        Receiver.fail_first, Receiver.calls = 10, 0
        sink = WebhookSink(url, retries=2, backoff_s=0.01)
        _deliver_one(sink, event)
        assert Receiver.calls == 3 and (sink.given_up, sink.dropped, sink.delivered) == (1, 1, 0)
        with pytest.raises(SinkError, match="HTTP 503"):
            asyncio.run(WebhookSink(url).send(event))
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(SinkError, match="Connection refused"):
        asyncio.run(WebhookSink(url, timeout_s=1).send(event))


class Refuser(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(400)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_webhook_4xx_is_a_refused_event_not_retried() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Refuser)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        sink = WebhookSink(f"http://127.0.0.1:{server.server_address[1]}/hook?token=abc", backoff_s=0.01)
        with pytest.raises(SinkRejected, match="HTTP 400"):
            asyncio.run(sink.send(Event("loitering", "cam1", T0)))
        _deliver_one(sink, Event("loitering", "cam1", T0))
        assert (sink.rejected, sink.delivered, sink.backlog()) == (1, 0, 0)
        assert "token" not in sink.name and sink.name.endswith("/hook")
    finally:
        server.shutdown()
        server.server_close()


def test_public_url_hides_password_and_query() -> None:
    assert public_url("https://bot:s3cret@soc.example:8443/hooks/v?token=t0k#x") == "https://bot:***@soc.example:8443/hooks/v"


def test_backlog_drops_the_oldest_and_keeps_the_event_in_hand_in_order() -> None:
    async def scenario() -> None:
        backlog = Backlog("test", 3)
        events = [Event("zone_enter", "cam1", T0 + timedelta(seconds=i)) for i in range(6)]
        for event in events[:3]:
            backlog.put(event)
        first = await backlog.take()
        assert first is events[0] and len(backlog) == 3  # the event in hand still counts
        backlog.put(events[3])  # full: the oldest waiting one (events[1]) goes, not the one in hand
        assert backlog.dropped == 1
        backlog.put_back(first)  # delivery failed: back to the head
        taken = []
        for _ in range(3):
            taken.append(await backlog.take())
            backlog.done()
        assert taken == [events[0], events[2], events[3]] and len(backlog) == 0
        one = Backlog("one", 1)
        one.put(events[4])
        in_hand = await one.take()
        one.put(events[5])  # the only place is taken by the event in hand: it will not be put back
        one.put_back(in_hand)
        assert one.dropped == 1 and await one.take() is events[5] and len(one) == 1

    asyncio.run(scenario())
