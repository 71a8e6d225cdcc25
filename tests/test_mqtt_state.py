"""MQTT state against the real Mosquitto at 127.0.0.1:1883: retained live counts published on change only,
availability with a last will that fires when the node is killed, camera status and alerts from events, Home
Assistant discovery, the full state again after a broker restart, and a short real run of the demo video."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import supervision as sv
from test_bus_mqtt import MQTT_HOST, MQTT_PORT, OwnBroker, clear_retained, reachable

from vigil.analytics.engine import RuleEngine
from vigil.assembly import open_services
from vigil.config import CameraConfig, MqttConfig, parse_config
from vigil.demo.run import DEMO_START, demo_config
from vigil.events.bus import InProcessBus
from vigil.events.homeassistant import Topics, counted_labels, slug, topic_level
from vigil.events.integrations import mqtt_sink
from vigil.events.mqtt import MqttSink
from vigil.events.sinks import run_sink
from vigil.runtime import FrameResult, Node
from vigil.types import Event, Track, TrackState
from vigil.vision.detector import create_detector
from vigil.vision.tracker import TrackUpdate

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not reachable(MQTT_HOST, int(MQTT_PORT)), reason="Mosquitto not reachable")]
PORT = int(MQTT_PORT)
T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
CAMERA = CameraConfig.model_validate({
    "id": "campus-junction", "url": "rtsp://127.0.0.1:1/a", "name": "Campus junction",
    "zones": [{"name": "crossing", "polygon": [[0, 0], [100, 0], [100, 100], [0, 100]], "classes": ["person"]},
              {"name": "car park/east", "polygon": [[200, 0], [300, 0], [300, 100], [200, 100]]}],
})


class Watcher:
    """A real subscriber keeping every message (topic, payload, retain flag) on a filter."""

    def __init__(self, topic: str, port: int = PORT) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        self.client.connect(MQTT_HOST, port)
        self.client.loop_start()
        assert subscribed.wait(5), "could not subscribe"

    def _on_message(self, _client: object, _userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, msg.payload, bool(msg.retain)))

    def latest(self) -> dict[str, bytes]:
        with self._lock:
            return {topic: payload for topic, payload, _ in self.messages}

    def on(self, topic: str) -> list[bytes]:
        with self._lock:
            return [payload for t, payload, _ in self.messages if t == topic]

    def wait(self, predicate: Callable[[Watcher], bool], timeout: float = 10.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not predicate(self):
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {self.latest()}"
            time.sleep(0.02)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def person(track_id: int, x: float, y: float, label: str = "person") -> Track:
    return Track("campus-junction", track_id, label, T0, T0, TrackState.CONFIRMED, boxes=[(x - 5, y - 20, x + 5, y)],
                 box_times=[T0], trajectory=[(x, y)], hits=5)


def frame(engine: RuleEngine, tracks: list[Track], at: datetime) -> FrameResult:
    """The result of a frame at ``at`` where ``tracks`` are seen."""
    for track in tracks:
        track.last_seen = track.box_times[-1] = at
    output = engine.update(tracks, [], at)
    return FrameResult(CAMERA, None, TrackUpdate(sv.Detections.empty(), tracks, []), output, True)


def test_topics_and_counted_labels() -> None:
    topics = Topics("vigil")
    assert topics.count("campus-junction", "crossing", "person") == "vigil/campus-junction/crossing/person"
    assert topics.count("campus-junction", None, "car") == "vigil/campus-junction/car"
    assert topic_level("car park/east#1+") == "car park_east_1_" and slug("cam.1 a/b") == "cam_1_a_b"
    labels = counted_labels(CAMERA, ["person", "car"])
    assert labels == {None: ["person", "car"], "crossing": ["person"], "car park/east": ["person", "car"]}


def test_live_counts_are_retained_and_published_on_change_only() -> None:
    prefix = f"vigiltest-{os.urandom(3).hex()}"
    topics = Topics(prefix)
    live = Watcher(f"{prefix}/#")
    sink = MqttSink(MQTT_HOST, PORT, prefix=prefix, counted={CAMERA.id: counted_labels(CAMERA, ["person", "car"])})
    crossing = topics.count(CAMERA.id, "crossing", "person")
    try:
        assert asyncio.run(sink.wait_connected())
        live.wait(lambda w: w.latest().get(crossing) == b"0", what="the initial zero count")
        engine = RuleEngine(CAMERA)
        three = [person(1, 50, 50), person(2, 60, 60), person(3, 250, 50), person(4, 250, 60, "car")]
        for i in range(20):  # the same scene for 20 frames: one message per changed topic, not per frame
            sink.on_result(frame(engine, three, T0 + timedelta(seconds=i * 0.2)))
            time.sleep(0.01)
        live.wait(lambda w: w.latest().get(topics.count(CAMERA.id, None, "person")) == b"3", what="3 people")
        time.sleep(0.3)
        assert live.on(crossing) == [b"0", b"2"]
        assert live.on(topics.count(CAMERA.id, "car park/east", "car")) == [b"0", b"1"]
        assert live.latest()[f"{prefix}/campus-junction/car park_east/person"] == b"1"
        sink.on_result(frame(engine, three[2:], T0 + timedelta(seconds=5)))  # two left the crossing
        live.wait(lambda w: w.on(crossing)[-1:] == [b"0"] and len(w.on(crossing)) == 3, what="the crossing empty")

        late = Watcher(f"{prefix}/#")  # subscribes after the fact: gets the retained values
        wanted = [topics.count(CAMERA.id, None, "person"), crossing, topics.count(CAMERA.id, None, "car"),
                  topics.status(CAMERA.id), topics.available]
        # the broker sends the retained values one by one, in no set order: wait for all of them
        late.wait(lambda w: all(t in w.latest() for t in wanted), what="retained counts")
        assert late.latest()[wanted[0]] == b"1"
        assert all(retained for _, _, retained in late.messages)
        assert late.latest()[crossing] == b"0" and late.latest()[topics.count(CAMERA.id, None, "car")] == b"1"
        assert late.latest()[topics.status(CAMERA.id)] == b"offline"  # until its camera_online event
        assert late.latest()[topics.available] == b"online"
        late.stop()
    finally:
        asyncio.run(sink.close())
        live.wait(lambda w: w.latest().get(topics.available) == b"offline", what="offline after a clean close")
        live.stop()
        clear_retained(f"{prefix}/#")


NODE_SCRIPT = """
import sys, time
from vigil.events.mqtt import MqttSink
sink = MqttSink(sys.argv[1], int(sys.argv[2]), prefix=sys.argv[3], counted={"cam": {None: ["person"]}})
while not sink.connected:
    time.sleep(0.02)
