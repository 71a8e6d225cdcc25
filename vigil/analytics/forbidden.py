"""``forbidden_class``: an object of a class that has no business in a zone (a bicycle, car or cart on a footpath).

A confirmed track whose majority label is one of ``rule.classes`` and whose ground point is in one of
``rule.zones`` (any zone when the list is empty; the whole view when the camera has no zones) for
``min_duration_s`` (from its first to its latest observation there; a spell lost in between does not restart
it) raises one event for that stay. Leaving every watched zone, or being relabelled to an allowed class, ends
the stay; a later stay may fire again.

``cooldown_s`` is per zone: after an event, another track in the same zone within the cooldown is taken
for the same object (a tracker that split one cyclist into two tracks) and counted as reported, not
alerted again. Zone membership is the ``ZoneMonitor``'s, whatever the zone's own class filter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from vigil.analytics.zones import ZoneMonitor
from vigil.config import ForbiddenClassRule
from vigil.types import Event, Track, TrackState

_WHOLE_VIEW = ""  # cooldown key when the camera has no zones


@dataclass(slots=True)
class _Stay:
    since: datetime  # first observation of the current stay
    last_time: datetime  # last observation evaluated
    reported: bool = False


class ForbiddenClassDetector:
    """Emits ``forbidden_class`` once per stay of a forbidden-class track in a watched zone."""

    def __init__(self, camera_id: str, rule: ForbiddenClassRule, zones: ZoneMonitor) -> None:
        self.camera_id = camera_id
        self.rule = rule
        self.zones = zones
        self._stays: dict[int, _Stay] = {}
        self._last_fired: dict[str, datetime] = {}  # zone (or whole view) → time of its last event

    def watched_zone(self, track: Track) -> str | None:
        """The watched zone the track is in now ("" for the whole view), or None when it is in none."""
        if not self.zones.zones:
            return _WHOLE_VIEW
        inside = self.zones.zones_of(track.track_id)
        if not self.rule.zones:
            return next(iter(inside), None)
        return next((z for z in self.rule.zones if z in inside), None)

    def update(self, tracks: list[Track], at: datetime) -> list[Event]:
        """Check the given present tracks at ``at``; call after ``ZoneMonitor.update``."""
        events = []
        for track in tracks:
            if track.state is not TrackState.CONFIRMED or not track.box_times:
                continue
            observed = track.box_times[-1]
            zone = self.watched_zone(track) if track.label in self.rule.classes else None
            if zone is None:
                self._stays.pop(track.track_id, None)
                continue
            stay = self._stays.get(track.track_id)
            if stay is None:
                self._stays[track.track_id] = _Stay(observed, observed)
                stay = self._stays[track.track_id]
            elif observed <= stay.last_time:
                continue  # no new observation since the last check
            stay.last_time = observed
            duration = (observed - stay.since).total_seconds()
            if stay.reported or duration < self.rule.min_duration_s:
                continue
            stay.reported = True
            last = self._last_fired.get(zone)
            if last is not None and (at - last).total_seconds() < self.rule.cooldown_s:
                continue  # the same zone alerted moments ago: taken for the same object
            self._last_fired[zone] = at
            payload = {"duration_s": round(duration, 3), "confidence": round(track.confidence, 3),
                       "classes": list(self.rule.classes), "point": list(track.ground_point)}
            events.append(Event(kind="forbidden_class", camera_id=self.camera_id, at=at, severity="warning",
                                track_id=track.track_id, label=track.label, zone=zone or None, payload=payload))
        return events

    def drop(self, track: Track) -> None:
        self._stays.pop(track.track_id, None)

    def tracked_ids(self) -> set[int]:
        return set(self._stays)
