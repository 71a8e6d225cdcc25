"""Webhooks against a real HTTP server on 127.0.0.1 that goes down and comes back: a down or hanging endpoint
never blocks the other sinks or the event loop, its backlog stays bounded and counts what it drops (with a
rate-limited warning that shows no secret), and what waited is delivered in order once it is back."""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from test_bus_mqtt import MQTT_HOST, MQTT_PORT, Subscriber, clear_retained, reachable

from vigil.assembly import open_services
from vigil.config import parse_config
from vigil.events.bus import InProcessBus
from vigil.events.codec import decode_event
from vigil.events.mqtt import MqttSink
from vigil.events.sinks import JsonLinesSink, run_sink
from vigil.events.webhooks import WebhookSink
from vigil.types import Event

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Endpoint:
    """A webhook receiver on a fixed port that can be stopped (connection refused) and started again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.bodies: list[bytes] = []
        self.authorizations: set[str | None] = set()
        self.server: ThreadingHTTPServer | None = None

    @property
    def ids(self) -> list[str]:
        return [decode_event(body).id for body in list(self.bodies)]

    def start(self) -> None:
        bodies, authorizations = self.bodies, self.authorizations

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                authorizations.add(self.headers["Authorization"])
                bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def url(self, secret_query: str = "") -> str:
        return f"http://hook:hook-pw@127.0.0.1:{self.port}/hook{secret_query}"


def events(n: int, camera: str = "cam1") -> list[Event]:
    return [Event("loitering", camera, T0 + timedelta(seconds=i), "warning") for i in range(n)]


async def wait_until(predicate, timeout: float = 10.0, what: str = "") -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


@pytest.mark.integration
@pytest.mark.skipif(not reachable(MQTT_HOST, int(MQTT_PORT)), reason="Mosquitto not reachable")
def test_a_down_webhook_keeps_a_bounded_backlog_without_holding_back_the_other_sinks(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    endpoint = Endpoint()  # not started: connection refused
    camera = f"cam-{time.monotonic_ns() % 10**9}"
    prefix = f"vigiltest-{camera}"
    subscriber = Subscriber(MQTT_HOST, int(MQTT_PORT), f"{prefix}/events")
    sent = events(300, camera)

    async def scenario() -> WebhookSink:
        bus = InProcessBus(queue_size=1000)
        hook = WebhookSink(endpoint.url("?token=t0k-secret"), max_backlog=50, backoff_s=0.05, max_backoff_s=0.5)
        jsonl = JsonLinesSink(tmp_path / "events.jsonl")
        mqtt = MqttSink(MQTT_HOST, int(MQTT_PORT), prefix=prefix)
        assert await mqtt.wait_connected()
        tasks = [asyncio.create_task(run_sink(bus, sink)) for sink in (hook, jsonl, mqtt)]
        await asyncio.sleep(0)
        started = time.monotonic()
        for event in sent:
            await bus.publish(event)
            await asyncio.sleep(0.002)  # a burst over ~1 s while the endpoint refuses connections
        assert time.monotonic() - started < 3
        await wait_until(lambda: jsonl.delivered == 300 and mqtt.delivered == 300, 5, "the other sinks")
        assert hook.delivered == 0 and hook.failing and endpoint.bodies == []
        assert hook.backlog() == 50 and hook.dropped == 250  # bounded: the oldest were dropped and counted
        endpoint.start()
        await wait_until(lambda: hook.backlog() == 0, 10, "the backlog to be delivered")
        assert hook.delivered == 50 and not hook.failing
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return hook

    try:
        hook = asyncio.run(scenario())
        on_mqtt = subscriber.wait_for(300)
    finally:
        endpoint.stop()
        subscriber.stop()
        clear_retained(f"{prefix}/#")
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    assert [decode_event(line).id for line in lines] == [e.id for e in sent]
    assert list(dict.fromkeys(decode_event(p).id for _, p in on_mqtt)) == [e.id for e in sent]
    order = {e.id: i for i, e in enumerate(sent)}
    got = [order[i] for i in endpoint.ids]
    assert got == sorted(got) and len(got) == 50 and got[-49:] == list(range(251, 300))  # the newest, in order
    assert endpoint.authorizations == {"Basic " + base64.b64encode(b"hook:hook-pw").decode()}
    full = [r.getMessage() for r in caplog.records if "backlog full" in r.getMessage()]
    assert len(full) == 1 and hook.name in full[0]  # rate-limited: one warning for 250 drops
    assert "t0k-secret" not in caplog.text and "hook-pw" not in caplog.text and "token" not in caplog.text


def test_an_outage_of_a_few_seconds_loses_nothing_when_the_backlog_is_big_enough() -> None:
    endpoint = Endpoint()
    endpoint.start()
    sent = events(100)

    async def scenario() -> WebhookSink:
        bus = InProcessBus()
        hook = WebhookSink(endpoint.url(), max_backlog=1000, backoff_s=0.05, max_backoff_s=0.4, timeout_s=1)
        task = asyncio.create_task(run_sink(bus, hook))
        await asyncio.sleep(0)
        for event in sent[:20]:
            await bus.publish(event)
        await wait_until(lambda: len(endpoint.bodies) == 20, 5, "the first 20")
        endpoint.stop()
        for event in sent[20:80]:  # 3 s of events while the endpoint is down
            await bus.publish(event)
            await asyncio.sleep(0.05)
        assert hook.failing and hook.backlog() > 0
        endpoint.start()
        for event in sent[80:]:
            await bus.publish(event)
        await wait_until(lambda: hook.delivered == 100, 10, "everything")
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return hook

    try:
        hook = asyncio.run(scenario())
    finally:
        endpoint.stop()
    assert endpoint.ids == [e.id for e in sent]  # all of them, once each, in order
    assert (hook.dropped, hook.rejected, hook.backlog()) == (0, 0, 0)


class Hanging:
    """Accepts connections and never answers."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self.accepted.append(self.socket.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        self.socket.close()
        for conn in self.accepted:
            conn.close()


