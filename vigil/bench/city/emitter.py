"""A simulated camera worker: one process, one node, the real worker's write and live paths without video.

It is a ``vigil worker`` with the frame path replaced by ``CameraScene``: the same ``open_services(role=
"worker")`` (outbox relay to NATS JetStream, retention), the same ``CameraLeases`` fencing the ``EventWriter``,
the same ``StoreSink`` (events through the outbox, per-second counts, ended tracks), ``SightingStore.add`` for
plate reads, and the real ``LivePublisher`` sending one heartbeat per second in the real wire format.

The cameras are analysed in groups of ``cluster.cameras_per_worker`` (16, more when a node has over 64), each on
its own thread ("frame path", at most ``MAX_FRAME_PATHS``) that ticks at the analysis rate and calls the sink
synchronously, as a node's inference thread does. A path that falls behind (the writes of a tick took longer
than a frame) does what a node behind does: it skips to the current frame, whose results then carry the events
of the frames skipped (``lag``, ``dropped_frames``).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from vigil.api.live import LiveFrames
from vigil.api.live_state import CameraStatus, DetectorStats, LineCounts, NodeLiveState
from vigil.assembly import Services, open_services
from vigil.bench.city.proc import peak_rss_mb
from vigil.bench.city.scene import CameraScene
from vigil.cluster.leases import CameraLeases
from vigil.cluster.live_publisher import LivePublisher
from vigil.cluster.worker import fence_writes, worker_config
from vigil.config import load_config
from vigil.events.nats_bus import NatsBus
from vigil.runtime import INFERENCE_BUCKETS_S

log = logging.getLogger(__name__)

#: frame-path threads per simulated node at most: each holds a database connection while it writes, and the
#: store's pool has 5 (+5 overflow) for them, the relay, the lease keeper and retention
MAX_FRAME_PATHS = 4
DRAIN_TIMEOUT_S = 600.0  # after the load, how long the outbox may take to empty (then ``close`` tries once more)


@dataclass(frozen=True)
class WorkerPlan:
    """What one simulated worker does (picklable: it crosses into the spawned process)."""

    config_path: str
    data_dir: str
    node_id: str
    cameras: tuple[str, ...]
    seconds: float
    seed: int
    result_path: str
    log_path: str


class SimulatedLive(NodeLiveState):
    """The live state a heartbeat describes, for simulated cameras: online at the analysis rate, no frames (so
    no previews), line counts from the emitted crossings."""

    def __init__(self, node_id: str, scenes: dict[str, CameraScene]) -> None:
        super().__init__(None, LiveFrames(), node_id)
        self.node = SimpleNamespace(pipelines=scenes)  # type: ignore[assignment]  # LivePublisher lists these
        self.scenes = scenes

    def statuses(self) -> dict[str, CameraStatus]:
        return {c: CameraStatus(c, "online", s.camera.fps, s.camera.fps, 0.1, 0, s.frames, s.frames, len(s.live),
                                s.events, 0, "off", None, self.node_id) for c, s in list(self.scenes.items())}

    def line_counts(self, camera_id: str) -> LineCounts | None:
        scene = self.scenes.get(camera_id)
        if scene is None:
            return None
        return {line: {d: dict(labels) for d, labels in sides.items()} for line, sides in scene.line_counts.items()}

    def detectors(self) -> list[DetectorStats]:
        return [DetectorStats("simulated (no video)", INFERENCE_BUCKETS_S, (0,) * (len(INFERENCE_BUCKETS_S) + 1),
                              0.0)]

    def heatmap_png(self, camera_id: str) -> bytes | None:
        return None

    def density_png(self, camera_id: str) -> bytes | None:
        return None


class FramePath(threading.Thread):
    """A group of cameras stepped at the analysis rate, their results handed to the store as a node's would be."""

    def __init__(self, scenes: list[CameraScene], services: Services, start_at: float, seconds: float,
                 analysed: Callable[[str], bool]) -> None:
        super().__init__(name=f"frame-path-{scenes[0].camera.id}", daemon=True)
        self.scenes = scenes
        self.services = services
        self.start_at = start_at
        self.seconds = seconds
        self.analysed = analysed  # the lease is held: a camera without one is suspended, as on a real worker
        self.suspended = 0  # frames of cameras skipped for want of a valid lease
        self.sent: list[tuple[str, str, str, float]] = []  # event id, camera, severity, emitted at
        self.totals = {"tracks": 0, "count_rows": 0, "sightings": 0, "sightings_failed": 0}
        self.lags: list[float] = []
        self.dropped = 0  # camera frames merged into a later one because the path was behind
        self.error: str | None = None

    def run(self) -> None:
        dt = self.scenes[0].dt
        last = int(self.seconds / dt) - 1  # the last tick due before the end
        sink, sightings = self.services.sink, self.services.sightings
        sink.batching = True  # as ``Services.attach`` does for a node: one write per tick, flushed below
        tick = 0
        try:
            while tick <= last:
                due = self.start_at + tick * dt
                if (wait := due - time.time()) > 0:
                    time.sleep(wait)
                now = time.time()
                if now >= self.start_at + self.seconds:
                    return  # behind at the end: the rest is not emitted (``events_per_s_sent`` shows it)
                current = min(last, int((now - self.start_at) / dt))  # the frames missed since are dropped ...
                frames = current - tick + 1  # ... and their events come with this one, as on a node behind
                self.lags.append(now - due)
                self.dropped += (frames - 1) * len(self.scenes)
                tick = current + 1
                for scene in self.scenes:
                    if not self.analysed(scene.camera.id):
                        self.suspended += frames
                        continue
                    emitted = scene.step(time.time(), frames)
                    if emitted is None:
                        continue
                    result = emitted.result
                    sink(result)
                    self.sent.extend((e.id, e.camera_id, e.severity, e.payload["emitted_at"])
                                     for e in result.output.events)
                    self.totals["tracks"] += len(result.update.ended)
                    self.totals["count_rows"] += len(result.output.counts)
                    for sighting in emitted.sightings:
                        try:
                            sightings.add(sighting)
                            self.totals["sightings"] += 1
                        except Exception as exc:  # counted: a sighting the store refused
                            self.totals["sightings_failed"] += 1
                            log.error("sighting not stored: %s", exc)
                sink.flush()  # the tick's events and counts, as a node does at the end of each step
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("frame path %s failed", self.name)


