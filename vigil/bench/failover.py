"""``vigil bench failover``: a real-video city on three Ray nodes of this machine; one node is killed.

Private PostgreSQL and NATS JetStream instances (``bench.faults.services``) and a ``ray.cluster_utils.Cluster``
of three worker nodes and one spare (1 logical CPU each, ``worker_cpus`` 1) run three camera workers of two
cameras each, one per node, so that each worker's standby neighbour is on another node and Ray can recreate
a lost worker on the spare. The cameras are real videos from VIGIL_DATA, replayed in
real time and looped; the H.264 ones are recorded. After a warm-up, every process of one node (its raylet and
its workers) is killed with SIGKILL. Measured from outside, on the bus:

- ``failover_s``: from the kill until every camera of that node is analysed again on another node (a
  heartbeat from another worker whose frame count for the camera grows);
- ``double_analysed``: cameras for which two workers' heartbeats both showed a growing frame count within one
  heartbeat period (never two workers on one camera);
- ``lost``: events stored in PostgreSQL but never published on NATS JetStream, after the outbox drained
  (events a killed process had not yet written are invisible to anyone: the figure cannot show those);
- ``recordings_play``: whether every segment the killed node's cameras recorded before the kill still decodes;
- ``ray_restart_s`` and ``handed_back``: when Ray had recreated the lost worker, and the cameras handed back
  to it by the standby holders.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import av
from rich.progress import Progress

from vigil.bench.faults.services import PrivateNats, PrivatePostgres
from vigil.cluster.live_wire import LiveSubjects, parse_heartbeat
from vigil.config import Config
from vigil.demo.run import DEMO_CONFIG
from vigil.errors import DataError
from vigil.paths import data_root

#: (camera id, file under VIGIL_DATA/video, recorded)
CAMERAS = (("junction-1", "vtest_h264.mp4", True), ("mall", "mall.mp4", True),
           ("cars", "intel_car-detection.mp4", True), ("walkers", "intel_one-by-one-person-detection.mp4", True),
           ("junction-2", "vtest.avi", False), ("junction-3", "vtest_h264.mp4", False))
WARM_UP_S = 15.0
OBSERVE_S = 60.0  # after the kill


class HeartbeatLog:
    """Every worker heartbeat seen on the bus: camera → [(time, node, frames)]."""

    def __init__(self) -> None:
        self.samples: dict[str, list[tuple[float, str, int]]] = defaultdict(list)
        self.lock = threading.Lock()

    async def run(self, url: str, prefix: str, stop: asyncio.Event) -> None:
        import nats

        client = await nats.connect(url)

        async def on_beat(msg: Any) -> None:
            node, cameras, _, _ = parse_heartbeat(msg.data)
            with self.lock:
                for camera in cameras:
                    self.samples[camera.camera].append((time.monotonic(), node.node, camera.frames))

        await client.subscribe(f"{LiveSubjects(prefix).root}.node.*", cb=on_beat)
        await stop.wait()
        await client.close()

    def analysing(self, camera: str, since: float) -> set[str]:
        """Nodes whose frame count for the camera grew in heartbeats after ``since``."""
        seen: dict[str, list[int]] = defaultdict(list)
        with self.lock:
            for at, node, frames in self.samples[camera]:
                if at >= since:
                    seen[node].append(frames)
        return {node for node, counts in seen.items() if len(counts) >= 2 and counts[-1] > counts[0]}

    def double_analysed(self, window_s: float) -> list[str]:
        """Cameras that two nodes analysed within one ``window_s`` (both frame counts growing in it)."""
        doubled = []
        with self.lock:
            samples = {camera: list(rows) for camera, rows in self.samples.items()}
        for camera, rows in samples.items():
            by_node: dict[str, list[tuple[float, int]]] = defaultdict(list)
            for at, node, frames in rows:
                by_node[node].append((at, frames))
            growing = {node: [b[0] for a, b in itertools.pairwise(beats) if b[1] > a[1]]
                       for node, beats in by_node.items()}
            nodes = list(growing)
            if any(abs(x - y) < window_s for i, n in enumerate(nodes) for m in nodes[i + 1:]
                   for x in growing[n] for y in growing[m]):
                doubled.append(camera)
        return doubled


def failover_config(folder: Path, database: str, nats_url: str) -> Config:
    scene = Config.model_validate({"cameras": [_load_demo_camera()]}).cameras[0]
    cameras = []
    for camera_id, name, recorded in CAMERAS:
        video = data_root() / "video" / name
        if not video.exists():
            raise DataError(f"bench failover: {video} not found (set VIGIL_DATA)")
        same_scene = name.startswith("vtest")
        camera = scene.model_copy(update={
            "id": camera_id, "name": camera_id, "url": str(video), "realtime": True, "loop": True,
            "zones": scene.zones if same_scene else [], "lines": scene.lines if same_scene else [],
            "rules": scene.rules if same_scene else type(scene.rules)(),
            "privacy_masks": [], "recording": scene.recording.model_copy(update={
                "mode": "continuous" if recorded else "off", "segment_seconds": 4})}, deep=True)
        cameras.append(camera.model_dump(mode="json"))
    return Config.model_validate({
        "data_dir": str(folder / "data"), "store": {"database": database},
        "bus": {"kind": "nats", "url": nats_url},
        "cluster": {"lease_ttl_s": 6.0, "heartbeat_s": 1.0, "cameras_per_worker": 2, "worker_cpus": 1.0},
        "cameras": cameras})


def _load_demo_camera() -> dict[str, Any]:
    import yaml

    return yaml.safe_load(DEMO_CONFIG.read_text())["cameras"][0]


def run_failover_bench(progress: Progress) -> dict[str, Any]:
    import ray
    from ray.cluster_utils import Cluster

    from vigil.cluster.ray_cluster import CityCluster

    with tempfile.TemporaryDirectory(prefix="vigil-failover-") as tmp, PrivatePostgres() as pg, \
            PrivateNats() as nats_server:
        folder = Path(tmp)
        config = failover_config(folder, pg.url, nats_server.url)
        task = progress.add_task("starting 4 Ray nodes", total=None)
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
        nodes = [cluster.add_node(num_cpus=1) for _ in range(3)]
        ray.init(address=cluster.address, namespace="vigil", log_to_driver=False)
        beats = HeartbeatLog()
        loop = asyncio.new_event_loop()
        stop_beats = asyncio.Event()
        listener = threading.Thread(target=loop.run_until_complete, daemon=True,
                                    args=(beats.run(nats_server.url, config.bus.subject_prefix, stop_beats),))
        listener.start()
        city = CityCluster(config).up()
        watcher_stop = threading.Event()
        try:
            progress.update(task, description="warming up: 6 cameras on 3 workers")
            if _wait(lambda: all(len(beats.analysing(c, time.monotonic() - 3)) == 1 for c, _, _ in CAMERAS), 120,
                     None) is None:
                missing = [c for c, _, _ in CAMERAS if len(beats.analysing(c, time.monotonic() - 3)) != 1]
                raise DataError(f"bench failover: cameras {', '.join(missing)} not analysed by exactly one worker "
                                f"after 120 s ({city.poll()})")
            time.sleep(WARM_UP_S)
            nodes.append(cluster.add_node(num_cpus=1))  # the spare, added once the three workers are placed
            groups = city.poll()
            victim = groups[0].status
            assert victim is not None
            moved = victim["analysing"]
            survivors = {g.status["node_id"] for g in groups[1:] if g.status}
            watcher = threading.Thread(target=city.run, args=(watcher_stop,), daemon=True)
            watcher.start()
            progress.update(task, description=f"kill -9 of the node running {', '.join(moved)}")
            killed_at, killed_wall = time.monotonic(), time.time()
            node = next(n for n in nodes if n.node_id == victim["ray_node"])
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim["pid"], signal.SIGKILL)
            cluster.remove_node(node, allow_graceful=False)
            back = _wait(lambda: all(beats.analysing(c, time.monotonic() - 2.5) & survivors for c in moved), 60,
                         "the lost node's cameras analysed elsewhere")
            failover_s = back - killed_at
            restart = _wait(lambda: (g := city.groups[0].status) is not None and g["node_id"] != victim["node_id"],
                            OBSERVE_S, None)
            time.sleep(max(0.0, killed_at + OBSERVE_S - time.monotonic()))
            handed_back = sorted(set(moved) & set((city.groups[0].status or {}).get("analysing", [])))
        finally:
            watcher_stop.set()
            progress.update(task, description="stopping the cluster")
            city.down()
            ray.shutdown()
            cluster.shutdown()
            loop.call_soon_threadsafe(stop_beats.set)
            listener.join(10)
        lost, stored = _lost_events(config, nats_server.url)
        playable, segments = _recordings_play(config, moved, killed_wall)
        progress.update(task, completed=1, total=1)
    return {
        "cameras": len(CAMERAS), "nodes": 3, "spare_nodes": 1, "workers": len(city.groups),
        "killed_node_cameras": moved,
        "failover_s": round(failover_s, 2), "lost": lost, "events_stored": stored,
        "double_analysed": len(beats.double_analysed(config.cluster.heartbeat_s)),
        "recordings_play": playable == segments and segments > 0,
        "segments_before_kill": segments, "segments_playable": playable,
        "ray_restart_s": round(restart - killed_at, 2) if restart else None, "handed_back": handed_back,
        "lease_ttl_s": config.cluster.lease_ttl_s,
        "conditions": {"cores": os.cpu_count(), "load_1m": round(os.getloadavg()[0], 2)},
    }


def _wait(check: Any, timeout_s: float, what: str | None) -> float | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return time.monotonic()
        time.sleep(0.2)
    if what is not None:
        raise DataError(f"bench failover: timed out waiting for {what}")
    return None


def _lost_events(config: Config, nats_url: str) -> tuple[int, int]:
    """(events stored but not on the JetStream stream, events stored), once the outbox has drained."""
    import nats

    from vigil.store.db import open_store
    from vigil.store.schema import EventRow

    with open_store(config.store.database) as store, store.session() as session:
        from sqlalchemy import select

        stored = set(session.scalars(select(EventRow.id)))

    async def published() -> set[str]:
        client = await nats.connect(nats_url)
        js = client.jetstream()
        ids: set[str] = set()
        subscription = await js.subscribe(f"{config.bus.subject_prefix}.>", ordered_consumer=True)
        with contextlib.suppress(TimeoutError):
            while True:
                msg = await subscription.next_msg(timeout=2.0)
                ids.add((msg.headers or {}).get("Nats-Msg-Id", ""))
        await client.close()
        return ids

    return len(stored - asyncio.run(published())), len(stored)


def _recordings_play(config: Config, cameras: list[str], before_wall: float) -> tuple[int, int]:
    """(segments that decode, segments) of ``cameras`` recorded before the kill."""
    from datetime import UTC, datetime

    from vigil.store.db import open_store
    from vigil.store.recordings import RecordingIndex

    with open_store(config.store.database) as store:
        index = RecordingIndex(store, config.data_dir)
        until = datetime.fromtimestamp(before_wall, UTC)
        segments = [s for c in cameras for s in index.segments(c, end=until) if s.end <= until]
        playable = 0
        for segment in segments:
            with contextlib.suppress(Exception), av.open(str(index.file(segment))) as container:
                if next(container.decode(video=0), None) is not None:
                    playable += 1
    return playable, len(segments)
