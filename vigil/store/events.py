"""Events, their handling (acknowledge, resolve, comment), track summaries and counts: writes and queries.

``EventStore(store)`` is what the runtime and the API use. ``add_event`` writes the event row and its outbox
row in one transaction (DESIGN §7); ``vigil.events.outbox`` publishes the outbox.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Integer, Select, and_, cast, false, func, or_, select
from sqlalchemy.orm import Session

from vigil.events.codec import event_to_dict, parse_time
from vigil.store.db import EventNotFound, Store, StoreError, utcnow
from vigil.store.schema import CountRow, EventComment, EventRow, OutboxRow, TrackRow
from vigil.types import CountSample, Event, Track


class BadPageCursor(StoreError):
    """A ``cursor`` that no page of ``list_events`` handed out."""


@dataclass(slots=True)
class EventRecord:
    """A stored event and its handling state."""

    event: Event
    status: str = "open"
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    resolved_by: str | None = None
    resolved_at: datetime | None = None


@dataclass(slots=True)
class EventPage:
    """One page of events, newest first; pass ``next_cursor`` back to get the next page (None: last page)."""

    items: list[EventRecord]
    next_cursor: str | None


@dataclass(slots=True)
class Comment:
    id: int
    event_id: str
    author: str
    text: str
    created_at: datetime


@dataclass(slots=True)
class TrackSummary:
    """What is kept of a track once it ends: where and when it was, and how it looked."""

    camera_id: str
    track_id: int
    label: str
    first_seen: datetime
    last_seen: datetime
    colour: str | None = None
    zones: list[str] = field(default_factory=list)
    path: list[tuple[float, float]] = field(default_factory=list)  # downsampled ground points
    thumbnail: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class CountBucket:
    """Counts aggregated over one time bucket."""

    start: datetime
    zone: str | None
    label: str
    max: int
    mean: float
    samples: int


def downsample(points: Sequence[tuple[float, float]], max_points: int = 32) -> list[tuple[float, float]]:
    """At most ``max_points`` points evenly spread along the path, always keeping the first and the last."""
    if len(points) <= max_points:
        return [(float(x), float(y)) for x, y in points]
    step = (len(points) - 1) / (max_points - 1)
    return [(float(points[round(i * step)][0]), float(points[round(i * step)][1])) for i in range(max_points)]


def summarise_track(
    track: Track, zones: Iterable[str] = (), thumbnail: str | None = None, max_points: int = 32
) -> TrackSummary:
    """A ``TrackSummary`` of a ``vigil.types.Track`` (colour taken from ``attributes['colour']``)."""
    attributes = {k: v for k, v in track.attributes.items() if isinstance(v, str | int | float | bool)}
    return TrackSummary(
        camera_id=track.camera_id,
        track_id=int(track.track_id),
        label=track.label,
        first_seen=track.first_seen,
        last_seen=track.last_seen,
        colour=track.attributes.get("colour") if isinstance(track.attributes.get("colour"), str) else None,
        zones=sorted(set(zones)),
        path=downsample(track.trajectory, max_points),
        thumbnail=thumbnail,
        attributes=attributes,
    )


def _record(row: EventRow) -> EventRecord:
    event = Event(
        kind=row.kind,
        camera_id=row.camera_id,
        at=row.at,
        severity=row.severity,
        track_id=row.track_id,
        label=row.label,
        zone=row.zone,
        payload=dict(row.payload or {}),
        snapshot=row.snapshot,
        clip=row.clip,
        id=row.id,
    )
    return EventRecord(event, row.status, row.acknowledged_by, row.acknowledged_at, row.resolved_by, row.resolved_at)


def _event_row(event: Event, payload: dict[str, Any]) -> EventRow:
    return EventRow(
        id=event.id,
        kind=event.kind,
        camera_id=event.camera_id,
        at=event.at,
        severity=event.severity,
        track_id=event.track_id,
        label=event.label,
        zone=event.zone,
        payload=payload,
        snapshot=event.snapshot,
        clip=event.clip,
        status="open",
    )


def _cursor(record: EventRecord) -> str:
    return f"{record.event.at.isoformat()}|{record.event.id}"


class EventStore:
    """Reads and writes events, comments, track summaries and counts in a ``Store``."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # --- writing ---------------------------------------------------------------------------------------
    def add_events(self, events: Sequence[Event], outbox: bool = True,
                   fence: Callable[[Session, Sequence[Event]], list[Event]] | None = None,
                   origin: str | None = None) -> None:
        """Persist events, each with its outbox row, all in ONE transaction. An id already stored is skipped.

        ``fence`` (a cluster worker's ``CameraLeases.fence``) picks, inside that transaction, the events the
        writer may still write; the others are refused. ``origin`` marks the outbox rows with the writer, whose
        relay publishes them (``OutboxRelay(origin=)``)."""
        with self.store.session() as session:
            if fence is not None:
                events = fence(session, events)
                if not events:
                    return
            known = set(session.scalars(select(EventRow.id).where(EventRow.id.in_([e.id for e in events]))))
            for event in events:
                if event.id in known:
                    continue
                known.add(event.id)
                plain = event_to_dict(event)
                session.add(_event_row(event, plain["payload"]))
                if outbox:
                    wire = json.dumps(plain, separators=(",", ":"), ensure_ascii=False)
                    session.add(OutboxRow(event_id=event.id, payload=wire, created_at=utcnow(), origin=origin))

    def add_event(self, event: Event, outbox: bool = True) -> None:
        self.add_events([event], outbox)

    def set_snapshot(self, event_id: str, snapshot: str | None) -> None:
        with self.store.session() as session:
            self._row(session, event_id).snapshot = snapshot

    def set_clip(self, event_id: str, clip: str | None) -> None:
        with self.store.session() as session:
            self._row(session, event_id).clip = clip

    # --- handling --------------------------------------------------------------------------------------
    def acknowledge(self, event_id: str, user: str) -> EventRecord:
        """Mark an open event acknowledged by ``user`` (an acknowledged or resolved one is left as it is)."""
        with self.store.session() as session:
            row = self._row(session, event_id)
            if row.status == "open":
                row.status, row.acknowledged_by, row.acknowledged_at = "acknowledged", user, utcnow()
            return _record(row)

    def resolve(self, event_id: str, user: str, note: str | None = None) -> EventRecord:
        """Mark an event resolved by ``user``, with an optional comment."""
        with self.store.session() as session:
            row = self._row(session, event_id)
            now = utcnow()
            if row.acknowledged_at is None:
                row.acknowledged_by, row.acknowledged_at = user, now
            if row.status != "resolved":
                row.status, row.resolved_by, row.resolved_at = "resolved", user, now
            if note:
                session.add(EventComment(event_id=event_id, author=user, text=note, created_at=now))
            return _record(row)

    def add_comment(self, event_id: str, author: str, text: str) -> Comment:
        if not text.strip():
            raise StoreError(f"event {event_id}: comment is empty")
        with self.store.session() as session:
            self._row(session, event_id)
            row = EventComment(event_id=event_id, author=author, text=text, created_at=utcnow())
            session.add(row)
            session.flush()
            return Comment(row.id, event_id, author, text, row.created_at)

    def comments(self, event_id: str) -> list[Comment]:
        with self.store.session() as session:
            self._row(session, event_id)
            rows = session.scalars(
                select(EventComment).where(EventComment.event_id == event_id).order_by(EventComment.id)
            )
            return [Comment(r.id, r.event_id, r.author, r.text, r.created_at) for r in rows]

    # --- reading ---------------------------------------------------------------------------------------
    def get_event(self, event_id: str) -> EventRecord:
        with self.store.session() as session:
            return _record(self._row(session, event_id))

    def list_events(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        cameras: Iterable[str] | None = None,
        kinds: Iterable[str] | None = None,
        statuses: Iterable[str] | None = None,
        severities: Iterable[str] | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> EventPage:
        """Events with ``start <= at < end`` matching the filters, newest first, ``limit`` per page."""
        query = self._filtered(select(EventRow), start, end, cameras, kinds, statuses, severities)
        if cursor:
            try:
                at_text, event_id = cursor.split("|", 1)
                at = parse_time(at_text)
            except ValueError:
                raise BadPageCursor(f"bad page cursor {cursor!r}") from None
            query = query.where(or_(EventRow.at < at, and_(EventRow.at == at, EventRow.id < event_id)))
        query = query.order_by(EventRow.at.desc(), EventRow.id.desc()).limit(max(1, limit) + 1)
        with self.store.session() as session:
            records = [_record(r) for r in session.scalars(query)]
        more = len(records) > limit
        records = records[:limit]
        return EventPage(records, _cursor(records[-1]) if more and records else None)

    def count_events(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        cameras: Iterable[str] | None = None,
        kinds: Iterable[str] | None = None,
        statuses: Iterable[str] | None = None,
        severities: Iterable[str] | None = None,
    ) -> int:
        query = self._filtered(select(func.count(EventRow.id)), start, end, cameras, kinds, statuses, severities)
        with self.store.session() as session:
            return int(session.scalar(query) or 0)

    def count_by_camera(self, cameras: Iterable[str] | None = None, statuses: Iterable[str] | None = None,
                        severities: Iterable[str] | None = None) -> dict[str, int]:
        """``{camera: events}`` matching the filters in one query (cameras without any are left out). Grouped by
        status and severity too: ``ix_events_status_severity_camera`` then yields the rows in group order."""
        columns = (EventRow.status, EventRow.severity, EventRow.camera_id)
        query = self._filtered(select(*columns, func.count()), None, None, cameras, None, statuses, severities)
        counts: dict[str, int] = {}
        with self.store.session() as session:
            for *_, camera, n in session.execute(query.group_by(*columns)):
                counts[camera] = counts.get(camera, 0) + int(n)
        return counts

    @staticmethod
    def _filtered(query: Select[Any], start, end, cameras, kinds, statuses, severities) -> Select[Any]:  # type: ignore[no-untyped-def]
        if start is not None:
            query = query.where(EventRow.at >= start)
        if end is not None:
            query = query.where(EventRow.at < end)
        for column, values in (
            (EventRow.camera_id, cameras),
            (EventRow.kind, kinds),
            (EventRow.status, statuses),
            (EventRow.severity, severities),
        ):
            if values is not None:
                query = query.where(column.in_(list(values)))
        return query

    @staticmethod
    def _row(session: Session, event_id: str) -> EventRow:
        row = session.get(EventRow, event_id)
        if row is None:
            raise EventNotFound(f"no event with id {event_id!r}")
        return row

    # --- tracks ----------------------------------------------------------------------------------------
    def save_track(self, summary: TrackSummary) -> None:
        """Insert or update the summary of (camera, track id, first seen)."""
        values = {
            "label": summary.label,
            "last_seen": summary.last_seen,
            "colour": summary.colour,
            "zones": list(summary.zones),
            "path": [[float(x), float(y)] for x, y in summary.path],
            "thumbnail": summary.thumbnail,
            "attributes": dict(summary.attributes),
        }
        with self.store.session() as session:
            row = session.scalar(
                select(TrackRow).where(
                    TrackRow.camera_id == summary.camera_id,
                    TrackRow.track_id == summary.track_id,
                    TrackRow.first_seen == summary.first_seen,
                )
            )
            if row is None:
                session.add(
                    TrackRow(
                        camera_id=summary.camera_id, track_id=summary.track_id, first_seen=summary.first_seen, **values
                    )
                )
            else:
                for key, value in values.items():
                    setattr(row, key, value)

    def tracks(
        self,
        cameras: Iterable[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        labels: Iterable[str] | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[TrackSummary]:
        """Tracks seen during [start, end) on the cameras, most recently seen first."""
        query = select(TrackRow)
        if cameras is not None:
            query = query.where(TrackRow.camera_id.in_(list(cameras)))
        if labels is not None:
            query = query.where(TrackRow.label.in_(list(labels)))
        if start is not None:
            query = query.where(TrackRow.last_seen >= start)
        if end is not None:
            query = query.where(TrackRow.first_seen < end)
        query = query.order_by(TrackRow.last_seen.desc(), TrackRow.id.desc()).limit(limit).offset(offset)
        with self.store.session() as session:
            return [
                TrackSummary(
                    r.camera_id, r.track_id, r.label, r.first_seen, r.last_seen, r.colour, list(r.zones),
                    [(p[0], p[1]) for p in r.path], r.thumbnail, dict(r.attributes),
                )
                for r in session.scalars(query)
            ]  # fmt: skip

    # --- counts ----------------------------------------------------------------------------------------
    def add_counts(self, samples: Iterable[CountSample]) -> int:
        rows = [
            CountRow(camera_id=s.camera_id, at=s.at, zone=s.zone, label=s.label, count=int(s.count)) for s in samples
        ]
        if rows:
            with self.store.session() as session:
                session.add_all(rows)
        return len(rows)

    def counts_over_time(
        self,
        camera_id: str,
        start: datetime,
        end: datetime,
        bucket_s: int = 60,
        zones: Iterable[str | None] | None = None,
        labels: Iterable[str] | None = None,
    ) -> list[CountBucket]:
        """Counts in [start, end) grouped into ``bucket_s`` buckets per zone and label, in time order.

        ``zones``: None for every zone; a list of names, where None stands for the whole view.
        """
        if bucket_s < 1:
            raise StoreError(f"count bucket must be at least 1 second, got {bucket_s}")
        if self.store.dialect == "sqlite":
            epoch = cast(func.strftime("%s", CountRow.at), Integer)
        else:
            epoch = func.floor(func.extract("epoch", CountRow.at))
        bucket = (epoch - epoch % bucket_s).label("bucket")
        query = (
            select(
                bucket, CountRow.zone, CountRow.label, func.max(CountRow.count), func.avg(CountRow.count), func.count()
            )
            .where(CountRow.camera_id == camera_id, CountRow.at >= start, CountRow.at < end)
            .group_by(bucket, CountRow.zone, CountRow.label)
            .order_by(bucket, CountRow.zone, CountRow.label)
        )
        if zones is not None:
            wanted = list(zones)
            names = [z for z in wanted if z is not None]
            conditions = [CountRow.zone.in_(names)] if names else []
            if None in wanted:
                conditions.append(CountRow.zone.is_(None))
            query = query.where(or_(*conditions)) if conditions else query.where(false())
        if labels is not None:
            query = query.where(CountRow.label.in_(list(labels)))
        with self.store.session() as session:
            return [
                CountBucket(datetime.fromtimestamp(int(b), tz=UTC), zone, label, int(mx), float(mean), int(n))
                for b, zone, label, mx, mean, n in session.execute(query)
            ]
