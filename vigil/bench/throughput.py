"""``vigil bench throughput``: how many busy cameras one node analyses in real time.

N cameras replay ``video/vtest_h264.mp4`` (looped, paced at real time) and are analysed at 5 fps.
Everything is measured in the same run, as CPU-seconds per camera-second:
- the full pipeline (decode, motion gate, batched detection, tracking, rules);
- decoding alone (the same readers, frames taken and thrown away), and their ratio.
Each full-pipeline trial runs in a fresh process (its CPU time and peak RSS are its own).
A camera "keeps up" when it is analysed at ≥ 90% of its rate with under 2% of its frames dropped;
``max_realtime_cameras`` is the largest N tried at which every camera keeps up. The motion gate's
saving is measured on a generated quiet clip (a still scene with one short movement).
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np
from rich.progress import Progress

from vigil.config import CameraConfig, Config, DetectorConfig
from vigil.paths import data_file
from vigil.runtime import Node
from vigil.sources.reader import StreamReader
from vigil.vision.detector import create_detector

ANALYSIS_FPS = 5.0
WARM_UP_S = 3.0


def _cameras(video: Path, n: int, realtime: bool = True, interval: int = 0) -> Config:
    cameras = [CameraConfig(id=f"cam{i:02d}", url=str(video), loop=True, realtime=realtime, fps=ANALYSIS_FPS)
               for i in range(n)]
    return Config(cameras=cameras, detector=DetectorConfig(interval=interval))


def decode_only(video: Path, n: int, seconds: float) -> dict:
    """CPU-seconds per camera-second for reading and sampling alone."""
    return {"cpu_per_camera_second": decode_cpu(_cameras(video, n).cameras, seconds)}


def decode_cpu(cameras: list[CameraConfig], seconds: float) -> float:
    """CPU-seconds per camera-second of these cameras' readers, their frames taken and thrown away."""
    readers = [StreamReader(c).start() for c in cameras]
    stop = threading.Event()

    def drain() -> None:
        while not stop.is_set():
            taken = sum(r.queue.get_nowait() is not None for r in readers)
            if not taken:
                time.sleep(0.01)

    drainer = threading.Thread(target=drain, daemon=True)
    drainer.start()
    time.sleep(WARM_UP_S)
    cpu0, t0 = time.process_time(), time.monotonic()
    time.sleep(seconds)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - t0
    stop.set()
    for reader in readers:
        reader.stop(timeout=2)
    return round(cpu / (len(cameras) * wall), 4)


@dataclass(slots=True)
class NodeRun:
    """What a node did over the measured seconds: CPU-seconds, wall seconds, and per camera its analysed
    frames per second, dropped frames and last lag."""

    cpu: float
    wall: float
    rates: dict[str, float]
    drops: dict[str, int]
    lags: list[float]


def measure_node(node: Node, seconds: float, warm_up_s: float = WARM_UP_S, join_s: float = 10.0) -> NodeRun:
    """Run ``node`` in a thread, warm up, then measure for ``seconds``; the node is stopped after."""
    worker = threading.Thread(target=node.start().run, daemon=True)
    worker.start()
    time.sleep(warm_up_s)
    frames0 = {k: p.stats.frames for k, p in node.pipelines.items()}
    drops0 = {k: r.queue.drops for k, r in node.readers.items()}
    cpu0, t0 = time.process_time(), time.monotonic()
    time.sleep(seconds)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - t0
    rates = {k: (p.stats.frames - frames0[k]) / wall for k, p in node.pipelines.items()}
    drops = {k: r.queue.drops - drops0[k] for k, r in node.readers.items()}
    lags = [r.stats().lag_s or 0.0 for r in node.readers.values()]
    node.stop()
    worker.join(join_s)
    return NodeRun(cpu, wall, rates, drops, lags)


def full_pipeline(video: Path, n: int, seconds: float, motion_gate: bool = True, interval: int = 0) -> dict:
    """The whole frame path for N cameras; per-camera rates, drops and CPU per camera-second."""
    config = _cameras(video, n, interval=interval)
    node = Node(config, create_detector(config.detector), motion_gate=motion_gate)
    run = measure_node(node, seconds)
    cpu, wall, rates, drops, lags = run.cpu, run.wall, run.rates, run.drops, run.lags
    analysed = sum(rates.values()) * wall
    keeps_up = all(rate >= 0.9 * ANALYSIS_FPS for rate in rates.values()) and sum(drops.values()) <= 0.02 * (
        analysed + sum(drops.values()))
    return {
        "cameras": n,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "cpu_per_camera_second": round(cpu / (n * wall), 4),
        "min_fps": round(min(rates.values()), 2),
        "drops": int(sum(drops.values())),
        "max_lag_s": round(max(lags), 2),
        "keeps_up": keeps_up,
    }


