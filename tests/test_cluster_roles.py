"""The cluster's roles as real processes on the real NATS and PostgreSQL, each node with its own disk: two
``vigil worker`` processes analyse a camera each (with the other's as standby) and a ``vigil api`` process
shows them live: status with the node, previews, the full-rate MJPEG only while watched, heatmaps asked of
the worker, the nodes, a clip recorded on a worker's disk, and events over SSE, which a restricted operator
receives for their camera only. A second ``vigil api`` shares the sessions and the live events. Killing a
worker with SIGKILL moves its camera to the other one, which then holds both leases; when the killed node comes
back, the recordings it holds play again though the camera stays where it moved."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support import governance_with_users, login
from tests.test_bus_nats import NATS_URL, requires_nats
from vigil.api.sse_client import event_stream
from vigil.assembly import open_services
from vigil.cluster.leases import lease_table
from vigil.config import load_config
from vigil.demo.run import DEMO_CONFIG, locate_vtest
from vigil.paths import data_root

pytestmark = [pytest.mark.integration, requires_nats]
PASSWORD = "Tr1cky-Harbour-Lantern"
H264 = data_root() / "video" / "vtest_h264.mp4"  # PETS09 as H.264: recorded by copying packets


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def city_config(folder: Path, database: str, record: bool = False) -> Path:
    """Two replays of PETS09 in real time, with the demo scene's lines and zones, on NATS and PostgreSQL;
    with ``record``, cam-1 is the H.264 copy of the video and is recorded (copied) in 2 s segments."""
    scene = yaml.safe_load(DEMO_CONFIG.read_text())["cameras"][0]
    cameras = []
    for camera_id in ("cam-1", "cam-2"):
        camera = {**scene, "id": camera_id, "name": camera_id, "url": str(locate_vtest()), "realtime": True,
                  "loop": True, "recording": {"mode": "off"}}
        if record and camera_id == "cam-1":
            camera.update(url=str(H264), recording={"mode": "continuous", "segment_seconds": 2})
        camera.pop("privacy_masks", None)
        cameras.append(camera)
    tag = os.urandom(3).hex()
    config = {"data_dir": str(folder / "data"), "store": {"database": database},
              "bus": {"kind": "nats", "url": NATS_URL, "stream": f"VIGIL_T{tag}", "subject_prefix": f"t{tag}"},
              "cluster": {"lease_ttl_s": 3.0, "heartbeat_s": 0.5, "preview_s": 1.0, "node_lost_s": 3.0,
                          "media_token": os.urandom(8).hex()},
              "cameras": cameras}
    path = folder / "city.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


class Role:
    """A ``vigil`` role in its own process, its output in a file."""

    def __init__(self, folder: Path, name: str, *args: str) -> None:
        self.log = folder / f"{name}.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "vigil", *args], stdout=out,
                                            stderr=subprocess.STDOUT, env={**os.environ, "COLUMNS": "160"})

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


def wait_for(what: str, check, timeout: float = 60.0, roles: list[Role] = ()):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.3)
    logs = "\n".join(f"--- {r.log.name}\n{r.log.read_text()[-2000:]}" for r in roles)
    raise AssertionError(f"timed out waiting for {what}\n{logs}")


def cameras_by_id(client: httpx.Client) -> dict[str, dict]:
    return {c["id"]: c for c in client.get("/api/cameras").json()}


def test_workers_and_a_command_centre_in_separate_processes(tmp_path: Path, fresh_pg_url: str) -> None:
    if not H264.exists():
        pytest.skip(f"{H264} not found (set VIGIL_DATA)")
    path = city_config(tmp_path, fresh_pg_url, record=True)
    config = load_config(path)
    services = open_services(config, role="api")
    governance_with_users(services, [("sup", "supervisor", ["*"]), ("op", "operator", ["cam-2"])], PASSWORD)
    services.store.close()
    port = free_port()
    api = Role(tmp_path, "api", "api", "-c", str(path), "--port", str(port), "--data-dir", str(tmp_path / "api"))

    def worker(node: str, own: str, standby: str) -> Role:  # each node with its own disk
        return Role(tmp_path, node, "worker", "-c", str(path), "--cameras", own, "--standby", standby,
                    "--node-id", node, "--data-dir", str(tmp_path / node))

    workers = {"node-a": worker("node-a", "cam-1", "cam-2"), "node-b": worker("node-b", "cam-2", "cam-1")}
    roles = [api, *workers.values()]
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for("the API", lambda: _healthy(base), roles=roles)
        sup = login(base, "sup", PASSWORD)
        cams = wait_for("both cameras online on their own node", lambda: (c := cameras_by_id(sup))
                        and c["cam-1"].get("node") == "node-a" and c["cam-2"].get("node") == "node-b"
                        and all(x["state"] == "online" and x["width"] for x in c.values()) and c, roles=roles)
        assert cams["cam-1"]["width"] == 768 and cams["cam-1"]["height"] == 576  # from the preview's headers

        snapshot = wait_for("a preview", lambda: (r := sup.get("/api/cameras/cam-1/snapshot.jpg")).status_code
                            == 200 and r, roles=roles)
        assert snapshot.headers["content-type"] == "image/jpeg" and snapshot.content[:2] == b"\xff\xd8"
        heatmap = wait_for("a heatmap", lambda: (r := sup.get("/api/cameras/cam-2/heatmap.png")).status_code
                           == 200 and r, roles=roles)
        assert heatmap.content[:8] == b"\x89PNG\r\n\x1a\n"

        nodes = {n["node"]: n for n in sup.get("/api/nodes").json()}
        assert set(nodes) == {"node-a", "node-b"}
        assert nodes["node-a"]["cameras"] == ["cam-1"] and not nodes["node-a"]["lost"]

        parts = _mjpeg_parts(base, sup.headers["Authorization"], "cam-1", seconds=4.0)
        assert parts >= 8, f"{parts} MJPEG frames in 4 s at 5 analysed fps"  # full rate, not previews (1/s)

        # a second command centre: the same sessions (a token from the first works here) and the same live events
        port2 = free_port()
        api2 = Role(tmp_path, "api2", "api", "-c", str(path), "--port", str(port2), "--data-dir",
                    str(tmp_path / "api2"))
        roles.append(api2)
        base2 = f"http://127.0.0.1:{port2}"
        wait_for("the second API", lambda: _healthy(base2), roles=roles)
        other = httpx.Client(base_url=base2, headers={"Authorization": sup.headers["Authorization"]}, timeout=20)
        assert wait_for("the cameras on the second API", lambda: {c["id"]: c["node"] for c in
                        other.get("/api/cameras").json()} == {"cam-1": "node-a", "cam-2": "node-b"}, roles=roles)

        op = login(base, "op", PASSWORD)
        received: list[dict] = []
        on_second: list[dict] = []
        reader = threading.Thread(target=_collect, args=(base, op.headers["Authorization"], received, 15.0),
                                  daemon=True)
        second_reader = threading.Thread(target=_collect, args=(base2, sup.headers["Authorization"], on_second, 8.0),
                                         daemon=True)
        reader.start()
        second_reader.start()

        since = _utc_now() - timedelta(seconds=60)  # a clip recorded on node-a, played through the command centre
        before = wait_for("node-a's segments in the playlist", lambda: _segments(sup, "cam-1", since), roles=roles)
        first_segment = sup.get(f"/api/recordings/cam-1/{before[0]}")
        assert first_segment.status_code == 200 and first_segment.content[4:8] == b"ftyp"
        assert not (tmp_path / "api" / "recordings").exists()  # fetched from node-a, not read from a shared disk

        workers["node-a"].kill()  # a lost node: node-b takes cam-1 over once its lease lapses
        moved = wait_for("cam-1 moved to node-b", lambda: (c := cameras_by_id(sup))
                         and c["cam-1"].get("node") == "node-b" and c["cam-1"]["state"] == "online", timeout=30,
                         roles=roles)
        assert moved
        holders = {row["camera"]: row["holder"] for row in lease_table(_store(config))}
        assert holders["cam-1"].startswith("node-b/") and holders["cam-2"].startswith("node-b/")
        wait_for("node-a shown lost", lambda: {n["node"]: n["lost"] for n in sup.get("/api/nodes").json()}
                 == {"node-a": True, "node-b": False}, timeout=10, roles=roles)

        reader.join(30)
        second_reader.join(20)
        assert {e["camera_id"] for e in on_second} == {"cam-1", "cam-2"}  # live events through the second API
        assert received, "the operator received no events"
        assert {e["camera_id"] for e in received} == {"cam-2"}  # never the other camera's

        # node-a comes back (same name and disk) while cam-1 stays on node-b: its old segments play again,
        # because the index says which node holds each one
        workers["node-a"] = worker("node-a", "cam-1", "cam-2")
        roles.append(workers["node-a"])
        old = wait_for("node-a's old segment served again", lambda: (r := sup.get(
            f"/api/recordings/cam-1/{before[-1]}")).status_code == 200 and r, roles=roles)
        assert old.content[4:8] == b"ftyp"
        assert cameras_by_id(sup)["cam-1"]["node"] == "node-b"
        assert other.post("/api/auth/logout").status_code in (200, 204)  # signing out on one ends it on both
        assert sup.get("/api/cameras").status_code == 401
    finally:
        for role in roles:
            role.stop()


def _healthy(base: str) -> bool:
    try:
        return httpx.get(base + "/api/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _store(config):  # type: ignore[no-untyped-def]
    from vigil.store.db import open_store

    return open_store(config.store.database)


def _mjpeg_parts(base: str, authorization: str, camera: str, seconds: float) -> int:
    parts = 0
    deadline = time.monotonic() + seconds
    with httpx.stream("GET", f"{base}/api/cameras/{camera}/live.mjpg", headers={"Authorization": authorization},
                      timeout=10) as response:
        assert response.status_code == 200
        for chunk in response.iter_bytes():
            parts += chunk.count(b"--vigilframe")
            if time.monotonic() > deadline:
                break
    return parts


def _collect(base: str, authorization: str, into: list[dict], seconds: float,
             connected: threading.Event | None = None) -> None:
    """Events of the SSE stream for ``seconds``; ``connected`` is set once the server says the stream is live."""
    deadline = time.monotonic() + seconds
    try:
        for event in event_stream(base, {"Authorization": authorization}, timeout=seconds):
            if event is None:
                if connected is not None:
                    connected.set()
            else:
                into.append(event)
            if time.monotonic() > deadline:
                return
    except httpx.HTTPError:
        return


def _utc_now():  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    return datetime.now(UTC)


def _segments(client: httpx.Client, camera: str, since) -> list[str]:  # type: ignore[no-untyped-def]
    """The segment URIs (relative to the playlist) of the camera's recording since ``since``."""
    from datetime import timedelta

    until = since + timedelta(minutes=5)
    response = client.get(f"/api/recordings/{camera}/playlist.m3u8",
                          params={"from": since.isoformat(), "to": until.isoformat()})
    if response.status_code != 200:
        return []
    return [line for line in response.text.splitlines() if line.startswith("segments/")]
