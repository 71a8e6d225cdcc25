"""Recording benchmark: CPU cost of remuxing a camera into fMP4 segments, next to the cost of decoding it.

Test streams are generated with ffmpeg (``testsrc2`` → libx264, 2 s GOP like a typical camera) at 720p and
1080p. The recorder's cost is the thread CPU time spent inside ``Recorder.on_packet`` (copying, muxing,
writing) while the file's packets are fed to it; the decode cost is the thread CPU time of a
single-threaded decode of the same packets. Both are divided by the video's duration: a fraction of one
core per camera. ``write_mb_s`` is the bytes written over the wall time of the remux (disk throughput).
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av

from vigil.config import RecordingConfig
from vigil.errors import DataError
from vigil.sources.recorder import Recorder
from vigil.store.db import open_store
from vigil.store.migrations import upgrade
from vigil.store.recordings import RecordingIndex

SIZES = {"720p": (1280, 720, "2M"), "1080p": (1920, 1080, "4M")}
FPS = 25


def make_test_stream(path: Path, width: int, height: int, seconds: float, bitrate: str = "2M") -> Path:
    """An H.264 MP4 of ffmpeg's ``testsrc2`` pattern (moving, with noise-free detail) at ``FPS`` fps."""
    command = [
        "ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={FPS}",
        "-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast", "-b:v", bitrate,
        "-g", str(2 * FPS), "-bf", "0", "-pix_fmt", "yuv420p", str(path),
    ]  # fmt: skip
    try:
        subprocess.run(command, check=True, capture_output=True, timeout=600)
    except FileNotFoundError:
        raise DataError("ffmpeg not found: install Debian's ffmpeg to generate benchmark streams") from None
    except subprocess.CalledProcessError as exc:
        raise DataError(f"ffmpeg could not generate {path.name}: {exc.stderr.decode().strip()[:200]}") from None
    return path


def measure_remux(video: Path, data_dir: Path, segment_seconds: float = 10.0) -> dict[str, float]:
    """Feed ``video``'s packets to a ``Recorder``; the CPU and wall time spent in it, bytes written."""
    url = f"sqlite:///{data_dir / 'bench.db'}"
    upgrade(url, "heads")
    with open_store(url, migrate=False) as store:
        index = RecordingIndex(store, data_dir)
        recorder = Recorder("bench", index, RecordingConfig(mode="continuous", segment_seconds=segment_seconds))
        cpu = wall = 0.0
        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            duration = float(stream.duration * stream.time_base) if stream.duration else 0.0
            for packet in container.demux(stream):
                if not packet.size:
                    continue
                c0, w0 = time.thread_time(), time.perf_counter()
                recorder.on_packet(packet)
                cpu += time.thread_time() - c0
                wall += time.perf_counter() - w0
            c0, w0 = time.thread_time(), time.perf_counter()
            recorder.close()
            cpu += time.thread_time() - c0
            wall += time.perf_counter() - w0
        return {"cpu_s": cpu, "wall_s": wall, "duration_s": duration, "bytes": float(recorder.bytes_written)}


def measure_decode(video: Path) -> float:
    """Thread CPU seconds of decoding every frame of ``video`` on one thread."""
    cpu = 0.0
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        for packet in container.demux(stream):
            c0 = time.thread_time()
            packet.decode()
            cpu += time.thread_time() - c0
    return cpu


def run_recording_bench(seconds: float = 20, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """``{"720p": {cpu_fraction, decode_cpu_fraction, ratio}, "1080p": {...}, "write_mb_s": ...}``."""
    say = progress or (lambda _msg: None)
    result: dict[str, Any] = {}
    written = wall = 0.0
    with tempfile.TemporaryDirectory(prefix="vigil-bench-rec-") as tmp:
        root = Path(tmp)
        for name, (width, height, bitrate) in SIZES.items():
            say(f"generating {seconds:g} s of {name} H.264")
            video = make_test_stream(root / f"{name}.mp4", width, height, seconds, bitrate)
            say(f"recording {name}")
            remux = measure_remux(video, root / name)
            say(f"decoding {name}")
            decode = measure_decode(video)
            duration = remux["duration_s"] or seconds
            result[name] = {
                "cpu_fraction": round(remux["cpu_s"] / duration, 5),
                "decode_cpu_fraction": round(decode / duration, 4),
                "ratio": round(remux["cpu_s"] / decode, 4) if decode else None,
                "mb_per_s_of_video": round(remux["bytes"] / duration / 1e6, 3),
            }
            written += remux["bytes"]
            wall += remux["wall_s"]
    result["write_mb_s"] = round(written / wall / 1e6, 1) if wall else None
    result["seconds"] = seconds
    return result
