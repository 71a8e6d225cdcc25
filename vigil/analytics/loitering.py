"""Loitering: a track of the rule's classes staying in a zone for at least ``rule.seconds``.

Dwell runs from the moment the track entered the zone (``ZoneMonitor``), lost time included, and
restarts when it leaves. The event fires once per track per zone, at the first analysed frame whose
capture time is ``seconds`` or more after the entry. The zone class filter does not apply: the rule's
own ``classes`` do. When the camera has no zones at all, the whole view is the zone (``zone=None``)
and dwell runs from the first frame the track was considered.
"""

from __future__ import annotations

from datetime import datetime

from vigil.analytics.zones import ZoneMonitor
from vigil.config import LoiteringRule
from vigil.types import Event, Track

_WHOLE_VIEW = ""  # key of the whole-view pseudo-zone


class LoiteringDetector:
    """Emits ``loitering`` once per (track, zone) when dwell reaches the rule's seconds."""

    def __init__(self, camera_id: str, rule: LoiteringRule, zones: ZoneMonitor) -> None:
        self.camera_id = camera_id
        self.rule = rule
        self.zones = zones
        self._whole_view = not zones.zones
        self._first_at: dict[int, datetime] = {}
        self._fired: dict[int, set[str]] = {}

    def update(self, tracks: list[Track], at: datetime) -> list[Event]:
        """Check dwell of the given (confirmed or lost) tracks at ``at``; call after ``ZoneMonitor.update``."""
        events = []
        for track in tracks:
            if track.label not in self.rule.classes:
                continue
            if self._whole_view:
                dwelling = {_WHOLE_VIEW: self._first_at.setdefault(track.track_id, at)}
            else:
                dwelling = self.zones.zones_of(track.track_id)
            fired = self._fired.setdefault(track.track_id, set())
            for zone, entered in dwelling.items():
                if zone in fired or (self.rule.zones and zone not in self.rule.zones):
                    continue
                dwell = (at - entered).total_seconds()
                if dwell >= self.rule.seconds:
                    fired.add(zone)
                    payload = {"dwell_s": dwell, "threshold_s": self.rule.seconds, "since": entered.isoformat()}
                    events.append(Event(kind="loitering", camera_id=self.camera_id, at=at, severity="warning",
                                        track_id=track.track_id, label=track.label, zone=zone or None,
                                        payload=payload))
        return events

    def drop(self, track: Track) -> None:
        """Forget an ended track."""
        self._first_at.pop(track.track_id, None)
        self._fired.pop(track.track_id, None)

    def tracked_ids(self) -> set[int]:
        """Track ids this detector holds state for."""
        return set(self._first_at) | set(self._fired)
