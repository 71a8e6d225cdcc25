"""The bus and alert sinks switched on from the config (``bus:``, ``mqtt:``, ``webhooks:``), against the real
NATS JetStream and Mosquitto on 127.0.0.1 and a real HTTP endpoint: an event written by a node reaches all three,
webhook bodies are signed, filters hold, and secrets never reach the logs."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import re
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from test_bus_mqtt import Subscriber, clear_retained, reachable
from test_bus_nats import NATS_URL, requires_nats, take

from vigil.assembly import open_services
from vigil.config import parse_config
from vigil.errors import VigilError
from vigil.events.codec import decode_event
from vigil.events.integrations import configured_sinks
from vigil.events.nats_bus import NatsBus
from vigil.events.webhooks import SIGNATURE_HEADER, WebhookSink
from vigil.types import Event

pytestmark = pytest.mark.integration
requires_mqtt = pytest.mark.skipif(not reachable("127.0.0.1", 1883), reason="Mosquitto not reachable at 127.0.0.1:1883")
SECRET = "hook-secret-4f1b"
NATS_PASSWORD = "nats-pw-93c2"


class Receiver:
    """A real HTTP endpoint on 127.0.0.1 that records each POST's headers and body."""

    def __init__(self) -> None:
        self.posts: list[tuple[dict[str, str], bytes]] = []
        received = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((dict(self.headers), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, n: int, timeout: float = 10.0) -> list[tuple[dict[str, str], bytes]]:
        end = time.monotonic() + timeout
        while len(self.posts) < n and time.monotonic() < end:
            time.sleep(0.02)
        return list(self.posts)


def city_config(tmp_path: Path, hook_url: str, tag: str) -> dict:
    host_port = NATS_URL.split("://", 1)[1]
    return {
        "data_dir": str(tmp_path),
        "bus": {"kind": "nats", "url": f"nats://{host_port}", "stream": f"VIGIL_CFG_{tag}",
                "subject_prefix": f"vigilcfg{tag}", "user": "vigil", "password": NATS_PASSWORD},
        "mqtt": {"host": "127.0.0.1", "port": 1883, "topic_prefix": f"vigilcfg{tag}", "password": "mqtt-pw",
                 "discovery": False},
        "webhooks": [{"url": hook_url, "kinds": ["loitering"], "cameras": ["cam-a"], "secret": SECRET}],
        "cameras": [{"id": "cam-a", "url": "rtsp://127.0.0.1:1/a"}, {"id": "cam-b", "url": "rtsp://127.0.0.1:1/b"}],
    }


@requires_nats
@requires_mqtt
def test_config_switches_on_nats_mqtt_and_signed_webhooks(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    tag = os.urandom(4).hex()
    receiver = Receiver()
    config = parse_config(city_config(tmp_path, receiver.url, tag))
    mqtt_subscriber = Subscriber("127.0.0.1", 1883, f"vigilcfg{tag}/events")
    services = open_services(config).start()
    assert isinstance(services.bus, NatsBus)
    listener = asyncio.run_coroutine_threadsafe(_nats_listener(tag), services.loop).result(10)
    try:
        asyncio.run_coroutine_threadsafe(asyncio.sleep(0.5), services.loop).result()  # sinks subscribed
        loitering = Event("loitering", "cam-a", _now(), "warning", zone="junction")
        other_camera = Event("loitering", "cam-b", _now())
        other_kind = Event("zone_enter", "cam-a", _now())
        for event in (loitering, other_camera, other_kind):
            services.writer.write(event)

        on_nats = asyncio.run_coroutine_threadsafe(take(listener, 3, timeout=10), services.loop).result(15)
        assert {e.id for e in on_nats} == {loitering.id, other_camera.id, other_kind.id}

        on_mqtt = mqtt_subscriber.wait_for(3)
        assert {topic for topic, _ in on_mqtt} == {f"vigilcfg{tag}/events"}
        assert {decode_event(payload).id for _, payload in on_mqtt} == {loitering.id, other_camera.id, other_kind.id}

        posts = receiver.wait_for(1)
        asyncio.run_coroutine_threadsafe(asyncio.sleep(0.5), services.loop).result()
        assert len(receiver.posts) == 1, "the webhook's kind and camera filters let another event through"
        headers, body = posts[0]
        assert json.loads(body)["id"] == loitering.id
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert headers[SIGNATURE_HEADER] == expected
    finally:
        asyncio.run_coroutine_threadsafe(listener.close(), services.loop).result(5)
        asyncio.run_coroutine_threadsafe(services.bus.jetstream.delete_stream(f"VIGIL_CFG_{tag}"), services.loop)
        services.close()
        mqtt_subscriber.stop()
        receiver.server.shutdown()
        clear_retained(f"vigilcfg{tag}/#")
    logged = caplog.text + repr(config)
    for secret in (SECRET, NATS_PASSWORD, "mqtt-pw"):
        assert secret not in logged


async def _nats_listener(tag: str):  # type: ignore[no-untyped-def]
    bus = await NatsBus.connect(NATS_URL, stream=f"VIGIL_CFG_{tag}", prefix=f"vigilcfg{tag}")
    return bus.subscribe()


def _now() -> datetime:
    return datetime.now(UTC)


def test_unreachable_nats_is_one_line_naming_the_server_without_its_password(tmp_path: Path) -> None:
    config = parse_config({"data_dir": str(tmp_path),
                           "bus": {"kind": "nats", "url": "nats://vigil:s3cret-pw@127.0.0.1:1"}})
    with pytest.raises(VigilError) as caught:
        open_services(config)
    message = str(caught.value)
    assert "127.0.0.1:1" in message and "s3cret-pw" not in message and "\n" not in message


@pytest.mark.parametrize(("section", "field"), [
    ({"bus": {"kind": "kafka"}}, "bus.kind"),
    ({"mqtt": {"port": 1883}}, "mqtt.host"),
    ({"webhooks": [{"url": "ftp://x"}]}, "webhooks[0].url"),
])
def test_bad_integration_sections_name_their_field(section: dict, field: str) -> None:
    with pytest.raises(VigilError, match="^config: " + re.escape(field) + ": "):
        parse_config(section)


def test_a_webhook_for_an_unknown_camera_is_refused() -> None:
    with pytest.raises(VigilError, match="no camera with id 'nope'"):
        parse_config({"webhooks": [{"url": "http://127.0.0.1/h", "cameras": ["nope"]}]})


def test_webhook_backlog_and_retry_settings_reach_the_sink() -> None:
    config = parse_config({"webhooks": [
        {"url": "https://bot:pw@soc.example/h?token=t0k", "max_backlog": 20, "retries": 4, "backoff_s": 0.1,
         "max_backoff_s": 2},
        {"url": "http://127.0.0.1:9/h"},
    ]})
    first, second = (route.sink for route in configured_sinks(config))
    assert isinstance(first, WebhookSink) and isinstance(second, WebhookSink)
    assert (first.queue.maxsize, first.retries, first.backoff_s, first.max_backoff_s) == (20, 4, 0.1, 2)
    assert first.name == "webhook:https://bot:***@soc.example/h"
    assert (second.queue.maxsize, second.retries, second.max_backoff_s) == (1000, None, 30)
    asyncio.run(first.close())
    asyncio.run(second.close())
