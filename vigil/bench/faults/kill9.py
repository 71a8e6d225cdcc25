"""``kill9``: the real ``vigil run`` SIGKILLed while it records and while events wait in its outbox, restarted each
time, then stopped cleanly (SIGINT); what was stored, published and recorded is then counted.

The node is the CLI as a subprocess (``python -m vigil run -c <yaml> --no-serve``) on the demo scene
(``video/vtest_h264.mp4`` in real time, looped) recording continuously in short segments, with SQLite in the work
folder and a private NATS JetStream (``services.PrivateNats``) as its bus. Odd kills stop NATS first and wait
until the outbox has pending rows (so the kill lands with events in the outbox); even kills land as soon as the
outbox has a pending row, or after a few seconds anyway. NATS is back before each restart.

Result: ``kills`` (with, per kill, the outbox's pending rows and whether a segment was open), ``events`` (rows in
the events table), ``lost`` (stored events never published on the bus), ``duplicates`` (extra copies on the bus
of an event: at least once is allowed, and counted), ``pending_after_stop`` (outbox rows still unpublished after the
clean stop), ``segments`` (indexed), ``unplayable_segments`` (indexed segments ffmpeg cannot decode to the end
without an error), ``left_unindexed`` (segment files without an index row right after the kills),
``reindexed_segments`` (of those, indexed by the next start), ``quarantined``, ``empty_removed`` (header only, no
video), ``orphans_deleted`` (files with video gone without a row: 0 expected), ``unindexed_at_end``, and from the
node's logs ``recovery_logged`` (start-up lines about recovered segments) and ``tracebacks``.

Events a killed node had emitted but not yet stored cannot be witnessed from outside (an event is only visible
once stored): they are what a kill may cost, at most those of the frame in hand.

``options.extra``: ``kills`` (default 3), ``run_s`` (seconds the node records between its start and a kill, 10),
``segment_s`` (4), ``start_timeout_s`` (90).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from rich.progress import Progress

from vigil.bench.faults import FaultOptions
from vigil.bench.faults.harness import VIDEO, phase, step, work_folder
from vigil.bench.faults.services import PrivateNats
from vigil.bench.latency import bench_config
from vigil.errors import VigilError
from vigil.events.codec import CodecError, decode_event
from vigil.paths import data_file
from vigil.store.recordings import RECORDINGS_DIR
from vigil.store.recovery import QUARANTINE_DIR, complete_length


class NodeProcess:
    """``vigil run`` as a subprocess on a config file; its output goes to numbered log files."""

    def __init__(self, config_path: Path, database: Path, data_dir: Path, logs: Path) -> None:
        self.config_path = config_path
        self.database = database
        self.data_dir = data_dir
        self.logs = logs
        self.process: subprocess.Popen[bytes] | None = None
        self.runs = 0

    def start(self) -> None:
        self.runs += 1
        log = (self.logs / f"node-{self.runs}.log").open("wb")
        command = [sys.executable, "-m", "vigil", "run", "-c", str(self.config_path), "--no-serve"]
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        cwd=self.config_path.parent)
        log.close()
        self.started_at = time.time()

    def log_tail(self, lines: int = 5) -> str:
        text = (self.logs / f"node-{self.runs}.log").read_text(errors="replace").strip().splitlines()
        return " | ".join(line.strip() for line in text[-lines:] if line.strip())

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_recording(self, timeout_s: float) -> None:
        """Until the node writes a segment and has stored an event since it started (VigilError otherwise)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise VigilError(f"vigil run exited at start ({self.log_tail()})")
            newest = self.newest_segment()
            if newest is not None and newest[1] > self.started_at and self.events_since(self.started_at):
                return
            time.sleep(0.2)
        raise VigilError(f"vigil run did not record and store events within {timeout_s:.0f} s ({self.log_tail()})")

    def newest_segment(self) -> tuple[Path, float] | None:
        files = []
        for file in (self.data_dir / RECORDINGS_DIR).rglob("*.mp4"):
            with contextlib.suppress(FileNotFoundError):  # the recorder deleted it meanwhile
                files.append((file, file.stat().st_mtime))
        return max(files, key=lambda item: item[1]) if files else None

    def query(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        with contextlib.closing(sqlite3.connect(self.database, timeout=10)) as db:
            return db.execute(sql, args).fetchall()

    def events_since(self, at: float) -> int:
        since = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")  # how SQLite holds UTC times
        return self.query("SELECT count(*) FROM events WHERE created_at > ?", since)[0][0]

    def pending(self) -> int:
        return self.query("SELECT count(*) FROM outbox WHERE published_at IS NULL")[0][0]

    def indexed(self) -> set[str]:
        return {row[0] for row in self.query("SELECT path FROM recording_segments")}

    def unindexed(self) -> set[str]:
        indexed = self.indexed()
        files = {f.relative_to(self.data_dir).as_posix() for f in (self.data_dir / RECORDINGS_DIR).rglob("*.mp4")}
        return files - indexed

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def interrupt(self, timeout_s: float = 90.0) -> int:
        """SIGINT (a clean stop); the exit code (SIGKILL and -9 after ``timeout_s``)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            return -9

    def stop_quietly(self) -> None:
        if self.alive():
            assert self.process is not None
            self.process.kill()
            self.process.wait(10)


def write_config(folder: Path, nats_url: str, segment_s: float) -> tuple[Path, Path, Path]:
    """The node's YAML (demo scene, continuous recording, SQLite, NATS); (config, database, data dir)."""
    data_dir, database = folder / "data", folder / "vigil.db"
    config = bench_config(data_dir, data_file(VIDEO), 1)
    tag = os.urandom(4).hex()
    config.store.database = f"sqlite:///{database}"
    config.bus.kind, config.bus.url = "nats", nats_url
    config.bus.stream, config.bus.subject_prefix = f"VIGIL_KILL9_{tag}", f"kill9{tag}"
    for camera in config.cameras:
        camera.recording.mode, camera.recording.segment_seconds = "continuous", segment_s
    path = folder / "vigil.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json", exclude_none=True), sort_keys=False))
    return path, database, data_dir


