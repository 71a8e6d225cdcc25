"""The MQTT sink (paho-mqtt): events, retained live counts and camera status, availability, HA discovery.

One client per node, so one last will: ``<prefix>/available`` is ``offline`` (retained) when the node dies
without disconnecting, and set ``online`` on every connection. Topics: vigil/events/homeassistant.py.

- **Events** come from the bus through ``run_sink`` and go to ``<prefix>/events`` at ``qos``. ``send`` only
  queues them in the client (its network thread does the I/O). While the broker is away the client queues
  up to ``max_backlog`` messages; beyond that ``send`` fails, and events wait in the sink's backlog (as many
  again, the oldest dropped). ``backlog()`` counts both.
- **State** (counts, camera status, discovery) is a topic → payload map published retained at QoS 1 by the
  sink's own thread, only when a value changes. ``on_result`` is the ``Node.on_result`` hook: it compares
  a frame's live counts with the last ones and, on change, updates the map and wakes that thread; it never
  calls into the client. After a (re)connection the whole map is published again, once the messages queued
  during the outage went out (so that a stale queued count cannot overwrite a fresh one).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import paho.mqtt.client as mqtt

from vigil.events.codec import encode_event
from vigil.events.homeassistant import Scope, Topics
from vigil.events.sinks import QueuedSink, SinkError
from vigil.types import Event

if TYPE_CHECKING:  # the runtime imports the analytics, which must not import the sinks
    from vigil.runtime import FrameResult

log = logging.getLogger(__name__)

#: after a reconnection, how long the full state waits for the messages queued during the outage to go out
RESYNC_WAIT_S = 3.0
ALERT_SEVERITIES = frozenset({"warning", "critical"})


class RetainedState:
    """Topic → payload of the retained state, and which topics changed since they were last published."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.changed = threading.Event()
        self._values: dict[str, bytes] = {}
        self._dirty: dict[str, None] = {}  # insertion-ordered set

    def set(self, topic: str, payload: bytes) -> None:
        with self.lock:
            if self._values.get(topic) == payload:
                return
            self._values[topic] = payload
            self._dirty[topic] = None
        self.changed.set()

    def get(self, topic: str) -> bytes | None:
        with self.lock:
            return self._values.get(topic)

    def take_dirty(self, everything: bool = False) -> list[tuple[str, bytes]]:
        """The changed topics (or all) with their payloads, in the order they were first set; now clean."""
        with self.lock:
            topics = list(self._values) if everything else list(self._dirty)
            self._dirty.clear()
            return [(topic, self._values[topic]) for topic in topics]

    def put_back(self, items: Iterable[tuple[str, bytes]]) -> None:
        """These were not published: dirty again, unless a newer value replaced them meanwhile."""
        with self.lock:
            for topic, payload in items:
                if self._values.get(topic) == payload:
                    self._dirty[topic] = None

    def __len__(self) -> int:
        with self.lock:
            return len(self._values)


