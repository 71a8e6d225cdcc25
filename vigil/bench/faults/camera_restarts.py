"""``camera_restarts``: a real node reading a real RTSP camera that is killed (SIGKILL) and restarted N times.

The camera is the GStreamer RTSP server (``vigil.bench.rtsp_camera``) replaying ``video/vtest_h264.mp4``; the
node is the real ``Node`` (reader, detector, tracker, rules) with the camera's default reconnect policy. Each
cycle the camera stays up a random 1..``max_gap_s`` seconds (seeded), but never less than until the node has
resumed (so every restart is measured), is killed, stays down ``down_s`` and is started again on the same port.

A restart's resume time runs from the camera being up again (its server listening: the ``READY`` line) to the
first frame captured after that moment which the node analysed (``on_result``). A restart without such a frame
within ``RESUME_TIMEOUT_S`` is not reconnected; after ``GIVE_UP_AFTER`` of those in a row the run stops early.

``crashes``: the node's worker or the reader thread dead (or failed) at any check, any uncaught exception in a
thread, and any exception logged by the frame path (a failing hook). ``paired``: after the first connection's
``camera_online``, the camera events are exactly one ``camera_offline`` then one ``camera_online`` per restart
(``offline_events`` / ``online_events`` count them, the first connection's online excluded).
"""

from __future__ import annotations

import logging
import random
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import Progress

from vigil.bench.faults import FaultOptions
from vigil.bench.rtsp_camera import RtspCamera
from vigil.config import CameraConfig, Config
from vigil.errors import VigilError
from vigil.paths import data_file
from vigil.runtime import FrameResult, Node
from vigil.sources.reader import ReaderState, StreamReader
from vigil.types import Event
from vigil.vision.detector import create_detector

VIDEO = "video/vtest_h264.mp4"
CAMERA_ID = "restarts"
ANALYSIS_FPS = 5.0
FIRST_FRAME_TIMEOUT_S = 60.0  # model loading and the first connection
RESUME_TIMEOUT_S = 45.0  # longer than any reconnect delay, so a slow resume is measured rather than lost
GIVE_UP_AFTER = 3  # restarts in a row without frames: the node is stuck, stop there
CAMERA_START_TRIES = 3


