"""MOT-format ground truth, the PETS09-S2L1 video, and tracking metrics (HOTA, CLEAR, Identity) via ``trackeval``.

A sequence is a list of ``sv.Detections``, one per frame, with ``tracker_id`` holding the identity.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import supervision as sv

from vigil.errors import DataError
from vigil.paths import data_file

PETS09_VIDEO = "video/vtest.avi"
PETS09_GROUND_TRUTH = "mot/PETS09-S2L1/gt/gt.txt"


@dataclass(slots=True, frozen=True)
class TrackingScores:
    """One tracker's scores on one sequence (fractions 0–1, ID switches as a count)."""

    hota: float
    mota: float
    idf1: float
    idsw: int


def pets09_paths() -> tuple[Path, Path]:
    """The PETS09-S2L1 video and its MOT ground truth, or a one-line ``DataError``."""
    return data_file(PETS09_VIDEO), data_file(PETS09_GROUND_TRUTH)


def load_mot_ground_truth(path: Path, num_frames: int | None = None, ignored: bool = False) -> list[sv.Detections]:
    """Read a MOT ``gt.txt`` (``frame,id,x,y,w,h,conf,…``); item ``i`` holds frame ``i + 1``.

    Boxes with ``conf == 0`` are "ignore" marks and are dropped, as MOT15 evaluation does; with
    ``ignored=True`` only those marks are returned (a detection on one is neither right nor wrong).
    Without ``num_frames`` the sequence ends at the last annotated frame.
    """
    try:
        rows = np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float64)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable MOT ground-truth file ({exc})") from None
    if rows.size and rows.shape[1] < 7:
        raise DataError(f"{path}: MOT rows need at least 7 columns (frame,id,x,y,w,h,conf), found {rows.shape[1]}")
    rows = rows[(rows[:, 6] == 0) == ignored] if rows.size else rows.reshape(0, 7)
    frames = rows[:, 0].astype(int)
    total = num_frames if num_frames is not None else int(frames.max(initial=0))
    sequence = []
    for frame in range(1, total + 1):
        chosen = rows[frames == frame]
        xyxy = np.column_stack([chosen[:, 2], chosen[:, 3], chosen[:, 2] + chosen[:, 4], chosen[:, 3] + chosen[:, 5]])
        detections = sv.Detections(
            xyxy=xyxy.astype(np.float32).reshape(-1, 4),
            confidence=np.ones(len(chosen), dtype=np.float32),
            class_id=np.zeros(len(chosen), dtype=int),
            tracker_id=chosen[:, 1].astype(int),
            data={"class_name": np.array(["person"] * len(chosen))},
        )
        sequence.append(detections)
    return sequence


def read_video_frames(path: Path, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """Decode a video file to BGR images with PyAV, at most ``max_frames`` of them."""
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as exc:
        raise DataError(f"{path}: cannot open video ({exc})") from None
    with container:
        for index, frame in enumerate(container.decode(video=0)):
            if max_frames is not None and index >= max_frames:
                break
            yield frame.to_ndarray(format="bgr24")


def _relabel(ids_per_frame: Sequence[np.ndarray]) -> tuple[list[np.ndarray], int]:
    """Map arbitrary ids to 0..n-1, as ``trackeval`` expects."""
    unique = np.unique(np.concatenate([np.asarray(ids, dtype=np.int64) for ids in ids_per_frame] or [np.empty(0)]))
    lookup = {int(value): index for index, value in enumerate(unique)}
    return [np.array([lookup[int(i)] for i in ids], dtype=int) for ids in ids_per_frame], len(unique)


def evaluate_tracking(ground_truth: Sequence[sv.Detections], hypotheses: Sequence[sv.Detections]) -> TrackingScores:
    """HOTA, MOTA, IDF1 and ID switches of ``hypotheses`` against ``ground_truth`` (same length, ids in tracker_id)."""
    import trackeval  # imported here: it is only needed by benchmarks

    if len(ground_truth) != len(hypotheses):
        raise ValueError(f"ground truth has {len(ground_truth)} frames, hypotheses {len(hypotheses)}")
    for name, sequence in (("ground truth", ground_truth), ("hypotheses", hypotheses)):
        if any(len(d) and d.tracker_id is None for d in sequence):
            raise ValueError(f"{name}: every non-empty frame needs tracker_id")
    empty = np.empty(0, dtype=int)
    gt_ids, num_gt_ids = _relabel([d.tracker_id if len(d) else empty for d in ground_truth])
    hyp_ids, num_hyp_ids = _relabel([d.tracker_id if len(d) else empty for d in hypotheses])
    data = {
        "num_timesteps": len(ground_truth),
        "num_gt_ids": num_gt_ids,
        "num_tracker_ids": num_hyp_ids,
        "num_gt_dets": sum(len(d) for d in ground_truth),
        "num_tracker_dets": sum(len(d) for d in hypotheses),
        "gt_ids": gt_ids,
        "tracker_ids": hyp_ids,
        "similarity_scores": [
            sv.box_iou_batch(gt.xyxy, hyp.xyxy) if len(gt) and len(hyp) else np.zeros((len(gt), len(hyp)))
            for gt, hyp in zip(ground_truth, hypotheses, strict=True)
        ],
    }
    hota = trackeval.metrics.HOTA().eval_sequence(data)
    quiet = {"THRESHOLD": 0.5, "PRINT_CONFIG": False}
    clear = trackeval.metrics.CLEAR(dict(quiet)).eval_sequence(data)
    identity = trackeval.metrics.Identity(dict(quiet)).eval_sequence(data)
    return TrackingScores(
        hota=float(np.mean(hota["HOTA"])),
        mota=float(clear["MOTA"]),
        idf1=float(identity["IDF1"]),
        idsw=int(clear["IDSW"]),
    )
