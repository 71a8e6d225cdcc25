"""Plate-reading benchmark on real photos: ``plates/<set>/*.jpg`` + openalpr ``.txt`` (``file x y w h TEXT``),
end to end on full images (no ground-truth box given), with a plain-rapidocr baseline in the same run;
``ocr_crops_us`` measures recognition alone on plate crops (``groundtruth.csv``: ``file,state,PLATETEXT``)."""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from vigil.errors import DataError
from vigil.paths import data_file
from vigil.vision.plate_localise import rectified_crop
from vigil.vision.plate_text import PlateNormaliser, clean, plate_distance
from vigil.vision.plates import PlateRead, PlateReader, make_ocr

Progress = Callable[[int, int], None]
CROP_SET = "ocr_crops_us"


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def load_openalpr_set(folder: Path) -> list[tuple[Path, tuple[float, float, float, float], str]]:
    """(image, ground-truth box xyxy, text) for each ``.txt`` of an openalpr end-to-end set."""
    items = []
    for label in sorted(folder.glob("*.txt")):
        fields = label.read_text().split()
        if len(fields) < 6:
            raise DataError(f"{label}: expected `file x y w h TEXT`")
        x, y, w, h = (float(v) for v in fields[1:5])
        items.append((folder / fields[0], (x, y, x + w, y + h), fields[5].upper()))
    return items


def _fold_o0(text: str) -> str:
    return text.replace("O", "0")


def _rate(hits: int, total: int) -> float:
    return round(hits / total, 4) if total else 0.0


def annotate(image: np.ndarray, reads: list[PlateRead], truth_box: tuple[float, ...] | None, truth: str) -> np.ndarray:
    """The image with the ground-truth box (green) and the reads (orange, best first, with text)."""
    out = image.copy()
    if truth_box is not None:
        cv2.rectangle(out, tuple(int(v) for v in truth_box[:2]), tuple(int(v) for v in truth_box[2:]), (0, 200, 0), 2)
        cv2.putText(out, f"truth {truth}", (int(truth_box[0]), int(truth_box[3]) + 28), cv2.FONT_HERSHEY_SIMPLEX, 0.9,
                    (0, 200, 0), 2, cv2.LINE_AA)
    for read in reads[:3]:
        x1, y1, x2, y2 = (int(v) for v in read.box)
        cv2.rectangle(out, (x1, y1), (x2, y2), (0, 140, 255), 2)
        cv2.putText(out, f"{read.text} {read.confidence:.2f}", (x1, max(20, y1 - 8)), cv2.FONT_HERSHEY_SIMPLEX, 0.9,
                    (0, 140, 255), 2, cv2.LINE_AA)
    return out


def _baseline(reader: PlateReader, image: np.ndarray) -> list[tuple[str, float]]:
    """Plain rapidocr on the whole image: every line read, cleaned only (upper case, alphanumerics)."""
    result = reader.ocr(image, use_det=True, use_cls=False, use_rec=True)
    return [(clean(t), float(s)) for t, s in zip(result.txts or (), result.scores or (), strict=True)]


def run_plate_bench(set_name: str, progress: Progress | None = None, annotate_to: Path | None = None,
                    region: str = "eu", localiser: str = "det", limit: int | None = None,
                    baseline: bool = True) -> dict:
    """Measure plate reading on ``plates/<set_name>``; see the module doc. Writes an annotated PNG to
    ``annotate_to`` when given."""
    if set_name == CROP_SET:
        return run_crop_bench(progress, limit)
    folder = data_file(f"plates/{set_name}")
    items = load_openalpr_set(folder)[:limit]
    if not items:
        raise DataError(f"no labelled images in {folder}")
    reader = PlateReader(make_ocr(), region=region, localiser=localiser)
    exact = folded = within_one = detected = base_top = base_any = 0
    elapsed = 0.0
    failures = []
    sample = None
    for done, (path, truth_box, truth) in enumerate(items, 1):
        image = cv2.imread(str(path))
        if image is None:
            raise DataError(f"{path}: cannot read the image")
        start = time.perf_counter()
        reads = reader.read(image)
        elapsed += time.perf_counter() - start
        text = reads[0].text if reads else ""
        exact += text == truth
        folded += _fold_o0(text) == _fold_o0(truth)
        within_one += plate_distance(text, truth, confusable_weight=1.0) <= 1
        detected += bool(reads) and _iou(reads[0].box, truth_box) >= 0.3
        if text != truth:
            failures.append({"file": path.name, "truth": truth, "read": text, "raw": reads[0].raw if reads else ""})
        if baseline:
            lines = _baseline(reader, image)
            long_lines = [line for line in lines if len(line[0]) >= 4]
            base_top += bool(long_lines) and max(long_lines, key=lambda line: line[1])[0] == truth
            base_any += any(line[0] == truth for line in lines)
        if sample is None and text == truth:
            sample = (image, reads, truth_box, truth)
        if progress:
            progress(done, len(items))
    total = len(items)
    report = {
        "set": set_name, "images": total, "region": region, "localiser": localiser,
        "exact": _rate(exact, total),
        "exact_o0_folded": _rate(folded, total),
        "within_one": _rate(within_one, total),
        "detect_recall": _rate(detected, total),
        "ms_per_image": round(1000 * elapsed / total, 1),
        "failures": failures,
    }
    if baseline:
        report["baseline"] = {"exact": _rate(base_top, total), "exact_any_line": _rate(base_any, total),
                              "what": "rapidocr det+rec on the whole image, text cleaned only; exact = the most "
                                      "confident line of ≥ 4 characters, exact_any_line = the truth is any line"}
    if annotate_to is not None and sample is not None:
        cv2.imwrite(str(annotate_to), annotate(*sample))
        report["annotated"] = str(annotate_to)
    return report


def run_crop_bench(progress: Progress | None = None, limit: int | None = None) -> dict:
    """Recognition alone on ``plates/ocr_crops_us`` crops (padded), generic normalisation."""
    folder = data_file(f"plates/{CROP_SET}")
    with (folder / "groundtruth.csv").open(newline="") as handle:
        listed = [row for row in csv.reader(handle) if len(row) >= 3]
    rows = [row for row in listed if (folder / row[0]).exists()][:limit]  # the stored set holds a subset
    if not rows:
        raise DataError(f"none of the crops listed in {folder / 'groundtruth.csv'} is present")
    reader = PlateReader(make_ocr(), region="generic")
    normaliser = PlateNormaliser()
    exact = within_one = 0
    elapsed = 0.0
    for done, (name, _state, truth) in enumerate(rows, 1):
        image = cv2.imread(str(folder / name))
        if image is None:
            raise DataError(f"{folder / name}: cannot read the image")
        height, width = image.shape[:2]
        quad = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
        start = time.perf_counter()
        raw, _conf = reader.recognise([rectified_crop(image, quad, pad=0.15)])[0]
        elapsed += time.perf_counter() - start
        text = normaliser.normalise(raw).text
        exact += text == truth.upper()
        within_one += plate_distance(text, truth, confusable_weight=1.0) <= 1
        if progress:
            progress(done, len(rows))
    total = len(rows)
    return {"set": CROP_SET, "images": total, "listed": len(listed), "exact": _rate(exact, total),
            "within_one": _rate(within_one, total),
            "ms_per_image": round(1000 * elapsed / max(total, 1), 1)}
