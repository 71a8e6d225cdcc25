"""``bus_outage``: a real node on a private NATS JetStream bus with an MQTT sink to a private Mosquitto and a
signed webhook to a local endpoint; each is stopped for ``bus_outage_s`` and started again (NATS first, then
Mosquitto and the webhook endpoint together).

Phases: warm-up; NATS down (events wait in the outbox, which the node's SQLite database holds), NATS up again
on the same port and JetStream store, drained (outbox and MQTT sink empty); Mosquitto down (the MQTT sink
queues), up again, drained; a while of normal running; a clean stop. Two independent receivers count what
arrived by event id: a durable JetStream pull consumer, and an MQTT v5 subscriber with a persistent session
at QoS 1 on ``<prefix>/events``.

Result: ``events`` (emitted), ``lost`` (emitted, never received through JetStream), ``duplicates`` (received
more than once), ``stream_messages`` (stored in the stream: more than ``events`` would mean the stream stored
a republished event twice), ``drain_s`` (NATS up again → outbox empty), ``mqtt: {events, lost, duplicates}``
with ``resumed_after_nats_s`` (NATS up again → the MQTT subscriber has every event emitted until then: the
sink's NATS consumer was recreated) and ``drain_s`` (Mosquitto up again → the sink's backlog is empty),
``webhook: {events, lost, duplicates, bad_signatures, drain_s}`` likewise for the endpoint, the
frames analysed during each outage (``kept_analysing``), and the peaks of the outbox and of the sink's backlog.

``options.extra``: ``warmup_s`` (10), ``gap_s`` (5, between the two outages), ``after_s`` (10), ``cameras``
(1), ``drain_timeout_s`` (120).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import nats
from rich.progress import Progress

from vigil.bench.faults import FaultOptions
from vigil.bench.faults.harness import BenchNode, phase, step, work_folder
from vigil.bench.faults.receivers import JetStreamReceiver, MqttReceiver, WebhookReceiver
from vigil.bench.faults.services import PrivateMosquitto, PrivateNats
from vigil.config import BusConfig, Config, MqttConfig, WebhookConfig
from vigil.events.webhooks import WebhookSink

PREFIX = "vigil"  # the MQTT topic prefix and NATS subject prefix (the brokers are private)
WEBHOOK_SECRET = "bench-webhook-secret"


def run(options: FaultOptions, progress: Progress) -> dict[str, Any]:
    extra = options.extra
    warmup_s, gap_s, after_s = (float(extra.get(k, d)) for k, d in (("warmup_s", 10), ("gap_s", 5), ("after_s", 10)))
    drain_timeout_s = float(extra.get("drain_timeout_s", 120.0))
    down_s = options.bus_outage_s
    done = step(progress, "bus_outage: private NATS, Mosquitto and node")
    with (work_folder(options.work_dir, "vigil-bus-outage-") as folder,
          PrivateNats(root=folder) as nats_server, PrivateMosquitto(root=folder) as broker):

        endpoint = WebhookReceiver(WEBHOOK_SECRET).start()

        def configure(config: Config) -> None:
            config.bus = BusConfig(kind="nats", url=nats_server.url, subject_prefix=PREFIX)
            config.mqtt = MqttConfig(host=broker.host, port=broker.port, topic_prefix=PREFIX)
            config.webhooks = [WebhookConfig(url=endpoint.url, secret=WEBHOOK_SECRET)]

        bench = BenchNode(folder / "node", int(extra.get("cameras", 1)), configure)
        mqtt_receiver = MqttReceiver(broker.host, broker.port, f"{PREFIX}/events").start()  # before any event
        stream = bench.config.bus.stream
        receiver: JetStreamReceiver | None = None
        try:
            bench.start()
            services = bench.services
            sink = services.mqtt
            hook = next(s for s in services.sinks if isinstance(s, WebhookSink))
            receiver = JetStreamReceiver(nats_server.url, stream, f"{PREFIX}.>").start()
            done()
            phase(progress, "bus_outage: warm-up", warmup_s)
            peaks = {"outbox": 0, "mqtt_backlog": 0, "webhook_backlog": 0}

            def sample() -> None:
                peaks["outbox"] = max(peaks["outbox"], services.relay.pending())
                peaks["mqtt_backlog"] = max(peaks["mqtt_backlog"], sink.backlog())
                peaks["webhook_backlog"] = max(peaks["webhook_backlog"], hook.backlog())

            def drained() -> bool:
                sample()
                if "webhook" not in marks and hook.backlog() == 0:
                    marks["webhook"] = time.monotonic() - mqtt_up
                return (services.relay.pending() == 0 and sink.backlog() == 0 and hook.backlog() == 0
                        and not services.writer.buffered)

            nats_down = time.monotonic()
            nats_server.stop()
            phase(progress, f"bus_outage: NATS down {down_s:.0f} s", down_s, sample, every_s=0.5)
            nats_server.start()
            nats_up = time.monotonic()
            before_up = list(bench.emitted)
            marks: dict[str, float] = {}

            def caught_up() -> bool:  # the outbox is empty, and MQTT (fed from NATS) has what was emitted so far
                sample()
                if "outbox" not in marks and services.relay.pending() == 0 and not services.writer.buffered:
                    marks["outbox"] = time.monotonic() - nats_up
                if "mqtt" not in marks and mqtt_receiver.has(before_up):
                    marks["mqtt"] = time.monotonic() - nats_up
                return len(marks) == 2

            phase(progress, "bus_outage: draining the outbox", drain_timeout_s, until=caught_up)
            phase(progress, "bus_outage: running between the outages", gap_s)
            mqtt_down = time.monotonic()
            broker.stop()
            endpoint.stop()
            phase(progress, f"bus_outage: Mosquitto and webhook endpoint down {down_s:.0f} s", down_s, sample,
                  every_s=0.5)
            broker.start()
            endpoint.start()
            mqtt_up = time.monotonic()
            mqtt_drain = phase(progress, "bus_outage: draining the MQTT and webhook sinks", drain_timeout_s,
                               until=drained)
            mqtt_drained = drained()
            phase(progress, "bus_outage: running after the outages", after_s)
            counted = step(progress, "bus_outage: stopping the node, counting")
            bench.stop()
            emitted = list(bench.emitted)
            receiver.wait_for(emitted, 15.0)
            mqtt_receiver.wait_for(emitted, 15.0)
            endpoint.wait_for(emitted, 15.0)
            time.sleep(1.0)  # redeliveries, if any, arrive too
        finally:
            bench.stop()
            if receiver is not None:
                receiver.stop()
            mqtt_receiver.stop()
            endpoint.stop()
        stream_messages = asyncio.run(_stream_messages(nats_server.url, stream))
        counted()
    return {
        "outage_s": down_s,
        "events": len(emitted),
        **receiver.tally(emitted),
        "stream_messages": stream_messages,
        "drain_s": _rounded(marks.get("outbox")),
        "outbox_peak": peaks["outbox"],
        "frames_during_outage": bench.frames_between(nats_down, nats_up),
        "mqtt": {
            **mqtt_receiver.tally(emitted),
            "drain_s": round(mqtt_drain, 2) if mqtt_drained else None,
            "resumed_after_nats_s": _rounded(marks.get("mqtt")),
            "backlog_peak": peaks["mqtt_backlog"],
            "sink_dropped": sink.dropped,
            "frames_during_outage": bench.frames_between(mqtt_down, mqtt_up),
        },
        "webhook": {
            **endpoint.tally(emitted),
            "bad_signatures": endpoint.bad_signatures,
            "drain_s": _rounded(marks.get("webhook")),
            "backlog_peak": peaks["webhook_backlog"],
            "sink_dropped": hook.dropped,
        },
        "kept_analysing": min(bench.frames_between(nats_down, nats_up), bench.frames_between(mqtt_down, mqtt_up)) > 0,
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


async def _stream_messages(url: str, stream: str) -> int:
    client = await nats.connect(url, connect_timeout=5)
    try:
        return int((await client.jetstream().stream_info(stream)).state.messages)
    finally:
        await client.close()
