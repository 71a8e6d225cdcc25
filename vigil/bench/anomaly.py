"""``vigil bench anomaly``: our rules against labelled abnormal events (UCSD Ped2 layout).

A set is ``$VIGIL_DATA/anomaly/<set>/``: ``frames/NN/NNN.jpg`` (one folder per clip, files in order, the first
file is frame 1) and ``labels.csv`` (``clip,first_abnormal_frame,last_abnormal_frame,frames``, frames from 1,
an empty range for a normal clip). Each clip runs alone through the real per-camera pipeline (NanoDet, the
tracker, the rule engine) with the scene config ``scenes/ucsd_ped2.yaml``, every frame analysed at ``FPS``.

- **Frame score**: the maximum over the frame's confirmed tracks of
  ``1 + confidence`` for a track of a ``forbidden_class`` class in a watched zone, and
  ``speed / running threshold`` (box heights/s, or m/s with a homography) for a track of the running rule's
  classes; 0 with no such track. A score ≥ 1 is what the rules would call abnormal, before their durations.
- **AUC**: ROC AUC of the frame score against the labels, all frames of all clips pooled (ties count half).
- **Alerts**: our events of severity warning or critical, each at the frame that raised it. Precision = alerts
  inside their clip's labelled range / all alerts; recall = clips with a labelled range and at least one alert
  inside it / clips with a labelled range (among the frames analysed).
"""

from __future__ import annotations

import csv
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import matplotlib
import numpy as np
from rich.progress import Progress

from vigil.analytics.behaviour import track_speed
from vigil.config import Config, load_config
from vigil.demo.artefacts import draw_scene
from vigil.errors import DataError
from vigil.paths import data_file
from vigil.runtime import CameraPipeline
from vigil.types import Event, Frame, Track, TrackState
from vigil.vision.detector import Detector, create_detector

matplotlib.use("Agg")
import matplotlib.pyplot as plt

FPS = 10.0  # UCSD Ped1/Ped2 were recorded at 10 frames per second
SCENE = Path(__file__).parent / "scenes" / "ucsd_ped2.yaml"
START = datetime(2010, 1, 1, tzinfo=UTC)
ALERT_SEVERITIES = ("warning", "critical")
#: published frame-level AUCs on UCSD Ped2 (all 12 test clips), for context
ANCHORS = {"mppca": 0.69, "mnad_park_cvpr2020": 0.97}


@dataclass(slots=True)
class Clip:
    """One labelled clip: its frame files (frame n is ``frames[n - 1]``) and abnormal range (None: normal)."""

    name: str
    frames: list[Path]
    abnormal: tuple[int, int] | None

    def is_abnormal(self, frame: int) -> bool:
        return self.abnormal is not None and self.abnormal[0] <= frame <= self.abnormal[1]


def load_set(folder: Path) -> list[Clip]:
    """The clips of a set folder (``frames/<clip>/`` and ``labels.csv``); DataError when malformed."""
    labels = folder / "labels.csv"
    try:
        with labels.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise DataError(f"{labels}: cannot read ({exc.strerror})") from None
    clips = []
    for row in rows:
        try:
            name, first, last = row["clip"], row["first_abnormal_frame"], row["last_abnormal_frame"]
            span = (int(first), int(last)) if first and last and int(first) > 0 else None
        except (KeyError, ValueError):
            raise DataError(f"{labels}: expected clip,first_abnormal_frame,last_abnormal_frame,frames") from None
        frames = sorted((folder / "frames" / name).glob("*.jpg"))
        if frames:  # a subset folder may hold only some clips
            clips.append(Clip(name, frames, span))
    if not clips:
        raise DataError(f"no clip of {labels} has frames in {folder / 'frames'}")
    return clips


