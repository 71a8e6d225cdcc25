"""How many people a crowd rule sees in a scope: from tracks, from the density map, or the better of the two.

``crowd.method`` (per camera, and per zone with ``ZoneConfig.crowd_method``):

- ``detections``: people tracked in the scope (the detector sees each person; exact when sparse, and it
  collapses in dense crowds, where people hide one another and shrink to a few pixels);
- ``density``: the CSRNet density map integrated over the scope (an aggregate that holds in dense crowds,
  and over-counts texture such as foliage or brickwork in empty or sparse scenes);
- ``auto``: :func:`choose`. Tracks where people are seen close up (their median box is at least
  ``NEAR_FIELD`` of the frame's height: the detector sees each of them, while CSRNet, trained on heads a few
  pixels wide, reads brickwork and foliage as people), unless the map counts more than
  ``NEAR_FIELD_MAX_RATIO`` people per tracked one (a few tall people in front of a crowd); else the density
  count where it is ≥ ``AUTO_DENSITY_FROM`` people and above the tracked count; else tracks. The thresholds
  were chosen on the sets ``vigil bench crowd`` measures (docs/BENCHMARKS.md), so those figures flatter them.

The density map is refreshed every ``crowd.interval_s`` (it costs seconds per frame); between two maps the
latest one is used, so a density count is up to ``interval_s`` old.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from vigil.config import CameraConfig, CrowdMethod
from vigil.vision.density import DensityMap

AUTO_DENSITY_FROM = 15  # people; see the module docstring and docs/BENCHMARKS.md "Crowd counting"
NEAR_FIELD = 0.35  # median person box height / frame height at and above which tracks are trusted …
NEAR_FIELD_MAX_RATIO = 30  # … unless the map counts more than this many people per tracked one
Scope = str | None


@dataclass(frozen=True, slots=True)
class CrowdCount:
    count: float
    method: str  # detections | density


def choose(tracked: int, density: float | None, person_height: float | None = None) -> CrowdCount:
    """The ``auto`` rule: density where the crowd is dense by the map's own count, the detector misses people
    and does not see them close up (``person_height``: median box height / frame height); tracks otherwise,
    and while no density map exists yet."""
    near = (person_height is not None and tracked > 0 and person_height >= NEAR_FIELD
            and (density is None or density <= NEAR_FIELD_MAX_RATIO * tracked))
    if density is not None and not near and density >= AUTO_DENSITY_FROM and density > tracked:
        return CrowdCount(density, "density")
    return CrowdCount(float(tracked), "detections")


class CrowdCounter:
    """One camera's people counts per scope by its configured methods, from tracks and the latest density map."""

    def __init__(self, camera: CameraConfig) -> None:
        rule = camera.rules.crowd  # without a crowd rule every scope counts tracks: no density map is made
        default: CrowdMethod = rule.method if rule is not None else "detections"
        self.methods: dict[Scope, CrowdMethod] = {None: default}
        self.polygons: dict[str, list[tuple[float, float]]] = {}
        for zone in camera.zones:
            self.methods[zone.name] = (zone.crowd_method or default) if rule is not None else "detections"
            self.polygons[zone.name] = [tuple(p) for p in zone.polygon]
        self.latest: DensityMap | None = None
        self.requested_at: datetime | None = None  # capture time of the frame of the last map asked for
        self._density_counts: dict[Scope, float] = {}

    @property
    def uses_density(self) -> bool:
        return any(method != "detections" for method in self.methods.values())

    def set_density(self, density: DensityMap) -> None:
        """A new map of the camera; scope sums are computed once here."""
        counts: dict[Scope, float] = {None: density.count}
        for scope, polygon in self.polygons.items():
            if self.methods[scope] != "detections":
                counts[scope] = density.count_in(polygon)
        self.latest = density
        self._density_counts = counts  # replaced whole: the inference worker reads it from another thread

    def people(self, tracked: Mapping[Scope, int], person_height: float | None = None) -> dict[Scope, CrowdCount]:
        """Per scope in ``tracked`` (people tracked there), the count its method gives; ``person_height``: the
        camera's median person box height in pixels (for ``auto``)."""
        relative = person_height / self.latest.height if person_height is not None and self.latest else None
        out = {}
        for scope, n in tracked.items():
            method = self.methods.get(scope, self.methods[None])
            density = self._density_counts.get(scope)
            if method == "density" and density is not None:
                out[scope] = CrowdCount(density, "density")
            elif method == "auto":
                out[scope] = choose(n, density, relative)
            else:
                out[scope] = CrowdCount(float(n), "detections")
        return out
