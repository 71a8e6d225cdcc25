"""Event ⇄ JSON, in one place: the outbox, the buses and the sinks all use these functions.

Times are ISO 8601 in UTC; NumPy scalars and arrays, tuples, sets and datetimes inside the payload are
turned into plain JSON values.
"""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np

from vigil.errors import VigilError
from vigil.types import Event

_FIELDS = {f.name for f in fields(Event)}


class CodecError(VigilError):
    """A message is not a valid encoded event."""


def _plain(value: Any) -> Any:
    """``json.dumps`` fallback for the non-JSON values rules put into payloads."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return sorted(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _iso(at: datetime) -> str:
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return at.isoformat().replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    """An ISO 8601 time as an aware UTC datetime (naive input is taken as UTC)."""
    at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def event_to_dict(event: Event) -> dict[str, Any]:
    """The event as a JSON-ready dict (payload made plain)."""
    return {
        "id": event.id,
        "kind": event.kind,
        "camera_id": event.camera_id,
        "at": _iso(event.at),
        "severity": event.severity,
        "track_id": None if event.track_id is None else int(event.track_id),
        "label": event.label,
        "zone": event.zone,
        "payload": json.loads(json.dumps(event.payload, default=_plain)),
        "snapshot": event.snapshot,
        "clip": event.clip,
    }


def event_from_dict(data: dict[str, Any]) -> Event:
    """Rebuild an event from ``event_to_dict`` output; raises ``CodecError`` naming the bad field."""
    if not isinstance(data, dict):
        raise CodecError("encoded event is not a JSON object")
    for required in ("id", "kind", "camera_id", "at"):
        if not isinstance(data.get(required), str):
            raise CodecError(f"encoded event: field {required!r} missing or not a string")
    try:
        at = parse_time(data["at"])
    except ValueError:
        raise CodecError(f"encoded event {data['id']}: field 'at' is not an ISO time: {data['at']!r}") from None
    known = {k: v for k, v in data.items() if k in _FIELDS}
    known["at"] = at
    known["payload"] = dict(known.get("payload") or {})
    return Event(**known)


def encode_event(event: Event) -> bytes:
    """The event as compact UTF-8 JSON."""
    return json.dumps(event_to_dict(event), separators=(",", ":"), ensure_ascii=False).encode()


def decode_event(data: bytes | str) -> Event:
    """The event encoded by ``encode_event``; raises ``CodecError`` for anything else."""
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CodecError(f"encoded event is not JSON ({exc})") from None
    return event_from_dict(obj)


def subject_token(name: str) -> str:
    """A camera id or kind made safe as one NATS subject token ('.' would split it; '*', '>' are wildcards)."""
    return "".join(f"%{ord(c):02X}" if c in ".*>% \t" else c for c in name)
