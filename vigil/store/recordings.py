"""The recording index: which fMP4 segment files exist for which camera and time range (DESIGN §1, store/).

Files live at ``<data_dir>/recordings/<camera>/<yyyy-mm-dd>/<HHMMSS-mmm>.mp4`` (UTC start time); the index
stores their path relative to the data dir. An event clip is a reference (``ClipRef``: camera + time
range) resolved against the index when played or exported: nothing is copied.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import av
from sqlalchemy import Select, delete, func, select

from vigil.errors import VigilError
from vigil.store.db import Store
from vigil.store.recording_schema import SegmentRow

RECORDINGS_DIR = "recordings"
#: Media time in every segment is capture time since this instant, so consecutive segments (and cameras'
#: reconnections) form one increasing timeline that HLS players and ffmpeg play through without resets.
MEDIA_EPOCH = datetime(2020, 1, 1, tzinfo=UTC)


class RecordingError(VigilError):
    """A recording, clip or segment file cannot be used; the message names it."""


@dataclass(slots=True, frozen=True)
class Segment:
    """One indexed segment file. ``path`` is relative to the data dir (posix separators)."""

    camera_id: str
    start: datetime
    end: datetime
    path: str
    size_bytes: int
    keyframes: int
    codec: str
    kind: str = "continuous"
    id: int | None = None
    node: str | None = None  # the node whose disk holds it (a cluster); None on one box

    @property
    def duration_s(self) -> float:
        return (self.end - self.start).total_seconds()

    def overlaps(self, start: datetime, end: datetime) -> bool:
        return self.start < end and self.end > start


@dataclass(slots=True, frozen=True)
class ClipRef:
    """An event clip: a camera and a time range, backed by the segments that overlap it."""

    camera_id: str
    start: datetime
    end: datetime

    def __str__(self) -> str:
        """``<camera>/<start iso>/<end iso>``: what ``Event.clip`` holds."""
        return f"{self.camera_id}/{_iso(self.start)}/{_iso(self.end)}"

    @classmethod
    def parse(cls, text: str) -> ClipRef:
        """The inverse of ``str(clip)``; ``RecordingError`` naming the text if it is not a clip reference."""
        try:
            camera, start, end = text.rsplit("/", 2)
            return cls(camera, _utc(datetime.fromisoformat(start)), _utc(datetime.fromisoformat(end)))
        except ValueError:
            raise RecordingError(f"clip reference {text!r}: expected <camera>/<start>/<end>") from None


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def segment_relpath(camera_id: str, start: datetime) -> str:
    """Where a segment starting at ``start`` goes, relative to the data dir."""
    start = _utc(start)
    return f"{RECORDINGS_DIR}/{camera_id}/{start:%Y-%m-%d}/{start:%H%M%S}-{start.microsecond // 1000:03d}.mp4"


def probe_span(path: Path) -> tuple[float, float, int, str]:
    """(media time of the first packet, media time of the end of the last one, keyframe count, codec name) of a
    segment file, in seconds, read from its packets (the recorder's media time is seconds since ``MEDIA_EPOCH``).

    Works on a file cut short by a crash (up to its last complete fragment). ``RecordingError`` if unreadable.
    """
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            first = last = None
            keyframes = 0
            for packet in container.demux(stream):
                if packet.pts is None:
                    continue
                end = packet.pts + (packet.duration or 0)
                first = packet.pts if first is None else min(first, packet.pts)
                last = end if last is None else max(last, end)
                keyframes += int(packet.is_keyframe)
            if first is None or last is None:
                raise RecordingError(f"segment {path}: no video packets")
            base = stream.time_base
            return float(first * base), float(last * base), keyframes, stream.codec_context.name
    except (av.FFmpegError, OSError, IndexError) as exc:
        raise RecordingError(f"segment {path}: unreadable ({exc})") from None


def probe_segment(path: Path) -> tuple[float, int, str]:
    """(duration in seconds, keyframe count, codec name) of a segment file, read from its packets.

    Works on a file cut short by a crash (up to its last complete fragment). ``RecordingError`` if unreadable.
    """
    first, last, keyframes, codec = probe_span(path)
    return last - first, keyframes, codec


class RemoteSegments(Protocol):
    def fetch(self, segment: Segment) -> Path: ...

    def layout(self, segment: Segment) -> tuple[int, int]: ...


class RecordingIndex:
    """Segment rows in the metadata store, and the files they name below ``data_dir``."""

    def __init__(self, store: Store, data_dir: Path | str, node: str | None = None) -> None:
        """``node``: in a cluster, the name of the node whose disk ``data_dir`` is. Segments it indexes are marked
        with it, and ``local`` narrows a query to them (retention and recovery touch only this node's files)."""
        self.store = store
        self.data_dir = Path(data_dir)
        self.node = node
        #: a command centre in a cluster: fetches segments held by other nodes (``vigil.cluster.segments``)
        self.remote: RemoteSegments | None = None

    def local(self, query: Select) -> Select:
        """``query`` over segment rows narrowed to the files on this node's disk."""
        if self.node is None:
            return query
        return query.where(SegmentRow.node == self.node)

    def file(self, segment: Segment | str) -> Path:
        """The absolute path of a segment (or of a relative segment path); a segment held by another node is
        fetched from it first (``remote``)."""
        if isinstance(segment, str):
            return self.data_dir / segment
        local = self.data_dir / segment.path
        if self.is_remote(segment) and not local.exists():
            assert self.remote is not None
            return self.remote.fetch(segment)
        return local

    def is_remote(self, segment: Segment) -> bool:
        """True for a segment on another node's disk, which ``remote`` can fetch."""
        return self.remote is not None and segment.node is not None and segment.node != self.node

    def add(self, segment: Segment) -> Segment:
        """Index a finished segment; returns it with its id."""
        row = SegmentRow(
            camera_id=segment.camera_id,
            start=segment.start,
            end=segment.end,
            path=segment.path,
            size_bytes=segment.size_bytes,
            keyframes=segment.keyframes,
            codec=segment.codec,
            kind=segment.kind,
            node=self.node,
        )
        with self.store.session() as session:
            session.add(row)
            session.flush()
            return _segment(row)

    def index_file(self, camera_id: str, path: Path, start: datetime, kind: str = "continuous") -> Segment:
        """Probe a segment file on disk (e.g. one left by a crash) and index it."""
        duration, keyframes, codec = probe_segment(path)
        rel = path.resolve().relative_to(self.data_dir.resolve()).as_posix()
        start = _utc(start)
        end = start + timedelta(seconds=duration)
        return self.add(Segment(camera_id, start, end, rel, path.stat().st_size, keyframes, codec, kind))

    def segments(
        self, camera_id: str | None = None, start: datetime | None = None, end: datetime | None = None,
        local: bool = False,
    ) -> list[Segment]:
        """Segments overlapping [start, end) (open ends: unbounded), oldest first; ``local``: on this node only."""
        query = select(SegmentRow).order_by(SegmentRow.start, SegmentRow.id)
        if local:
            query = self.local(query)
        if camera_id is not None:
            query = query.where(SegmentRow.camera_id == camera_id)
        if end is not None:
            query = query.where(SegmentRow.start < end)
        if start is not None:
            query = query.where(SegmentRow.end > start)
        with self.store.session() as session:
            return [_segment(row) for row in session.scalars(query)]

    def segments_by_id(self, ids: Iterable[int]) -> list[Segment]:
        query = select(SegmentRow).where(SegmentRow.id.in_(list(ids))).order_by(SegmentRow.start, SegmentRow.id)
        with self.store.session() as session:
            return [_segment(row) for row in session.scalars(query)]

    def clip_for(self, camera_id: str, at: datetime, pre_s: float, post_s: float) -> ClipRef:
        """The clip reference of an event at ``at``: [at - pre_s, at + post_s] on ``camera_id``."""
        at = _utc(at)
        return ClipRef(camera_id, at - timedelta(seconds=pre_s), at + timedelta(seconds=post_s))

    def clip_segments(self, clip: ClipRef) -> list[Segment]:
        """The segments that hold (part of) a clip, oldest first."""
        return self.segments(clip.camera_id, clip.start, clip.end)

    def cameras(self, local: bool = False) -> list[str]:
        query = select(SegmentRow.camera_id).distinct()
        with self.store.session() as session:
            return sorted(session.scalars(self.local(query) if local else query))

    def total_size(self, camera_id: str | None = None, local: bool = False) -> int:
        """Bytes indexed for one camera (or all); ``local``: on this node only."""
        query = select(func.coalesce(func.sum(SegmentRow.size_bytes), 0))
        if local:
            query = self.local(query)
        if camera_id is not None:
            query = query.where(SegmentRow.camera_id == camera_id)
        with self.store.session() as session:
            return int(session.scalar(query) or 0)

    def paths(self, local: bool = False) -> set[str]:
        """Every indexed relative path; ``local``: on this node only."""
        query = select(SegmentRow.path)
        with self.store.session() as session:
            return set(session.scalars(self.local(query) if local else query))

    def remove(self, segments: Iterable[Segment]) -> int:
        """Drop index rows (the files are the caller's business); the number removed."""
        ids = [s.id for s in segments if s.id is not None]
        if not ids:
            return 0
        with self.store.session() as session:
            return session.execute(delete(SegmentRow).where(SegmentRow.id.in_(ids))).rowcount or 0


def _segment(row: SegmentRow) -> Segment:
    return Segment(
        row.camera_id, row.start, row.end, row.path, row.size_bytes, row.keyframes, row.codec, row.kind, row.id,
        row.node,
    )
