"""``vigil bench faults``: a real node against real services on 127.0.0.1, under repeated faults, counting what
survives (issue 17 §2, DESIGN §7).

Each scenario is a module with ``run(options, progress) -> dict`` and the keys of its JSON section:

- ``camera_restarts``: ``count, reconnected, resumed_p50_s, resumed_p95_s, resumed_max_s, crashes, paired``
- ``db_outage``: ``events, lost, drain_s`` (and the in-memory buffer's peak, frames analysed meanwhile)
- ``bus_outage``: ``events, lost, duplicates, drain_s`` (NATS JetStream restarted), ``mqtt.{events, lost}``
  (Mosquitto restarted), ``webhook.{events, lost, bad_signatures}`` (the endpoint down)
- ``kill9``: ``lost, duplicates, unplayable_segments, reindexed_segments, quarantined, orphans_deleted``
- ``disk_full``: ``recovered, paused_seen, status_said, events_during_full, lost``

The services a scenario kills are its own (a private PostgreSQL cluster, nats-server, mosquitto and GStreamer
RTSP server on free ports, see ``services.py``), so the machine's shared services are never touched.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.progress import Progress

from vigil.errors import VigilError

SCENARIOS = ("camera_restarts", "db_outage", "bus_outage", "kill9", "disk_full")


@dataclass(frozen=True)
class FaultOptions:
    """How hard each scenario pushes (the defaults are the issue's; tests use small numbers)."""

    restarts: int = 100  # camera_restarts: kills and restarts of the RTSP camera
    max_gap_s: float = 4.0  # camera_restarts: the camera stays up a random 1..max_gap_s seconds between kills
    down_s: float = 1.0  # camera_restarts: seconds the camera stays down each time
    db_outage_s: float = 60.0  # db_outage: seconds PostgreSQL is stopped
    bus_outage_s: float = 30.0  # bus_outage: seconds NATS / Mosquitto are down
    seed: int = 17
    work_dir: Path | None = None  # where the scenarios keep their files (default: a temporary folder)
    extra: dict[str, Any] = field(default_factory=dict)


def run_faults_bench(scenarios: Sequence[str], options: FaultOptions, progress: Progress) -> dict[str, Any]:
    """Run ``scenarios`` in order; each adds its section to the result. A scenario that cannot run here (a
    missing service binary, say: a ``VigilError``) gets ``{"error": "<one line>"}`` and the others still run."""
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        raise ValueError(f"unknown fault scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    result: dict[str, Any] = {}
    for name in scenarios:
        module = importlib.import_module(f"vigil.bench.faults.{name}")
        runner: Callable[[FaultOptions, Progress], dict[str, Any]] = module.run
        try:
            result[name] = runner(options, progress)
        except VigilError as exc:
            result[name] = {"error": str(exc)}
    return result
