"""The rule engine: one per camera, one ``update`` per analysed frame, events and count samples out.

Which tracks the rules see:

- ``NEW`` tracks are ignored (flicker); a track is considered from the first frame it is ``CONFIRMED``;
- a ``LOST`` track that was confirmed keeps its last position: it stays in its zones and keeps dwelling
  (a person hidden behind another is still loitering) until the tracker ends it, but it counts as present
  (people counts, crowd rules, heatmap, running, stopped and forbidden-class rules) only for ``PRESENT_WHILE_LOST_S``;
  a ``LOST`` track never confirmed is ignored;
- a track in ``ended``, or one the engine knew that no longer appears in ``active``, is dropped from
  every rule's state (``zone_exit`` with reason ``track_ended`` for zones it was in).

State is therefore bounded by the tracks alive on the camera. All times are capture times (``at``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from vigil.analytics.behaviour import RunningDetector, StoppedDetector
from vigil.analytics.crowd import PERSON, CountSampler, CrowdMonitor
from vigil.analytics.crowd_count import CrowdCounter
from vigil.analytics.forbidden import ForbiddenClassDetector
from vigil.analytics.geometry import GroundMapper
from vigil.analytics.heatmap import DensityHeatmap
from vigil.analytics.lines import LineMonitor
from vigil.analytics.loitering import LoiteringDetector
from vigil.analytics.zones import ZoneMonitor
from vigil.config import CameraConfig
from vigil.errors import ConfigError
from vigil.types import CountSample, Event, Track, TrackState

PRESENT_WHILE_LOST_S = 3.0  # a lost track still counts as there this long after it was last seen


@dataclass(slots=True)
class RuleOutput:
    """What one frame produced: events (without snapshots yet), once per second count samples, and the
    live counts after this frame (``RuleEngine.current_counts``: None or zone → label → tracks present)."""

    events: list[Event] = field(default_factory=list)
    counts: list[CountSample] = field(default_factory=list)
    live_counts: dict[str | None, dict[str, int]] = field(default_factory=dict)


class RuleEngine:
    """Applies a camera's zones, lines and rules to its tracks, frame by frame."""

    def __init__(self, camera: CameraConfig, heatmap: DensityHeatmap | None = None) -> None:
        _check_rule_zones(camera)
        rules = camera.rules
        self.camera = camera
        self.heatmap = heatmap
        self.mapper = GroundMapper(camera.homography, camera.id) if camera.homography is not None else None
        self.zones = ZoneMonitor(camera.id, camera.zones, emit_events=rules.zone_events)
        self.lines = LineMonitor(camera.id, camera.lines, emit_crossings=rules.line_events)
        self.loitering = LoiteringDetector(camera.id, rules.loitering, self.zones) if rules.loitering else None
        self.crowd = CrowdMonitor(camera.id, rules.crowd) if rules.crowd else None
        self.running = RunningDetector(camera.id, rules.running, self.mapper) if rules.running else None
        self.stopped = StoppedDetector(camera.id, rules.stopped, self.zones) if rules.stopped else None
        self.forbidden = (ForbiddenClassDetector(camera.id, rules.forbidden_class, self.zones)
                          if rules.forbidden_class else None)
        self.counter = CrowdCounter(camera)  # people per scope by each scope's crowd method
        self.sampler = CountSampler(camera.id)
        self._known: dict[int, Track] = {}  # confirmed tracks currently held, by id
        self._absent: set[int] = set()  # held tracks lost too long to count as present

    def update(self, active: list[Track], ended: list[Track], at: datetime) -> RuleOutput:
        """Run every rule for one analysed frame captured at ``at``."""
        considered = [t for t in active if t.trajectory and self._considered(t)]
        current = {t.track_id for t in considered}
        gone = [t for t in ended if t.track_id in self._known and t.track_id not in current]
        gone_ids = {t.track_id for t in gone}
        gone += [t for tid, t in self._known.items() if tid not in current and tid not in gone_ids]
        self._known = {t.track_id: t for t in considered}

        present = [t for t in considered if (at - t.last_seen).total_seconds() <= PRESENT_WHILE_LOST_S]
        self._absent = current - {t.track_id for t in present}

        out = RuleOutput()
        out.events += self.zones.update(considered, at)
        out.events += self.lines.update(considered, at)
        if self.loitering is not None:
            out.events += self.loitering.update(considered, at)
        for detector in (self.running, self.stopped, self.forbidden):
            if detector is not None:
                out.events += detector.update(present, at)
        for track in gone:
            out.events += self.zones.drop(track, at)
            self.lines.drop(track)
            for detector in (self.loitering, self.running, self.stopped, self.forbidden):
                if detector is not None:
                    detector.drop(track)

        counts = self.current_counts()
        people_scopes = [None, *(z.name for z in self.camera.zones if self.zones.accepts(z, PERSON))]
        heights = [t.box[3] - t.box[1] for t in present if t.label == PERSON] if self.counter.uses_density else []
        people = self.counter.people({s: counts.get(s, {}).get(PERSON, 0) for s in people_scopes},
                                     float(np.median(heights)) if heights else None)
        for scope, crowd in people.items():  # a density count stands for the people of its scope everywhere
            if crowd.method == "density":
                counts.setdefault(scope, {})[PERSON] = round(crowd.count)
        if self.crowd is not None:
            out.events += self.crowd.update({s: round(c.count) for s, c in people.items()}, at,
                                            {s: c.method for s, c in people.items()})
        always = {None: {PERSON}} | {z.name: {PERSON} for z in self.camera.zones if self.zones.accepts(z, PERSON)}
        out.counts = self.sampler.sample(counts, at, always)
        out.live_counts = counts
        if self.heatmap is not None:
            self.heatmap.add_tracks(present)
        return out

    def current_counts(self) -> dict[str | None, dict[str, int]]:
        """Now: ``None`` (whole camera) → label → tracks, and zone → label → tracks (zone class filter applied)."""
        whole = Counter(t.label for tid, t in self._known.items() if tid not in self._absent)
        return {None: dict(sorted(whole.items())), **self.zones.occupancy(exclude=self._absent)}

    def line_counts(self) -> dict[str, dict[str, dict[str, int]]]:
        """Line name → direction ("in"/"out") → label → crossings since the engine started."""
        return self.lines.counts()

    def tracked_ids(self) -> set[int]:
        """Every track id any rule holds state for (bounded by live tracks)."""
        ids = set(self._known) | self.zones.tracked_ids() | self.lines.tracked_ids()
        for detector in (self.loitering, self.running, self.stopped, self.forbidden):
            if detector is not None:
                ids |= detector.tracked_ids()
        return ids

    def _considered(self, track: Track) -> bool:
        if track.state is TrackState.CONFIRMED:
            return True
        return track.state is TrackState.LOST and track.track_id in self._known


def _check_rule_zones(camera: CameraConfig) -> None:
    """Rules may only name zones the camera defines."""
    names = {z.name for z in camera.zones}
    for rule_name in ("loitering", "stopped", "forbidden_class"):
        rule = getattr(camera.rules, rule_name)
        for zone in rule.zones if rule is not None else []:
            if zone not in names:
                raise ConfigError(f"camera {camera.id!r}: rules.{rule_name}.zones: no zone named {zone!r}")
