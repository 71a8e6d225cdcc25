"""Plate-reading benchmark on real photos: ``plates/<set>/*.jpg`` + openalpr ``.txt`` (``file x y w h TEXT``),
end to end on full images (no ground-truth box given), with a plain-rapidocr baseline in the same run.
A folder with a ``groundtruth.csv`` (``file,region,TEXT``: ``ocr_crops_us``, ``cn_crops``) measures recognition
alone on plate crops. Misses go to a contact sheet PNG (Chinese characters drawn as ``~``).

``detect_recall``: some localiser candidate has IoU ≥ 0.3 with the labelled box; ``exact_given_detected``: exact
among those; ``top_read_on_plate``: the best read's box is on the plate (the former ``detect_recall``)."""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from vigil.errors import DataError
from vigil.paths import data_file
from vigil.vision.plate_formats import check_regions, known_regions
from vigil.vision.plate_text import clean, plate_distance
from vigil.vision.plates import PlateRead, PlateReader, Regions, make_ocr

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


def _region_label(region: Regions) -> str:
    return ",".join(check_regions(region))


def _drawable(text: str) -> str:
    """Text for the contact sheet: characters OpenCV cannot draw (Chinese) shown as ``~``."""
    return "".join(ch if ch.isascii() else "~" for ch in text)


def contact_sheet(tiles: list[tuple[np.ndarray, list[str]]], path: Path, tile: tuple[int, int] = (320, 200),
                  columns: int = 5, max_tiles: int = 60) -> Path | None:
    """A grid of images (each fitted into ``tile``) with their lines of text under them, written to ``path``."""
    if not tiles:
        return None
    width, height = tile
    line_h = 18
    cell_h = height + line_h * max(len(lines) for _, lines in tiles[:max_tiles]) + 6
    shown = tiles[:max_tiles]
    rows = (len(shown) + columns - 1) // columns
    sheet = np.full((rows * cell_h, columns * width, 3), 255, np.uint8)
    for i, (image, lines) in enumerate(shown):
        top, left = (i // columns) * cell_h, (i % columns) * width
        scale = min(width / image.shape[1], height / image.shape[0])
        fitted = cv2.resize(image, (max(1, int(image.shape[1] * scale)), max(1, int(image.shape[0] * scale))),
                            interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
        sheet[top:top + fitted.shape[0], left:left + fitted.shape[1]] = fitted
        for j, line in enumerate(lines):
            cv2.putText(sheet, _drawable(line)[:40], (left + 4, top + height + line_h * (j + 1)),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 160) if j == 1 else (0, 0, 0), 1, cv2.LINE_AA)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), sheet)
    return path


def _miss_lines(truth: str, read: str, raw: str) -> list[str]:
    lines = [f"truth {truth}", f"read  {read or '(none)'}", f"raw   {raw}"]
    if truth[:1] and not truth[0].isascii():
        lines.append("province " + ("ok" if read[:1] == truth[0] else "differs"))
    return lines


def run_plate_bench(set_name: str, progress: Progress | None = None, annotate_to: Path | None = None,
                    region: Regions | None = "eu", localiser: str = "det", limit: int | None = None,
                    baseline: bool = True, misses_to: Path | None = None) -> dict:
    """Measure plate reading on ``plates/<set_name>`` (openalpr layout, or a crop folder: see the module doc);
    ``region`` None: eu for photos, each crop's own region for crops.
    Writes an annotated PNG of a correct read to ``annotate_to`` and a contact sheet of misses to ``misses_to``."""
    folder = data_file(f"plates/{set_name}")
    if (folder / "groundtruth.csv").exists():
        return run_crop_bench(set_name, progress, limit, region=region, baseline=baseline, misses_to=misses_to)
    region = region or "eu"
    items = load_openalpr_set(folder)[:limit]
    if not items:
        raise DataError(f"no labelled images in {folder}")
    reader = PlateReader(make_ocr(), region=region, localiser=localiser)
    exact = folded = within_one = detected = exact_detected = top_on_plate = base_top = base_any = 0
    elapsed = 0.0
    failures, misses = [], []
    sample = None
    for done, (path, truth_box, truth) in enumerate(items, 1):
        image = cv2.imread(str(path))
        if image is None:
            raise DataError(f"{path}: cannot read the image")
        start = time.perf_counter()
        reads, boxes = reader.read_with_candidates(image)
        elapsed += time.perf_counter() - start
        text = reads[0].text if reads else ""
        found = any(_iou(box, truth_box) >= 0.3 for box in boxes)
        exact += text == truth
        folded += _fold_o0(text) == _fold_o0(truth)
        within_one += plate_distance(text, truth, confusable_weight=1.0) <= 1
        detected += found
        exact_detected += found and text == truth
        top_on_plate += bool(reads) and _iou(reads[0].box, truth_box) >= 0.3
        if text != truth:
            raw = reads[0].raw if reads else ""
            failures.append({"file": path.name, "truth": truth, "read": text, "raw": raw, "plate_found": found})
            lines = [*_miss_lines(truth, text, raw), f"plate found: {'yes' if found else 'no'}"]
            misses.append((annotate(image, reads, truth_box, truth), lines))
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
        "set": set_name, "images": total, "region": _region_label(region), "localiser": localiser,
        "exact": _rate(exact, total),
        "exact_o0_folded": _rate(folded, total),
        "within_one": _rate(within_one, total),
        "detect_recall": _rate(detected, total),
        "exact_given_detected": _rate(exact_detected, detected),
        "top_read_on_plate": _rate(top_on_plate, total),
        "ms_per_image": round(1000 * elapsed / total, 1),
        "failures": failures,
    }
    if baseline:
        report["baseline"] = {"exact": _rate(base_top, total), "exact_any_line": _rate(base_any, total),
                              "what": "rapidocr det+rec on the whole image, text cleaned only; exact = the most "
                                      "confident line of ≥ 4 characters, exact_any_line = the truth is any line"}
    if annotate_to is not None and sample is not None:
        annotate_to.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(annotate_to), annotate(*sample))
        report["annotated"] = str(annotate_to)
    if misses_to is not None and contact_sheet(misses, misses_to):
        report["misses_sheet"] = str(misses_to)
    return report


