"""``vigil bench latency``: from a frame's capture to its event's arrival in an SSE client of the real app.

A real node (the demo scene on ``video/vtest_h264.mp4``, replayed in real time and looped, on N cameras) runs
with the real services (store, outbox, bus) and the real app on uvicorn; an httpx client subscribes to
``/api/events/stream`` and measures, per event, arrival time minus the capture time of the frame that produced it.

A realtime file replayed without a fixed start time is stamped like a live camera: a frame's capture time is
the wall-clock moment it is due. Camera state events (online/offline) carry no frame and are skipped.
"""

from __future__ import annotations

import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from argon2 import PasswordHasher

from vigil.api.app import create_app
from vigil.api.server import serve_in_thread
from vigil.api.sse_client import event_stream
from vigil.assembly import open_services
from vigil.config import CameraConfig, Config
from vigil.demo.run import demo_config
from vigil.events.codec import parse_time
from vigil.governance.service import open_governance
from vigil.paths import data_file
from vigil.runtime import FrameResult, Node
from vigil.vision.detector import create_detector

VIDEO = "video/vtest_h264.mp4"
NOT_FROM_FRAMES = {"camera_online", "camera_offline", "camera_error"}
WARMUP_S = 3.0  # events in the first seconds (model warm-up, first connections) are not counted
PASSWORD = "latency-bench-password"


def bench_config(out_dir: Path, video: Path, cameras: int) -> Config:
    """The demo scene on ``cameras`` cameras, all replaying ``video`` in real time, looped."""
    config = demo_config(out_dir, video, realtime=True, loop=True)
    template = config.cameras[0]
    config.cameras = [template.model_copy(update={"id": f"cam{i + 1}", "name": f"{template.name} #{i + 1}"},
                                          deep=True) for i in range(cameras)]
    return config


def _listen(url: str, token: str, arrivals: list[tuple[float, dict[str, Any]]], connected: threading.Event,
            stop: threading.Event) -> None:
    for body in event_stream(url, {"Authorization": f"Bearer {token}"}):
        if body is None:
            connected.set()
        else:
            arrivals.append((time.time(), body))
        if stop.is_set():
            return


def run_once(cameras: int, seconds: float, video: Path, queue_size: int | None = None) -> dict[str, Any]:
    """One run on ``cameras`` cameras for ``seconds``: p50/p95 latency (ms) and the number of events."""
    with tempfile.TemporaryDirectory(prefix="vigil-latency-") as folder:
        config = bench_config(Path(folder), video, cameras)
        services = open_services(config).start()
        governance = open_governance(services.store, config.data_dir,
                                     hasher=PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1))
        governance.users.create("bench", PASSWORD, "supervisor", "latency-bench", cameras=["*"])
        node = Node(config, create_detector(config.detector), queue_size=queue_size)
        analysed: dict[str, float] = {}  # event id -> wall time its frame's result left the worker
        frame_times: list[tuple[str, datetime, float]] = []

        def mark(result: FrameResult) -> None:
            now = time.time()
            if result.frame is not None:
                frame_times.append((result.camera.id, result.frame.captured_at, now))
            for event in result.output.events:
                analysed[event.id] = now

        node.on_result.append(mark)
        services.attach(node)
        app = create_app(config, services, node, users=governance.users, audit=governance.audit,
                         authorisations=governance.authorisations, basemap=None)
        server = serve_in_thread(app)
        arrivals: list[tuple[float, dict[str, Any]]] = []
        connected, stop = threading.Event(), threading.Event()
        try:
            token = httpx.post(server.url + "/api/auth/login",
                               json={"username": "bench", "password": PASSWORD}).json()["token"]
            listener = threading.Thread(target=_listen, args=(server.url, token, arrivals, connected, stop),
                                        daemon=True)
            listener.start()
            if not connected.wait(10):
                raise RuntimeError("the SSE stream did not connect")
            worker = threading.Thread(target=node.start().run, name="vigil-node", daemon=True)
            started = time.time()
            worker.start()
            time.sleep(seconds)
            stop.set()
            node.stop()
            worker.join(10)
        finally:
            server.stop()
            services.close()
    latencies, delivery = [], []
    for arrived, body in arrivals:
        if body["kind"] in NOT_FROM_FRAMES or arrived - started < WARMUP_S:
            continue
        latencies.append((arrived - parse_time(body["at"]).timestamp()) * 1000)
        if body["id"] in analysed:
            delivery.append((arrived - analysed[body["id"]]) * 1000)
    frames = [(done - at.timestamp()) * 1000 for _cam, at, done in frame_times if done - started >= WARMUP_S]
    p50, p95 = _percentiles(latencies)
    return {"cameras": cameras, "p50_ms": p50, "p95_ms": p95, "events": len(latencies), "seconds": seconds,
            "frames_analysed": len(frames),
            "capture_to_analysed_ms": dict(zip(("p50", "p95"), _percentiles(frames), strict=True)),
            "analysed_to_client_ms": dict(zip(("p50", "p95"), _percentiles(delivery), strict=True))}


def _percentiles(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    p50, p95 = np.percentile(np.array(values), [50, 95])
    return round(float(p50), 1), round(float(p95), 1)


def run_latency_bench(cameras: list[int] | None = None, seconds: float = 20, video: Path | None = None,
                      queue_size: int | None = None) -> dict:
    """``{"runs": [{"cameras", "p50_ms", "p95_ms", "events", ...}, ...]}`` for each camera count.

    ``queue_size``: frames each camera may queue ahead of the inference worker (default: the camera
    config's ``queue``, 1)."""
    video = video or data_file(VIDEO)
    return {"video": video.name, "queue_size": queue_size or CameraConfig.model_fields["queue"].default,
            "runs": [run_once(n, seconds, video, queue_size) for n in (cameras or [1, 8])]}

