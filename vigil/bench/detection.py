"""``vigil bench detection``: person detection on PETS09-S2L1 against its MOT ground truth.

AP50 comes from the full precision/recall curve (detector run at a low score threshold, COCO-style
101-point AP from ``supervision.metrics``); precision, recall and F1 are taken at the configured
threshold. Speed is measured in the same run with a 1-thread and a 2-thread session, side by side.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import supervision as sv
from rich.progress import Progress
from supervision.metrics import F1Score, MeanAveragePrecision, Precision, Recall

from vigil.bench.mot import load_mot_ground_truth, pets09_paths, read_video_frames
from vigil.config import DetectorConfig
from vigil.vision.detector import NanoDetDetector

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


def time_detector(images: list[np.ndarray], threads: int) -> float:
    """Milliseconds per frame for one image at a time, after a warm-up."""
    detector = NanoDetDetector(DetectorConfig(classes=["person"]), threads=threads)
    detector.detect(images[:2])
    start = time.perf_counter()
    for image in images:
        detector.detect([image])
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
    """Evaluate person detection on PETS09-S2L1; returns the machine-readable result."""
    config = config or DetectorConfig()
    video, gt_path = pets09_paths()
    truth = load_mot_ground_truth(gt_path, num_frames=795)
    curve = NanoDetDetector(config.model_copy(update={"classes": ["person"], "score_threshold": CURVE_THRESHOLD}))
    task = progress.add_task("detecting", total=max_frames or len(truth)) if progress else None
    predictions: list[sv.Detections] = []
    sample: tuple[np.ndarray, int] | None = None
    timing_images: list[np.ndarray] = []
    for index, image in enumerate(read_video_frames(video, max_frames)):
        predictions.append(curve.detect([image])[0])
        if len(timing_images) < TIMING_FRAMES and index % 5 == 0:
            timing_images.append(image)
        if index == 200:
            sample = (image, index)
        if progress:
            progress.advance(task)
    truth = truth[: len(predictions)]
    for detections in truth:  # supervision needs matching class ids; MOT ids are not classes
        detections.tracker_id = None
    ignored = load_mot_ground_truth(gt_path, num_frames=795, ignored=True)
    predictions = [drop_ignored(p, t, i) for p, t, i in zip(predictions, truth, ignored, strict=False)]
    m_ap = MeanAveragePrecision().update(predictions, truth).compute()
    thresholded = [p[p.confidence >= config.score_threshold] for p in predictions]
    precision = float(Precision().update(thresholded, truth).compute().precision_at_50)
    recall = float(Recall().update(thresholded, truth).compute().recall_at_50)
    f1 = float(F1Score().update(thresholded, truth).compute().f1_50)
    if progress:
        progress.update(task, description="timing 1 and 2 threads")
    ms_1 = time_detector(timing_images, threads=1)
    ms_2 = time_detector(timing_images, threads=2)
    if image_path is not None:
        image, index = sample or (timing_images[-1], (len(timing_images) - 1) * 5)
        image_path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(image_path), annotate(image, truth[index], thresholded[index]))
    return {
        "model": "nanodet",
        "frames": len(predictions),
        "score_threshold": config.score_threshold,
        "person_ap50": round(float(m_ap.map50), 4),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "ms_per_frame": {"threads_1": round(ms_1, 2), "threads_2": round(ms_2, 2)},
        "image": str(image_path) if image_path else None,
    }