def _keep_leases(leases: CameraLeases, cameras: tuple[str, ...], every_s: float, stop: threading.Event,
                 lost: list[str]) -> None:
    """``CameraWorker.keep_leases`` for the simulated cameras: renew, and take back what lapsed (a camera whose
    lease is not valid is not analysed meanwhile: ``FramePath`` skips it)."""
    while not stop.wait(every_s):
        try:
            lost.extend(leases.renew())
            for camera_id in cameras:
                if camera_id not in leases.held:
                    leases.acquire(camera_id)
        except Exception as exc:
            log.error("leases not renewed: %s", exc)


def run_worker(plan: WorkerPlan, status: Any, go: Any, start_at: Any) -> None:
    """The worker process: set up, say ``ready``, wait for ``go``, emit for ``plan.seconds`` from the wall-clock
    time in ``start_at``, drain the outbox, write the results file, say ``done`` (or ``error``)."""
    logging.basicConfig(filename=plan.log_path, level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        _run(plan, status, go, start_at)
        status.put(("done", plan.node_id, ""))
    except BaseException as exc:
        log.exception("worker %s failed", plan.node_id)
        status.put(("error", plan.node_id, f"{type(exc).__name__}: {exc}"))


def _run(plan: WorkerPlan, status: Any, go: Any, start_at: Any) -> None:
    config = load_config(Path(plan.config_path))
    config.data_dir = Path(plan.data_dir)
    config = worker_config(config, plan.cameras)
    cluster = config.cluster
    services = open_services(config, role="worker")
    stop_keeping = threading.Event()
    try:
        leases = CameraLeases(services.store, plan.node_id, cluster.lease_ttl_s)
        fence_writes(services, leases)  # before the relay starts, as ``CameraWorker`` does
        services.start(role="worker")
        refused = [c for c in plan.cameras if leases.acquire(c) is None]
        if refused:
            raise RuntimeError(f"{len(refused)} camera leases held by another worker, e.g. {refused[0]}")
        lost: list[str] = []
        keeper = threading.Thread(target=_keep_leases, daemon=True,
                                  args=(leases, plan.cameras, cluster.lease_ttl_s / 3, stop_keeping, lost))
        keeper.start()
        scenes = {c.id: CameraScene(c, np.random.default_rng([plan.seed, i]))
                  for i, c in enumerate(config.cameras)}
        live = SimulatedLive(plan.node_id, scenes)
        assert isinstance(services.bus, NatsBus)
        publisher = LivePublisher(services.bus.client, config.bus.subject_prefix, live, cluster.heartbeat_s,
                                  cluster.preview_s, may_serve=leases.valid)
        services.spawn(publisher.run(services.stopping))
        status.put(("ready", plan.node_id, ""))
        if not go.wait(120):
            raise RuntimeError("no go from the driver within 120 s")
        ordered = list(scenes.values())
        size = max(cluster.cameras_per_worker, -(-len(ordered) // MAX_FRAME_PATHS))
        paths = [FramePath(ordered[i:i + size], services, start_at.value, plan.seconds, leases.valid)
                 for i in range(0, len(ordered), size)]
        for path in paths:
            path.start()
        for path in paths:
            path.join()
        stop_keeping.set()
        drain_from = time.time()
        pending_before = services.relay.pending()
        services.writer.flush()
        while services.relay.pending() and time.time() < drain_from + DRAIN_TIMEOUT_S:
            time.sleep(0.5)  # the running relay empties the outbox, as on a worker that goes on running
        drained_s = time.time() - drain_from
        result = _result(plan, paths, services, publisher, lost, pending_before, drained_s)
        leases.release()
    finally:
        stop_keeping.set()
        services.close()
    result["peak_rss_mb"] = peak_rss_mb()
    times = os.times()
    result["cpu_s"] = round(times.user + times.system, 2)
    Path(plan.result_path).write_text(json.dumps(result))


def _result(plan: WorkerPlan, paths: list[FramePath], services: Services, publisher: LivePublisher,
            lost_leases: list[str], pending_before: int, drained_s: float) -> dict[str, Any]:
    lags = np.array([lag for p in paths for lag in p.lags] or [0.0])
    totals = {key: sum(p.totals[key] for p in paths) for key in paths[0].totals}
    return {
        "node": plan.node_id, "cameras": len(plan.cameras), "frame_paths": len(paths),
        "sent": [row for p in paths for row in p.sent],
        **totals,
        "errors": [p.error for p in paths if p.error],
        "tick_lag_s": {"p50": round(float(np.percentile(lags, 50)), 3), "p95": round(float(np.percentile(lags, 95)), 3),
                       "max": round(float(lags.max()), 3)},
        "frames": sum(s.frames for p in paths for s in p.scenes), "dropped_frames": sum(p.dropped for p in paths),
        "suspended_frames": sum(p.suspended for p in paths), "passes": [len(p.lags) for p in paths],
        "relay": {"published": services.relay.published, "failures": services.relay.failures,
                  "pending_at_end": pending_before, "drain_s": round(drained_s, 2)},
        "writer": {"written": services.writer.written, "dropped": services.writer.dropped,
                   "buffered": services.writer.buffered},
        "sink": {"tracks_saved": services.sink.tracks_saved, "tracks_lost": services.sink.tracks_lost,
                 "counts_lost": services.sink.counts_lost},
        "heartbeats": publisher.sent["heartbeats"], "leases_lost": len(lost_leases),
        "cameras_losing_a_lease": len(set(lost_leases)),
        "plan": asdict(plan) | {"cameras": len(plan.cameras)},
    }