def isolated(function: Callable[..., dict], *args, **kwargs) -> dict:
    """Run one trial in a fresh process, so that its CPU time and peak RSS are its own."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, *args, **kwargs).result()


def quiet_clip(path: Path, seconds: int = 20) -> Path:
    """An empty scene (the median of vtest frames: nobody in it) where one square crosses for 2 s, as H.264."""
    frames = list(_frames(data_file("video/vtest.avi"), 795))[::16]
    background = np.median(np.stack(frames), axis=0).astype(np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = background.shape[1], background.shape[0], "yuv420p"
        for index in range(seconds * 10):
            image = background.copy()
            if 80 <= index < 100:  # 2 s of movement in the middle
                x = 100 + (index - 80) * 25
                cv2.rectangle(image, (x, 250), (x + 40, 330), (40, 40, 40), -1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _frames(path: Path, limit: int):
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index >= limit:
                return
            yield frame.to_ndarray(format="bgr24")


def motion_gate_saving(clip: Path) -> dict:
    """Detector calls and CPU with and without the motion gate on the quiet clip (read as fast as possible)."""
    out = {}
    for gated in (False, True):
        config = _cameras(clip, 1, realtime=False)
        config.cameras[0].loop = False
        node = Node(config, create_detector(config.detector), motion_gate=gated)
        cpu0 = time.process_time()
        node.start().run(until_end=True)
        stats = node.pipelines["cam00"].stats
        out["gated" if gated else "ungated"] = {"frames": stats.frames, "detected": stats.detected,
                                                "cpu_s": round(time.process_time() - cpu0, 3)}
    ungated, gated_ = out["ungated"], out["gated"]
    out["detector_calls_saved"] = round(1 - gated_["detected"] / max(1, ungated["detected"]), 4)
    out["cpu_ratio"] = round(gated_["cpu_s"] / max(1e-9, ungated["cpu_s"]), 4)
    return out


def run_throughput_bench(counts: list[int], seconds: float = 10.0, progress: Progress | None = None,
                         work_dir: Path = Path("out"), interval: int = 0) -> dict:
    """Trials at increasing camera counts (stopping at the first that falls behind), plus decode-only."""
    video = data_file("video/vtest_h264.mp4")
    task = progress.add_task("throughput", total=len(counts) + 2) if progress else None

    def step(description: str) -> None:
        if progress:
            progress.update(task, description=description)

    trials = []
    for n in counts:
        step(f"{n} cameras, full pipeline")
        trial = isolated(full_pipeline, video, n, seconds, interval=interval)
        step(f"{n} cameras, decode only")
        trial["decode_cpu_per_camera_second"] = decode_only(video, n, seconds)["cpu_per_camera_second"]
        trial["ratio"] = round(trial["cpu_per_camera_second"] / max(1e-9, trial["decode_cpu_per_camera_second"]), 2)
        trials.append(trial)
        if progress:
            progress.advance(task)
        if not trial["keeps_up"]:
            break
    step("motion gate on a quiet clip")
    work_dir.mkdir(parents=True, exist_ok=True)
    gate = motion_gate_saving(quiet_clip(work_dir / "quiet.mp4"))
    passing = [t["cameras"] for t in trials if t["keeps_up"]]
    reference = next((t for t in reversed(trials) if t["keeps_up"]), trials[-1])
    return {
        "video": "video/vtest_h264.mp4",
        "analysed_fps": ANALYSIS_FPS,
        "detector_interval": interval,
        "seconds_per_trial": seconds,
        "cpu_per_camera_second": reference["cpu_per_camera_second"],
        "decode_cpu_per_camera_second": reference["decode_cpu_per_camera_second"],
        "ratio": reference["ratio"],
        "max_realtime_cameras": max(passing, default=0),
        "peak_rss_mb": reference["peak_rss_mb"],
        "trials": trials,
        "motion_gate": gate,
        "cpus": os.cpu_count(),
    }