class _Watch:
    """What the node did, recorded from its hooks, its threads and its log."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._analysed: list[tuple[float, float]] = []  # (monotonic time analysed, wall-clock capture time)
        self.events: list[str] = []  # camera event kinds, in order
        self.crashes: list[str] = []

    def on_result(self, result: FrameResult) -> None:
        if result.frame is not None:
            with self._cond:
                self._analysed.append((time.monotonic(), result.frame.captured_at.timestamp()))
                self._cond.notify_all()

    def on_event(self, event: Event) -> None:
        with self._cond:
            self.events.append(event.kind)

    def crash(self, what: str) -> None:
        with self._cond:
            self.crashes.append(what)

    def frames(self) -> int:
        with self._cond:
            return len(self._analysed)

    def first_after(self, since: int, wall: float, timeout: float) -> float | None:
        """Monotonic time of the first frame captured at or after ``wall`` (among analysed ``since`` on)."""

        def found() -> float | None:
            return next((done for done, captured in self._analysed[since:] if captured >= wall), None)

        with self._cond:
            return self._cond.wait_for(found, timeout)


class _ErrorLog(logging.Handler):
    """Counts exceptions logged by the frame path; attached to ``vigil``, it also keeps the per-restart
    offline warnings off the terminal while the bench runs."""

    def __init__(self, watch: _Watch) -> None:
        super().__init__(logging.ERROR)
        self.watch = watch

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.watch.crash(f"{record.name}: {record.getMessage()}")


def _start(camera: RtspCamera) -> tuple[float, float]:
    """Start the camera; (monotonic, wall-clock) time it listened."""
    for attempt in range(CAMERA_START_TRIES):
        try:
            camera.start()
            return time.monotonic(), time.time()
        except RuntimeError as exc:
            if attempt == CAMERA_START_TRIES - 1:
                raise VigilError(f"camera_restarts: {exc}") from None
            time.sleep(0.5)
    raise AssertionError("unreachable")


def _percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(np.array(values), q)), 3) if values else None


def run(options: FaultOptions, progress: Progress) -> dict[str, Any]:
    """Kill and restart the camera ``options.restarts`` times; the JSON section (see the module docstring)."""
    why_not = RtspCamera.available()
    if why_not:
        raise VigilError(f"camera_restarts: {why_not}")
    video = data_file(VIDEO)
    rng = random.Random(options.seed)
    work = Path(tempfile.mkdtemp(prefix="vigil-faults-camera-", dir=options.work_dir))
    # each start serves the clip from its beginning; loop it so a long up period never reaches its end
    camera = RtspCamera(video, loop_minutes=max(2.0, 2 * (options.max_gap_s + RESUME_TIMEOUT_S) / 60))
    watch = _Watch()
    handler = _ErrorLog(watch)
    vigil_log = logging.getLogger("vigil")
    vigil_log.addHandler(handler)
    previous_hook = threading.excepthook

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        watch.crash(f"thread {args.thread.name if args.thread else '?'} raised {args.exc_type.__name__}: "
                    f"{args.exc_value}")

    threading.excepthook = thread_hook
    resumed: list[float] = []
    count = 0
    task = progress.add_task("camera restarts", total=options.restarts)
    try:
        config = Config(data_dir=work, cameras=[CameraConfig(id=CAMERA_ID, url=camera.url, fps=ANALYSIS_FPS)])
        node = Node(config, create_detector(config.detector), on_result=[watch.on_result],
                    on_camera_event=[watch.on_event])
        reader = node.readers[CAMERA_ID]
        up_mono, up_wall = _start(camera)
        worker = threading.Thread(target=node.start().run, name="vigil-node", daemon=True)
        worker.start()
        try:
            if watch.first_after(0, 0.0, FIRST_FRAME_TIMEOUT_S) is None:
                raise VigilError(f"camera_restarts: no frame analysed within {FIRST_FRAME_TIMEOUT_S:g} s of "
                                 f"starting ({reader.last_error or 'no error'})")
            resumed_at = time.monotonic()
            dead: set[str] = set()
            missed = 0
            for _ in range(options.restarts):
                time.sleep(max(0.0, up_mono + rng.uniform(1.0, options.max_gap_s) - time.monotonic()))
                _check(worker, reader, watch, dead)
                camera.kill()
                time.sleep(options.down_s)
                since = watch.frames()
                up_mono, up_wall = _start(camera)
                resumed_at = watch.first_after(since, up_wall, RESUME_TIMEOUT_S)
                count += 1
                if resumed_at is not None:
                    resumed.append(resumed_at - up_mono)
                    missed = 0
                else:
                    missed += 1
                last = f"{resumed[-1]:.1f} s" if resumed_at is not None else "none"
                progress.update(task, advance=1, description=f"camera restarts (last resume {last})")
                if missed >= GIVE_UP_AFTER:
                    break
            _check(worker, reader, watch, dead)
            reconnects = reader.stats().reconnects
        finally:
            node.stop()
            worker.join(10)
    finally:
        threading.excepthook = previous_hook
        vigil_log.removeHandler(handler)
        camera.close()
        shutil.rmtree(work, ignore_errors=True)
    return _report(options, count, resumed, watch, reconnects)


def _check(worker: threading.Thread, reader: StreamReader, watch: _Watch, dead: set[str]) -> None:
    """Record (once each) a dead node worker and a dead or failed reader."""
    if not worker.is_alive() and "worker" not in dead:
        dead.add("worker")
        watch.crash("the node's worker thread died")
    if (not reader.running or reader.state == ReaderState.FAILED) and "reader" not in dead:
        dead.add("reader")
        watch.crash(f"the reader thread died ({reader.last_error or 'no error'})")


def _report(options: FaultOptions, count: int, resumed: list[float], watch: _Watch,
            reconnects: int) -> dict[str, Any]:
    outages = watch.events[1:] if watch.events[:1] == ["camera_online"] else list(watch.events)
    return {
        "count": count,
        "reconnected": len(resumed),
        "resumed_p50_s": _percentile(resumed, 50),
        "resumed_p95_s": _percentile(resumed, 95),
        "resumed_max_s": round(max(resumed), 3) if resumed else None,
        "crashes": len(watch.crashes),
        "paired": watch.events[:1] == ["camera_online"] and outages == ["camera_offline", "camera_online"] * count,
        "offline_events": outages.count("camera_offline"),
        "online_events": outages.count("camera_online"),
        "reader_reconnects": reconnects,
        "crash_details": watch.crashes[:10],
        "settings": {"max_gap_s": options.max_gap_s, "down_s": options.down_s, "seed": options.seed,
                     "video": Path(VIDEO).name, "fps": ANALYSIS_FPS},
    }
