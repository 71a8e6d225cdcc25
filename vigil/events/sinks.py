"""Alert sinks fed from the bus: a JSON-lines file, MQTT (paho-mqtt, QoS 1) and webhooks (POST with retry).

``run_sink(bus, sink)`` forwards a bus subscription to a sink until cancelled; a failing sink is logged and
never stops the others.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

import paho.mqtt.client as mqtt

from vigil.config import redact_url
from vigil.errors import VigilError
from vigil.events.bus import Bus
from vigil.events.codec import encode_event
from vigil.types import Event

log = logging.getLogger(__name__)

#: the header that carries a webhook body's HMAC-SHA256 signature
SIGNATURE_HEADER = "X-Vigil-Signature"


class SinkError(VigilError):
    """A sink could not deliver an event; the message names the sink."""


class Sink(Protocol):
    name: str

    async def send(self, event: Event) -> None: ...

    async def close(self) -> None: ...


async def run_sink(
    bus: Bus, sink: Sink, kinds: Iterable[str] | None = None, cameras: Iterable[str] | None = None
) -> None:
    """Forward events from ``bus`` to ``sink`` until cancelled, then close it. Errors are logged once per outage."""
    subscription = bus.subscribe(kinds=kinds, cameras=cameras)
    failing = False
    try:
        async for event in subscription:
            try:
                await sink.send(event)
            except Exception as exc:
                if not failing:
                    log.error("sink %s: %s", sink.name, exc)
                failing = True
                continue
            if failing:
                log.warning("sink %s: delivering again", sink.name)
                failing = False
    finally:
        await subscription.close()
        await sink.close()


class JsonLinesSink:
    """Appends one JSON event per line to a file (created with its folder)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.name = f"jsonl:{self.path}"
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


def mqtt_topic(event: Event, prefix: str = "vigil/events") -> str:
    return f"{prefix}/{event.camera_id}/{event.kind}"


class MqttSink:
    """Publishes events at QoS 1 to ``<prefix>/<camera>/<kind>``. Reconnects by itself; while the broker is
    away messages queue inside the client and go out on reconnection. ``pending`` counts unacknowledged ones."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 1883,
        topic_prefix: str = "vigil/events",
        qos: int = 1,
        client_id: str = "",
        username: str | None = None,
        password: str | None = None,
        keepalive_s: int = 30,
        max_queued: int = 100_000,
        tls: bool = False,
        ca_file: str | None = None,
    ) -> None:
        self.name = f"{'mqtts' if tls else 'mqtt'}://{host}:{port}"
        self.topic_prefix = topic_prefix.rstrip("/")
        self.qos = qos
        self._sent = 0
        self._acked = 0
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=not client_id,
            reconnect_on_failure=True,
        )
        if username:
            self.client.username_pw_set(username, password)
        if tls:
            self.client.tls_set(ca_certs=ca_file)
        self.client.max_queued_messages_set(max_queued)
        self.client.max_inflight_messages_set(100)
        self.client.reconnect_delay_set(min_delay=1, max_delay=10)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.connect_async(host, port, keepalive=keepalive_s)
        self.client.loop_start()

    def _on_connect(self, _client: object, _userdata: object, _flags: object, reason: object, _props: object) -> None:
        if not getattr(reason, "is_failure", False):
            self._connected.set()
            log.info("MQTT %s: connected", self.name)
        else:
            log.error("MQTT %s: connection refused (%s)", self.name, reason)

    def _on_disconnect(
        self, _client: object, _userdata: object, _flags: object, reason: object, _props: object
    ) -> None:
        if self._connected.is_set():
            log.warning("MQTT %s: disconnected (%s); reconnecting, events are queued", self.name, reason)
        self._connected.clear()

    def _on_publish(self, _client: object, _userdata: object, _mid: int, _reason: object, _props: object) -> None:
        with self._lock:
            self._acked += 1

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def pending(self) -> int:
        """Messages handed to the client and not yet acknowledged by the broker."""
        with self._lock:
            return self._sent - self._acked

    async def wait_connected(self, timeout_s: float = 5.0) -> bool:
        return await asyncio.to_thread(self._connected.wait, timeout_s)

    async def send(self, event: Event) -> None:
        info = self.client.publish(mqtt_topic(event, self.topic_prefix), encode_event(event), qos=self.qos)
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            raise SinkError(f"MQTT {self.name}: outgoing queue full, event {event.id} dropped")
        with self._lock:
            self._sent += 1

    async def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until the broker acknowledged everything sent; False on timeout."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while self.pending > 0:
            if asyncio.get_running_loop().time() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    async def close(self) -> None:
        await self.flush(timeout_s=2.0)
        self.client.disconnect()
        self.client.loop_stop()


class WebhookSink:
    """POSTs each event as JSON; retries connection errors and 5xx answers with backoff, then raises.

    With a ``secret`` each body is signed: ``X-Vigil-Signature: sha256=<HMAC-SHA256 of the body, hex>``.
    """

    def __init__(
        self,
        url: str,
        headers: dict[str, str] | None = None,
        timeout_s: float = 5.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        secret: str | None = None,
    ) -> None:
        self.url = url
        self.name = f"webhook:{redact_url(url)}"
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self._secret = secret.encode() if secret else None

    def _post(self, body: bytes) -> int:
        headers = dict(self.headers)
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = "sha256=" + hmac.new(self._secret, body, hashlib.sha256).hexdigest()
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            return int(response.status)

    async def send(self, event: Event) -> None:
        body = encode_event(event)
        problem = ""
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                await asyncio.to_thread(self._post, body)
                return
            except urllib.error.HTTPError as exc:
                problem = f"HTTP {exc.code}"
                if exc.code < 500 and exc.code != 429:
                    break  # the receiver rejects this event: retrying will not help
            except (urllib.error.URLError, OSError) as exc:
                problem = str(getattr(exc, "reason", exc))
        raise SinkError(f"{self.name}: event {event.id} not delivered ({problem})")

    async def close(self) -> None:
        return None
