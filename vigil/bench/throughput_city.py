"""``vigil bench throughput --profile city``: cost per camera on city-like streams, busy and quiet.

Every camera has a 1080p25 main stream (recorded, packets copied) and a 640×360 25 fps substream (analysed at
5 fps), both H.264 with a keyframe every 2 s and no B-frames, made once with ffmpeg:
- **busy**: ``video/vtest.avi`` (people walking all the time);
- **quiet**: the first 6 s of ``video/intel_one-by-one-person-detection.mp4`` (an empty corridor, with its real
  sensor noise), played forwards then backwards five times (60 s that loop without a jump).

The streams are real-time paced files (not RTSP: a GStreamer server per stream would take the cores being
measured). In one run, side by side, as CPU-seconds per camera-second of this process:
- the full pipeline of busy cameras and of quiet cameras (each trial in a fresh process, recording included);
- the naive baseline, decoding the main stream fully (what an NVR that analyses its main stream does);
- the largest city mix (20% busy, 80% quiet) and the largest all-busy count kept in real time;
- the first-detection delay on a quiet camera (keyframes only) against the same camera decoding every frame,
  someone walking into the empty corridor at several phases of the keyframe interval.
"""

from __future__ import annotations

import statistics
import subprocess
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from vigil.bench.throughput import ANALYSIS_FPS, decode_cpu, isolated, measure_node
from vigil.config import CameraConfig, Config, DetectorConfig, RecordingConfig
from vigil.paths import data_file
from vigil.runtime import Node
from vigil.sources.recorder import Recorder
from vigil.store.db import open_store
from vigil.store.migrations import upgrade
from vigil.store.recordings import RecordingIndex
from vigil.vision.detector import Detector, create_detector

GOP_S = 2.0
MAIN, SUB = (1920, 1080), (640, 360)
WARM_UP_S = 5.0
QUIET_SECONDS = 6.0  # the empty stretch of the one-by-one clip
ENTRY_CLIP_S = 14.0  # someone walks in at about 6.5 s
T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def _encode(args: list[str], out: Path, size: tuple[int, int], extra_filter: str = "") -> Path:
    if out.exists():
        return out
    chain = f"{extra_filter}scale={size[0]}:{size[1]},fps=25"
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args, "-filter_complex", chain,
                    "-c:v", "libx264", "-preset", "veryfast", "-g", str(int(25 * GOP_S)), "-bf", "0",
                    "-pix_fmt", "yuv420p", "-an", str(out.with_suffix(".tmp.mp4"))], check=True)
    out.with_suffix(".tmp.mp4").rename(out)
    return out


def make_streams(folder: Path) -> dict[str, dict[str, Path]]:
    """The busy and quiet main streams and substreams (made once, then reused)."""
    folder.mkdir(parents=True, exist_ok=True)
    busy = ["-i", str(data_file("video/vtest.avi"))]
    quiet = ["-t", f"{QUIET_SECONDS:g}", "-i", str(data_file("video/intel_one-by-one-person-detection.mp4"))]
    # forwards, backwards, five times: 60 s without a jump (a short loop's reopening would be counted too)
    pingpong = f"split[a][b];[b]reverse[r];[a][r]concat=n=2:v=1,loop=loop=4:size={round(QUIET_SECONDS * 20)},"
    return {
        "busy": {"main": _encode(busy, folder / "busy-main.mp4", MAIN), "sub": _encode(busy, folder / "busy-sub.mp4",
                                                                                      SUB)},
        "quiet": {"main": _encode(quiet, folder / "quiet-main.mp4", MAIN, pingpong),
                  "sub": _encode(quiet, folder / "quiet-sub.mp4", SUB, pingpong)},
    }


def _camera(camera_id: str, streams: dict[str, Path]) -> CameraConfig:
    return CameraConfig(id=camera_id, url=str(streams["sub"]), size=SUB, record_url=str(streams["main"]),
                        record_size=MAIN, loop=True, realtime=True, fps=ANALYSIS_FPS, keyframes_when_quiet=True)


def _measure(node: Node, seconds: float, busy: set[str]) -> dict:
    run = measure_node(node, seconds, WARM_UP_S, join_s=20)
    busy_rates = [run.rates[k] for k in busy] or [ANALYSIS_FPS]
    busy_drops = int(sum(run.drops[k] for k in busy))
    return {"cpu_per_camera_s": round(run.cpu / (len(run.rates) * run.wall), 4), "cameras": len(run.rates),
            "busy": len(busy), "min_busy_fps": round(min(busy_rates), 2), "busy_drops": busy_drops,
            "max_lag_s": round(max(run.lags), 2),
            "keeps_up": min(busy_rates) >= 0.9 * ANALYSIS_FPS and busy_drops == 0 and max(run.lags) < 2 * GOP_S + 1}


def city_trial(streams: dict[str, dict[str, Path]], busy: int, quiet: int, seconds: float, interval: int = 0) -> dict:
    """``busy`` + ``quiet`` cameras, every main stream recorded, in this (fresh) process; ``interval``: the
    detector's (analysed frames between two detections)."""
    cameras = [_camera(f"busy{i:03d}", streams["busy"]) for i in range(busy)]
    cameras += [_camera(f"quiet{i:03d}", streams["quiet"]) for i in range(quiet)]
    config = Config(cameras=cameras, detector=DetectorConfig(interval=interval))
    with tempfile.TemporaryDirectory(prefix="vigil-city-") as work:
        url = f"sqlite:///{work}/vigil.db"
        upgrade(url, "heads")
        store = open_store(url, migrate=False)
        index = RecordingIndex(store, work)
        recorders = {c.id: Recorder(c.id, index, RecordingConfig(mode="continuous", segment_seconds=10))
                     for c in cameras}
        node = Node(config, create_detector(config.detector),
                    packet_hooks={k: r.on_packet for k, r in recorders.items()})
        result = _measure(node, seconds, {c.id for c in cameras[:busy]})
        recording = [r.status() for r in recorders.values()]
        for recorder in recorders.values():
            recorder.close()
        result["recording"] = sum(s == "recording" for s in recording)
        result["recorded_bytes"] = sum(r.bytes_written for r in recorders.values())
        store.close()
    return result


