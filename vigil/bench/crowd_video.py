"""Crowd counting through the real pipeline on a real camera: ``video/<name>.mp4`` against
``crowd/<name>_video_counts.csv`` (``frame,count``, the true head count of each frame, frames from 1).

The video runs through a ``Node`` (reader, detector, tracker, rule engine) with one zone over the whole
picture and a crowd rule counting by ``auto``; the density maps are made inline every ``interval_s`` of
capture time, so that the file can be replayed faster than real time and still get every map. Each second
of capture time is compared with the mean true count of its frames, for the configured method and, from the
same run, for tracks alone and the density map alone.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np

from vigil.analytics.crowd import PERSON
from vigil.bench.crowd import errors
from vigil.config import parse_config
from vigil.errors import DataError
from vigil.paths import data_file
from vigil.runtime import FrameResult, Node
from vigil.types import TrackState
from vigil.vision.detector import create_detector

Progress = Callable[[int, int], None]
START = datetime(2026, 1, 1, tzinfo=UTC)
ZONE = "all"


def true_counts(path: Path) -> dict[int, int]:
    """Frame number (from 1) → true count."""
    try:
        with open(path, newline="") as handle:
            return {int(row["frame"]): int(row["count"]) for row in csv.DictReader(handle)}
    except (KeyError, ValueError) as exc:
        raise DataError(f"{path}: expected columns frame,count ({exc})") from None


def run_crowd_video_check(name: str = "mall", interval_s: float = 5.0, progress: Progress | None = None,
                          image_path: Path | None = None) -> dict:
    video = data_file(f"video/{name}.mp4")
    truth = true_counts(data_file(f"crowd/{name}_video_counts.csv"))
    capture = cv2.VideoCapture(str(video))
    width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    fps = capture.get(cv2.CAP_PROP_FPS) or 2.0
    capture.release()
    if width <= 0 or height <= 0:
        raise DataError(f"{video}: not a readable video")
    config = parse_config({
        "cameras": [{
            "id": name, "url": str(video), "fps": fps, "realtime": False,
            "zones": [{"name": ZONE, "polygon": [[0, 0], [width, 0], [width, height], [0, height]]}],
            "rules": {"zone_events": False, "crowd": {"method": "auto", "interval_s": interval_s,
                                                       "threshold": 10_000}},
        }],
    }, f"crowd video check on {video}")
    node = Node(config, create_detector(config.detector), start_time=START, density_inline=True)
    counter = node.pipelines[name].rules.counter
    per_second: dict[int, dict[str, list[float]]] = {}

    def record(result: FrameResult) -> None:
        if result.frame is None:
            return
        second = int((result.frame.captured_at - START).total_seconds())
        frame_number = round((result.frame.captured_at - START).total_seconds() * fps) + 1
        tracked = sum(1 for t in result.update.active if t.label == PERSON and t.state is TrackState.CONFIRMED)
        density = counter.latest.count if counter.latest is not None else None
        slot = per_second.setdefault(second, {"truth": [], "auto": [], "detections": [], "density": []})
        if frame_number in truth:
            slot["truth"].append(truth[frame_number])
        slot["auto"].append(result.output.live_counts.get(ZONE, {}).get(PERSON, 0))
        slot["detections"].append(tracked)
        if density is not None:
            slot["density"].append(density)
        if progress:
            progress(frame_number, len(truth))

    node.on_result.append(record)
    node.start().run(until_end=True)
    seconds = [s for s, v in sorted(per_second.items()) if v["truth"] and v["density"]]
    if not seconds:
        raise DataError(f"{video}: no analysed second matched {name}_video_counts.csv")
    true = [float(np.mean(per_second[s]["truth"])) for s in seconds]
    methods = {m: errors([float(np.mean(per_second[s][m])) for s in seconds], true)
               for m in ("auto", "detections", "density")}
    result = {
        "video": f"video/{name}.mp4",
        "seconds": len(seconds),
        "truth_range": [min(true), max(true)],
        "interval_s": interval_s,
        "density_maps": node.density.maps if node.density is not None else 0,
        "methods": methods,
        "series": [{"second": s, "truth": round(t, 1),
                    **{m: round(float(np.mean(per_second[s][m])), 1) for m in ("auto", "detections", "density")}}
                   for s, t in zip(seconds, true, strict=True)],
    }
    if image_path is not None:
        save_chart(image_path, result)
        result["image_path"] = str(image_path)
    return result


def save_chart(path: Path, result: dict) -> None:
    """True and counted people per second, for each method."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    series = result["series"]
    seconds = [row["second"] for row in series]
    figure, axes = plt.subplots(figsize=(11, 4), dpi=100)
    axes.plot(seconds, [row["truth"] for row in series], color="black", linewidth=2, label="true (head points)")
    for method, colour in (("auto", "tab:red"), ("density", "tab:orange"), ("detections", "tab:blue")):
        mae = result["methods"][method]["mae"]
        axes.plot(seconds, [row[method] for row in series], color=colour, linewidth=1.2,
                  linestyle="--" if method == "density" else "-", label=f"{method} (MAE {mae})")
    axes.set_xlabel("second of video")
    axes.set_ylabel("people")
    axes.set_title(f"{result['video']}: people per second, density map every {result['interval_s']:g} s")
    axes.legend(loc="upper right", fontsize=8)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
