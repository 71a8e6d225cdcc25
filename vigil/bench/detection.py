"""``vigil bench detection``: person detection on PETS09-S2L1 against its MOT ground truth.

AP50 comes from the full precision/recall curve (detector run at a low score threshold, COCO-style
101-point AP from ``supervision.metrics``); precision, recall and F1 are taken at the configured
threshold. Speed is measured in the same run with a 1-thread and a 2-thread session (and batches of 8,
as the runtime batches cameras) and with two 1-thread sessions sharing batches of 8 (the runtime's
default), for every model side by side.
"""

from __future__ import annotations

import time
from itertools import islice
from pathlib import Path

import cv2
import numpy as np
import supervision as sv
from rich.progress import Progress
from supervision.metrics import F1Score, MeanAveragePrecision, Precision, Recall

from vigil.bench.mot import load_mot_ground_truth, pets09_paths, read_video_frames
from vigil.config import DETECTOR_MODELS, DetectorConfig
from vigil.vision.detector import NanoDetDetector, create_detector

CURVE_THRESHOLD = 0.05  # low enough to trace the whole precision/recall curve
TIMING_FRAMES = 60


def drop_ignored(found: sv.Detections, truth: sv.Detections, ignored: sv.Detections) -> sv.Detections:
    """Remove detections of the ground truth's "ignore" marks (IoU ≥ 0.5 with one, and no real box):
    as in MOT and COCO evaluation, they count neither as hits nor as false alarms."""
    if len(found) == 0 or len(ignored) == 0:
        return found
    on_ignored = sv.box_iou_batch(found.xyxy, ignored.xyxy).max(axis=1) >= 0.5
    if len(truth):
        on_ignored &= sv.box_iou_batch(found.xyxy, truth.xyxy).max(axis=1) < 0.5
    return found[~on_ignored]


def time_detector(images: list[np.ndarray], model: str, threads: int, batch: int = 1, sessions: int = 1) -> float:
    """Milliseconds per frame (pre- and post-processing included) in batches of ``batch``, after a warm-up."""
    detector = create_detector(DetectorConfig(model=model, classes=["person"], threads=threads, sessions=sessions,
                                              max_batch=batch))
    detector.detect(images[:batch])
    start = time.perf_counter()
    for first in range(0, len(images), batch):
        detector.detect(images[first : first + batch])
    return (time.perf_counter() - start) / len(images) * 1000


def annotate(image: np.ndarray, truth: sv.Detections, found: sv.Detections) -> np.ndarray:
    """Ground truth in green, detections in red with their confidence."""
    canvas = sv.BoxAnnotator(color=sv.Color.GREEN, thickness=2).annotate(image.copy(), truth)
    canvas = sv.BoxAnnotator(color=sv.Color.RED, thickness=1).annotate(canvas, found)
    labels = [f"{c:.2f}" for c in found.confidence]
    canvas = sv.LabelAnnotator(color=sv.Color.RED, text_scale=0.4, text_padding=2).annotate(canvas, found, labels)
    cv2.putText(canvas, "green: ground truth   red: NanoDet", (10, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6,
                (255, 255, 255), 2)
    return canvas


def run_detection_bench(max_frames: int | None = None, image_path: Path | None = None,
                        progress: Progress | None = None, config: DetectorConfig | None = None) -> dict:
    """Evaluate person detection on PETS09-S2L1 with the configured model, and side by side with the
    other NanoDet models in the same run; returns the machine-readable result."""
    config = config or DetectorConfig()
    video, gt_path = pets09_paths()
    truth = load_mot_ground_truth(gt_path, num_frames=795)
    for detections in truth:  # supervision needs matching class ids; MOT ids are not classes
        detections.tracker_id = None
    ignored = load_mot_ground_truth(gt_path, num_frames=795, ignored=True)
    truth = truth[: len(truth) if max_frames is None else max_frames]
    timing_images = list(islice(read_video_frames(video, max_frames), 0, TIMING_FRAMES * 5, 5))  # every 5th frame
    models = [config.model, *(m for m in DETECTOR_MODELS if m != config.model)]
    results = {}
    for model in models:
        scores = evaluate(config.model_copy(update={"model": model}), video, truth, ignored, progress)
        if progress:
            progress.update(progress.task_ids[-1], description=f"{model}: timing threads and sessions")
        scores["ms_per_frame"] = {f"threads_{n}": round(time_detector(timing_images, model, n), 2) for n in (1, 2)}
        # the runtime batches frames of several cameras, 8 at a time by default, dealt out between two
        # single-threaded sessions (its default) or run by one session with two threads
        scores["ms_per_frame"]["threads_2_batch_8"] = round(time_detector(timing_images, model, 2, batch=8), 2)
        scores["ms_per_frame"]["sessions_2_batch_8"] = round(
            time_detector(timing_images, model, 1, batch=8, sessions=2), 2)
        results[model] = scores
    main = results[config.model]
    if image_path is not None:
        index = (min(200, len(truth) - 1) // 5) * 5
        found = main["_thresholded"][index]
        image_path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(image_path), annotate(timing_images[index // 5], truth[index], found))
    for scores in results.values():
        scores.pop("_thresholded", None)
    return {
        "model": config.model,
        "frames": len(truth),
        "score_threshold": config.score_threshold,
        **main,
        "models": results,
        "speedup_2_threads": {m: round(results[m]["ms_per_frame"]["threads_2"] / main["ms_per_frame"]["threads_2"], 2)
                              for m in models[1:]},
        "image": str(image_path) if image_path else None,
    }


def evaluate(config: DetectorConfig, video: Path, truth: list[sv.Detections], ignored: list[sv.Detections],
             progress: Progress | None) -> dict:
    """AP50 over the whole curve, and precision/recall/F1 at the configured threshold, for one model."""
    curve = NanoDetDetector(config.model_copy(update={"classes": ["person"], "score_threshold": CURVE_THRESHOLD}))
    task = progress.add_task(f"{config.model}: detecting", total=len(truth)) if progress else None
    predictions: list[sv.Detections] = []
    for image in read_video_frames(video, len(truth)):
        predictions.append(curve.detect([image])[0])
        if progress:
            progress.advance(task)
    predictions = [drop_ignored(p, t, i) for p, t, i in zip(predictions, truth, ignored, strict=False)]
    m_ap = MeanAveragePrecision().update(predictions, truth).compute()
    thresholded = [p[p.confidence >= config.score_threshold] for p in predictions]
    return {
        "person_ap50": round(float(m_ap.map50), 4),
        "precision": round(float(Precision().update(thresholded, truth).compute().precision_at_50), 4),
        "recall": round(float(Recall().update(thresholded, truth).compute().recall_at_50), 4),
        "f1": round(float(F1Score().update(thresholded, truth).compute().f1_50), 4),
        "_thresholded": thresholded,
    }