def roc_auc(scores: np.ndarray | list[float], labels: np.ndarray | list[bool]) -> float | None:
    """ROC AUC by the rank (Mann–Whitney U) formula, ties counted half; None without both classes."""
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels, bool)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if not positives or not negatives:
        return None
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], len(scores)]
    for start, end in zip(starts, ends, strict=True):
        ranks[order[start:end]] = (start + end + 1) / 2  # average rank (from 1) of a tie group
    u = ranks[labels].sum() - positives * (positives + 1) / 2
    return float(u / (positives * negatives))


def scene_config(path: Path = SCENE) -> Config:
    """The bench's scene, through the normal config loader."""
    return load_config(path)


def track_score(pipeline: CameraPipeline, track: Track) -> float:
    """One track's abnormality (module doc): forbidden class in a watched zone, or speed over the running rule's."""
    rules = pipeline.rules
    score = 0.0
    forbidden = rules.forbidden
    if forbidden is not None and track.label in forbidden.rule.classes and forbidden.watched_zone(track) is not None:
        score = 1.0 + track.confidence
    running = rules.running
    if running is not None and track.label in running.rule.classes:
        estimate = track_speed(track, rules.mapper)
        if estimate is not None:
            score = max(score, estimate[0] / running.threshold)
    return score


@dataclass(slots=True)
class ClipRun:
    """What the pipeline made of one clip."""

    scores: list[float] = field(default_factory=list)  # per frame, from frame 1
    alerts: list[tuple[int, Event]] = field(default_factory=list)  # (frame, event)
    seconds: float = 0.0  # detection + tracking + rules
    picture: np.ndarray | None = None  # annotated frame: the first alert, else the highest score
    picture_frame: int = 0


def run_clip(config: Config, detector: Detector, clip: Clip, max_frames: int | None = None,
             progress: Progress | None = None, task: int | None = None, picture: bool = True) -> ClipRun:
    """Run the camera pipeline over one clip's frames (frame n captured at (n − 1) / FPS)."""
    camera = config.cameras[0]
    pipeline = CameraPipeline(camera, config.tracker, motion_gate=False, interval=config.detector.interval)
    run = ClipRun()
    best = -1.0
    start = at = START
    for number, path in enumerate(clip.frames[:max_frames], start=1):
        image = cv2.imread(str(path))
        if image is None:
            raise DataError(f"{path}: cannot read the image")
        at = start + timedelta(seconds=(number - 1) / FPS)
        frame = Frame(camera.id, at, number, image)
        began = time.perf_counter()
        detections = detector.detect([image])[0] if pipeline.needs_detection(frame) else None
        result = pipeline.process(frame, detections)
        run.seconds += time.perf_counter() - began
        tracks = [t for t in result.update.active if t.state is TrackState.CONFIRMED]
        scores = {t.track_id: track_score(pipeline, t) for t in tracks}
        run.scores.append(max(scores.values(), default=0.0))
        alerts = [e for e in result.output.events if e.severity in ALERT_SEVERITIES]
        run.alerts += [(number, e) for e in alerts]
        first_alert = bool(alerts) and len(run.alerts) == len(alerts)
        if picture and (first_alert or (not run.alerts and run.scores[-1] > best)):
            best = run.scores[-1]
            run.picture = annotate(image, config, tracks, scores, alerts, f"clip {clip.name} frame {number}")
            run.picture_frame = number
        if progress is not None and task is not None:
            progress.advance(task)
    if (last := pipeline.finish(at)) is not None:
        run.alerts += [(len(run.scores), e) for e in last.output.events if e.severity in ALERT_SEVERITIES]
    return run


