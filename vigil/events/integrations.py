"""The bus and the alert sinks a config switches on: ``bus:``, ``mqtt:`` and ``webhooks:``.

Secrets come from the config as pydantic ``SecretStr``s and are unwrapped only here, where they are handed
to the client library; names shown in logs hide them (``redact_url``).
"""

from __future__ import annotations

from dataclasses import dataclass

from vigil.config import BusConfig, Config
from vigil.events.bus import Bus, InProcessBus
from vigil.events.nats_bus import NatsBus
from vigil.events.sinks import MqttSink, Sink, WebhookSink


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


def configured_sinks(config: Config) -> list[SinkRoute]:
    """The MQTT broker and webhooks of the config, each with its event filter."""
    routes: list[SinkRoute] = []
    if config.mqtt is not None:
        m = config.mqtt
        routes.append(SinkRoute(MqttSink(m.host, m.port, topic_prefix=f"{m.topic_prefix.rstrip('/')}/events",
                                         qos=m.qos, client_id=m.client_id, username=m.username,
                                         password=_secret(m.password), tls=m.tls,
                                         ca_file=str(m.ca_file) if m.ca_file else None)))
    for hook in config.webhooks:
        routes.append(SinkRoute(WebhookSink(hook.url, timeout_s=hook.timeout_s, retries=hook.retries,
                                            secret=_secret(hook.secret)),
                                frozenset(hook.kinds) or None, frozenset(hook.cameras) or None))
    return routes
