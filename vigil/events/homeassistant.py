"""MQTT topic names and Home Assistant MQTT discovery, following Frigate's conventions where they fit.

Topics under the configured prefix (``vigil`` by default)::

    vigil/available                      online / offline (retained; offline is the last will)
    vigil/events                         every event, JSON (QoS of ``mqtt.qos``)
    vigil/<camera>/status                online / offline (retained), from camera_online / camera_offline
    vigil/<camera>/<label>               objects of that label in view now, e.g. 3 (retained, on change)
    vigil/<camera>/<zone>/<label>        ... inside the zone (retained, on change)
    vigil/<camera>/alert                 each warning/critical event of the camera, JSON (not retained)

A zone name becomes one topic level with ``/``, ``+`` and ``#`` replaced by ``_``. Discovery configs go to
``<discovery_prefix>/sensor/vigil_<camera>_<zone>_<label>/config`` (count sensors) and
``<discovery_prefix>/binary_sensor/vigil_<camera>_status|alert/config``, retained, with ids slugged to
``[A-Za-z0-9_-]``. Every entity's availability is ``<prefix>/available``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from vigil import __version__
from vigil.config import CameraConfig, Config

Scope = str | None  # a zone name, or None for the camera's whole view

ICONS = {"person": "mdi:account-multiple", "bicycle": "mdi:bicycle", "car": "mdi:car", "motorcycle": "mdi:motorbike",
         "bus": "mdi:bus", "truck": "mdi:truck"}


def topic_level(name: str) -> str:
    """A name as one topic level: the separators and wildcards ``/ + #`` (and NUL) become ``_``."""
    return re.sub(r"[/+#\x00]", "_", name)


def slug(text: str) -> str:
    """An id Home Assistant accepts in discovery topics and unique ids: ``[A-Za-z0-9_-]``."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)


@dataclass(frozen=True)
class Topics:
    """The topic tree under one prefix."""

    prefix: str = "vigil"

    @property
    def available(self) -> str:
        return f"{self.prefix}/available"

    @property
    def events(self) -> str:
        return f"{self.prefix}/events"

    def event_subtopic(self, camera_id: str, kind: str) -> str:
        return f"{self.prefix}/events/{camera_id}/{kind}"

    def status(self, camera_id: str) -> str:
        return f"{self.prefix}/{camera_id}/status"

    def alert(self, camera_id: str) -> str:
        return f"{self.prefix}/{camera_id}/alert"

    def count(self, camera_id: str, zone: Scope, label: str) -> str:
        if zone is None:
            return f"{self.prefix}/{camera_id}/{label}"
        return f"{self.prefix}/{camera_id}/{topic_level(zone)}/{label}"


def counted_labels(camera: CameraConfig, detector_classes: list[str]) -> dict[Scope, list[str]]:
    """The labels counted in the camera's view (the detector's classes) and in each zone (those its filter lets
    through): the count sensors of the camera."""
    out: dict[Scope, list[str]] = {None: list(detector_classes)}
    for zone in camera.zones:
        out[zone.name] = [label for label in detector_classes if not zone.classes or label in zone.classes]
    return out


def discovery_messages(config: Config, topics: Topics, discovery_prefix: str = "homeassistant",
                       alert_off_delay_s: int = 60) -> dict[str, bytes]:
    """Discovery topic → retained JSON config, for every enabled camera: a count sensor per counted label
    (view and zones), a connectivity binary sensor, and an alert binary sensor that turns on with each
    warning/critical event and off ``alert_off_delay_s`` after the last one."""
    origin = {"name": "Vigil", "sw_version": __version__}
    availability = {"availability_topic": topics.available, "payload_available": "online",
                    "payload_not_available": "offline"}
    out: dict[str, bytes] = {}
    for camera in config.cameras:
        if not camera.enabled:
            continue
        base = f"vigil_{slug(camera.id)}"
        common = {**availability, "origin": origin,
                  "device": {"identifiers": [base], "name": camera.name or camera.id, "manufacturer": "Vigil",
                             "model": "camera analytics", "sw_version": __version__}}
        for zone, labels in counted_labels(camera, config.detector.classes).items():
            for label in labels:
                unique_id = f"{base}_{slug(zone)}_{label}" if zone is not None else f"{base}_{label}"
                out[f"{discovery_prefix}/sensor/{unique_id}/config"] = _json({
                    "name": f"{zone} {label} count" if zone is not None else f"{label} count",
                    "unique_id": unique_id, "state_topic": topics.count(camera.id, zone, label),
                    "state_class": "measurement", "icon": ICONS.get(label, "mdi:counter"), **common})
        out[f"{discovery_prefix}/binary_sensor/{base}_status/config"] = _json({
            "name": "online", "unique_id": f"{base}_status", "state_topic": topics.status(camera.id),
            "payload_on": "online", "payload_off": "offline", "device_class": "connectivity", **common})
        out[f"{discovery_prefix}/binary_sensor/{base}_alert/config"] = _json({
            "name": "alert", "unique_id": f"{base}_alert", "state_topic": topics.alert(camera.id),
            "value_template": "{{ 'ON' }}", "json_attributes_topic": topics.alert(camera.id),
            "off_delay": alert_off_delay_s, "device_class": "safety", **common})
    return out


def _json(value: dict) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()