def annotate(image: np.ndarray, config: Config, tracks: list[Track], scores: dict[int, float],
             alerts: list[Event], title: str) -> np.ndarray:
    """The frame with the zones, each confirmed track (red: alerted now, orange: score ≥ 1) and the alerts."""
    canvas = draw_scene(image, config.cameras[0])
    alerted = {e.track_id for e in alerts}
    for track in tracks:
        score = scores.get(track.track_id, 0.0)
        colour = (0, 0, 255) if track.track_id in alerted else (0, 140, 255) if score >= 1 else (0, 200, 0)
        x1, y1, x2, y2 = map(int, track.box)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, 2 if colour != (0, 200, 0) else 1)
        if colour != (0, 200, 0):
            cv2.putText(canvas, f"{track.label} {score:.1f}", (x1, max(10, y1 - 3)), cv2.FONT_HERSHEY_SIMPLEX,
                        0.35, colour, 1, cv2.LINE_AA)
    lines = [title] + [f"{e.kind} #{e.track_id} {e.label}" for e in alerts]
    for i, text in enumerate(lines):
        cv2.putText(canvas, text, (6, 16 + 16 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 255) if i else
                    (255, 255, 255), 1, cv2.LINE_AA)
    return canvas


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(float(value), digits)


def clip_report(clip: Clip, run: ClipRun) -> dict:
    """Per-clip detail: alerts, how many inside the labelled range, first alert vs first abnormal frame, scores."""
    scores = np.asarray(run.scores)
    abnormal = np.array([clip.is_abnormal(n) for n in range(1, len(scores) + 1)], bool)
    inside = [n for n, _ in run.alerts if clip.is_abnormal(n)]
    first_alert = min((n for n, _ in run.alerts), default=None)
    first_abnormal = clip.abnormal[0] if clip.abnormal else None
    first_inside = min(inside, default=None)

    def summary(part: np.ndarray) -> dict:
        return {"frames": len(part), "mean": _round(part.mean()) if len(part) else None,
                "max": _round(part.max()) if len(part) else None,
                "at_least_1": int((part >= 1).sum())}

    return {
        "frames": len(scores),
        "abnormal": list(clip.abnormal) if clip.abnormal else None,
        "alerts": [{"frame": n, "kind": e.kind, "label": e.label, "track_id": e.track_id,
                    "inside": clip.is_abnormal(n)} for n, e in run.alerts],
        "alert_count": len(run.alerts),
        "inside": len(inside),
        "first_alert_frame": first_alert,
        "first_abnormal_frame": first_abnormal,
        "first_alert_inside_delay_frames": (first_inside - max(first_abnormal, 1))
        if first_inside is not None and first_abnormal is not None else None,
        "auc": _round(roc_auc(scores, abnormal), 4),
        "score": {"normal": summary(scores[~abnormal]), "abnormal": summary(scores[abnormal])},
    }


def run_anomaly_bench(set_name: str = "ucsd_ped2", image_path: Path | None = None,
                      progress: Progress | None = None, scene: Path = SCENE,
                      max_frames: int | None = None) -> dict:
    """Run the scene's rules over every clip of ``anomaly/<set_name>``; the figures of the module doc."""
    clips = load_set(data_file(f"anomaly/{set_name}"))
    config = scene_config(scene)
    detector = create_detector(config.detector)
    total = sum(len(c.frames[:max_frames]) for c in clips)
    task = progress.add_task(f"anomaly/{set_name}", total=total) if progress else None
    runs = [run_clip(config, detector, clip, max_frames, progress, task, picture=image_path is not None)
            for clip in clips]
    scores = np.concatenate([r.scores for r in runs])
    labels = np.concatenate([[c.is_abnormal(n) for n in range(1, len(r.scores) + 1)]
                             for c, r in zip(clips, runs, strict=True)])
    alerts = [(c, n, e) for c, r in zip(clips, runs, strict=True) for n, e in r.alerts]
    inside = sum(c.is_abnormal(n) for c, n, _ in alerts)
    # clips with labelled frames among those analysed (``max_frames`` may cut a range off)
    labelled = [(c, r) for c, r in zip(clips, runs, strict=True)
                if any(c.is_abnormal(n) for n in range(1, len(r.scores) + 1))]
    caught = sum(any(c.is_abnormal(n) for n, _ in r.alerts) for c, r in labelled)
    kinds = Counter(e.kind for _, _, e in alerts)
    inside_kinds = Counter(e.kind for c, n, e in alerts if c.is_abnormal(n))
    report = {
        "set": set_name,
        "clips_count": len(clips),
        "frames": len(scores),
        "abnormal_frames": int(labels.sum()),
        "fps_assumed": FPS,
        "scene": str(scene.relative_to(SCENE.parents[2])) if scene.is_relative_to(SCENE.parents[2]) else str(scene),
        "detector": config.detector.model,
        "auc": _round(roc_auc(scores, labels), 4),
        "anchors_auc": ANCHORS,
        "alerts": {
            "precision": _round(inside / len(alerts), 4) if alerts else None,
            "recall": _round(caught / len(labelled), 4) if labelled else None,
            "count": len(alerts), "inside": int(inside),
            "clips_labelled": len(labelled), "clips_alerted_inside": int(caught),
            "by_kind": {k: {"count": n, "inside": inside_kinds[k]} for k, n in sorted(kinds.items())},
        },
        "clips": {c.name: clip_report(c, r) for c, r in zip(clips, runs, strict=True)},
        "ms_per_frame": round(1000 * sum(r.seconds for r in runs) / max(len(scores), 1), 1),
    }
    if image_path is not None:
        report["image"] = str(draw_figure(clips, runs, image_path, report["auc"]))
    return report


