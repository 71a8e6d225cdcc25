"""Tracks from known boxes: MOT ground truth (or any scripted boxes) replayed as per-frame ``Track`` lists.

This lets the same rules run on ground-truth tracks and on our tracker's tracks (the "bench events"
comparison). The replay mimics the tracker's lifecycle: a track is ``CONFIRMED`` from its first box
(ground truth needs no confirmation), ``LOST`` once unseen for ``lost_after_s``, ``ENDED`` once unseen
for ``end_after_s``, and every track still alive ends on one extra frame after the last.

MOT files are ``frame,id,left,top,width,height,flag,world_x,world_y,z`` with frames from 1; the
PETS09-S2L1 file (10 fps) is aligned with ``video/vtest.avi`` (768×576) and gives world coordinates
in metres, from which ``mot_ground_homography`` fits the image→ground homography.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np

from vigil.errors import DataError
from vigil.types import Track, TrackState

#: Capture time of frame 1 when none is given (a fixed time keeps replays deterministic).
DEFAULT_START = datetime(2009, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class BoxRow:
    """One known box: frame number (from 1), object id, xyxy, label, optional ground position (metres)."""

    frame: int
    track_id: int
    box: tuple[float, float, float, float]
    label: str = "person"
    world: tuple[float, float] | None = None


@dataclass(slots=True)
class TrackFrame:
    """The tracks of one frame, shaped like the tracker's output."""

    index: int
    at: datetime
    active: list[Track]
    ended: list[Track]


def read_mot(path: str | Path, label: str = "person") -> list[BoxRow]:
    """Parse a MOT ``gt.txt`` / ``det.txt``; a bad line raises ``DataError`` naming file and line."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise DataError(f"{path}: cannot read MOT file ({exc.strerror})") from None
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            fields = [float(v) for v in line.split(",")]
            frame, track_id, left, top, width, height = fields[:6]
        except ValueError:
            raise DataError(f"{path}:{number}: not a MOT row (frame,id,left,top,width,height,...)") from None
        world = (fields[7], fields[8]) if len(fields) >= 9 and (fields[7], fields[8]) != (-1, -1) else None
        rows.append(BoxRow(int(frame), int(track_id), (left, top, left + width, top + height), label, world))
    return rows


def replay_tracks(rows: Iterable[BoxRow], camera_id: str, fps: float, start: datetime = DEFAULT_START, *,
                  lost_after_s: float = 0.5, end_after_s: float = 3.0, history: int = 100) -> Iterator[TrackFrame]:
    """Yield one ``TrackFrame`` per frame from the first to one past the last, frame ``n`` at
    ``start + (n - 1) / fps``. ``Track`` objects are reused and updated in place, as the tracker does."""
    by_frame: dict[int, list[BoxRow]] = {}
    for row in rows:
        by_frame.setdefault(row.frame, []).append(row)
    if not by_frame:
        return
    alive: dict[int, Track] = {}
    first, last = min(by_frame), max(by_frame)
    for index in range(first, last + 2):
        at = start + timedelta(seconds=(index - 1) / fps)
        for row in by_frame.get(index, []):
            track = alive.get(row.track_id)
            if track is None:
                track = alive[row.track_id] = Track(camera_id, row.track_id, row.label, at, at)
            x1, _, x2, y2 = row.box
            track.boxes.append(row.box)
            track.box_times.append(at)
            track.trajectory.append(((x1 + x2) / 2, y2))
            for series in (track.boxes, track.box_times, track.trajectory):
                del series[:-history]
            track.last_seen, track.hits, track.confidence = at, track.hits + 1, 1.0
        last_frame = index > last
        ended = []
        for track_id, track in list(alive.items()):
            unseen = (at - track.last_seen).total_seconds()
            if last_frame or unseen >= end_after_s:
                track.state = TrackState.ENDED
                ended.append(alive.pop(track_id))
            else:
                track.state = TrackState.LOST if unseen >= lost_after_s else TrackState.CONFIRMED
        yield TrackFrame(index, at, list(alive.values()), ended)


def mot_ground_truth_tracks(path: str | Path, camera_id: str = "pets09", fps: float = 10.0,
                            start: datetime = DEFAULT_START, **lifecycle: float) -> Iterator[TrackFrame]:
    """Per-frame tracks from a MOT ground-truth file (all boxes, occluded ones included)."""
    return replay_tracks(read_mot(path), camera_id, fps, start, **lifecycle)


def mot_ground_homography(path: str | Path) -> list[list[float]]:
    """Image→ground homography (row-major 3x3) fitted from bottom-centres to the file's world positions."""
    rows = [row for row in read_mot(path) if row.world is not None]
    if len(rows) < 4:
        raise DataError(f"{path}: fewer than 4 boxes with world positions; cannot fit a homography")
    image = np.array([((r.box[0] + r.box[2]) / 2, r.box[3]) for r in rows], dtype=np.float64)
    world = np.array([r.world for r in rows], dtype=np.float64)
    matrix, _ = cv2.findHomography(image, world, cv2.RANSAC, 0.5)
    if matrix is None:
        raise DataError(f"{path}: world positions do not fit an image→ground homography")
    return matrix.tolist()


def box_on_ground(x: float, y: float, height: float = 80.0) -> tuple[float, float, float, float]:
    """A person-shaped xyxy box (width = height / 2) standing on image point (x, y)."""
    return (x - height / 4, y - height, x + height / 4, y)


def scripted_walk(track_id: int, points: Iterable[tuple[float, float]], *, first_frame: int = 1,
                  label: str = "person", height: float = 80.0) -> list[BoxRow]:
    """Boxes for an object whose ground point visits ``points``, one per frame from ``first_frame``
    (synthetic scenes for tests and demos)."""
    return [BoxRow(first_frame + i, track_id, box_on_ground(x, y, height), label) for i, (x, y) in enumerate(points)]