while sink.pending:
    time.sleep(0.02)
print("ready", flush=True)
time.sleep(60)
"""


def test_availability_last_will_fires_when_the_node_is_killed() -> None:
    prefix = f"vigiltest-{os.urandom(3).hex()}"
    topics = Topics(prefix)
    watcher = Watcher(topics.available)
    node = subprocess.Popen([sys.executable, "-c", NODE_SCRIPT, MQTT_HOST, str(PORT), prefix],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert node.stdout is not None and node.stdout.readline().strip() == "ready"
        watcher.wait(lambda w: w.on(topics.available)[-1:] == [b"online"], what="online")
        node.send_signal(signal.SIGKILL)  # no DISCONNECT: the broker sees the socket close and sends the will
        node.wait(5)
        watcher.wait(lambda w: w.on(topics.available)[-1:] == [b"offline"], timeout=5, what="the last will")
        late = Watcher(topics.available)
        late.wait(lambda w: w.on(topics.available) == [b"offline"], what="a retained offline")
        late.stop()
    finally:
        node.kill()
        watcher.stop()
        clear_retained(f"{prefix}/#")


def test_camera_status_and_alerts_come_from_events() -> None:
    prefix = f"vigiltest-{os.urandom(3).hex()}"
    topics = Topics(prefix)
    watcher = Watcher(f"{prefix}/#")

    async def scenario() -> None:
        bus = InProcessBus()
        sink = MqttSink(MQTT_HOST, PORT, prefix=prefix, counted={"gate": {None: ["person"]}})
        assert await sink.wait_connected()
        task = asyncio.create_task(run_sink(bus, sink))
        await asyncio.sleep(0)
        await asyncio.to_thread(watcher.wait, lambda w: w.latest().get(topics.status("gate")) == b"offline",
                                what="gate offline until its camera_online event")
        await bus.publish(Event("camera_online", "gate", T0))
        await asyncio.to_thread(watcher.wait, lambda w: w.latest().get(topics.status("gate")) == b"online",
                                what="gate online")
        await bus.publish(Event("camera_offline", "gate", T0, "warning"))  # a camera event: no alert
        loitering = Event("loitering", "gate", T0, "warning", zone="door")
        await bus.publish(Event("zone_enter", "gate", T0))  # info: no alert
        await bus.publish(loitering)
        await asyncio.to_thread(watcher.wait, lambda w: len(w.on(topics.events)) == 4, what="4 events")
        assert await sink.flush(5)
        task.cancel()  # closes the sink: cameras and the node go offline
        await asyncio.gather(task, return_exceptions=True)
        alerts = watcher.on(topics.alert("gate"))
        assert [json.loads(a)["id"] for a in alerts] == [loitering.id]
        assert watcher.on(topics.status("gate")) == [b"offline", b"online", b"offline"]

    try:
        asyncio.run(scenario())
        watcher.wait(lambda w: w.latest().get(topics.available) == b"offline", what="offline at close")
    finally:
        watcher.stop()
        clear_retained(f"{prefix}/#")


REQUIRED = {"name", "unique_id", "state_topic", "availability_topic", "device"}


def test_home_assistant_discovery_configs() -> None:
    tag = os.urandom(3).hex()
    prefix, discovery = f"vigiltest-{tag}", f"hatest-{tag}"
    config = parse_config({
        "detector": {"classes": ["person", "car"]},
        "mqtt": {"host": MQTT_HOST, "port": PORT, "topic_prefix": prefix, "discovery_prefix": discovery,
                 "alert_off_delay_s": 45},
        "cameras": [CAMERA.model_dump(mode="json"), {"id": "off", "url": "rtsp://127.0.0.1:1/b", "enabled": False}],
    })
    assert config.mqtt is not None
    sink = mqtt_sink(config, config.mqtt)
    watcher = Watcher(f"{discovery}/#")
    state = Watcher(f"{prefix}/#")
    try:
        watcher.wait(lambda w: len(w.latest()) == 7, what="7 discovery configs")
        configs = {topic: json.loads(payload) for topic, payload in watcher.latest().items()}
        sensors = {t for t in configs if t.startswith(f"{discovery}/sensor/")}
        assert sensors == {f"{discovery}/sensor/vigil_campus-junction_{name}/config" for name in
                           ("person", "car", "crossing_person", "car_park_east_person", "car_park_east_car")}
        device = {"identifiers": ["vigil_campus-junction"], "name": "Campus junction", "manufacturer": "Vigil"}
        for topic, body in configs.items():
            assert set(body) >= REQUIRED and device.items() <= body["device"].items() and body["device"]["model"]
            assert body["availability_topic"] == f"{prefix}/available"
            assert topic == f"{discovery}/{topic.split('/')[1]}/{body['unique_id']}/config"
        crossing = configs[f"{discovery}/sensor/vigil_campus-junction_crossing_person/config"]
        assert crossing["state_topic"] == f"{prefix}/campus-junction/crossing/person"
        status = configs[f"{discovery}/binary_sensor/vigil_campus-junction_status/config"]
        assert (status["state_topic"], status["payload_on"], status["device_class"]) == (
            f"{prefix}/campus-junction/status", "online", "connectivity")
        alert = configs[f"{discovery}/binary_sensor/vigil_campus-junction_alert/config"]
        assert alert["off_delay"] == 45 and alert["state_topic"] == f"{prefix}/campus-junction/alert"
        # every sensor's state topic holds a retained value already
        state.wait(lambda w: all(c["state_topic"] in w.latest() for c in configs.values()
                                 if c["state_topic"].split("/")[-1] != "alert"), what="the sensors' states")
    finally:
        asyncio.run(sink.close())
        watcher.stop()
        state.stop()
        clear_retained(f"{discovery}/#", f"{prefix}/#")


@pytest.mark.skipif(shutil.which("mosquitto") is None, reason="the mosquitto binary is not installed")
def test_the_whole_state_is_published_again_after_a_broker_restart(tmp_path: Path) -> None:
    broker = OwnBroker(tmp_path)
    broker.config.write_text(broker.config.read_text().replace("persistence true", "persistence false"))
    broker.start()
    topics = Topics("vigil")
    sink = MqttSink("127.0.0.1", broker.port, counted={CAMERA.id: counted_labels(CAMERA, ["person"])},
                    retained={"homeassistant/sensor/x/config": b"{}"})
    engine = RuleEngine(CAMERA)
    try:
        assert asyncio.run(sink.wait_connected())
        sink.on_result(frame(engine, [person(1, 50, 50)], T0))
        first = Watcher("#", broker.port)
        first.wait(lambda w: w.latest().get(topics.count(CAMERA.id, "crossing", "person")) == b"1", what="1")
        first.stop()
        broker.stop()  # without persistence: the restarted broker has no retained message
        time.sleep(0.5)
        sink.on_result(frame(engine, [person(1, 50, 50), person(2, 60, 50)], T0 + timedelta(seconds=1)))
        broker.start()
        assert asyncio.run(sink.wait_connected(15))
        again = Watcher("#", broker.port)
        again.wait(lambda w: w.latest().get(topics.count(CAMERA.id, "crossing", "person")) == b"2"
                   and w.latest().get(topics.available) == b"online" and "homeassistant/sensor/x/config" in w.latest()
                   and w.latest().get(topics.status(CAMERA.id)) == b"offline", timeout=15, what="the whole state")
        again.stop()
    finally:
        asyncio.run(sink.close())
        broker.stop()


def test_a_short_real_run_publishes_counts_on_change(data_dir: Path, tmp_path: Path) -> None:
    clip = tmp_path / "vtest10.avi"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(data_dir / "video/vtest.avi"), "-frames:v", "100",
                    "-c", "copy", str(clip)], check=True)
    tag = os.urandom(3).hex()
    prefix = f"vigiltest-{tag}"
    config = demo_config(tmp_path / "out", clip)
    config.cameras[0].recording.mode = "off"
    config.mqtt = MqttConfig(host=MQTT_HOST, port=PORT, topic_prefix=prefix, discovery_prefix=f"hatest-{tag}")
    topics = Topics(prefix)
    watcher = Watcher(f"{prefix}/#")
    services = open_services(config, start_time=DEMO_START).start()
    assert services.mqtt is not None and asyncio.run(services.mqtt.wait_connected())
    node = services.attach(Node(config, create_detector(config.detector), start_time=DEMO_START))
    changes: Counter[str] = Counter()
    last: dict[str, int] = {}

    def expected(result: FrameResult) -> None:
        for scope, labels in counted_labels(result.camera, config.detector.classes).items():
            for label in labels:
                topic = topics.count(result.camera.id, scope, label)
                value = result.output.live_counts.get(scope, {}).get(label, 0)
                changes[topic] += last.get(topic, 0) != value
                last[topic] = value

    node.on_result.append(expected)
    try:
        node.start().run(until_end=True)
    finally:
        services.close()
    try:
        junction = topics.count("campus-junction", "junction", "person")
        watcher.wait(lambda w: w.latest().get(topics.available) == b"offline", what="the node offline")
        frames = node.pipelines["campus-junction"].stats.frames
        assert frames == 50 and changes[junction] >= 2 and max(last.values()) == 0  # tracks end with the stream
        for topic, n in changes.items():  # the initial 0, then at most one message per change (may coalesce)
            got = watcher.on(topic)
            assert 1 <= len(got) <= 1 + n and got[-1] == b"0", (topic, n, got)
        people = topics.count("campus-junction", None, "person")
        assert 2 <= len(watcher.on(people)) < frames / 2 and b"0" not in set(watcher.on(people)[1:-1])
        assert watcher.on(topics.status("campus-junction"))[-2:] == [b"online", b"offline"]
        assert len(watcher.on(topics.events)) == services.relay.published
    finally:
        watcher.stop()
        clear_retained(f"{prefix}/#", f"hatest-{tag}/#")
