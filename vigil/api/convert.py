"""Core objects → API bodies (URLs of snapshots, thumbnails and clip playlists included)."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote, urlencode

from vigil.api.schemas import ClipOut, EventOut
from vigil.events.codec import event_to_dict
from vigil.store.events import EventRecord
from vigil.store.recordings import ClipRef, RecordingError
from vigil.types import Event


def media_url(relative: str | None) -> str | None:
    """URL of a file below the data dir (snapshot or thumbnail)."""
    return f"/api/snapshots/{quote(relative)}" if relative else None


def playlist_url(camera_id: str, start: datetime, end: datetime) -> str:
    query = urlencode({"from": start.isoformat(), "to": end.isoformat()})
    return f"/api/recordings/{quote(camera_id, safe='')}/playlist.m3u8?{query}"


def clip_out(camera_id: str, start: datetime, end: datetime) -> ClipOut:
    return ClipOut(camera_id=camera_id, start=start, end=end, playlist_url=playlist_url(camera_id, start, end))


def event_clip(event: Event) -> ClipOut | None:
    """The event's clip reference (``<camera>/<start>/<end>``, set by the recorder), or None."""
    if not event.clip:
        return None
    try:
        ref = ClipRef.parse(event.clip)
    except RecordingError:
        return None
    return clip_out(ref.camera_id, ref.start, ref.end)


def event_out(event: Event, record: EventRecord | None = None) -> EventOut:
    """The API view of an event; without ``record`` (a fresh event from the bus) it is open."""
    plain = event_to_dict(event)
    return EventOut(
        id=event.id, kind=event.kind, camera_id=event.camera_id, at=event.at, severity=event.severity,
        track_id=plain["track_id"], label=event.label, zone=event.zone, payload=plain["payload"],
        status=record.status if record else "open", snapshot_url=media_url(event.snapshot), clip=event_clip(event),
        acknowledged_by=record.acknowledged_by if record else None,
        resolved_by=record.resolved_by if record else None)
