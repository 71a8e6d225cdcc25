"""Retention: delete recordings and data past their limits, oldest first, except what an evidence hold covers.

- Per camera: ``max_age_hours`` and ``max_size_bytes`` of its recordings (from ``RecordingConfig``).
- Per data class, a maximum age in hours: ``continuous`` and ``event_clips`` (segments), ``snapshots``
  (JPEG files under ``snapshots/`` and ``thumbnails/``), ``events`` (event rows), and any other class
  handled by a ``purgers`` entry (e.g. ``sightings``: a function deleting unheld rows older than a cutoff).
- Evidence holds (``holds`` table) exempt everything of their camera (or all cameras) in their time range.
- Index and disk are kept consistent: rows whose file is gone are dropped, files nobody indexed are
  deleted once older than ``orphan_grace_s`` (so segments being written or buffered are never touched).
- Safe beside a running recorder: only indexed (finished) segments and old orphans are deleted; the row
  goes first, then the file. Every deletion is logged and returned in a ``RetentionReport``.
- In a cluster (``RecordingIndex.node`` set) segments are deleted and reconciled only on this node's disk;
  the other nodes' rows are theirs. Event and sighting ages apply to the shared database from every node.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, delete, not_, or_, select

from vigil.store.db import utcnow
from vigil.store.recording_schema import HoldRow, SegmentRow
from vigil.store.recordings import RECORDINGS_DIR, RecordingIndex, Segment
from vigil.store.schema import EventRow

log = logging.getLogger(__name__)

SEGMENT_CLASSES = {"continuous": "continuous", "event": "event_clips"}
SNAPSHOT_DIRS = ("snapshots", "thumbnails")
BATCH = 500

#: Deletes unheld data of a class older than the cutoff; returns how many items went.
Purger = Callable[[datetime, "list[Hold]"], int]


@dataclass(slots=True, frozen=True)
class Hold:
    """An evidence hold: nothing of ``camera_id`` (None: every camera) in [start, end] is deleted."""

    case_id: str
    created_by: str
    reason: str
    start: datetime
    end: datetime
    camera_id: str | None = None
    id: int | None = None
    created_at: datetime | None = None

    def covers(self, camera_id: str, start: datetime, end: datetime) -> bool:
        return (self.camera_id in (None, camera_id)) and self.start <= end and self.end >= start


@dataclass(slots=True, frozen=True)
class CameraLimits:
    max_age_hours: float | None = None
    max_size_bytes: int | None = None


@dataclass(slots=True)
class RetentionPolicy:
    """Limits per camera (``default`` for cameras not listed) and maximum ages per data class (hours)."""

    cameras: dict[str, CameraLimits] = field(default_factory=dict)
    default: CameraLimits = field(default_factory=CameraLimits)
    class_ages_hours: dict[str, float] = field(default_factory=dict)
    orphan_grace_s: float = 600.0

    @classmethod
    def from_cameras(cls, cameras: Iterable[Any], **kwargs: Any) -> RetentionPolicy:
        """From ``CameraConfig``s (their ``recording.max_age_hours`` / ``max_size_gb``)."""
        limits = {
            cam.id: CameraLimits(
                cam.recording.max_age_hours,
                int(cam.recording.max_size_gb * 1e9) if cam.recording.max_size_gb else None,
            )
            for cam in cameras
        }
        return cls(cameras=limits, **kwargs)

    def limits(self, camera_id: str) -> CameraLimits:
        return self.cameras.get(camera_id, self.default)


@dataclass(slots=True, frozen=True)
class Deletion:
    data_class: str  # continuous | event_clips | snapshots | events | <purger class> | index | orphan
    reason: str  # age | size | disk | missing-file | orphan-file
    camera_id: str | None
    what: str  # relative path, or a count of rows
    size_bytes: int = 0
    start: datetime | None = None


@dataclass(slots=True)
class RetentionReport:
    deletions: list[Deletion] = field(default_factory=list)
    held: int = 0  # items past their limit kept because a hold covers them

    @property
    def freed_bytes(self) -> int:
        return sum(d.size_bytes for d in self.deletions)

    def add(self, deletion: Deletion) -> None:
        self.deletions.append(deletion)
        log.info(
            "retention: deleted %s %s (%s, camera %s, %.1f MB)",
            deletion.data_class,
            deletion.what,
            deletion.reason,
            deletion.camera_id or "-",
            deletion.size_bytes / 1e6,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "freed_bytes": self.freed_bytes,
            "held": self.held,
            "deletions": [
                {
                    "class": d.data_class,
                    "reason": d.reason,
                    "camera": d.camera_id,
                    "what": d.what,
                    "size_bytes": d.size_bytes,
                    "start": d.start.isoformat() if d.start else None,
                }
                for d in self.deletions
            ],
        }


class Retention:
    """Applies a ``RetentionPolicy`` to the recording index, the data dir and the event table."""

    def __init__(
        self,
        index: RecordingIndex,
        policy: RetentionPolicy,
        *,
        purgers: dict[str, Purger] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.index = index
        self.store = index.store
        self.policy = policy
        self.purgers = purgers or {}
        self.clock = clock

    # -- holds -----------------------------------------------------------------------------------

    def add_hold(
        self, case_id: str, created_by: str, reason: str, start: datetime, end: datetime, camera_id: str | None = None
    ) -> Hold:
        row = HoldRow(case_id=case_id, created_by=created_by, reason=reason, camera_id=camera_id, start=start, end=end)
        with self.store.session() as session:
            session.add(row)
            session.flush()
            return _hold(row)

    def holds(self) -> list[Hold]:
        with self.store.session() as session:
            return [_hold(row) for row in session.scalars(select(HoldRow).order_by(HoldRow.id))]

    def release_hold(self, hold_id: int) -> bool:
        with self.store.session() as session:
            return bool(session.execute(delete(HoldRow).where(HoldRow.id == hold_id)).rowcount)

    # -- runs ------------------------------------------------------------------------------------

    def run(self) -> RetentionReport:
        """One full pass: consistency, segment ages and sizes, then the other data classes."""
        report = self.reconcile()
        holds = self.holds()
        now = self.clock()
        for camera_id in self.index.cameras(local=True):
            limits = self.policy.limits(camera_id)
            for kind, data_class in SEGMENT_CLASSES.items():
                ages = [a for a in (limits.max_age_hours, self.policy.class_ages_hours.get(data_class)) if a]
                if ages:
                    cutoff = now - timedelta(hours=min(ages))
                    self._delete_segments(report, holds, "age", camera_id, kind=kind, before=cutoff)
            if limits.max_size_bytes is not None:
                excess = self.index.total_size(camera_id, local=True) - limits.max_size_bytes
                self._delete_segments(report, holds, "size", camera_id, bytes_needed=excess)
        ages = self.policy.class_ages_hours
        if "snapshots" in ages:
            self._delete_snapshots(report, holds, now - timedelta(hours=ages["snapshots"]))
        if "events" in ages:
            self._delete_events(report, holds, now - timedelta(hours=ages["events"]))
        for data_class, purge in self.purgers.items():
            if data_class in ages:
                count = purge(now - timedelta(hours=ages[data_class]), holds)
                if count:
                    report.add(Deletion(data_class, "age", None, f"{count} rows"))
        return report

    def free_space(self, min_free_bytes: int) -> int:
        """Delete the oldest unheld segments (any camera) until the data dir's disk has ``min_free_bytes`` free."""
        report = RetentionReport()
        needed = min_free_bytes - shutil.disk_usage(self.index.data_dir).free
        if needed > 0:
            self._delete_segments(report, self.holds(), "disk", None, bytes_needed=needed)
        return report.freed_bytes

    def reconcile(self) -> RetentionReport:
        """Drop index rows whose file is gone; delete unindexed segment files older than the grace period."""
        report = RetentionReport()
        missing = [s for s in self.index.segments(local=True) if not self.index.file(s).exists()]
        for segment in missing:
            if self.index.remove([segment]):
                report.add(Deletion("index", "missing-file", segment.camera_id, segment.path, 0, segment.start))
        root = self.index.data_dir / RECORDINGS_DIR
        if root.is_dir():
            indexed = self.index.paths()
            deadline = time.time() - self.policy.orphan_grace_s
            for file in sorted(root.rglob("*.mp4")):
                rel = file.relative_to(self.index.data_dir).as_posix()
                stat = _stat(file)
                if rel in indexed or stat is None or stat.st_mtime > deadline:
                    continue
                file.unlink(missing_ok=True)
                report.add(Deletion("orphan", "orphan-file", file.parts[-3], rel, stat.st_size))
        return report

    # -- helpers ---------------------------------------------------------------------------------

    def _delete_segments(
        self,
        report: RetentionReport,
        holds: list[Hold],
        reason: str,
        camera_id: str | None,
        *,
        kind: str | None = None,
        before: datetime | None = None,
        bytes_needed: int | None = None,
    ) -> None:
        """Delete unheld segments oldest first: all ending before ``before``, or until ``bytes_needed`` are freed."""
        if bytes_needed is not None and bytes_needed <= 0:
            return
        freed = 0
        last: tuple[datetime, int] | None = None  # keyset paging by (start, id): held rows stay behind us
        while True:
            query = self.index.local(select(SegmentRow).order_by(SegmentRow.start, SegmentRow.id).limit(BATCH))
            if last is not None:
                query = query.where(
                    or_(SegmentRow.start > last[0], and_(SegmentRow.start == last[0], SegmentRow.id > last[1]))
                )
            if camera_id is not None:
                query = query.where(SegmentRow.camera_id == camera_id)
            if kind is not None:
                query = query.where(SegmentRow.kind == kind)
            if before is not None:
                query = query.where(SegmentRow.end < before)
            with self.store.session() as session:
                rows = list(session.scalars(query))
            if not rows:
                return
            last = (rows[-1].start, rows[-1].id)
            for row in rows:
                if any(h.covers(row.camera_id, row.start, row.end) for h in holds):
                    report.held += 1
                    continue
                segment = Segment(row.camera_id, row.start, row.end, row.path, row.size_bytes, 0, row.codec, id=row.id)
                if self.index.remove([segment]):  # the row first: concurrent runs delete a file only once
                    self.index.file(segment).unlink(missing_ok=True)
                    data_class = SEGMENT_CLASSES.get(row.kind, row.kind)
                    report.add(Deletion(data_class, reason, row.camera_id, row.path, row.size_bytes, row.start))
                    freed += row.size_bytes
                if bytes_needed is not None and freed >= bytes_needed:
                    return

    def _delete_snapshots(self, report: RetentionReport, holds: list[Hold], cutoff: datetime) -> None:
        limit = cutoff.timestamp()
        for top in SNAPSHOT_DIRS:
            base = self.index.data_dir / top
            if not base.is_dir():
                continue
            for file in sorted(base.rglob("*.jpg")):
                stat = _stat(file)
                if stat is None or stat.st_mtime >= limit:
                    continue
                at = datetime.fromtimestamp(stat.st_mtime, UTC)
                camera_id = file.relative_to(base).parts[0]
                if any(h.covers(camera_id, at, at) for h in holds):
                    report.held += 1
                    continue
                file.unlink(missing_ok=True)
                rel = file.relative_to(self.index.data_dir).as_posix()
                report.add(Deletion("snapshots", "age", camera_id, rel, stat.st_size, at))

    def _delete_events(self, report: RetentionReport, holds: list[Hold], cutoff: datetime) -> None:
        held = [
            and_(
                EventRow.at >= h.start, EventRow.at <= h.end, *([EventRow.camera_id == h.camera_id] * bool(h.camera_id))
            )
            for h in holds
        ]
        condition = EventRow.at < cutoff
        if held:
            condition = and_(condition, not_(or_(*held)))
        with self.store.session() as session:
            count = session.execute(delete(EventRow).where(condition)).rowcount or 0
        if count:
            report.add(Deletion("events", "age", None, f"{count} rows"))


def _hold(row: HoldRow) -> Hold:
    return Hold(row.case_id, row.created_by, row.reason, row.start, row.end, row.camera_id, row.id, row.created_at)


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except FileNotFoundError:
        return None