def load_crop_set(folder: Path) -> tuple[list[tuple[str, str, str]], int]:
    """(file, region, TEXT) rows of ``groundtruth.csv`` whose file is present (a header row is skipped), and how
    many rows the file lists."""
    with (folder / "groundtruth.csv").open(newline="", encoding="utf-8") as handle:
        listed = [tuple(field.strip() for field in row[:3]) for row in csv.reader(handle) if len(row) >= 3]
    if listed and listed[0][0].lower() == "file":
        listed = listed[1:]
    return [row for row in listed if (folder / row[0]).exists()], len(listed)  # type: ignore[misc]


def run_crop_bench(set_name: str = CROP_SET, progress: Progress | None = None, limit: int | None = None,
                   region: Regions | None = None, baseline: bool = True, misses_to: Path | None = None) -> dict:
    """Recognition alone on the crops of ``plates/<set_name>``, or of the folder ``set_name`` (``groundtruth.csv``:
    ``file,region,TEXT``).
    ``region`` None: each row's own region where it is a known one (``cn``), else ``generic``."""
    folder = Path(set_name) if Path(set_name).is_dir() else data_file(f"plates/{set_name}")
    rows, listed = load_crop_set(folder)
    rows = rows[:limit]
    if not rows:
        raise DataError(f"none of the crops listed in {folder / 'groundtruth.csv'} is present")
    ocr = make_ocr()
    readers: dict[str, PlateReader] = {}
    exact = within_one = base_exact = 0
    elapsed = 0.0
    failures, misses = [], []
    for done, (name, row_region, truth) in enumerate(rows, 1):
        image = cv2.imread(str(folder / name))
        if image is None:
            raise DataError(f"{folder / name}: cannot read the image")
        chosen = region if region is not None else (row_region.lower() if row_region.lower() in known_regions()
                                                    else "generic")
        key = _region_label(chosen)
        if key not in readers:
            readers[key] = readers[next(iter(readers))].with_regions(chosen) if readers else \
                PlateReader(ocr, region=chosen)
        truth = truth.upper()
        start = time.perf_counter()
        read = readers[key].read_crop(image)
        elapsed += time.perf_counter() - start
        exact += read.text == truth
        within_one += plate_distance(read.text, truth, confusable_weight=1.0) <= 1
        if read.text != truth:
            failures.append({"file": name, "truth": truth, "read": read.text, "raw": read.raw, "region": key})
            misses.append((image, _miss_lines(truth, read.text, read.raw)))
        if baseline:
            plain = ocr(image, use_det=False, use_cls=False, use_rec=True)
            base_exact += clean(str((plain.txts or ("",))[0])) == truth
        if progress:
            progress(done, len(rows))
    total = len(rows)
    report = {"set": folder.name, "images": total, "listed": listed, "region": ",".join(sorted(readers)),
              "exact": _rate(exact, total), "within_one": _rate(within_one, total),
              "detect_recall": None, "exact_given_detected": _rate(exact, total),
              "ms_per_image": round(1000 * elapsed / max(total, 1), 1), "failures": failures}
    if baseline:
        report["baseline"] = {"exact": _rate(base_exact, total),
                              "what": "rapidocr recognition of the crop as it is, text cleaned only"}
    if misses_to is not None and contact_sheet(misses, misses_to, tile=(282, 72), columns=6, max_tiles=120):
        report["misses_sheet"] = str(misses_to)
    return report
