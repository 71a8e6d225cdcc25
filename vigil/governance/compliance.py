"""Retention compliance: for each data class, the oldest item held, its limit, and what is held beyond it.

Data classes and their limits (from the config):

- ``continuous`` / ``event_clips``: recording segments; ``retention.<class>_hours`` and each camera's
  ``recording.max_age_hours`` (the smaller applies);
- ``snapshots``: JPEG files under ``snapshots/`` and ``thumbnails/`` (by file time); ``retention.snapshots_hours``;
- ``events``: ``retention.events_hours``;
- ``plate_reads``: plate sightings that matched no hotlist and whose text is on no hotlist now;
  ``recognition.plates.read_retention_hours`` (default 72 h) or ``retention.sightings_hours`` if smaller;
- ``face_sightings``: unmatched face sightings. With ``recognition.faces.store_sightings`` off they must not
  be stored at all (limit 0); with it on, each needs an authorisation (``face_search`` or ``live_face_match``)
  covering its camera at its time, and ``retention.sightings_hours`` applies;
- ``tracks``: track summaries (object sightings); ``retention.sightings_hours``.

Items covered by an evidence hold are exempt (counted as ``held``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from vigil.config import Config
from vigil.store.db import Store, utcnow
from vigil.store.recognition_schema import SightingRow
from vigil.store.recording_schema import HoldRow, SegmentRow
from vigil.store.retention import SNAPSHOT_DIRS, Hold
from vigil.store.schema import EventRow, TrackRow

FACE_FEATURES = ("face_search", "live_face_match")
MAX_EXAMPLES = 5

LABELS = {
    "continuous": "Continuous video",
    "event_clips": "Event clips",
    "snapshots": "Snapshots",
    "events": "Events",
    "plate_reads": "Plate reads (not on a hotlist)",
    "face_sightings": "Face sightings (unmatched)",
    "tracks": "Track summaries",
}


@dataclass(slots=True)
class ClassCompliance:
    data_class: str
    items: int
    oldest: datetime | None
    limit_hours: float | None  # None: no limit set; 0: must not be stored
    over_limit: int = 0
    held: int = 0  # beyond the limit but exempt by an evidence hold
    examples: list[str] = field(default_factory=list)  # a few of the items beyond the limit
    note: str = ""

    @property
    def label(self) -> str:
        return LABELS.get(self.data_class, self.data_class)

    @property
    def ok(self) -> bool:
        return self.over_limit == 0

    @property
    def oldest_age_hours(self) -> float | None:
        return None if self.oldest is None else (utcnow() - self.oldest).total_seconds() / 3600

    def to_dict(self) -> dict[str, Any]:
        return {"class": self.data_class, "label": self.label, "items": self.items,
                "oldest": self.oldest.isoformat() if self.oldest else None, "limit_hours": self.limit_hours,
                "over_limit": self.over_limit, "held": self.held, "examples": self.examples, "note": self.note,
                "ok": self.ok}


@dataclass(slots=True)
class ComplianceReport:
    at: datetime
    classes: list[ClassCompliance]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.classes)

    def get(self, data_class: str) -> ClassCompliance:
        return next(c for c in self.classes if c.data_class == data_class)

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "ok": self.ok, "classes": [c.to_dict() for c in self.classes]}


def _smallest(*hours: float | None) -> float | None:
    values = [h for h in hours if h is not None]
    return min(values) if values else None


def _holds(store: Store) -> list[Hold]:
    with store.session() as session:
        return [Hold(r.case_id, r.created_by, r.reason, r.start, r.end, r.camera_id, r.id)
                for r in session.scalars(select(HoldRow))]


def _tally(result: ClassCompliance, rows: Iterable[tuple[str, datetime, datetime, str]], holds: list[Hold],
           beyond: Callable[[str, datetime, datetime], bool] | None = None) -> None:
    """Count ``rows`` (camera, start, end, description) that are beyond their limit into ``result``."""
    for camera, start, end, what in rows:
        if beyond is not None and not beyond(camera, start, end):
            continue
        if any(h.covers(camera, start, end) for h in holds):
            result.held += 1
            continue
        result.over_limit += 1
        if len(result.examples) < MAX_EXAMPLES:
            result.examples.append(what)


def _segments(config: Config, store: Store, kind: str, data_class: str, now: datetime,
              holds: list[Hold]) -> ClassCompliance:
    class_limit = config.retention.class_ages_hours().get(data_class)
    with store.session() as session:
        items, oldest = session.execute(select(func.count(SegmentRow.id), func.min(SegmentRow.start))
                                        .where(SegmentRow.kind == kind)).one()
        cameras = list(session.scalars(select(SegmentRow.camera_id).where(SegmentRow.kind == kind).distinct()))
    configured = {c.id: c.recording.max_age_hours for c in config.cameras}
    result = ClassCompliance(data_class, int(items), oldest, class_limit)
    per_camera = []
    for camera in sorted(cameras):
        limit = _smallest(class_limit, configured.get(camera))
        if limit is None:
            continue
        if limit != class_limit:
            per_camera.append(f"{camera}: {limit:g} h")
        cutoff = now - timedelta(hours=limit)
        with store.session() as session:
            rows = session.execute(select(SegmentRow.camera_id, SegmentRow.start, SegmentRow.end, SegmentRow.path)
                                   .where(SegmentRow.kind == kind, SegmentRow.camera_id == camera,
                                          SegmentRow.end < cutoff)).all()
        _tally(result, rows, holds)
    if per_camera:
        result.note = "per camera " + ", ".join(per_camera)
    return result


def _snapshots(config: Config, now: datetime, holds: list[Hold]) -> ClassCompliance:
    limit = config.retention.snapshots_hours
    files: list[tuple[str, datetime, datetime, str]] = []
    for top in SNAPSHOT_DIRS:
        base = Path(config.data_dir) / top
        if base.is_dir():
            for file in base.rglob("*.jpg"):
                at = datetime.fromtimestamp(file.stat().st_mtime, UTC)
                files.append((file.relative_to(base).parts[0], at, at, f"{top}/{file.relative_to(base).as_posix()}"))
    result = ClassCompliance("snapshots", len(files), min((f[1] for f in files), default=None), limit)
    if limit is not None:
        cutoff = now - timedelta(hours=limit)
        _tally(result, (f for f in files if f[1] < cutoff), holds)
    return result


def _table_class(name: str, store: Store, now: datetime, holds: list[Hold], limit: float | None,
                 columns: tuple[Any, Any, Any, Any], describe: Callable[[str, Any], str]) -> ClassCompliance:
    """A data class held as rows; ``columns`` = (camera, start, end, key), age counted from ``end``."""
    camera, start, end, key = columns
    with store.session() as session:
        items, oldest = session.execute(select(func.count(key), func.min(start))).one()
        rows = [] if limit is None else session.execute(
            select(camera, start, end, key).where(end < now - timedelta(hours=limit))).all()
    result = ClassCompliance(name, int(items), oldest, limit)
    _tally(result, ((c, s, e, describe(c, k)) for c, s, e, k in rows), holds)
    return result


def _events(config: Config, store: Store, now: datetime, holds: list[Hold]) -> ClassCompliance:
    columns = (EventRow.camera_id, EventRow.at, EventRow.at, EventRow.id)
    return _table_class("events", store, now, holds, config.retention.events_hours, columns,
                        lambda _camera, key: f"event {key}")


def _tracks(config: Config, store: Store, now: datetime, holds: list[Hold]) -> ClassCompliance:
    columns = (TrackRow.camera_id, TrackRow.first_seen, TrackRow.last_seen, TrackRow.track_id)
    return _table_class("tracks", store, now, holds, config.retention.sightings_hours, columns,
                        lambda camera, key: f"{camera} track {key}")


def _plate_reads(config: Config, store: Store, now: datetime, holds: list[Hold],
                 hotlist: set[str]) -> ClassCompliance:
    limit = _smallest(config.recognition.plates.read_retention_hours, config.retention.sightings_hours)
    query = select(SightingRow.camera_id, SightingRow.start, SightingRow.end, SightingRow.id, SightingRow.plate_text) \
        .where(SightingRow.kind == "plate", SightingRow.on_list.is_(False))
    with store.session() as session:
        rows = [r for r in session.execute(query).all() if r.plate_text not in hotlist]
    result = ClassCompliance("plate_reads", len(rows), min((r.start for r in rows), default=None), limit)
    cutoff = now - timedelta(hours=limit or 0)
    _tally(result, ((c, s, e, f"plate read {i}") for c, s, e, i, _ in rows if e < cutoff), holds)
    return result


def _face_sightings(config: Config, store: Store, now: datetime, holds: list[Hold],
                    authorised: Callable[[str, datetime], bool] | None) -> ClassCompliance:
    storing = config.recognition.faces.store_sightings
    limit = config.retention.sightings_hours if storing else 0.0
    query = select(SightingRow.camera_id, SightingRow.start, SightingRow.end, SightingRow.id) \
        .where(SightingRow.kind == "face", SightingRow.on_list.is_(False))
    with store.session() as session:
        rows = session.execute(query).all()
    result = ClassCompliance("face_sightings", len(rows), min((r.start for r in rows), default=None), limit)
    if not storing:
        result.note = "recognition.faces.store_sightings is off: unmatched faces must not be stored"
        _tally(result, ((c, s, e, f"face sighting {i}") for c, s, e, i in rows), holds)
        return result
    cutoff = now - timedelta(hours=limit) if limit is not None else None
    result.note = "each needs an authorisation (face_search or live_face_match) covering its camera and time"

    def beyond(camera: str, start: datetime, end: datetime) -> bool:
        return (cutoff is not None and end < cutoff) or (authorised is not None and not authorised(camera, start))

    _tally(result, ((c, s, e, f"face sighting {i}") for c, s, e, i in rows), holds, beyond)
    return result


def check_compliance(config: Config, store: Store, now: datetime | None = None, governance: Any = None,
                     hotlist_texts: Iterable[str] | None = None) -> ComplianceReport:
    """Every data class against its limit. ``governance`` (a ``Governance``) lets face sightings be checked
    against authorisations; ``hotlist_texts`` (default: read from the lists store) exempts listed plates."""
    now = now or utcnow()
    holds = _holds(store)
    if hotlist_texts is None:
        from vigil.store.lists import ListStore

        hotlist_texts = ListStore(store, config.data_dir).hotlist_texts()
    authorised = None
    if governance is not None:
        auths = governance.authorisations.list_authorisations()

        def authorised(camera: str, at: datetime) -> bool:
            """An approved authorisation covered ``camera`` at ``at`` (a revoked one until its revocation)."""
            for a in auths:
                if a.approver is None or a.status not in ("approved", "revoked"):
                    continue
                until = min(a.valid_until, a.revoked_at) if a.revoked_at else a.valid_until
                if a.valid_from <= at < until and any(a.covers(f, camera) for f in FACE_FEATURES):
                    return True
            return False

    classes = [
        _segments(config, store, "continuous", "continuous", now, holds),
        _segments(config, store, "event", "event_clips", now, holds),
        _snapshots(config, now, holds),
        _events(config, store, now, holds),
        _plate_reads(config, store, now, holds, set(hotlist_texts)),
        _face_sightings(config, store, now, holds, authorised),
        _tracks(config, store, now, holds),
    ]
    return ComplianceReport(now, classes)