async def bus_ids(url: str, stream: str) -> list[str]:
    """The event id of every message in the JetStream ``stream`` (in order; repeats kept)."""
    import nats

    client = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=1)
    try:
        js = client.jetstream()
        state = (await js.stream_info(stream)).state
        ids = []
        for seq in range(state.first_seq, state.last_seq + 1):
            with contextlib.suppress(Exception):  # a deleted sequence number
                msg = await js.get_msg(stream, seq)
                with contextlib.suppress(CodecError):
                    ids.append(decode_event(msg.data).id)
        return ids
    finally:
        await client.close()


def decodes_to_end(path: Path) -> bool:
    """ffmpeg decodes the whole file without a single error or warning."""
    run = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"],
                         capture_output=True, text=True, timeout=120)
    return run.returncode == 0 and not run.stderr.strip()


def _kill_once(node: NodeProcess, nats: PrivateNats, bus_down: bool, timeout_s: float) -> dict[str, Any]:
    """Kill the running node, NATS up again afterwards. ``bus_down``: NATS is stopped first and the kill waits
    for pending outbox rows and for a first complete fragment in the open segment (video to re-index); otherwise
    it lands at the first pending row seen within 5 s, or then anyway."""
    if bus_down:
        nats.stop()
    deadline = time.monotonic() + (timeout_s if bus_down else 5.0)

    def open_fragments() -> int:
        newest = node.newest_segment()
        try:
            return complete_length(newest[0])[1] if newest is not None else 0
        except FileNotFoundError:
            return 0

    pending = node.pending()
    while time.monotonic() < deadline and not (pending and (not bus_down or open_fragments())):
        time.sleep(0.1 if bus_down else 0.01)
        pending = node.pending()
    newest = node.newest_segment()
    recording = newest is not None and time.time() - newest[1] < 5.0
    node.kill()
    if bus_down:
        nats.start()
    return {"bus_down": bus_down, "pending_at_kill": pending, "pending_after_kill": node.pending(),
            "recording": recording}


