"""The bus and the alert sinks a config switches on: ``bus:``, ``mqtt:`` and ``webhooks:``.

Secrets come from the config as pydantic ``SecretStr``s and are unwrapped only here, where they are handed
to the client library; names shown in logs hide them (``redact_url``, ``public_url``).
"""

from __future__ import annotations

from dataclasses import dataclass

from vigil.config import BusConfig, Config, MqttConfig
from vigil.events.bus import Bus, InProcessBus
from vigil.events.homeassistant import Topics, counted_labels, discovery_messages
from vigil.events.mqtt import MqttSink
from vigil.events.nats_bus import NatsBus
from vigil.events.sinks import Sink
from vigil.events.webhooks import WebhookSink


def _secret(value: object) -> str | None:
    return value.get_secret_value() if value is not None else None


async def connect_bus(config: BusConfig) -> Bus:
    """The configured bus; NATS is connected (raises ``BusUnavailable`` naming the server when it cannot be)."""
    if config.kind == "inprocess":
        return InProcessBus()
    return await NatsBus.connect(config.url, stream=config.stream, prefix=config.subject_prefix,
                                 max_age_s=config.max_age_hours * 3600, user=config.user,
                                 password=_secret(config.password), token=_secret(config.token))


@dataclass(frozen=True)
class SinkRoute:
    """A sink and the events it takes (None: all)."""

    sink: Sink
    kinds: frozenset[str] | None = None
    cameras: frozenset[str] | None = None


def mqtt_sink(config: Config, m: MqttConfig) -> MqttSink:
    """The MQTT sink of the config, with the discovery configs and count sensors of its enabled cameras."""
    topics = Topics(m.topic_prefix.rstrip("/"))
    retained = discovery_messages(config, topics, m.discovery_prefix, m.alert_off_delay_s) if m.discovery else {}
    counted = {c.id: counted_labels(c, config.detector.classes) for c in config.cameras if c.enabled}
    return MqttSink(m.host, m.port, prefix=topics.prefix, qos=m.qos, client_id=m.client_id, username=m.username,
                    password=_secret(m.password), max_backlog=m.max_backlog, tls=m.tls,
                    ca_file=str(m.ca_file) if m.ca_file else None, event_subtopics=m.event_subtopics,
                    retained=retained, counted=counted)


def configured_sinks(config: Config) -> list[SinkRoute]:
    """The MQTT broker and webhooks of the config, each with its event filter."""
    routes: list[SinkRoute] = []
    if config.mqtt is not None:
        routes.append(SinkRoute(mqtt_sink(config, config.mqtt)))
    for hook in config.webhooks:
        sink = WebhookSink(hook.url, timeout_s=hook.timeout_s, secret=_secret(hook.secret),
                           max_backlog=hook.max_backlog, retries=hook.retries, backoff_s=hook.backoff_s,
                           max_backoff_s=hook.max_backoff_s)
        routes.append(SinkRoute(sink, frozenset(hook.kinds) or None, frozenset(hook.cameras) or None))
    return routes
