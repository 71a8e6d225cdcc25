"""Plate localisation: candidate quadrilaterals from PP-OCR text detection and the Haar plate cascade,
and rectified, padded crops of them for recognition."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vigil.errors import ModelError

HAAR_FILE = "haarcascade_russian_plate_number.xml"
HAAR_DIRS = (Path(cv2.data.haarcascades), Path("/usr/share/opencv4/haarcascades"))


@dataclass(slots=True)
class Candidate:
    """A possible plate: corner points ``(4, 2)`` (tl, tr, br, bl) in image pixels and where it came from."""

    quad: np.ndarray
    source: str  # det | merged | haar

    @property
    def xyxy(self) -> np.ndarray:
        return np.concatenate([self.quad.min(0), self.quad.max(0)]).astype(np.float32)

    @property
    def size(self) -> tuple[float, float]:
        """(width, height) of the quadrilateral along its own edges."""
        tl, tr, br, bl = self.quad
        width = (np.linalg.norm(tr - tl) + np.linalg.norm(br - bl)) / 2
        height = (np.linalg.norm(bl - tl) + np.linalg.norm(br - tr)) / 2
        return float(width), float(height)


def order_quad(points: np.ndarray) -> np.ndarray:
    """Order 4 points as top-left, top-right, bottom-right, bottom-left."""
    points = np.asarray(points, np.float32).reshape(4, 2)
    by_sum, by_diff = points.sum(1), np.diff(points, axis=1)[:, 0]
    return np.array([points[by_sum.argmin()], points[by_diff.argmin()], points[by_sum.argmax()],
                     points[by_diff.argmax()]], np.float32)


def load_haar_cascade(path: Path | None = None) -> cv2.CascadeClassifier:
    """The OpenCV Haar plate cascade (from ``cv2.data`` or Debian ``opencv-data``)."""
    options = [path] if path else [folder / HAAR_FILE for folder in HAAR_DIRS]
    for option in options:
        if option.exists():
            cascade = cv2.CascadeClassifier(str(option))
            if not cascade.empty():
                return cascade
    raise ModelError(f"Haar plate cascade {HAAR_FILE} not found (install opencv-python-headless 4.x or opencv-data)")


def haar_candidates(cascade: cv2.CascadeClassifier, image_bgr: np.ndarray) -> list[Candidate]:
    grey = cv2.equalizeHist(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY))
    found = cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=3, minSize=(36, 12))
    return [Candidate(np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.float32), "haar")
            for x, y, w, h in (found if len(found) else [])]


def text_candidates(det_boxes: np.ndarray | None, min_aspect: float = 1.3, max_aspect: float = 12.0,
                    min_height: float = 8.0) -> list[Candidate]:
    """Text boxes shaped like a plate line, plus pairs of side-by-side boxes merged (plates split by an
    emblem or a gap are often detected as two words)."""
    if det_boxes is None or len(det_boxes) == 0:
        return []
    quads = [Candidate(order_quad(box), "det") for box in det_boxes]
    out = [c for c in quads if min_height <= c.size[1] and min_aspect <= c.size[0] / max(c.size[1], 1) <= max_aspect]
    for a in quads:
        for b in quads:
            if a is b or a.xyxy[0] >= b.xyxy[0]:
                continue
            ha, hb = a.size[1], b.size[1]
            gap = b.xyxy[0] - a.xyxy[2]
            centre_dy = abs((a.xyxy[1] + a.xyxy[3]) - (b.xyxy[1] + b.xyxy[3])) / 2
            if 0.7 < ha / max(hb, 1) < 1.4 and -0.3 * ha < gap < 1.2 * ha and centre_dy < 0.35 * ha:
                merged = Candidate(np.array([a.quad[0], b.quad[1], b.quad[2], a.quad[3]], np.float32), "merged")
                width, height = merged.size
                if min_aspect <= width / max(height, 1) <= max_aspect:
                    out.append(merged)
    return out


def rectified_crop(image_bgr: np.ndarray, quad: np.ndarray, pad: float = 0.15, height: int = 48) -> np.ndarray:
    """The quadrilateral warped flat to ``height`` px, padded by ``pad`` × its height on every side."""
    tl, tr, br, bl = quad
    width_px = max(np.linalg.norm(tr - tl), np.linalg.norm(br - bl))
    height_px = max(np.linalg.norm(bl - tl), np.linalg.norm(br - tr), 1.0)
    scale = height / height_px
    out_w = max(8, round(width_px * scale))
    margin = pad * height
    target = np.array([[margin, margin], [margin + out_w, margin], [margin + out_w, margin + height],
                       [margin, margin + height]], np.float32)
    matrix = cv2.getPerspectiveTransform(np.asarray(quad, np.float32), target)
    size = (round(out_w + 2 * margin), round(height + 2 * margin))
    return cv2.warpPerspective(image_bgr, matrix, size, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
