"""Behaviour rules on a track's motion: ``running`` and ``stopped_object`` (stopped vehicle, abandoned object).

Both look only at new observations of confirmed tracks (a lost track has no fresh motion) and use the
track's own aligned history (``box_times``, ``boxes``, ``trajectory``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from vigil.analytics.geometry import GroundMapper, Point, distance
from vigil.analytics.zones import ZoneMonitor
from vigil.config import RunningRule, StoppedRule
from vigil.types import Event, Track, TrackState

#: Speed is the slope of a least-squares line through the ground points of this many recent seconds.
SPEED_WINDOW_S = 0.6
#: Fewest observations in the window for a speed estimate.
SPEED_MIN_POINTS = 3
#: Labels the running rule applies to (RunningRule has no ``classes`` field yet).


def _recent(track: Track) -> tuple[list[datetime], list[tuple[float, float, float, float]], list[Point]]:
    """The aligned tail of a track's times, boxes and ground points."""
    n = min(len(track.box_times), len(track.boxes), len(track.trajectory))
    return track.box_times[-n:] if n else [], track.boxes[-n:] if n else [], track.trajectory[-n:] if n else []


def track_speed(track: Track, mapper: GroundMapper | None = None,
                window_s: float = SPEED_WINDOW_S) -> tuple[float, str] | None:
    """Smoothed current speed of a track: (metres/s, "m/s") with a ground mapper, else (box heights/s, "heights/s").

    Fits position against time over the last ``window_s`` seconds (least squares), which averages out
    box jitter. ``None`` when the window holds too few observations or spans too little time.
    """
    times, boxes, points = _recent(track)
    if len(times) < SPEED_MIN_POINTS:
        return None
    last = times[-1]
    start = next(i for i, t in enumerate(times) if (last - t).total_seconds() <= window_s)
    seconds = np.array([(t - last).total_seconds() for t in times[start:]])
    if len(seconds) < SPEED_MIN_POINTS or -seconds[0] < window_s / 2:
        return None
    xy = np.asarray(points[start:], dtype=np.float64)
    if mapper is not None:
        xy = mapper.to_ground(xy)
    vx, vy = (np.polyfit(seconds, xy[:, k], 1)[0] for k in (0, 1))
    speed = float(np.hypot(vx, vy))
    if mapper is not None:
        return speed, "m/s"
    height = float(np.median([y2 - y1 for _, y1, _, y2 in boxes[start:]]))
    return (speed / height if height > 0 else 0.0), "heights/s"


@dataclass(slots=True)
class _Pace:
    last_time: datetime | None = None  # capture time of the last observation evaluated
    fast_since: datetime | None = None
    reported: bool = False  # already reported this fast spell


class RunningDetector:
    """Emits ``running`` when a person's smoothed speed stays above the threshold for ``min_duration_s``.

    One event per fast spell: the track must slow below the threshold before it can fire again.
    """

    def __init__(self, camera_id: str, rule: RunningRule, mapper: GroundMapper | None = None) -> None:
        self.camera_id = camera_id
        self.rule = rule
        self.mapper = mapper
        self.threshold = rule.metres_per_second if mapper is not None else rule.heights_per_second
        self._paces: dict[int, _Pace] = {}

    def update(self, tracks: list[Track], at: datetime) -> list[Event]:
        events = []
        for track in tracks:
            if track.state is not TrackState.CONFIRMED or track.label not in self.rule.classes or not track.box_times:
                continue
            pace = self._paces.setdefault(track.track_id, _Pace())
            observed = track.box_times[-1]
            if pace.last_time is not None and observed <= pace.last_time:
                continue  # no new observation since the last check
            pace.last_time = observed
            estimate = track_speed(track, self.mapper)
            if estimate is None or estimate[0] <= self.threshold:
                pace.fast_since, pace.reported = None, False
                continue
            speed, unit = estimate
            pace.fast_since = pace.fast_since or observed
            duration = (observed - pace.fast_since).total_seconds()
            if duration >= self.rule.min_duration_s and not pace.reported:
                pace.reported = True
                payload = {"speed": round(speed, 3), "unit": unit, "threshold": self.threshold,
                           "duration_s": duration, "point": list(track.ground_point)}
                events.append(Event(kind="running", camera_id=self.camera_id, at=at, severity="warning",
                                    track_id=track.track_id, label=track.label, payload=payload))
        return events

    def drop(self, track: Track) -> None:
        self._paces.pop(track.track_id, None)

    def tracked_ids(self) -> set[int]:
        return set(self._paces)


@dataclass(slots=True)
class _Rest:
    anchor: Point  # where the current stay began
    since: datetime
    reported: bool = False


class StoppedDetector:
    """Emits ``stopped_object`` once per track when its ground point stays within ``max_motion_px`` of
    where it stopped for ``seconds`` (in one of ``rule.zones`` when given)."""

    def __init__(self, camera_id: str, rule: StoppedRule, zones: ZoneMonitor) -> None:
        self.camera_id = camera_id
        self.rule = rule
        self.zones = zones
        self._rests: dict[int, _Rest] = {}

    def update(self, tracks: list[Track], at: datetime) -> list[Event]:
        events = []
        for track in tracks:
            if track.state is not TrackState.CONFIRMED or track.label not in self.rule.classes:
                continue
            point = track.ground_point
            observed = track.box_times[-1] if track.box_times else at
            rest = self._rests.get(track.track_id)
            if rest is None or distance(point, rest.anchor) > self.rule.max_motion_px:
                reported = rest.reported if rest else False
                self._rests[track.track_id] = _Rest(point, observed, reported)
                continue
            stopped_s = (observed - rest.since).total_seconds()
            if rest.reported or stopped_s < self.rule.seconds:
                continue
            allowed, zone = self._zone_for(track.track_id)
            if not allowed:
                continue
            rest.reported = True
            payload = {"stopped_s": stopped_s, "threshold_s": self.rule.seconds, "point": list(point),
                       "since": rest.since.isoformat()}
            events.append(Event(kind="stopped_object", camera_id=self.camera_id, at=at, severity="warning",
                                track_id=track.track_id, label=track.label, zone=zone, payload=payload))
        return events

    def _zone_for(self, track_id: int) -> tuple[bool, str | None]:
        """(may fire, zone to report): with ``rule.zones`` the track must be in one of them."""
        inside = self.zones.zones_of(track_id)
        if not self.rule.zones:
            return True, next(iter(inside), None)
        zone = next((z for z in self.rule.zones if z in inside), None)
        return zone is not None, zone

    def drop(self, track: Track) -> None:
        self._rests.pop(track.track_id, None)

    def tracked_ids(self) -> set[int]:
        return set(self._rests)
