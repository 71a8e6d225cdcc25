"""What one busy camera emits, measured on the demo scene, and a seeded generator of it (no video decoded).

The rates are those of ``vigil demo --no-serve`` (PETS09-S2L1 through the demo scene ``vigil/demo/vtest.yaml``,
2026-12-03 15:40 UTC): 398 analysed frames at 5 fps (79.6 s), 21 stored tracks, 134 rule events (table below),
one set of 3 per-second count samples (whole view, ``junction``, ``lawn``). The scene has no vehicle and live
face matching needs an authorisation, so the demo writes no sightings; the bench assumes a plate read for
``PLATE_SHARE`` of the tracks, as a street camera would, and says so in its output.

``CameraScene.step`` produces one analysed frame's ``FrameResult`` as the runtime hands it to ``StoreSink``:
the events of that frame (Poisson arrivals at the measured rates, each stamped with its emission wall-clock time
in ``payload["emitted_at"]``), the count samples when the frame starts a new second, and the tracks that ended
(lifetimes drawn from the demo's). Track events belong to one of the camera's live tracks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import supervision as sv

from vigil.analytics.engine import RuleOutput
from vigil.config import CameraConfig
from vigil.runtime import FrameResult
from vigil.types import CountSample, Event, Sighting, Track, TrackState
from vigil.vision.tracker import TrackUpdate

DEMO_FRAMES = 398
DEMO_FPS = 5.0
DEMO_SECONDS = DEMO_FRAMES / DEMO_FPS
#: kind → (severity, events in the demo run)
DEMO_EVENTS: dict[str, tuple[str, int]] = {
    "line_cross": ("info", 52), "zone_enter": ("info", 36), "zone_exit": ("info", 36),
    "loitering": ("warning", 5), "crowd_threshold": ("warning", 1), "crowd_surge": ("critical", 1),
    "crowd_dispersal": ("critical", 3),
}
DEMO_TRACKS = 21
#: the demo's stored track lifetimes (s), first seen to last seen
DEMO_TRACK_SECONDS = (4.8, 5.0, 7.2, 8.6, 8.8, 9.8, 10.0, 10.8, 15.0, 15.2, 17.0, 18.4, 21.8, 25.2, 28.2, 32.8,
                      33.8, 35.0, 35.6, 52.0, 57.0)
COUNT_SCOPES: tuple[str | None, ...] = (None, "junction", "lawn")
#: share of the people in view inside each zone (demo means: 2.74 and 0.39 of 5.79)
ZONE_SHARE = {"junction": 0.47, "lawn": 0.07}
LINES = ("east-path", "west-path")
#: assumed, not measured (the demo scene has no vehicles): tracks that leave a plate-read sighting
PLATE_SHARE = 0.1
TRACK_KINDS = frozenset({"line_cross", "zone_enter", "zone_exit", "loitering"})
COLOURS = ("black", "white", "grey", "blue", "red", "green", "brown")
NO_DETECTIONS = sv.Detections.empty()  # the store sink never reads the frame's detections


def demo_rates(plate_share: float = PLATE_SHARE) -> dict[str, Any]:
    """Per-camera rates (per second) the bench emits, as stated in its output."""
    events = {kind: round(n / DEMO_SECONDS, 4) for kind, (_, n) in DEMO_EVENTS.items()}
    alerts = sum(n for severity, n in DEMO_EVENTS.values() if severity != "info")
    total = sum(n for _, n in DEMO_EVENTS.values())
    return {
        "source": f"vigil demo --no-serve: PETS09-S2L1, {DEMO_FRAMES} frames at {DEMO_FPS:g} fps "
                  f"({DEMO_SECONDS:g} s), {DEMO_TRACKS} tracks, {total} events",
        "fps": DEMO_FPS,
        "events_per_s": round(total / DEMO_SECONDS, 4),
        "alerts_per_s": round(alerts / DEMO_SECONDS, 4),
        "alert_share": round(alerts / total, 4),
        "by_kind_per_s": events,
        "tracks_per_s": round(DEMO_TRACKS / DEMO_SECONDS, 4),
        "count_rows_per_s": len(COUNT_SCOPES),
        "count_writes_per_s": 1,
        "sightings_per_s": round(plate_share * DEMO_TRACKS / DEMO_SECONDS, 4),
        "sightings_note": f"assumed: a plate read for {plate_share:.0%} of tracks (the demo scene has none)",
        "heartbeats_per_node_per_s": 1,
    }


@dataclass(slots=True)
class _LiveTrack:
    track: Track
    ends: float  # wall clock


@dataclass(slots=True)
class Emitted:
    """What a camera handed to the store in one frame (for the bench's own books)."""

    result: FrameResult
    sightings: list[Sighting] = field(default_factory=list)


class CameraScene:
    """One simulated camera: seeded Poisson events, tracks and per-second counts at the demo's rates."""

    def __init__(self, camera: CameraConfig, rng: np.random.Generator, fps: float = DEMO_FPS,
                 plate_share: float = PLATE_SHARE) -> None:
        self.camera = camera
        self.rng = rng
        self.dt = 1.0 / fps
        self.kinds = list(DEMO_EVENTS)
        self.means = np.array([DEMO_EVENTS[k][1] / DEMO_SECONDS * self.dt for k in self.kinds])
        self.track_mean = DEMO_TRACKS / DEMO_SECONDS * self.dt
        self.plate_share = plate_share
        self.live: list[_LiveTrack] = []
        self.next_track = 1
        self.last_second: int | None = None
        self.phase = float(rng.uniform(0, 1))  # cameras start their seconds at different moments
        self.line_counts: dict[str, dict[str, dict[str, int]]] = {
            line: {"in": {}, "out": {}} for line in LINES}
        self.events = 0
        self.frames = 0
        # start with the scene's mean occupancy (≈ 5.7 people), as a camera that has been running
        for _ in range(round(DEMO_TRACKS / DEMO_SECONDS * float(np.mean(DEMO_TRACK_SECONDS)))):
            self._new_track(time.time(), partly_over=True)

    def _new_track(self, now: float, partly_over: bool = False) -> None:
        life = float(self.rng.choice(DEMO_TRACK_SECONDS))
        age = float(self.rng.uniform(0, life)) if partly_over else 0.0
        first = datetime.fromtimestamp(now - age, UTC)
        track = Track(self.camera.id, self.next_track, "person", first, first, state=TrackState.CONFIRMED,
                      attributes={"colour": str(self.rng.choice(COLOURS))})
        self.next_track += 1
        self.live.append(_LiveTrack(track, now - age + life))

    def step(self, now: float, frames: int = 1) -> Emitted | None:
        """This frame's results at wall-clock ``now``; None when the frame produced nothing to store. ``frames``
        > 1: the frames since the previous step were dropped (a node behind), so their events come in this one."""
        self.frames += frames
        at = datetime.fromtimestamp(now, UTC)
        ended = [lt.track for lt in self.live if lt.ends <= now]
        self.live = [lt for lt in self.live if lt.ends > now]
        for track in ended:
            self._finish(track, at)
        for _ in range(int(self.rng.poisson(self.track_mean * frames))):
            self._new_track(now)
        for lt in self.live:
            lt.track.last_seen = at
        draws = self.rng.poisson(self.means * frames)
        events = [self._event(kind, at) for kind, n in zip(self.kinds, draws, strict=True) for _ in range(int(n))]
        counts = self._counts(now, at)
        if not (events or counts or ended):
            return None
        stamp = time.time()
        for event in events:
            event.payload["emitted_at"] = stamp
        self.events += len(events)
        update = TrackUpdate(detections=NO_DETECTIONS, active=[lt.track for lt in self.live], ended=ended)
        result = FrameResult(self.camera, None, update, RuleOutput(events=events, counts=counts), True)
        plates = [self._plate(t) for t in ended if self.rng.random() < self.plate_share]
        return Emitted(result, plates)

    def _finish(self, track: Track, at: datetime) -> None:
        seconds = max(self.dt, (at - track.first_seen).total_seconds())
        n = max(2, int(seconds / self.dt))
        xs = np.linspace(self.rng.uniform(0, 768), self.rng.uniform(0, 768), n)
        ys = np.linspace(self.rng.uniform(150, 576), self.rng.uniform(150, 576), n)
        track.trajectory = [(float(x), float(y)) for x, y in zip(xs, ys, strict=True)]
        track.hits = n
        track.last_seen = at
        track.state = TrackState.ENDED

    def _plate(self, track: Track) -> Sighting:
        letters = "".join(self.rng.choice(list("ABCDEFGHJKLMNPRSTUVWXYZ"), 3))
        text = f"{letters}{int(self.rng.integers(100, 999))}"
        return Sighting(kind="plate", camera_id=self.camera.id, start=track.first_seen, end=track.last_seen,
                        track_id=track.track_id, label="car", plate_text=text,
                        plate_confidence=round(float(self.rng.uniform(0.6, 0.99)), 3), attributes={"reads": 3})

    def _event(self, kind: str, at: datetime) -> Event:
        severity = DEMO_EVENTS[kind][0]
        track = self.live[int(self.rng.integers(len(self.live)))].track if self.live else None
        point = [round(float(self.rng.uniform(0, 768)), 1), round(float(self.rng.uniform(150, 576)), 1)]
        occupancy = max(1, int(len(self.live) * ZONE_SHARE["junction"]))
        payload: dict[str, Any]
        zone: str | None = "junction"
        if kind == "line_cross":
            zone = LINES[int(self.rng.integers(len(LINES)))]
            direction = "in" if self.rng.random() < 0.5 else "out"
            side = self.line_counts[zone][direction]
            side["person"] = side.get("person", 0) + 1
            payload = {"direction": direction, "point": point, "counts": self.line_counts[zone]}
        elif kind == "zone_enter":
            zone = "junction" if self.rng.random() < 0.85 else "lawn"
            payload = {"point": point, "occupancy": occupancy}
        elif kind == "zone_exit":
            zone = "junction" if self.rng.random() < 0.85 else "lawn"
            payload = {"point": point, "dwell_s": round(float(self.rng.uniform(1, 20)), 1), "reason": "left",
                       "occupancy": occupancy}
        elif kind == "loitering":
            since = at - timedelta(seconds=10)
            payload = {"dwell_s": 10.0, "threshold_s": 10.0, "since": since.isoformat()}
        elif kind == "crowd_threshold":
            zone, payload = None, {"count": 8, "threshold": 8}
        else:  # crowd_surge, crowd_dispersal
            payload = {"count": 6 if kind == "crowd_surge" else 2, "from": 2 if kind == "crowd_surge" else 6,
                       "window_s": 5.0}
        in_track = kind in TRACK_KINDS and track is not None
        return Event(kind=kind, camera_id=self.camera.id, at=at, severity=severity,
                     track_id=track.track_id if in_track and track else None, label="person", zone=zone,
                     payload=payload)

    def _counts(self, now: float, at: datetime) -> list[CountSample]:
        second = int(now + self.phase)
        if self.last_second is not None and second <= self.last_second:
            return []
        self.last_second = second
        people = len(self.live)
        counts = {None: people, **{z: int(self.rng.binomial(people, p)) for z, p in ZONE_SHARE.items()}}
        return [CountSample(self.camera.id, at, scope, "person", counts[scope]) for scope in COUNT_SCOPES]