def test_a_hanging_endpoint_blocks_neither_the_event_loop_nor_the_node(tmp_path: Path) -> None:
    hanging = Hanging()
    config = parse_config({"data_dir": str(tmp_path), "webhooks": [
        {"url": f"http://127.0.0.1:{hanging.port}/slow", "timeout_s": 2, "max_backlog": 10, "max_backoff_s": 1}]})
    services = open_services(config).start(jsonl=tmp_path / "events.jsonl")
    sent = events(40)
    try:
        services.call(asyncio.sleep(0.2))  # the sinks subscribed
        started = time.monotonic()
        for event in sent:
            services.writer.write(event)
        assert time.monotonic() - started < 2  # the node's writes never wait for a sink

        async def loop_latency() -> float:
            begun = asyncio.get_running_loop().time()
            await asyncio.sleep(0.01)
            return asyncio.get_running_loop().time() - begun

        deadline = time.monotonic() + 10
        while services.sinks[1].stats()["delivered"] != 40:
            assert time.monotonic() < deadline, services.sink_stats()
            assert services.call(loop_latency()) < 0.5  # the POSTs run on the webhook's own thread
            time.sleep(0.05)
        webhook, jsonl = services.sink_stats()
        assert webhook["name"] == f"webhook:http://127.0.0.1:{hanging.port}/slow"
        assert webhook["backlog"] == 10 and webhook["dropped"] == 30 and webhook["delivered"] == 0
        assert jsonl["backlog"] == 0 and jsonl["dropped"] == 0
        started = time.monotonic()
    finally:
        services.close()
        hanging.close()
    assert time.monotonic() - started < 10  # a failing sink is not waited for at shutdown
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    assert [decode_event(line).id for line in lines] == [e.id for e in sent]