def draw_figure(clips: list[Clip], runs: list[ClipRun], path: Path, auc: float | None) -> Path:
    """Per clip: the score curve with the labelled range shaded and the alerts marked, beside the annotated frame."""
    fig, axes = plt.subplots(len(clips), 2, figsize=(13, 2.4 * len(clips)), dpi=90,
                             gridspec_kw={"width_ratios": [2, 1.25]}, squeeze=False)
    for (curve, picture), clip, run in zip(axes, clips, runs, strict=True):
        frames = np.arange(1, len(run.scores) + 1)
        if clip.abnormal is not None:
            curve.axvspan(clip.abnormal[0] - 0.5, clip.abnormal[1] + 0.5, color="tab:red", alpha=0.15,
                          label="labelled abnormal")
        curve.plot(frames, run.scores, color="tab:blue", lw=1.2, label="frame score")
        curve.axhline(1.0, color="grey", ls="--", lw=0.8)
        top = max(2.0, max(run.scores, default=0.0)) * 1.15
        for kind, colour in (("forbidden_class", "tab:red"), ("running", "tab:purple")):
            at = sorted({n for n, e in run.alerts if e.kind == kind})
            for n in at:
                curve.axvline(n, color=colour, lw=1.0)
            if at:
                curve.scatter(at, [top * 0.95] * len(at), marker="v", color=colour, zorder=3, label=f"{kind} alert")
        others = sorted({n for n, e in run.alerts if e.kind not in ("forbidden_class", "running")})
        if others:
            curve.scatter(others, [top * 0.95] * len(others), marker="v", color="black", label="other alert")
        curve.set_ylim(0, top)
        curve.set_xlim(0.5, len(run.scores) + 0.5)
        curve.set_ylabel(f"clip {clip.name}")
        curve.grid(alpha=0.3)
        picture.axis("off")
        if run.picture is not None:
            picture.imshow(cv2.cvtColor(run.picture, cv2.COLOR_BGR2RGB))
    axes[-1][0].set_xlabel("frame")
    legend: dict[str, object] = {}
    for curve, _ in axes:
        for handle, label in zip(*curve.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    fig.legend(list(legend.values()), list(legend), loc="upper center", ncol=len(legend), fontsize=8,
               bbox_to_anchor=(0.5, 0.985))
    title = f"frame score (1 = rule threshold) per clip; pooled frame-level AUC {auc if auc is not None else 'n/a'}"
    fig.suptitle(title, fontsize=11, y=0.998)
    fig.tight_layout(rect=(0, 0, 1, 0.965))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