def naive_decode(main: Path, cameras: int, seconds: float) -> float:
    """CPU-seconds per camera-second decoding the main stream fully (frames sampled to 5 fps and converted)."""
    return decode_cpu([CameraConfig(id=f"nvr{i}", url=str(main), loop=True, realtime=True, fps=ANALYSIS_FPS)
                       for i in range(cameras)], seconds)


class _Watched:
    """The detector, noting whether its last call found anything (one camera: one image per call)."""

    def __init__(self, detector: Detector) -> None:
        self.detector, self.found = detector, False

    def detect(self, images: list) -> list:
        out = self.detector.detect(images)
        self.found = any(len(d) for d in out)
        return out


def first_detection(clip: Path, keyframes_when_quiet: bool, detector: Detector) -> float | None:
    """Stream time of the first analysed frame in which the detector found someone (tracks play no part)."""
    config = Config(cameras=[CameraConfig(id="entry", url=str(clip), fps=ANALYSIS_FPS, realtime=False,
                                          keyframes_when_quiet=keyframes_when_quiet)])
    watched = _Watched(detector)
    node = Node(config, watched, start_time=T0, queue_size=1)  # type: ignore[arg-type]
    found: list[float] = []
    node.on_result.append(lambda r: r.frame is not None and r.detected and watched.found and found.append(r.frame.pts))
    node.start().run(until_end=True)
    return found[0] if found else None


def first_detection_delays(folder: Path, offsets: tuple[float, ...] = (0.0, 0.4, 0.8, 1.2, 1.6)) -> dict:
    """Stream-time delay of the first detection with keyframes-only decoding while quiet, against every frame
    decoded, with the clip cut at several offsets so that the entry falls at different phases of the GOP."""
    detector = create_detector(Config().detector)
    delays = []
    for offset in offsets:
        clip = _encode(["-ss", f"{offset:g}", "-i", str(data_file("video/intel_one-by-one-person-detection.mp4")),
                        "-t", f"{ENTRY_CLIP_S:g}"], folder / f"entry-{offset:g}.mp4", SUB)
        full, quiet = (first_detection(clip, mode, detector) for mode in (False, True))
        if full is not None and quiet is not None:
            delays.append(round(quiet - full, 2))
    return {"gop_s": GOP_S, "delays_s": delays, "max_s": max(delays, default=None),
            "mean_s": round(statistics.fmean(delays), 3) if delays else None}


def run_city_bench(mixes: list[int], busy_counts: list[int], seconds: float = 15.0, per_class: int = 10,
                   work_dir: Path = Path("out"), step: Callable[[str], None] = lambda _s: None,
                   interval: int = 0) -> dict:
    """The whole city profile; ``mixes``: total camera counts tried at 20% busy; ``busy_counts``: all-busy counts."""
    streams = make_streams(work_dir / "city-streams")
    step(f"{per_class} busy cameras")
    busy = isolated(city_trial, streams, per_class, 0, seconds, interval)
    step(f"{per_class} quiet cameras")
    quiet = isolated(city_trial, streams, 0, per_class, seconds, interval)
    step("naive decode of the main streams")
    naive = {kind: isolated(naive_decode, streams[kind]["main"], per_class // 2, seconds) for kind in streams}
    trials = []
    for total in mixes:
        step(f"city mix of {total} cameras")
        trial = isolated(city_trial, streams, round(total * 0.2), total - round(total * 0.2), seconds, interval)
        trials.append(trial)
        if not trial["keeps_up"]:
            break
    busy_trials = []
    for n in busy_counts:
        step(f"{n} busy cameras")
        trial = isolated(city_trial, streams, n, 0, seconds, interval)
        busy_trials.append(trial)
        if not trial["keeps_up"]:
            break
    step("first detection on a quiet camera")
    delay = first_detection_delays(work_dir / "city-streams")

    def cost(trial: dict, kind: str) -> dict:
        return {"cpu_per_camera_s": trial["cpu_per_camera_s"], "decode_baseline_cpu_per_camera_s": naive[kind],
                "ratio": round(trial["cpu_per_camera_s"] / max(naive[kind], 1e-9), 3)}

    return {"city": {
        "busy": cost(busy, "busy"), "quiet": cost(quiet, "quiet"),
        "max_realtime_mixed": max((t["cameras"] for t in trials if t["keeps_up"]), default=0),
        "max_realtime_busy": max((t["cameras"] for t in busy_trials if t["keeps_up"]), default=0),
        "first_detection_delay_s": delay["max_s"],
        "first_detection": delay,
        "mixed_trials": trials, "busy_trials": busy_trials,
        "streams": {"main": f"{MAIN[0]}x{MAIN[1]}@25", "sub": f"{SUB[0]}x{SUB[1]}@25", "gop_s": GOP_S,
                    "analysed_fps": ANALYSIS_FPS, "detector_interval": interval},
        "seconds_per_trial": seconds,
    }}
