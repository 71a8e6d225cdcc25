"""Counting and crowd rules: per-second count samples, ``crowd_threshold``, ``crowd_surge``, ``crowd_dispersal``.

Counts come from tracks (confirmed, or lost after being confirmed), per zone and for the whole camera
(``zone=None``). Samples are produced at most once per second of capture time, on the first analysed
frame of each new second. The crowd rule looks at people (label ``person``) every frame:

- ``crowd_threshold`` when the count is ≥ ``threshold``, again at most every ``cooldown_s``;
- ``crowd_surge`` when the count is ≥ ``surge_delta`` above the lowest count of the last ``window_s``;
- ``crowd_dispersal`` when it is ≥ ``dispersal_delta`` below the highest count of the last ``window_s``.

After a surge or dispersal fires, its baseline restarts from that frame (the same rise is not reported
twice) and it is silent for ``cooldown_s``; a change that happened during the cooldown and is still
inside the window when it ends is reported then.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from datetime import datetime, timedelta

from vigil.config import CrowdRule
from vigil.types import CountSample, Event

PERSON = "person"
Scope = str | None  # a zone name, or None for the whole camera


class CountSampler:
    """Turns per-frame counts into at most one set of ``CountSample``s per second of capture time."""

    def __init__(self, camera_id: str) -> None:
        self.camera_id = camera_id
        self._last_second: datetime | None = None
        self._last_labels: dict[Scope, set[str]] = {}

    def sample(self, counts: Mapping[Scope, Mapping[str, int]], at: datetime,
               always: Mapping[Scope, set[str]]) -> list[CountSample]:
        """Samples for this frame if it starts a new second, else nothing.

        ``always`` names labels reported even at zero (people, where they may be counted); a label that
        was non-zero at the previous sample is reported once more at zero, so series return to zero.
        """
        second = at.replace(microsecond=0)
        if self._last_second is not None and second <= self._last_second:
            return []
        self._last_second = second
        samples = []
        for scope in sorted(set(counts) | set(always), key=lambda s: (s is not None, s or "")):
            by_label = counts.get(scope, {})
            labels = set(always.get(scope, set())) | self._last_labels.get(scope, set()) | set(by_label)
            for label in sorted(labels):
                samples.append(CountSample(self.camera_id, at, scope, label, int(by_label.get(label, 0))))
            self._last_labels[scope] = {label for label, n in by_label.items() if n > 0}
        return samples


class CrowdMonitor:
    """Applies a ``CrowdRule`` to people counts per scope, frame by frame."""

    def __init__(self, camera_id: str, rule: CrowdRule) -> None:
        self.camera_id = camera_id
        self.rule = rule
        self._history: dict[Scope, deque[tuple[datetime, int]]] = {}
        self._last_fired: dict[tuple[Scope, str], datetime] = {}
        self._baseline_since: dict[tuple[Scope, str], datetime] = {}
        self._started: dict[Scope, datetime] = {}

    def update(self, people: Mapping[Scope, int], at: datetime,
               methods: Mapping[Scope, str] | None = None) -> list[Event]:
        """``people``: count of people per scope at capture time ``at``; ``methods``: how each was counted
        (``detections`` or ``density``, in the events' payload; detections when not given)."""
        events = []
        window = timedelta(seconds=self.rule.window_s)
        for scope, count in people.items():
            method = (methods or {}).get(scope, "detections")
            history = self._history.setdefault(scope, deque())
            history.append((at, count))
            while history and at - history[0][0] > window:
                history.popleft()
            if scope not in self._started:  # warm-up: the people confirmed as a camera starts are no surge
                self._started[scope] = at
                for kind in ("crowd_surge", "crowd_dispersal"):
                    self._baseline_since[(scope, kind)] = at + window
            if count >= self.rule.threshold and self._ready(scope, "crowd_threshold", at):
                events.append(self._fire(scope, "crowd_threshold", at, "warning",
                                         {"count": count, "threshold": self.rule.threshold}, method))
            surge_base = min(self._since(scope, "crowd_surge", history), default=count)
            if count - surge_base >= self.rule.surge_delta and self._ready(scope, "crowd_surge", at):
                events.append(self._fire(scope, "crowd_surge", at, "critical",
                                         {"count": count, "from": surge_base, "window_s": self.rule.window_s}, method))
            dispersal_base = max(self._since(scope, "crowd_dispersal", history), default=count)
            if dispersal_base - count >= self.rule.dispersal_delta and self._ready(scope, "crowd_dispersal", at):
                payload = {"count": count, "from": dispersal_base, "window_s": self.rule.window_s}
                events.append(self._fire(scope, "crowd_dispersal", at, "critical", payload, method))
        return events

    def _since(self, scope: Scope, kind: str, history: deque[tuple[datetime, int]]) -> list[int]:
        since = self._baseline_since.get((scope, kind))
        return [n for t, n in history if since is None or t >= since]

    def _ready(self, scope: Scope, kind: str, at: datetime) -> bool:
        last = self._last_fired.get((scope, kind))
        return last is None or (at - last).total_seconds() >= self.rule.cooldown_s

    def _fire(self, scope: Scope, kind: str, at: datetime, severity: str, payload: dict, method: str) -> Event:
        self._last_fired[(scope, kind)] = at
        self._baseline_since[(scope, kind)] = at
        return Event(kind=kind, camera_id=self.camera_id, at=at, severity=severity, label=PERSON, zone=scope,
                     payload={**payload, "method": method})
