"""Licence-plate reading: localise (PP-OCR text detection, optionally the Haar cascade), recognise
(PP-OCR recognition via rapidocr's model on rectified, padded crops), normalise to the formats of one or more
regions (``plate_formats.yaml``); for Chinese plates the province character is kept, and recovered from the
recogniser's probabilities when the greedy read drops or misreads it.

Models come only from the local cache (``model_path``); rapidocr is given explicit paths for its
detection, recognition and direction-classifier models, so its bundled copies are never read.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
from rapidocr import RapidOCR

from vigil.vision.models import model_path
from vigil.vision.plate_localise import (
    Candidate,
    haar_candidates,
    load_haar_cascade,
    rectified_crop,
    text_candidates,
)
from vigil.vision.plate_ocr import PlateRecogniser, Recognised
from vigil.vision.plate_text import (
    CONFUSABLES,
    REGION_FORMATS,
    HotlistMatch,
    Normalised,
    PlateNormaliser,
    PlateVoter,
    clean,
    match_hotlist,
    plate_distance,
)

__all__ = [
    "CONFUSABLES", "REGION_FORMATS", "HotlistMatch", "Normalised", "PlateNormaliser", "PlateRead", "PlateReader",
    "PlateVoter", "Regions", "clean", "make_ocr", "match_hotlist", "plate_distance",
]


@dataclass(frozen=True, slots=True)
class PlateRead:
    """A plate read: normalised ``text``, ``confidence`` in [0, 1], ``box`` xyxy in image pixels, OCR ``raw`` text."""

    text: str
    confidence: float
    box: tuple[float, float, float, float]
    raw: str
    source: str = ""


def make_ocr(threads: int = 2) -> RapidOCR:
    """A rapidocr engine reading the PP-OCR models from the Vigil model cache only."""
    det, rec, cls = model_path("ppocr-det"), model_path("ppocr-rec"), model_path("ppocr-cls")
    return RapidOCR(params={
        "Global.log_level": "error",
        "Global.use_cls": False,
        "Global.model_root_dir": str(det.parent),
        "Det.model_path": str(det),
        "Rec.model_path": str(rec),
        "Cls.model_path": str(cls),
        "EngineConfig.onnxruntime.intra_op_num_threads": threads,
        "EngineConfig.onnxruntime.inter_op_num_threads": 1,
    })


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    inter_w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    inter_h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = inter_w * inter_h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


Regions = str | list[str] | tuple[str, ...]


class PlateReader:
    """``read(image_bgr, vehicle_box=None) -> list[PlateRead]``: plate reads, best first; ``read_crop(crop)``
    for an image that is already a plate.

    ``region`` is a region name, a list of them (``["rs", "eu"]``) or a comma-separated string; the read is fitted
    to the best format of any of them. ``localiser`` is ``"det"`` (PP-OCR text detection), ``"haar"`` or ``"both"``.
    """

    def __init__(self, ocr: RapidOCR | None = None, region: Regions = "generic",
                 normaliser: PlateNormaliser | None = None, localiser: str = "det", min_chars: int = 4,
                 max_chars: int = 10, min_confidence: float = 0.5, max_candidates: int = 12):
        if localiser not in ("det", "haar", "both"):
            raise ValueError(f"localiser must be det, haar or both, not {localiser!r}")
        self.ocr = ocr or make_ocr()
        self.normaliser = normaliser or PlateNormaliser.for_regions(region)
        self.localiser = localiser
        self.cascade = load_haar_cascade() if localiser in ("haar", "both") else None
        self.min_chars, self.max_chars = min_chars, max_chars
        self.min_confidence = min_confidence
        self.max_candidates = max_candidates
        self.recogniser = PlateRecogniser(self.ocr)
        self.min_lead_confidence = 1e-4  # a province character the greedy read lacks, from the probabilities

    @property
    def regions(self) -> tuple[str, ...]:
        return self.normaliser.regions

    def with_regions(self, region: Regions) -> PlateReader:
        """A reader for other regions (e.g. one camera's) sharing this one's models."""
        other = copy.copy(self)
        other.normaliser = PlateNormaliser.for_regions(region)
        return other

    def candidates(self, image_bgr: np.ndarray) -> list[Candidate]:
        found: list[Candidate] = []
        if self.localiser in ("det", "both"):
            det = self.ocr(image_bgr, use_det=True, use_cls=False, use_rec=False)
            found += text_candidates(det.boxes)
        if self.cascade is not None:
            found += haar_candidates(self.cascade, image_bgr)
        return found

    def recognise(self, crops: list[np.ndarray]) -> list[tuple[str, float]]:
        """Recognition of ready crops: (raw text, confidence) each."""
        return [(r.text, r.confidence) for r in self.recogniser(crops)]

    def _recognise(self, crops: list[np.ndarray]) -> list[tuple[Recognised, ...]]:
        """Alternative reads of each crop: one, or for regions with province characters (cn) two polarities."""
        provinces = self.normaliser.provinces
        if provinces:
            return self.recogniser.read_both_polarities(crops, provinces)
        return [(r,) for r in self.recogniser(crops)]

    def _normalise(self, alternatives: tuple[Recognised, ...]) -> tuple[Normalised, float, str]:
        """(normalised read, confidence, raw text) of the best alternative; a province character the greedy read
        lacks is tried in front of the read, or in place of its first character, and kept when that fits."""
        provinces = self.normaliser.provinces
        options = []
        for recognised in alternatives:
            norm = self.normaliser.normalise(recognised.text)
            options.append((norm, recognised.confidence, recognised.text))
            if (provinces and recognised.lead_confidence >= self.min_lead_confidence
                    and not (norm.text and norm.text[0] in provinces)):
                for replace_first in (False, True):
                    raw, confidence = recognised.with_lead(replace_first)
                    fitted = self.normaliser.normalise(raw)
                    if fitted.formatted:
                        options.append((fitted, confidence, raw))
        return min(options, key=lambda o: (not o[0].formatted, o[0].substitutions + o[0].dropped, -o[1]))

    def read_crop(self, crop_bgr: np.ndarray, pad: float = 0.15) -> PlateRead:
        """Read an image that is a plate (a crop): the whole image is the plate."""
        height, width = crop_bgr.shape[:2]
        quad = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
        norm, confidence, raw = self._normalise(self._recognise([rectified_crop(crop_bgr, quad, pad=pad)])[0])
        score = min(1.0, self._score(norm, confidence))
        return PlateRead(norm.text, round(score, 4), (0.0, 0.0, float(width), float(height)), raw, "crop")

    def _score(self, norm: Normalised, confidence: float) -> float:
        """How plate-like a read is (not clipped to 1, so that reads above 1 are still ranked; 0 = not a plate)."""
        if not self.min_chars <= len(norm.text) <= self.max_chars:
            return 0.0
        strict = norm.formatted and norm.cost == 0  # a real format, not a catch-all such as us-any
        score = confidence * (1.1 if strict else 1.0) - 0.04 * norm.substitutions - 0.06 * norm.dropped
        score += 0.01 * min(len(norm.text), 8)  # plates have 6-8 characters; words and fragments fewer
        if len(norm.text) < 5 or norm.text.isdigit():  # years, house numbers, phone fragments
            score -= 0.1
        if not strict and not any(ch.isdigit() for ch in norm.text):  # words: makes, dealers, state names, slogans
            score -= 0.15
        return max(0.0, score)

    def read(self, image_bgr: np.ndarray,
             vehicle_box: tuple[float, float, float, float] | None = None) -> list[PlateRead]:
        """Plate reads in the vehicle box (or the whole image), best first, boxes in image pixels."""
        return self.read_with_candidates(image_bgr, vehicle_box)[0]

    def read_with_candidates(self, image_bgr: np.ndarray, vehicle_box: tuple[float, float, float, float] | None = None
                             ) -> tuple[list[PlateRead], list[tuple[float, float, float, float]]]:
        """``read``, and every candidate box that was recognised (image pixels), to measure localisation."""
        offset = np.zeros(2, np.float32)
        region = image_bgr
        if vehicle_box is not None:
            height, width = image_bgr.shape[:2]
            x1, y1, x2, y2 = (round(float(v)) for v in vehicle_box)
            x1, y1, x2, y2 = max(0, x1), max(0, y1), min(width, x2), min(height, y2)
            if x2 - x1 < 16 or y2 - y1 < 8:
                return [], []
            region = image_bgr[y1:y2, x1:x2]
            offset = np.array([x1, y1], np.float32)
        found = self.candidates(region)[: self.max_candidates * 2]
        texts = self._recognise([rectified_crop(region, c.quad) for c in found])
        reads = []
        for candidate, alternatives in zip(found, texts, strict=True):
            norm, confidence, raw = self._normalise(alternatives)
            score = self._score(norm, confidence)
            if score >= self.min_confidence:
                box = candidate.xyxy + np.concatenate([offset, offset])
                reads.append((score, PlateRead(norm.text, round(min(1.0, score), 4), tuple(float(v) for v in box), raw,
                                               candidate.source)))
        reads.sort(key=lambda r: -r[0])
        kept: list[PlateRead] = []
        for _, read in reads:  # one read per place: drop weaker reads overlapping a kept one
            if all(_iou(np.array(read.box), np.array(k.box)) < 0.3 for k in kept):
                kept.append(read)
        boxes = [tuple(float(v) for v in c.xyxy + np.concatenate([offset, offset])) for c in found]
        return kept, boxes  # type: ignore[return-value]
