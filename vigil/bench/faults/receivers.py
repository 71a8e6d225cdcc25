"""Independent receivers that count events by id, as a downstream consumer would see them.

- ``JetStreamReceiver``: a durable pull consumer (nats-py) on the node's stream, acking each message; being
  durable, it survives a restart of the server and resumes where it left off.
- ``MqttReceiver``: a paho MQTT v5 subscriber with a persistent session (``clean_start=False``, a session
  expiry) at QoS 1, so that what the broker queued for it survives a clean restart of the broker.
- ``WebhookReceiver``: an HTTP endpoint checking each POST's HMAC signature; it can be taken down and back up.

Both run on their own thread, reconnect by themselves, and keep ``received``: event id → times received.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import threading
import time
from collections import Counter
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import nats
import paho.mqtt.client as mqtt
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from vigil.errors import VigilError
from vigil.events.codec import CodecError, decode_event
from vigil.events.webhooks import SIGNATURE_HEADER


class Receiver:
    """Counts received events by id (thread-safe)."""

    def __init__(self) -> None:
        self.received: Counter[str] = Counter()
        self.malformed = 0
        self._lock = threading.Lock()

    def _count(self, payload: bytes) -> None:
        try:
            event_id = decode_event(payload).id
        except CodecError:
            self.malformed += 1
            return
        with self._lock:
            self.received[event_id] += 1

    def has(self, ids: Iterable[str]) -> bool:
        """Whether every id was received at least once."""
        with self._lock:
            return all(i in self.received for i in ids)

    def wait_for(self, ids: Iterable[str], timeout_s: float) -> bool:
        """Wait until every id was received at least once; False on timeout."""
        wanted = list(ids)
        deadline = time.monotonic() + timeout_s
        while not self.has(wanted):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    def tally(self, emitted: Iterable[str]) -> dict[str, int]:
        """``events`` (distinct ids received), ``lost`` (emitted, never received), ``duplicates`` (extra copies)."""
        with self._lock:
            received = dict(self.received)
        return {"events": len(received), "lost": sum(1 for i in emitted if i not in received),
                "duplicates": sum(n - 1 for n in received.values())}


class JetStreamReceiver(Receiver):
    """A durable pull consumer of ``stream`` (created by the node), from its first message."""

    def __init__(self, url: str, stream: str, subject: str, durable: str = "vigil-bench-receiver") -> None:
        super().__init__()
        self.url, self.stream, self.subject, self.durable = url, stream, subject, durable
        self.errors = 0  # fetches or acks that failed (during an outage)
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="bench-jetstream",
                                        daemon=True)

    def start(self, timeout_s: float = 15.0) -> JetStreamReceiver:
        self._thread.start()
        if not self._ready.wait(timeout_s) or self._failure is not None:
            self.stop()
            raise VigilError(f"JetStream receiver on {self.url}: no consumer on {self.stream} ({self._failure})")
        return self

    async def _main(self) -> None:
        try:
            client = await nats.connect(self.url, max_reconnect_attempts=-1, reconnect_time_wait=0.5,
                                        connect_timeout=2, error_cb=self._error, disconnected_cb=self._nothing)
            js = client.jetstream()
            config = ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL)
            subscription = await js.pull_subscribe(self.subject, durable=self.durable, stream=self.stream,
                                                   config=config)
        except Exception as exc:
            self._failure = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            while not self._stop.is_set():
                try:
                    messages = await subscription.fetch(200, timeout=0.5)
                except TimeoutError:
                    continue
                except Exception:  # the server is away: the client reconnects by itself
                    self.errors += 1
                    await asyncio.sleep(0.2)
                    continue
                for message in messages:
                    self._count(message.data)
                    try:
                        await message.ack()
                    except Exception:
                        self.errors += 1
        finally:
            with contextlib.suppress(Exception):
                await client.close()

    async def _error(self, _exc: Exception) -> None:  # instead of nats-py's traceback on each reconnection try
        self.errors += 1

    async def _nothing(self) -> None:
        pass

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)


class MqttReceiver(Receiver):
    """An MQTT v5 subscriber to ``topic`` at QoS 1 with a persistent session."""

    def __init__(self, host: str, port: int, topic: str, client_id: str | None = None,
                 session_expiry_s: int = 3600) -> None:
        super().__init__()
        self.host, self.port, self.topic = host, port, topic
        self.connections = 0
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=client_id or f"vigil-bench-{os.urandom(3).hex()}",
                                  protocol=mqtt.MQTTv5)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_args: self._subscribed.set()
        self.client.on_message = lambda _client, _userdata, message: self._count(message.payload)
        self.client.reconnect_delay_set(min_delay=1, max_delay=2)
        self._properties = Properties(PacketTypes.CONNECT)
        self._properties.SessionExpiryInterval = session_expiry_s

    def _on_connect(self, client: mqtt.Client, _userdata: object, flags: object, reason: object,
                    _props: object) -> None:
        if getattr(reason, "is_failure", False):
            return
        self.connections += 1
        if not getattr(flags, "session_present", False):
            client.subscribe(self.topic, qos=1)
        else:
            self._subscribed.set()

    def start(self, timeout_s: float = 10.0) -> MqttReceiver:
        self.client.connect_async(self.host, self.port, keepalive=10, clean_start=False,
                                  properties=self._properties)
        self.client.loop_start()
        if not self._subscribed.wait(timeout_s):
            self.stop()
            raise VigilError(f"MQTT receiver: no subscription to {self.topic} on {self.host}:{self.port}")
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class WebhookReceiver(Receiver):
    """An HTTP endpoint on 127.0.0.1 counting the events POSTed to it, each checked against its HMAC signature
    (``bad_signatures``). ``stop()`` closes the port (the endpoint is down: connections are refused) and
    ``start()`` opens it again on the same port."""

    def __init__(self, secret: str, port: int = 0) -> None:
        super().__init__()
        self.secret = secret.encode()
        self.port = port
        self.bad_signatures = 0
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                expected = "sha256=" + hmac.new(receiver.secret, body, hashlib.sha256).hexdigest()
                if not hmac.compare_digest(self.headers.get(SIGNATURE_HEADER, ""), expected):
                    receiver.bad_signatures += 1
                receiver._count(body)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                return

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, name="webhook-receiver", daemon=True).start()
        self._server = server
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
