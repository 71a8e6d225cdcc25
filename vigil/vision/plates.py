"""Licence-plate reading: localise (PP-OCR text detection, optionally the Haar cascade), recognise
(PP-OCR recognition via rapidocr on rectified, padded crops), normalise to a region's formats.

Models come only from the local cache (``model_path``); rapidocr is given explicit paths for its
detection, recognition and direction-classifier models, so its bundled copies are never read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rapidocr import RapidOCR
from rapidocr.ch_ppocr_rec import TextRecInput

from vigil.vision.models import model_path
from vigil.vision.plate_localise import (
    Candidate,
    haar_candidates,
    load_haar_cascade,
    rectified_crop,
    text_candidates,
)
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
    "PlateVoter", "clean", "make_ocr", "match_hotlist", "plate_distance",
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


class PlateReader:
    """``read(image_bgr, vehicle_box=None) -> list[PlateRead]``: plate reads, best first.

    ``localiser`` is ``"det"`` (PP-OCR text detection), ``"haar"`` or ``"both"``.
    """

    def __init__(self, ocr: RapidOCR | None = None, region: str = "generic", normaliser: PlateNormaliser | None = None,
                 localiser: str = "det", min_chars: int = 4, max_chars: int = 10, min_confidence: float = 0.5,
                 max_candidates: int = 12):
        if localiser not in ("det", "haar", "both"):
            raise ValueError(f"localiser must be det, haar or both, not {localiser!r}")
        self.ocr = ocr or make_ocr()
        self.normaliser = normaliser or PlateNormaliser.for_region(region)
        self.localiser = localiser
        self.cascade = load_haar_cascade() if localiser in ("haar", "both") else None
        self.min_chars, self.max_chars = min_chars, max_chars
        self.min_confidence = min_confidence
        self.max_candidates = max_candidates

    def candidates(self, image_bgr: np.ndarray) -> list[Candidate]:
        found: list[Candidate] = []
        if self.localiser in ("det", "both"):
            det = self.ocr(image_bgr, use_det=True, use_cls=False, use_rec=False)
            found += text_candidates(det.boxes)
        if self.cascade is not None:
            found += haar_candidates(self.cascade, image_bgr)
        return found

    def recognise(self, crops: list[np.ndarray]) -> list[tuple[str, float]]:
        """rapidocr recognition of ready crops: (text, confidence) each."""
        if not crops:
            return []
        recogniser = self.ocr._load_rec_model()  # rapidocr's lazily built recogniser; batching needs it directly
        out = recogniser(TextRecInput(img=crops))
        return [(str(t), float(s)) for t, s in zip(out.txts, out.scores, strict=True)]

    def _score(self, norm: Normalised, confidence: float) -> float:
        if not self.min_chars <= len(norm.text) <= self.max_chars:
            return 0.0
        score = confidence * (1.1 if norm.formatted else 1.0) - 0.04 * norm.substitutions - 0.06 * norm.dropped
        if len(norm.text) < 5 or norm.text.isdigit():  # years, house numbers, phone fragments
            score -= 0.1
        return max(0.0, min(1.0, score))

    def read(self, image_bgr: np.ndarray,
             vehicle_box: tuple[float, float, float, float] | None = None) -> list[PlateRead]:
        """Plate reads in the vehicle box (or the whole image), best first, boxes in image pixels."""
        offset = np.zeros(2, np.float32)
        region = image_bgr
        if vehicle_box is not None:
            height, width = image_bgr.shape[:2]
            x1, y1, x2, y2 = (round(float(v)) for v in vehicle_box)
            x1, y1, x2, y2 = max(0, x1), max(0, y1), min(width, x2), min(height, y2)
            if x2 - x1 < 16 or y2 - y1 < 8:
                return []
            region = image_bgr[y1:y2, x1:x2]
            offset = np.array([x1, y1], np.float32)
        found = self.candidates(region)[: self.max_candidates * 2]
        texts = self.recognise([rectified_crop(region, c.quad) for c in found])
        reads = []
        for candidate, (raw, confidence) in zip(found, texts, strict=True):
            norm = self.normaliser.normalise(raw)
            score = self._score(norm, confidence)
            if score >= self.min_confidence:
                box = candidate.xyxy + np.concatenate([offset, offset])
                reads.append(PlateRead(norm.text, round(score, 4), tuple(float(v) for v in box), raw, candidate.source))
        reads.sort(key=lambda r: -r.confidence)
        kept: list[PlateRead] = []
        for read in reads:  # one read per place: drop weaker reads overlapping a kept one
            if all(_iou(np.array(read.box), np.array(k.box)) < 0.3 for k in kept):
                kept.append(read)
        return kept
