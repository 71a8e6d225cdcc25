"""Crowd-counting benchmark on real images with head-point ground truth (the ShanghaiTech layout).

``crowd/<set>/**/images/IMG_n.jpg`` with ``**/ground-truth/GT_IMG_n.mat`` (``image_info`` → head points).
Each image is counted three ways in one run: ``detections`` (people the node's detector finds, what the
pipeline counts from tracks), ``density`` (the CSRNet map's sum) and ``auto`` (the rule of
:func:`vigil.analytics.crowd_count.choose`, fed the two counts). MAE and RMSE per method, ms per image per path.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import scipy.io

from vigil.analytics.crowd_count import AUTO_DENSITY_FROM, NEAR_FIELD, NEAR_FIELD_MAX_RATIO, choose
from vigil.config import DetectorConfig
from vigil.errors import DataError
from vigil.paths import data_file
from vigil.vision.density import DEFAULT_MAX_SIDE, DensityCounter, DensityMap
from vigil.vision.detector import create_detector

Progress = Callable[[int, int], None]
METHODS = ("detections", "density", "auto")


@dataclass(frozen=True, slots=True)
class CrowdImage:
    path: Path
    truth: int
    heads: np.ndarray  # (n, 2) head points in image pixels


def head_points(mat_path: Path) -> np.ndarray:
    """The ``(n, 2)`` head points of a ShanghaiTech ``GT_IMG_n.mat``."""
    try:
        info = scipy.io.loadmat(mat_path)["image_info"]
        return np.asarray(info[0, 0][0, 0][0], np.float64).reshape(-1, 2)
    except (KeyError, IndexError, ValueError, OSError) as exc:
        raise DataError(f"{mat_path}: not a ShanghaiTech ground-truth file ({exc})") from None


def load_set(name: str, limit: int | None = None) -> list[CrowdImage]:
    """The images of ``crowd/<name>`` with their ground truth, in name order; ``limit`` keeps an even spread."""
    root = data_file(f"crowd/{name}")
    images = []
    for path in sorted(root.glob("**/images/IMG_*.jpg"), key=lambda p: (str(p.parent), int(p.stem.split("_")[1]))):
        truth_path = path.parent.parent / "ground-truth" / f"GT_{path.stem}.mat"
        if not truth_path.exists():
            raise DataError(f"{path}: no ground truth {truth_path}")
        heads = head_points(truth_path)
        images.append(CrowdImage(path, len(heads), heads))
    if not images:
        raise DataError(f"{root}: no **/images/IMG_n.jpg files (ShanghaiTech layout)")
    if limit and limit < len(images):
        images = [images[i] for i in np.linspace(0, len(images) - 1, limit).round().astype(int)]
    return images


def errors(counted: list[float], truth: list[int]) -> dict[str, float]:
    diff = np.asarray(counted, np.float64) - np.asarray(truth, np.float64)
    return {"mae": round(float(np.abs(diff).mean()), 2), "rmse": round(float(math.sqrt((diff**2).mean())), 2)}


def run_crowd_bench(set_name: str, limit: int | None = None, max_side: int = DEFAULT_MAX_SIDE,
                    threads: int = 2, progress: Progress | None = None, image_path: Path | None = None) -> dict:
    """MAE and RMSE of each method on one set, side by side."""
    images = load_set(set_name, limit)
    root = data_file("crowd")
    detector = create_detector(DetectorConfig(classes=["person"], sessions=1, threads=threads))
    counter = DensityCounter(max_side=max_side, threads=threads)
    rows: list[dict] = []
    worst: tuple[float, np.ndarray, DensityMap, dict] | None = None
    detect_s = density_s = 0.0
    for done, item in enumerate(images, 1):
        image = cv2.imread(str(item.path))
        if image is None:
            raise DataError(f"{item.path}: not a readable image")
        started = time.perf_counter()
        found = detector.detect([image])[0]
        detect_s += time.perf_counter() - started
        people = len(found)
        height = float(np.median(found.xyxy[:, 3] - found.xyxy[:, 1])) / image.shape[0] if people else None
        started = time.perf_counter()
        density = counter.estimate(image)
        density_s += time.perf_counter() - started
        chosen = choose(people, density.count, height)
        row = {"image": str(item.path.relative_to(root)), "truth": item.truth, "detections": people,
               "density": round(density.count, 1), "auto": round(chosen.count, 1), "auto_method": chosen.method,
               "person_height": None if height is None else round(height, 3)}
        rows.append(row)
        if image_path is not None and (worst is None or item.truth > worst[3]["truth"]):
            worst = (item.truth, image, density, row)  # the densest image makes the clearest picture
        if progress:
            progress(done, len(images))
    truth = [r["truth"] for r in rows]
    result = {
        "set": set_name,
        "images": len(rows),
        "truth_range": [min(truth), max(truth)],
        "methods": {m: errors([r[m] for r in rows], truth) for m in METHODS},
        "auto_rule": f"detections when the median person box is ≥ {NEAR_FIELD} of the image height and the map "
                     f"counts ≤ {NEAR_FIELD_MAX_RATIO} per detection; else density when the density count is ≥ "
                     f"{AUTO_DENSITY_FROM} and above the detections; else detections",
        "auto_chose_density": sum(r["auto_method"] == "density" for r in rows),
        "ms_per_image": {"detections": round(1000 * detect_s / len(rows), 1),
                         "density": round(1000 * density_s / len(rows), 1)},
        "max_side": max_side,
        "threads": threads,
        "rows": rows,
    }
    if image_path is not None and worst is not None:
        save_picture(image_path, worst[1], worst[2], worst[3])
        result["image_path"] = str(image_path)
    return result


def save_picture(path: Path, image: np.ndarray, density: DensityMap, row: dict) -> None:
    """The image beside its density map, with the true and counted numbers written on it."""
    heat = cv2.applyColorMap((density.normalised() * 255).astype(np.uint8), cv2.COLORMAP_JET)
    heat = cv2.resize(heat, (image.shape[1], image.shape[0]))
    picture = np.hstack([image, cv2.addWeighted(image, 0.35, heat, 0.65, 0)])
    lines = [f"true {row['truth']}", f"density {row['density']:.0f}", f"detections {row['detections']}",
             f"auto {row['auto']:.0f} ({row['auto_method']})"]
    for i, text in enumerate(lines):
        y = 34 + 34 * i
        cv2.putText(picture, text, (12, y), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (0, 0, 0), 5, cv2.LINE_AA)
        cv2.putText(picture, text, (12, y), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (255, 255, 255), 2, cv2.LINE_AA)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), picture):
        raise DataError(f"{path}: the picture could not be written")