class MqttSink(QueuedSink):
    """Publishes a node's events and live state to an MQTT broker; reconnects by itself.

    ``retained``: extra retained messages (Home Assistant discovery configs), published on every connection.
    ``counted``: camera → scope (None or zone) → labels whose counts start at 0 (others appear when seen);
    their cameras' status starts ``offline`` until a ``camera_online`` event.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 1883,
        prefix: str = "vigil",
        qos: int = 1,
        client_id: str = "",
        username: str | None = None,
        password: str | None = None,
        keepalive_s: int = 30,
        max_backlog: int = 10_000,
        tls: bool = False,
        ca_file: str | None = None,
        event_subtopics: bool = False,
        retained: Mapping[str, bytes] | None = None,
        counted: Mapping[str, Mapping[Scope, Iterable[str]]] | None = None,
    ) -> None:
        self._connected = threading.Event()
        super().__init__(f"{'mqtts' if tls else 'mqtt'}://{host}:{port}", max_backlog, retries=None, backoff_s=0.2,
                         max_backoff_s=5.0)
        self.topics = Topics(prefix.rstrip("/"))
        self.qos = qos
        self.event_subtopics = event_subtopics
        self.state = RetainedState()
        self._sent = 0
        self._acked = 0
        self._count_lock = threading.Lock()
        self._closing = threading.Event()
        self._resync_at: float | None = None  # set on connection: publish the whole state
        self._unannounced = False  # "online" could not be queued on connection (the client's queue was full)
        self._counts: dict[str, dict[Scope, dict[str, int]]] = {}  # camera → the last live counts seen
        self._labels: dict[str, dict[Scope, set[str]]] = {}  # camera → scope → labels with a count topic
        self._cameras: set[str] = set()
        for topic, payload in (retained or {}).items():
            self.state.set(topic, payload)
        for camera, scopes in (counted or {}).items():
            self._set_status(camera, "offline")
            self._labels[camera] = {scope: set(labels) for scope, labels in scopes.items()}
            for scope, labels in scopes.items():
                for label in labels:
                    self.state.set(self.topics.count(camera, scope, label), b"0")
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  clean_session=not client_id, reconnect_on_failure=True)
        if username:
            self.client.username_pw_set(username, password)
        if tls:
            self.client.tls_set(ca_certs=ca_file)
        self.client.will_set(self.topics.available, "offline", qos=1, retain=True)
        self.client.max_queued_messages_set(max_backlog)
        self.client.max_inflight_messages_set(100)
        self.client.reconnect_delay_set(min_delay=1, max_delay=10)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self._publisher = threading.Thread(target=self._run_state, name="vigil-mqtt-state", daemon=True)
        self._publisher.start()
        self.client.connect_async(host, port, keepalive=keepalive_s)
        self.client.loop_start()

    # -- connection (paho's network thread) --------------------------------------------------------------

    def _on_connect(self, _client: object, _userdata: object, _flags: object, reason: object, _props: object) -> None:
        if getattr(reason, "is_failure", False):
            log.error("MQTT %s: connection refused (%s)", self.name, reason)
            return
        self._unannounced = not self._publish(self.topics.available, b"online", qos=1, retain=True)
        self._resync_at = time.monotonic()
        self._connected.set()
        self.state.changed.set()
        log.info("MQTT %s: connected", self.name)

    def _on_disconnect(
        self, _client: object, _userdata: object, _flags: object, reason: object, _props: object
    ) -> None:
        if self._connected.is_set() and not self._closing.is_set():
            log.warning("MQTT %s: disconnected (%s); reconnecting, events are queued", self.name, reason)
        self._connected.clear()

    def _on_publish(self, _client: object, _userdata: object, _mid: int, _reason: object, _props: object) -> None:
        with self._count_lock:
            self._acked += 1

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def failing(self) -> bool:
        """The last event could not be queued, or the broker is away (so a shutdown does not wait for it)."""
        return self._failing or not self._connected.is_set()

    @failing.setter
    def failing(self, value: bool) -> None:
        self._failing = value

    @property
    def pending(self) -> int:
        """Messages handed to the client and not yet acknowledged by the broker."""
        with self._count_lock:
            return max(0, self._sent - self._acked)

    def backlog(self) -> int:
        """Events waiting before the client, and messages inside it not yet acknowledged."""
        return len(self.queue) + self.pending

    def stats(self) -> dict[str, object]:
        return {**super().stats(), "connected": self.connected, "retained_topics": len(self.state)}

    async def wait_connected(self, timeout_s: float = 5.0) -> bool:
        return await asyncio.to_thread(self._connected.wait, timeout_s)

    def _publish(self, topic: str, payload: bytes, qos: int, retain: bool = False) -> bool:
        """Queue one message in the client; False when its queue is full."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            return False
        if qos > 0 or info.rc == mqtt.MQTT_ERR_SUCCESS:  # a QoS 0 message without connection is gone
            with self._count_lock:
                self._sent += 1
        return True

    # -- events (the services' event loop) ---------------------------------------------------------------

    async def send(self, event: Event) -> None:
        payload = encode_event(event)
        if not self._publish(self.topics.events, payload, self.qos):
            raise SinkError(f"the client's queue is full ({self.queue.maxsize} messages)")
        if self.event_subtopics:
            self._publish(self.topics.event_subtopic(event.camera_id, event.kind), payload, self.qos)
        if event.kind == "camera_online":
            self._set_status(event.camera_id, "online")
        elif event.kind == "camera_offline":
            self._set_status(event.camera_id, "offline")
        elif event.severity in ALERT_SEVERITIES and not event.kind.startswith("camera_"):
            self._publish(self.topics.alert(event.camera_id), payload, qos=1)

    def _set_status(self, camera_id: str, status: str) -> None:
        self._cameras.add(camera_id)
        self.state.set(self.topics.status(camera_id), status.encode())

    async def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until the broker acknowledged everything sent; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while self.pending > 0:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    # -- live counts (the inference thread) --------------------------------------------------------------

    def on_result(self, result: FrameResult) -> None:
        """``Node.on_result`` hook: record the frame's live counts per camera and zone when they changed."""
        counts = getattr(result.output, "live_counts", None)
        camera = result.camera.id
        if counts is None or self._counts.get(camera) == counts:
            return
        self._counts[camera] = counts
        known = self._labels.setdefault(camera, {})
        for scope in set(known) | set(counts):
            now = counts.get(scope, {})
            labels = known.setdefault(scope, set())
            labels.update(now)
            for label in labels:
                self.state.set(self.topics.count(camera, scope, label), str(now.get(label, 0)).encode())

    # -- the state thread --------------------------------------------------------------------------------

    def _run_state(self) -> None:
        while not self._closing.is_set():
            self.state.changed.wait(0.05 if self._resync_at is not None else 0.5)
            if self._closing.is_set():
                return
            self.state.changed.clear()
            try:
                self._publish_state()
            except Exception:  # never let the state thread die
                log.exception("MQTT %s: publishing state failed", self.name)

    def _publish_state(self, force: bool = False) -> None:
        if not self._connected.is_set():
            return
        if self._unannounced:
            self._unannounced = not self._publish(self.topics.available, b"online", qos=1, retain=True)
        everything = False
        if self._resync_at is not None:
            if not force and self.pending > 0 and time.monotonic() - self._resync_at < RESYNC_WAIT_S:
                return  # the outage's queued messages first: a stale count must not come after a fresh one
            self._resync_at = None
            everything = True
        items = self.state.take_dirty(everything)
        for i, (topic, payload) in enumerate(items):
            if not self._publish(topic, payload, qos=1, retain=True):
                self.state.put_back(items[i:])  # the client's queue is full: again on the next wake-up
                return

    # -- shutdown ----------------------------------------------------------------------------------------

    async def close(self) -> None:
        """Publish the final state (cameras offline, ``<prefix>/available`` offline), then disconnect."""
        self._closing.set()
        self.state.changed.set()
        await asyncio.to_thread(self._publisher.join, 2.0)
        if self._connected.is_set():
            for camera in sorted(self._cameras):
                self._set_status(camera, "offline")
            self._publish_state(force=True)
            self._publish(self.topics.available, b"offline", qos=1, retain=True)
            await self.flush(timeout_s=2.0)
        self.client.disconnect()
        self.client.loop_stop()
