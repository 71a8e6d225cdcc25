"""``disk_full``: a node recording continuously onto a small tmpfs that fills up; recording must pause (not crash,
not spin, the camera kept), events keep reaching the store (the database is outside the tmpfs), the command centre
says so, and recording resumes once space is freed.

The scenario mounts a ``disk_mb`` tmpfs (unmounted afterwards; a one-line ``VigilError`` when mounting is not
permitted) as the node's data dir, runs the production assembly (``harness.BenchNode``: ``open_services`` +
``Node`` on the demo scene in real time) with the command centre (the real API on a free port, a supervisor
signed in), and fills the disk with a ballast file up to ``headroom_mb``: the recorder fills the rest. Retention
is told to keep no free space (``retention.min_free_gb: 0``), so nothing of Vigil's can make room: the disk stays
full for ``full_s`` seconds, then the ballast is deleted.

Result: ``paused_seen`` (the camera's recording status said paused), ``status_said`` (what ``GET /api/cameras``
said while full, e.g. ``paused (disk full)``), ``node_status_said`` (``Node.status()``), ``pauses`` (times the
recorder paused while full: one per ``resume_after_s`` retry, not a spin), ``camera_kept`` (the camera stayed
online), ``events_during_full`` (events stored while the disk was full), ``lost`` (events emitted and not stored),
``recovered`` (a new segment indexed after the ballast went, status back to ``recording``) and ``resumed_s``.

``options.extra``: ``disk_mb`` (30), ``headroom_mb`` (3), ``full_s`` (20), ``fill_timeout_s`` (120),
``resume_timeout_s`` (60).
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from argon2 import PasswordHasher
from rich.progress import Progress

from vigil.bench.faults import FaultOptions
from vigil.bench.faults.harness import BenchNode, phase, step, stored_ids, work_folder
from vigil.config import Config
from vigil.errors import VigilError
from vigil.governance.service import open_governance

PASSWORD = "tmpfs-filled-up-on-purpose-17"  # a throw-away account of a throw-away database


@contextlib.contextmanager
def tmpfs(mount: Path, size_mb: float) -> Iterator[Path]:
    """A ``size_mb`` tmpfs mounted on ``mount`` (made if need be), unmounted afterwards."""
    mount.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={int(size_mb * 1024)}k", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        why = (done.stderr or done.stdout).strip().splitlines()
        raise VigilError(f"cannot mount a {size_mb:g} MB tmpfs on {mount} to fill a disk "
                         f"({why[-1] if why else f'mount exited with {done.returncode}'}; needs root)")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True)  # still busy: detach it


def fill(path: Path, headroom_bytes: int) -> int:
    """Write a ballast file at ``path`` until its disk has about ``headroom_bytes`` free; the bytes written."""
    stat = os.statvfs(path.parent)
    wanted = max(0, stat.f_bavail * stat.f_frsize - headroom_bytes)
    chunk = b"\0" * (1 << 20)
    written = 0
    with path.open("wb") as ballast:
        while written < wanted:
            try:
                written += ballast.write(chunk[: min(len(chunk), wanted - written)])
                ballast.flush()
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
    return written


def _configure(folder: Path, mount: Path) -> Any:
    def configure(config: Config) -> None:
        config.data_dir = mount
        config.store.database = f"sqlite:///{folder / 'vigil.db'}"  # outside the full disk
        config.retention.min_free_gb = 0.0  # nothing of Vigil's may make room: only the ballast going does
        for camera in config.cameras:
            camera.recording.mode, camera.recording.segment_seconds = "continuous", 2.0

    return configure


def run(options: FaultOptions, progress: Progress) -> dict[str, Any]:
    disk_mb = float(options.extra.get("disk_mb", 30.0))
    headroom = int(float(options.extra.get("headroom_mb", 3.0)) * 1e6)
    full_s = float(options.extra.get("full_s", 20.0))
    fill_timeout_s = float(options.extra.get("fill_timeout_s", 120.0))
    resume_timeout_s = float(options.extra.get("resume_timeout_s", 60.0))
    done = step(progress, f"disk_full: {disk_mb:g} MB tmpfs, node and command centre")
    with work_folder(options.work_dir, "vigil-disk-full-") as folder, tmpfs(folder / "disk", disk_mb) as mount:
        from vigil.api.app import create_app
        from vigil.api.server import serve_in_thread

        bench = BenchNode(folder / "node", 1, _configure(folder, mount)).start()
        server = None
        try:
            assert bench.services is not None and bench.node is not None
            services, node = bench.services, bench.node
            camera_id = bench.config.cameras[0].id
            governance = open_governance(services.store, bench.config.data_dir,
                                         hasher=PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1))
            governance.users.create("observer", PASSWORD, "supervisor", "disk-full-bench", cameras=["*"])
            server = serve_in_thread(create_app(bench.config, services, node))
            api = httpx.Client(base_url=server.url, timeout=10)
            token = api.post("/api/auth/login", json={"username": "observer", "password": PASSWORD}).json()["token"]
            api.headers["Authorization"] = f"Bearer {token}"

            def status() -> tuple[str, str]:
                """(what the API says, what Node.status() says) of the camera's recording."""
                said = next(c for c in api.get("/api/cameras").json() if c["id"] == camera_id)["recording"]
                return str(said), str(next(r for r in node.status() if r["camera"] == camera_id)["recording"])

            def camera_state() -> str:
                return str(next(r for r in node.status() if r["camera"] == camera_id)["state"])

            recorder = services.recorders[camera_id]
            done()
            phase(progress, "disk_full: recording", 60.0, until=lambda: recorder.segments_written > 0, every_s=0.2)
            if not recorder.segments_written:
                raise VigilError("disk_full: the node recorded nothing within 60 s")
            ballast = mount / "ballast.bin"
            pauses_before = recorder.pauses
            fill(ballast, headroom)
            said: list[str] = []
            node_said: list[str] = []

            def paused() -> bool:
                api_text, node_text = status()
                if api_text.startswith("paused"):
                    said.append(api_text)
                    node_said.append(node_text)
                return bool(said)

            phase(progress, "disk_full: recorder filling the disk", fill_timeout_s, until=paused, every_s=0.2)
            full_at = time.monotonic()
            written_at_full = recorder.segments_written
            emitted_before = set(bench.emitted)
            states: set[str] = set()
            phase(progress, f"disk_full: disk full for {full_s:.0f} s", full_s,
                  tick=lambda: (states.add(camera_state()), paused()), every_s=0.5)
            during = [i for i in bench.emitted if i not in emitted_before]
            pause_count = recorder.pauses - pauses_before
            written_full = recorder.segments_written - written_at_full
            ballast.unlink()
            freed_at = time.monotonic()
            freed_since = datetime.now(UTC)

            def resumed() -> bool:
                fresh = services.recordings.segments(camera_id, start=freed_since)
                return status() == ("recording", "recording") and any(s.start >= freed_since for s in fresh)

            phase(progress, "disk_full: space freed, waiting for recording", resume_timeout_s, until=resumed,
                  every_s=0.2)
            recovered = resumed()
            resumed_s = round(time.monotonic() - freed_at, 1) if recovered else None
            full_for = round(freed_at - full_at, 1)
            stopping = step(progress, "disk_full: stopping the node, counting")
        finally:
            if server is not None:
                server.stop()
            bench.stop()
        database = f"sqlite:///{folder / 'vigil.db'}"
        stored = stored_ids(database, bench.emitted)
        stored_during = stored_ids(database, during)
        stopping()
    return {
        "disk_mb": disk_mb,
        "paused_seen": bool(said),
        "status_said": said[0] if said else None,
        "node_status_said": node_said[0] if node_said else None,
        "full_for_s": full_for,
        "pauses": pause_count,
        "segments_while_full": written_full,
        "camera_kept": states == {"online"},
        "events_during_full": len(stored_during),
        "events": len(bench.emitted),
        "lost": len([i for i in bench.emitted if i not in stored]),
        "recovered": recovered,
        "resumed_s": resumed_s,
    }