def run(options: FaultOptions, progress: Progress) -> dict[str, Any]:
    kills = int(options.extra.get("kills", 3))
    run_s = float(options.extra.get("run_s", 10.0))
    segment_s = float(options.extra.get("segment_s", 4.0))
    start_timeout_s = float(options.extra.get("start_timeout_s", 90.0))
    done = step(progress, "kill9: private NATS and config")
    with work_folder(options.work_dir, "vigil-kill9-") as folder, PrivateNats(root=folder) as nats:
        config_path, database, data_dir = write_config(folder, nats.url, segment_s)
        stream = yaml.safe_load(config_path.read_text())["bus"]["stream"]
        node = NodeProcess(config_path, database, data_dir, folder)
        done()
        killed: list[dict[str, Any]] = []
        left: dict[str, bool] = {}  # unindexed after a kill -> it held video (a complete fragment)
        try:
            task = progress.add_task("kill9: kill -9 while recording, outbox pending", total=kills)
            for i in range(kills):
                node.start()
                node.wait_recording(start_timeout_s)
                phase(progress, f"kill9: recording before kill {i + 1}", run_s)
                killed.append(_kill_once(node, nats, bus_down=i % 2 == 0, timeout_s=30.0))
                for path in node.unindexed():
                    good, fragments = complete_length(data_dir / path)
                    left[path] = fragments > 0 or good < (data_dir / path).stat().st_size
                progress.update(task, advance=1)
            stopping = step(progress, "kill9: restart, then a clean stop (SIGINT)")
            node.start()
            node.wait_recording(start_timeout_s)
            phase(progress, "kill9: recording after the last kill", run_s)
            exit_code = node.interrupt()
            stopping()
        finally:
            node.stop_quietly()
        check = step(progress, "kill9: counting events on the bus, decoding segments")
        stored = {row[0] for row in node.query("SELECT id FROM events")}
        pending = node.pending()
        on_bus = asyncio.run(bus_ids(nats.url, stream))
        indexed = node.indexed()
        unplayable = [p for p in sorted(indexed) if not (data_dir / p).is_file() or not decodes_to_end(data_dir / p)]
        unindexed_end = node.unindexed()
        quarantined = {p for p in left if (data_dir / QUARANTINE_DIR / p).is_file()}
        gone = {p for p in left if p not in indexed and p not in quarantined and not (data_dir / p).exists()}
        logs = "\n".join(f.read_text(errors="replace") for f in sorted(folder.glob("node-*.log")))
        recorded_s = node.query("SELECT coalesce(sum((julianday(\"end\") - julianday(start)) * 86400), 0) "
                                "FROM recording_segments")[0][0]
        check()
    copies = Counter(on_bus)
    return {
        "kills": len(killed),
        "kill_details": killed,
        "clean_exit": exit_code == 0,
        "events": len(stored),
        "published": len(copies),
        "lost": len(stored - set(copies)),
        "duplicates": sum(n - 1 for n in copies.values()),
        "on_bus_not_stored": len(set(copies) - stored),
        "pending_after_stop": pending,
        "segments": len(indexed),
        "recorded_s": round(recorded_s, 1),
        "unplayable_segments": len(unplayable),
        "unplayable": unplayable[:10],
        "left_unindexed": len(left),
        "reindexed_segments": len(set(left) & indexed),
        "quarantined": len(quarantined),
        "empty_removed": len({p for p in gone if not left[p]}),  # a header, no video: nothing lost
        "orphans_deleted": len({p for p in gone if left[p]}),
        "unindexed_at_end": len(unindexed_end),
        "recovery_logged": logs.count("left by an unclean stop"),
        "tracebacks": logs.count("Traceback"),
    }
