"""Zone membership, ``zone_enter`` / ``zone_exit`` events and per-zone occupancy.

A track is in a zone when its ground point (bottom centre of its box) is inside the zone's polygon, in
image pixels. Membership is kept for every track and zone whatever the zone's class filter, because
loitering, stopped-object and crowd rules read it; the class filter applies to the zone's own events
and occupancy.

Decisions (see also ``engine``):

- Only tracks that have been confirmed are considered. A lost track keeps its last position, so it
  stays a member of its zones until it is seen again elsewhere or ends.
- A track that ends (or vanishes from the tracker's output) while inside a zone emits ``zone_exit``
  with ``payload["reason"] == "track_ended"``, so enters and exits always pair up and
  occupancy == enters − exits.
- A track first confirmed inside a zone emits ``zone_enter`` at that moment.
- ``zone_exit`` is emitted exactly for zones whose ``zone_enter`` was emitted (the class filter is
  checked on entry), even if the track's majority label changes while inside.
- A dead band around the border absorbs detection jitter: once a track's membership is known, it
  enters only when its ground point is ``BORDER_BAND`` × its box height inside the border, and exits
  only that far outside (at least ``MIN_BAND_PX``). Without it, a person walking along a border
  produced a burst of enter/exit pairs (measured by ``vigil bench events``).

Hand-written rather than ``supervision.PolygonZone``: that class answers "which detections are inside
now" from box anchors; the rules need per-track membership with entry times that survives lost gaps.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Set
from dataclasses import dataclass, field
from datetime import datetime

from vigil.analytics.geometry import as_polygon, signed_distance
from vigil.config import ZoneConfig
from vigil.types import Event, Track

BORDER_BAND = 0.1  # of the box height
MIN_BAND_PX = 3.0


@dataclass(slots=True)
class _Member:
    label: str
    zones: dict[str, datetime] = field(default_factory=dict)  # zone name → entered at
    seen: bool = False  # membership has been evaluated once (the dead band applies from then on)
    announced: set[str] = field(default_factory=set)  # zones whose zone_enter was emitted (exit pairs with it)


class ZoneMonitor:
    """Which tracks are in which zones, since when; emits enter/exit events for the zones' classes."""

    def __init__(self, camera_id: str, zones: list[ZoneConfig], emit_events: bool = True) -> None:
        self.camera_id = camera_id
        self.zones = list(zones)
        self.emit_events = emit_events
        self._polygons = {zone.name: as_polygon(zone.polygon) for zone in zones}
        self._members: dict[int, _Member] = {}

    def accepts(self, zone: ZoneConfig, label: str) -> bool:
        """Does the zone's class filter let ``label`` through?"""
        return not zone.classes or label in zone.classes

    def update(self, tracks: list[Track], at: datetime) -> list[Event]:
        """Re-evaluate membership of the given (confirmed or lost) tracks at capture time ``at``."""
        events: list[Event] = []
        for track in tracks:
            member = self._members.setdefault(track.track_id, _Member(track.label))
            member.label = track.label
            point = track.ground_point
            band = max(MIN_BAND_PX, BORDER_BAND * (track.box[3] - track.box[1])) if member.seen else 0.0
            member.seen = True
            for zone in self.zones:
                distance = signed_distance(point, self._polygons[zone.name])
                inside = distance >= band if zone.name not in member.zones else distance > -band
                if inside and zone.name not in member.zones:
                    member.zones[zone.name] = at
                    if self.emit_events and self.accepts(zone, track.label):
                        member.announced.add(zone.name)
                        events.append(self._event("zone_enter", track, zone, at, {"point": list(point)}))
                elif not inside and zone.name in member.zones:
                    entered = member.zones.pop(zone.name)
                    if zone.name in member.announced:
                        member.announced.discard(zone.name)
                        payload = {"point": list(point), "dwell_s": (at - entered).total_seconds(), "reason": "left"}
                        events.append(self._event("zone_exit", track, zone, at, payload))
        return events

    def drop(self, track: Track, at: datetime) -> list[Event]:
        """Forget a track that ended; emit ``zone_exit`` (reason ``track_ended``) for zones it was in."""
        member = self._members.pop(track.track_id, None)
        if member is None:
            return []
        events = []
        for zone in self.zones:
            entered = member.zones.get(zone.name)
            if entered is not None and zone.name in member.announced:
                payload = {"dwell_s": (at - entered).total_seconds(), "reason": "track_ended",
                           "last_seen": track.last_seen.isoformat()}
                events.append(self._event("zone_exit", track, zone, at, payload))
        return events

    def zones_of(self, track_id: int) -> dict[str, datetime]:
        """The zones a track is in now, with the time it entered each."""
        member = self._members.get(track_id)
        return dict(member.zones) if member else {}

    def labels_in(self, zone_name: str, exclude: Set[int] = frozenset()) -> Counter[str]:
        """Members of a zone (but ``exclude``) counted per label, whatever the zone's class filter."""
        return Counter(m.label for tid, m in self._members.items() if zone_name in m.zones and tid not in exclude)

    def occupancy(self, exclude: Set[int] = frozenset()) -> dict[str, dict[str, int]]:
        """Zone → label → number of tracks inside (but ``exclude``), for the labels each zone's filter accepts."""
        out: dict[str, dict[str, int]] = {}
        for zone in self.zones:
            counts = self.labels_in(zone.name, exclude)
            out[zone.name] = {label: n for label, n in sorted(counts.items()) if self.accepts(zone, label)}
        return out

    def tracked_ids(self) -> set[int]:
        """Track ids this monitor holds state for (for tests of bounded state)."""
        return set(self._members)

    def _event(self, kind: str, track: Track, zone: ZoneConfig, at: datetime, payload: dict) -> Event:
        payload["occupancy"] = self.labels_in(zone.name)[track.label]
        return Event(kind=kind, camera_id=self.camera_id, at=at, track_id=track.track_id, label=track.label,
                     zone=zone.name, payload=payload)
