"""``vigil bench tracking``: our tracker against SORT on PETS09-S2L1, both fed the same NanoDet person detections.

The detector runs once (default ``DetectorConfig``, people only); both trackers see the identical detections
and capture times (10 fps). Scores come from ``trackeval`` (HOTA, CLEAR MOTA and ID switches, IDF1) against
the MOT ground truth; our tracker is scored on its confirmed tracks, SORT on every box it gives an id.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import supervision as sv
from rich.progress import Progress
from trackers import SORTTracker

from vigil.bench.mot import TrackingScores, evaluate_tracking, load_mot_ground_truth, pets09_paths, read_video_frames
from vigil.config import DetectorConfig, TrackerConfig
from vigil.vision.detector import create_detector
from vigil.vision.tracker import create_tracker

FPS = 10.0
SEQUENCE_FRAMES = 795
START = datetime(2009, 1, 1, tzinfo=UTC)  # PETS 2009; only differences matter


def detect_people(video: Path, max_frames: int | None, progress: Progress | None) -> tuple[list[sv.Detections],
                                                                                          np.ndarray | None]:
    """Person detections for each frame, and the last frame's image (for the picture)."""
    config = DetectorConfig()
    detector = create_detector(config)
    task = progress.add_task("detecting people", total=max_frames or SEQUENCE_FRAMES) if progress else None
    detections: list[sv.Detections] = []
    batch: list[np.ndarray] = []
    last: np.ndarray | None = None

    def flush() -> None:
        for found in detector.detect(batch):
            detections.append(found[found.class_id == 0] if len(found) else found)
        if progress and task is not None:
            progress.advance(task, len(batch))
        batch.clear()

    for image in read_video_frames(video, max_frames):
        batch.append(image)
        last = image
        if len(batch) == config.max_batch:
            flush()
    if batch:
        flush()
    return detections, last


def track_ours(detections: Iterable[sv.Detections], config: TrackerConfig) -> list[sv.Detections]:
    """Run our tracker; each frame's detections of confirmed tracks."""
    tracker = create_tracker(config, camera_id="pets09", fps=FPS)
    out = []
    for index, found in enumerate(detections):
        out.append(tracker.update(found, START + timedelta(seconds=index / FPS)).confirmed_detections())
    return out


def track_reference(detections: Iterable[sv.Detections]) -> list[sv.Detections]:
    """Run SORT from ``trackers`` with its defaults (at 10 fps); each frame's boxes that got an id."""
    tracker = SORTTracker(frame_rate=FPS)
    out = []
    for found in detections:
        result = tracker.update(found)
        out.append(result[result.tracker_id >= 0] if len(result) else result)
    return out


def annotate(image: np.ndarray, tracked: list[sv.Detections]) -> np.ndarray:
    """The last frame with our boxes, track ids and the trails of the last few seconds."""
    trace = sv.TraceAnnotator(trace_length=int(4 * FPS), thickness=2, position=sv.Position.BOTTOM_CENTER,
                             color_lookup=sv.ColorLookup.TRACK)
    for frame in tracked[-int(4 * FPS):-1]:
        trace.annotate(image.copy(), frame)  # feeds the trail history
    final = tracked[-1]
    canvas = trace.annotate(image.copy(), final)
    canvas = sv.BoxAnnotator(thickness=2, color_lookup=sv.ColorLookup.TRACK).annotate(canvas, final)
    labels = [f"#{int(i)}" for i in final.tracker_id] if len(final) else []
    canvas = sv.LabelAnnotator(text_scale=0.5, text_padding=3, color_lookup=sv.ColorLookup.TRACK).annotate(
        canvas, final, labels)
    cv2.putText(canvas, f"vigil tracker, frame {len(tracked)}", (10, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.7,
                (255, 255, 255), 2)
    return canvas


def _scores(name: str, scores: TrackingScores) -> dict:
    return {"name": name, "hota": round(scores.hota, 4), "mota": round(scores.mota, 4),
            "idf1": round(scores.idf1, 4), "idsw": scores.idsw}


def run_tracking_bench(max_frames: int | None = None, image_path: Path | None = None,
                       progress: Progress | None = None, config: TrackerConfig | None = None) -> dict:
    """Evaluate our tracker (``config``, default ``TrackerConfig()``) and SORT on PETS09-S2L1."""
    config = config or TrackerConfig()
    video, gt_path = pets09_paths()
    detections, last_image = detect_people(video, max_frames, progress)
    truth = load_mot_ground_truth(gt_path, num_frames=len(detections))
    ours = track_ours(detections, config)
    reference = track_reference(detections)
    if image_path is not None and last_image is not None:
        image_path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(image_path), annotate(last_image, ours))
    return {
        "frames": len(detections),
        "detector": DetectorConfig().model,
        "ours": _scores(f"vigil-{config.kind}", evaluate_tracking(truth, ours)),
        "reference": _scores("sort", evaluate_tracking(truth, reference)),
    }
