"""``vigil bench events``: the demo's rules on our tracks against the same rules on ground-truth tracks.

Both runs see PETS09-S2L1 at the analysis rate (5 fps: every second frame of the 10 fps video) with
the same capture times. Our tracks come from the detector and tracker; the reference tracks replay
the MOT ground truth. An event of ours matches a reference event of the same kind, zone/line and
direction within ±2 s (each matched once, nearest first). Line counts are compared per line and
direction.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
from rich.progress import Progress

from vigil.analytics import RuleEngine
from vigil.analytics.ground_truth import read_mot, replay_tracks
from vigil.bench.mot import pets09_paths, read_video_frames
from vigil.config import CameraConfig, Config
from vigil.demo.artefacts import draw_scene
from vigil.demo.run import demo_config
from vigil.runtime import CameraPipeline
from vigil.types import Event, Frame
from vigil.vision.detector import create_detector

TOLERANCE = timedelta(seconds=2)
START = datetime(2009, 1, 1, tzinfo=UTC)
STEP = 2  # analyse every second frame: 10 fps → 5 fps


def _key(event: Event) -> tuple[str, str | None, str | None]:
    return event.kind, event.zone, event.payload.get("direction")


def match_events(ours: list[Event], reference: list[Event], tolerance: timedelta = TOLERANCE) -> dict[str, dict]:
    """Per kind: precision and recall of ``ours`` against ``reference`` (same key, within ``tolerance``)."""
    by_kind: dict[str, dict[str, int]] = defaultdict(lambda: {"ours": 0, "reference": 0, "matched": 0})
    pending: dict[tuple, list[Event]] = defaultdict(list)
    for event in reference:
        pending[_key(event)].append(event)
        by_kind[event.kind]["reference"] += 1
    for event in sorted(ours, key=lambda e: e.at):
        by_kind[event.kind]["ours"] += 1
        candidates = pending[_key(event)]
        near = [r for r in candidates if abs(r.at - event.at) <= tolerance]
        if near:
            candidates.remove(min(near, key=lambda r: abs(r.at - event.at)))
            by_kind[event.kind]["matched"] += 1
    return {
        kind: {
            "precision": round(c["matched"] / c["ours"], 4) if c["ours"] else None,
            "recall": round(c["matched"] / c["reference"], 4) if c["reference"] else None,
            "ours": c["ours"],
            "reference": c["reference"],
        }
        for kind, c in sorted(by_kind.items())
    }


def line_count_error(ours: dict, reference: dict) -> float:
    """Σ|ours − reference| / Σ reference over every line and direction (all classes)."""
    error = total = 0
    for line, directions in reference.items():
        for direction in ("in", "out"):
            truth = sum(directions.get(direction, {}).values())
            found = sum(ours.get(line, {}).get(direction, {}).values())
            error += abs(found - truth)
            total += truth
    return round(error / total, 4) if total else 0.0


def reference_run(camera: CameraConfig, gt_path: Path, frames: int | None) -> tuple[list[Event], dict]:
    rows = [r for r in read_mot(gt_path) if (r.frame - 1) % STEP == 0 and (frames is None or r.frame <= frames)]
    engine = RuleEngine(camera)
    events: list[Event] = []
    for tracks in replay_tracks(rows, camera.id, fps=10.0, start=START):
        if (tracks.index - 1) % STEP == 0 or tracks.ended:
            events += engine.update(tracks.active, tracks.ended, tracks.at).events
    return events, engine.line_counts()


def our_run(config: Config, video: Path, frames: int | None, progress: Progress | None,
            image_path: Path | None) -> tuple[list[Event], dict]:
    """The runtime's per-camera pipeline (detection on every analysed frame, or one in ``interval + 1``)."""
    camera = config.cameras[0]
    detector = create_detector(config.detector)
    pipeline = CameraPipeline(camera, config.tracker, motion_gate=False, interval=config.detector.interval)
    events: list[Event] = []
    task = progress.add_task("our tracks", total=(frames or 795) // STEP) if progress else None
    at = START
    for index, image in enumerate(read_video_frames(video, frames)):
        if index % STEP:
            continue
        at = START + timedelta(seconds=index / 10.0)
        frame = Frame(camera.id, at, index // STEP, image)
        result = pipeline.process(frame, detector.detect([image])[0] if pipeline.needs_detection(frame) else None)
        events += result.output.events
        if image_path is not None and index == 300:
            _save_view(image_path, image, camera, result.update.active)
        if progress:
            progress.advance(task)
    if (last := pipeline.finish(at)) is not None:
        events += last.output.events
    return events, pipeline.rules.line_counts()


def _save_view(path: Path, image, camera: CameraConfig, tracks) -> None:
    canvas = draw_scene(image, camera)
    for track in tracks:
        x1, y1, x2, y2 = map(int, track.box)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), (0, 255, 0), 2)
        cv2.putText(canvas, f"#{track.track_id}", (x1, y1 - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 255, 0), 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), canvas)


def run_events_bench(max_frames: int | None = None, image_path: Path | None = None,
                     progress: Progress | None = None, interval: int | None = None) -> dict:
    """Run the demo's rules on both track sources; precision/recall per rule and the line-count error.

    ``interval`` overrides ``detector.interval`` (analysed frames between two detections)."""
    video, gt_path = pets09_paths()
    config = demo_config(Path("out/bench-events"), video)
    if interval is not None:
        config.detector.interval = interval
    camera = config.cameras[0]
    reference, reference_lines = reference_run(camera, gt_path, max_frames)
    ours, our_lines = our_run(config, video, max_frames, progress, image_path)
    return {
        "frames": (max_frames or 795),
        "analysed_fps": 10.0 / STEP,
        "detector_interval": config.detector.interval,
        "tolerance_s": TOLERANCE.total_seconds(),
        "line_count_error": line_count_error(our_lines, reference_lines),
        "line_counts": {"ours": our_lines, "reference": reference_lines},
        "rules": match_events(ours, reference),
    }
