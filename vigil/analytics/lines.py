"""Line crossings with direction (``line_cross``), per-class counts, and ``wrong_way``.

Direction follows ``supervision.LineZone``: with the line drawn from ``start`` to ``end`` on the image
(y down), **"in" is a crossing from the right-hand side of start→end to its left-hand side**, "out" the
reverse. For a line drawn left to right, "in" is moving up the picture; for a line drawn top to bottom,
"in" is moving right. Flip start and end in the config to flip the meaning.

A crossing is counted when the track's ground point passes from one side of the line to the other and
the path between the two observations meets the line *segment* (going round an end does not count).
Points within ``DEADBAND_PX`` of the line leave the side unchanged, so a track standing on the line
with jittery boxes does not count back-and-forth crossings; the crossing is counted once the point is
clearly over.

Hand-written rather than ``supervision.LineZone``: that class forgets a tracker id after a few frames
without it (our lost tracks come back after seconds), counts box corners instead of the ground point,
and keys classes by integer id; here state is per track until the track ends, and events carry times.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from vigil.analytics.geometry import Point, distance_to_line, segments_intersect, side_of_line
from vigil.config import LineConfig
from vigil.types import Event, Track

#: Ground points closer than this to the line (pixels) do not change the side a track is on.
DEADBAND_PX = 3.0


@dataclass(slots=True)
class _Side:
    point: Point  # last ground point seen clearly on one side
    left: bool  # on the left-hand side of start→end (negative cross product)


class LineMonitor:
    """Counts crossings of each configured line per direction and class; emits crossing events."""

    def __init__(self, camera_id: str, lines: list[LineConfig], emit_crossings: bool = True) -> None:
        self.camera_id = camera_id
        self.lines = list(lines)
        self.emit_crossings = emit_crossings
        self._sides: dict[int, dict[str, _Side]] = {}
        self._counts: dict[str, dict[str, Counter[str]]] = {
            line.name: {"in": Counter(), "out": Counter()} for line in lines
        }

    def update(self, tracks: list[Track], at: datetime) -> list[Event]:
        """Check each (confirmed or lost) track's latest ground point against every line."""
        events: list[Event] = []
        for track in tracks:
            sides = self._sides.get(track.track_id)
            if sides is None:  # first time considered: start from its earliest known point
                sides = self._sides[track.track_id] = {}
                for line in self.lines:
                    self._observe(sides, line, track.trajectory[0])
            for line in self.lines:
                if line.classes and track.label not in line.classes:
                    continue
                direction = self._observe(sides, line, track.ground_point)
                if direction is not None:
                    events.extend(self._crossed(track, line, direction, at))
        return events

    def drop(self, track: Track) -> None:
        """Forget an ended track."""
        self._sides.pop(track.track_id, None)

    def counts(self) -> dict[str, dict[str, dict[str, int]]]:
        """Line → direction ("in"/"out") → label → crossings so far."""
        return {
            name: {direction: dict(sorted(c.items())) for direction, c in by_direction.items()}
            for name, by_direction in self._counts.items()
        }

    def tracked_ids(self) -> set[int]:
        """Track ids this monitor holds state for."""
        return set(self._sides)

    def _observe(self, sides: dict[str, _Side], line: LineConfig, point: Point) -> str | None:
        """Update the side of one track for one line; return "in"/"out" when this point completes a crossing."""
        if distance_to_line(point, line.start, line.end) <= DEADBAND_PX:
            return None
        left = side_of_line(point, line.start, line.end) < 0
        previous = sides.get(line.name)
        sides[line.name] = _Side(point, left)
        if previous is None or previous.left == left:
            return None
        if not segments_intersect(previous.point, point, line.start, line.end):
            return None  # went round an end of the line
        return "in" if left else "out"

    def _crossed(self, track: Track, line: LineConfig, direction: str, at: datetime) -> list[Event]:
        self._counts[line.name][direction][track.label] += 1
        events = []
        point = list(track.ground_point)
        if self.emit_crossings:
            payload = {"direction": direction, "point": point, "counts": self.counts()[line.name]}
            events.append(Event(kind="line_cross", camera_id=self.camera_id, at=at, track_id=track.track_id,
                                label=track.label, zone=line.name, payload=payload))
        if line.allowed_direction is not None and direction != line.allowed_direction:
            payload = {"direction": direction, "allowed_direction": line.allowed_direction, "point": point}
            events.append(Event(kind="wrong_way", camera_id=self.camera_id, at=at, severity="warning",
                                track_id=track.track_id, label=track.label, zone=line.name, payload=payload))
        return events
