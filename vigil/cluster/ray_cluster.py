"""``vigil cluster up``: camera workers as Ray actors, placed on the nodes that have room and kept running.

The cameras are cut into groups of ``cluster.cameras_per_worker``; each group is one ``WorkerActor`` (a
``CameraWorker`` in its own process, reserving ``cluster.worker_cpus``), spread over the nodes. Frames never
travel through Ray: an actor reads its cameras itself; Ray only places, supervises and restarts it.

Failover has two speeds:

- *Fast, by the leases:* each group's actor has the next group's cameras as standby (a ring), so when a node
  is lost its cameras are taken over by the neighbouring groups' actors as soon as their leases lapse
  (``cluster.lease_ttl_s``), without waiting for Ray to declare the node dead.
- *Then, by Ray:* actors are created with unlimited restarts, so Ray recreates a lost node's actors on the
  nodes that remain; once one is up again, ``rebalance`` asks the standby holders to hand its cameras back.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vigil.config import Config

log = logging.getLogger(__name__)

ACTOR_PREFIX = "vigil-worker-"
NAMESPACE = "vigil"


def camera_groups(config: Config) -> list[list[str]]:
    """The enabled cameras cut into groups of ``cluster.cameras_per_worker``, in config order."""
    ids = [c.id for c in config.cameras if c.enabled]
    size = config.cluster.cameras_per_worker
    return [ids[i:i + size] for i in range(0, len(ids), size)]


class WorkerActorBody:
    """A ``CameraWorker`` run in a Ray actor's process; named ``<group>-<Ray node id>`` in the cluster."""

    def __init__(self, config_json: str, group: int, cameras: list[str], standby: list[str]) -> None:
        import ray

        from vigil.cluster.worker import CameraWorker

        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        logging.getLogger("vigil").setLevel(logging.INFO)
        config = Config.model_validate_json(config_json)
        from vigil.api.live_state import ProcessUsage

        self.ray_node = ray.get_runtime_context().get_node_id()
        self.usage = ProcessUsage()
        self.worker = CameraWorker(config, cameras, f"g{group}-{self.ray_node[:8]}", standby)
        self.thread = threading.Thread(target=self._run, name="vigil-worker", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        """The worker; if it fails (its error is logged), the actor's process ends, and Ray starts it again."""
        try:
            self.worker.run()
        except Exception:
            logging.getLogger(__name__).exception("worker %s failed; its actor restarts", self.worker.node_id)
            os._exit(1)

    def status(self) -> dict[str, Any]:
        """Who and where it is, its cameras, what it analyses now, and its load (``NodeStatus`` fields)."""
        from dataclasses import asdict

        from vigil.api.live_state import CameraStatus, node_status

        node = self.worker.node
        analysing = self.worker.analysing()
        rows = [CameraStatus(**r) for r in node.status() if r["camera"] in analysing] if node else []
        load = asdict(node_status(self.worker.node_id, rows, self.usage))
        return {"node_id": self.worker.node_id, "ray_node": self.ray_node, "pid": os.getpid(),
                "alive": self.thread.is_alive(),
                "cameras": self.worker.cameras, "analysing": analysing, "load": load, "error": self.worker.error}

    def release_standby(self, cameras: list[str]) -> list[str]:
        return self.worker.release_standby(cameras) if self.worker.leases is not None else []

    def stop(self) -> None:
        self.worker.stop()
        self.thread.join(30)


@dataclass
class GroupState:
    group: int
    cameras: list[str]
    status: dict[str, Any] | None = None  # the actor's last answer; None while it is down or restarting
    since: float | None = None  # monotonic time its actor has been answering since


class CityCluster:
    """The driver side: starts the actors, watches them, and hands standby cameras back (``rebalance``)."""

    def __init__(self, config: Config) -> None:
        import ray

        self.ray = ray
        self.config = config
        self.groups = [GroupState(i, cams) for i, cams in enumerate(camera_groups(config))]
        self.actors: list[Any] = []

    def up(self) -> CityCluster:
        """Start one actor per group. The cameras' scenes are checked here first, so that a config error is one
        line now rather than actors failing on every node."""
        from vigil.analytics import RuleEngine

        for camera in self.config.cameras:
            RuleEngine(camera)
        remote = self.ray.remote(max_restarts=-1, max_task_retries=0)(WorkerActorBody)
        config_json = self.config.model_dump_json()
        count = len(self.groups)
        for state in self.groups:
            standby = self.groups[(state.group + 1) % count].cameras if count > 1 else []
            self.actors.append(remote.options(
                name=f"{ACTOR_PREFIX}{state.group}", namespace=NAMESPACE, num_cpus=self.config.cluster.worker_cpus,
                scheduling_strategy="SPREAD", max_concurrency=4,
            ).remote(config_json, state.group, state.cameras, standby))
        return self

    def poll(self, timeout_s: float = 2.0) -> list[GroupState]:
        """Ask every actor for its status (an actor that does not answer in time is marked down)."""
        refs = [actor.status.remote() for actor in self.actors]
        for state, ref in zip(self.groups, refs, strict=True):
            try:
                state.status = self.ray.get(ref, timeout=timeout_s)
                state.since = state.since or time.monotonic()
            except Exception:  # dead, restarting or unreachable: Ray restarts it
                state.status, state.since = None, None
        return self.groups

    def rebalance(self, settled_s: float) -> list[tuple[str, str]]:
        """For each group whose actor has answered for ``settled_s``, ask whoever analyses its cameras as standby
        to hand them back. Returns (camera, from node) pairs."""
        moved = []
        holders = {cam: (i, s.status["node_id"]) for i, s in enumerate(self.groups) if s.status
                   for cam in s.status["analysing"]}
        now = time.monotonic()
        for state in self.groups:
            if state.status is None or state.since is None or now - state.since < settled_s:
                continue
            for camera_id in state.cameras:
                holder = holders.get(camera_id)
                if holder is not None and holder[0] != state.group and camera_id not in state.status["analysing"]:
                    self.ray.get(self.actors[holder[0]].release_standby.remote([camera_id]), timeout=10)
                    moved.append((camera_id, holder[1]))
        return moved

    def down(self) -> None:
        for actor in self.actors:
            try:
                self.ray.get(actor.stop.remote(), timeout=40)
            except Exception as exc:
                log.warning("worker actor did not stop cleanly: %s", exc)
            self.ray.kill(actor)

    def run(self, stop: threading.Event, on_poll: Callable[[list[GroupState]], None] | None = None,
            interval_s: float = 2.0) -> None:
        """Watch and rebalance until ``stop``."""
        settled = 3 * self.config.cluster.lease_ttl_s
        while not stop.is_set():
            groups = self.poll()
            for camera_id, node in self.rebalance(settled):
                log.info("camera %s handed back by %s to its own worker", camera_id, node)
            if on_poll:
                on_poll(groups)
            stop.wait(interval_s)


def connect_ray(address: str) -> None:
    """Join the Ray cluster at ``address`` ("auto": the one this machine belongs to; "local": start one here)."""
    import ray

    from vigil.errors import VigilError

    try:
        if address == "local":
            ray.init(namespace=NAMESPACE, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, namespace=NAMESPACE, log_to_driver=False)
    except (ConnectionError, RuntimeError) as exc:
        raise VigilError(f"Ray cluster {address!r}: cannot connect ({str(exc).splitlines()[0]}); start one with "
                         "`ray start --head`, or set cluster.ray_address") from None


def cluster_status(config: Config) -> dict[str, Any]:
    """``vigil cluster status``: Ray's nodes, each worker actor's cameras and load, and the camera leases."""
    import ray

    from vigil.cluster.leases import lease_table
    from vigil.store.db import open_store

    nodes = [{"ray_node": n["NodeID"], "address": n["NodeManagerAddress"], "alive": n["Alive"],
              "cpus": n.get("Resources", {}).get("CPU", 0.0)} for n in ray.nodes()]
    workers = []
    for entry in ray.util.list_named_actors(all_namespaces=True):
        if entry["namespace"] != NAMESPACE or not entry["name"].startswith(ACTOR_PREFIX):
            continue
        try:
            workers.append(ray.get(ray.get_actor(entry["name"], namespace=NAMESPACE).status.remote(), timeout=5))
        except Exception as exc:
            workers.append({"node_id": entry["name"], "alive": False, "error": str(exc).splitlines()[0]})
    with open_store(config.store.database, data_dir=config.data_dir) as store:
        leases = lease_table(store)
    return {"nodes": nodes, "workers": sorted(workers, key=lambda w: w["node_id"]), "leases": leases}
