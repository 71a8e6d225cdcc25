"""MqttSink's events against the real Mosquitto at 127.0.0.1:1883 (VIGIL_TEST_MQTT) with a real subscriber, and a
reconnection test against a Mosquitto this test starts and restarts itself (state, availability and discovery:
test_mqtt_state.py)."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from vigil.events.bus import InProcessBus
from vigil.events.codec import decode_event
from vigil.events.mqtt import MqttSink
from vigil.events.sinks import run_sink
from vigil.types import Event

MQTT_HOST, MQTT_PORT = os.environ.get("VIGIL_TEST_MQTT", "127.0.0.1:1883").rsplit(":", 1)
T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
pytestmark = pytest.mark.integration


def reachable(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


class Subscriber:
    """A real paho subscriber collecting (topic, payload) at QoS 1."""

    def __init__(self, host: str, port: int, topic: str, client_id: str = "") -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=not client_id)
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = lambda _c, _u, msg: self.messages.append((msg.topic, msg.payload))
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        self.client.connect(host, port)
        self.client.loop_start()
        assert self.subscribed.wait(5), "subscriber could not subscribe"

    def wait_for(self, n: int, timeout: float = 10.0) -> list[tuple[str, bytes]]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.messages)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def clear_retained(*filters: str, host: str = MQTT_HOST, port: int = int(MQTT_PORT)) -> None:
    """Remove the retained messages (availability, counts, discovery) a test left on a broker."""
    topics: set[str] = set()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_message = lambda _c, _u, msg: topics.add(msg.topic) if msg.retain and msg.payload else None
    client.on_connect = lambda c, *_: c.subscribe([(f, 1) for f in filters])
    client.connect(host, port)
    client.loop_start()
    time.sleep(0.5)  # the broker sends retained messages at once on subscription
    for topic in sorted(topics):
        client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


requires_mosquitto = pytest.mark.skipif(not reachable(MQTT_HOST, int(MQTT_PORT)),
                                       reason=f"Mosquitto not reachable at {MQTT_HOST}")


@requires_mosquitto
def test_mqtt_sink_delivers_qos1_to_the_events_topic_and_optional_subtopics() -> None:
    camera = f"cam-{os.urandom(3).hex()}"
    prefix = f"vigiltest-{os.urandom(3).hex()}"
    subscriber = Subscriber(MQTT_HOST, int(MQTT_PORT), f"{prefix}/events/#")  # also matches <prefix>/events
    events = [Event(("zone_enter", "loitering")[i % 2], camera, T0 + timedelta(seconds=i)) for i in range(200)]

    async def scenario() -> None:
        bus = InProcessBus()
        sink = MqttSink(MQTT_HOST, int(MQTT_PORT), prefix=prefix, event_subtopics=True)
        assert await sink.wait_connected()
        task = asyncio.create_task(run_sink(bus, sink, cameras=[camera]))
        await asyncio.sleep(0)
        for event in events:
            await bus.publish(event)
        await bus.publish(Event("zone_enter", "another-camera", T0))  # filtered out by run_sink
        await asyncio.sleep(0.05)
        assert await sink.flush(5.0) and sink.pending == 0
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert sink.delivered == 200 and sink.dropped == 0

    try:
        asyncio.run(scenario())
        got = subscriber.wait_for(400)
    finally:
        subscriber.stop()
        clear_retained(f"{prefix}/#")
    assert len(got) == 400  # a burst at QoS 1: nothing dropped
    on_events = [payload for topic, payload in got if topic == f"{prefix}/events"]
    # QoS 1 is at least once: messages in flight when the broker stopped may come twice; none may be missing.
    assert list(dict.fromkeys(decode_event(p).id for p in on_events)) == [e.id for e in events]
    subtopics = [topic for topic, _ in got if topic != f"{prefix}/events"]
    assert subtopics[:2] == [f"{prefix}/events/{camera}/zone_enter", f"{prefix}/events/{camera}/loitering"]


class OwnBroker:
    """A Mosquitto process of this test (persistent sessions), on a free port, that can be stopped and restarted."""

    def __init__(self, folder: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.config = folder / "mosquitto.conf"
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {folder}/\n"
            + ("user root\n" if os.geteuid() == 0 else "")  # as root it would switch to a user that cannot write here
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [shutil.which("mosquitto") or "mosquitto", "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5
        while not reachable("127.0.0.1", self.port):
            assert time.monotonic() < deadline, "mosquitto did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()  # saves the persistent sessions
            self.process.wait(5)
            self.process = None


@pytest.mark.skipif(shutil.which("mosquitto") is None, reason="the mosquitto binary is not installed")
def test_mqtt_sink_queues_through_a_broker_restart(tmp_path: Path) -> None:
    broker = OwnBroker(tmp_path)
    broker.start()
    subscriber = Subscriber("127.0.0.1", broker.port, "vigil/events", client_id=f"watcher-{os.urandom(3).hex()}")
    events = [Event("line_cross", "gate", T0 + timedelta(seconds=i)) for i in range(30)]

    async def scenario() -> None:
        sink = MqttSink("127.0.0.1", broker.port, event_subtopics=False)
        assert await sink.wait_connected()
        for event in events[:10]:
            await sink.send(event)
        assert await sink.flush(5.0)
        broker.stop()
        await asyncio.sleep(0.3)
        assert not sink.connected
        for event in events[10:]:
            await sink.send(event)  # queued inside the client while the broker is away
        assert sink.pending == 20
        broker.start()
        assert await sink.flush(15.0), f"{sink.pending} events still unacknowledged after the broker came back"
        await sink.close()

    try:
        asyncio.run(scenario())
        got = subscriber.wait_for(30, timeout=15)
        time.sleep(0.2)  # let redeliveries arrive too
        got = list(subscriber.messages)
    finally:
        subscriber.stop()
        broker.stop()
    ids = [decode_event(payload).id for _, payload in got]
    # QoS 1 is at least once: messages in flight when the broker stopped may come twice; none may be missing.
    assert list(dict.fromkeys(ids)) == [e.id for e in events]
