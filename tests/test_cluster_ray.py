"""A city on a real two-node Ray cluster on 127.0.0.1, with the real NATS and PostgreSQL: two camera workers as Ray
actors, one per node, and a command centre (``vigil api``) in a separate process. Their events reach the command
centre; ``vigil cluster status`` shows the workers and leases; killing one node moves its camera to the other,
with no event stored but not pushed, and never one camera analysed by two workers."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from tests.support import governance_with_users, login
from tests.test_bus_nats import requires_nats
from tests.test_cluster_roles import (
    PASSWORD,
    Role,
    _collect,
    _healthy,
    cameras_by_id,
    city_config,
    free_port,
    wait_for,
)
from vigil.assembly import open_services
from vigil.config import load_config

ray = pytest.importorskip("ray", reason="Ray is the cluster extra: pip install -e '.[cluster]'")
from ray.cluster_utils import Cluster  # noqa: E402

from vigil.cluster.ray_cluster import CityCluster  # noqa: E402

pytestmark = [pytest.mark.integration, requires_nats]


def test_two_ray_nodes_run_two_cameras_and_a_lost_node_moves_its_camera(tmp_path: Path, fresh_pg_url: str) -> None:
    path = city_config(tmp_path, fresh_pg_url)
    raw = yaml.safe_load(path.read_text())
    raw["cluster"].update(cameras_per_worker=1, worker_cpus=1)
    path.write_text(yaml.safe_dump(raw))
    config = load_config(path)
    services = open_services(config, role="api")
    governance_with_users(services, [("sup", "supervisor", ["*"])], PASSWORD)
    port = free_port()
    api = Role(tmp_path, "api", "api", "-c", str(path), "--port", str(port))
    base = f"http://127.0.0.1:{port}"
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    nodes = [cluster.add_node(num_cpus=1), cluster.add_node(num_cpus=1)]
    ray.init(address=cluster.address, namespace="vigil", log_to_driver=False)
    city = None
    try:
        city = CityCluster(config).up()
        wait_for("the API", lambda: _healthy(base), roles=[api])
        sup = login(base, "sup", PASSWORD)
        first = wait_for("both cameras online", lambda: (c := cameras_by_id(sup))
                         and all(x["state"] == "online" and x.get("node") for x in c.values()) and c, roles=[api])
        assert first["cam-1"]["node"] != first["cam-2"]["node"]  # one worker per node (SPREAD, 1 CPU each)
        groups = wait_for("every worker actor answering", lambda: _answering(city.poll()),
                          roles=[api])  # an actor busy starting may miss one poll's 2 s
        assert {g.status["ray_node"] for g in groups} == {n.node_id for n in nodes}

        status = subprocess.run([sys.executable, "-m", "vigil", "cluster", "status", "-c", str(path), "--address",
                                 cluster.address, "--json"], capture_output=True, text=True, timeout=120)
        assert status.returncode == 0, status.stderr
        report = json.loads(status.stdout)
        assert sorted(c for w in report["workers"] for c in w["analysing"]) == ["cam-1", "cam-2"]
        assert {lease["camera"] for lease in report["leases"]} == {"cam-1", "cam-2"}

        received: list[dict] = []
        live = threading.Event()
        reader = threading.Thread(target=_collect, args=(base, sup.headers["Authorization"], received, 18.0, live),
                                  daemon=True)
        reader.start()
        assert live.wait(15), "the SSE stream did not connect"
        connected = time.time()  # events from a second after this must all be pushed
        time.sleep(3)

        victim = next(g for g in groups if "cam-1" in g.status["analysing"])
        survivor = next(g for g in groups if g is not victim).status["node_id"]
        cluster.remove_node(next(n for n in nodes if n.node_id == victim.status["ray_node"]), allow_graceful=False)
        killed = time.monotonic()
        wait_for("cam-1 analysed by the surviving worker", lambda: (c := cameras_by_id(sup))
                 and c["cam-1"].get("node") == survivor and c["cam-1"]["state"] == "online", timeout=30, roles=[api])
        assert time.monotonic() - killed < 15  # the lease TTL (3 s) and the keeper's period, not Ray's detection
        for _ in range(6):  # never two workers heartbeating (alive: every 0.5 s) and analysing one camera
            live = [n for n in sup.get("/api/nodes").json() if n["age_s"] < 1.5]
            reported = [c for n in live for c in n["cameras"]]
            assert len(reported) == len(set(reported)), live
            time.sleep(0.5)

        reader.join(25)
        stored = {r.event.id for r in services.events.list_events(limit=10_000).items
                  if r.event.at.timestamp() >= connected + 1 and r.event.at.timestamp() <= time.time() - 5}
        pushed = {e["id"] for e in received}
        assert stored, "no events were stored while the camera moved"
        assert stored <= pushed, f"{len(stored - pushed)} events stored but never pushed"
    finally:
        if city is not None:
            city.down()
        ray.shutdown()
        cluster.shutdown()
        api.stop()
        services.store.close()


def _answering(groups: list) -> list | None:  # type: ignore[type-arg]
    return groups if all(g.status for g in groups) else None
