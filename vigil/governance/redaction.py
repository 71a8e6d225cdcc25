"""Redaction of exported video (DESIGN §6): every face and plate is blurred except the subject's.

Per decoded frame: the camera's privacy masks are blacked out (recordings made by packet copy are not masked),
faces are found with the redaction face detector (``vigil.vision.faces.create_face_detector(purpose=
"redaction")``: CenterFace at a low threshold plus a pass on the frame enlarged 2×, so faces about 10 px between
the eyes are found), plate-like text with the PP-OCR localiser, people and vehicles with the detector; the
subject is followed with the tracker (its track id chosen at the seed by IoU with the subject's box,
re-acquired by IoU when the track is lost, coasting on its last box for ``max_coast_s``). Every region
whose centre is not inside the subject's box is pixelated (or blurred). Before the subject is acquired, and
after it is lost for good, nothing is the subject's: everything is redacted. Heads of people too small for
the face detector (box shorter than ``small_person_px``) are redacted too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, Protocol

import cv2
import numpy as np
import supervision as sv

from vigil.sources.masks import PrivacyMasker
from vigil.vision.tracker import Tracker, class_names

Box = tuple[float, float, float, float]
PEOPLE = frozenset({"person"})
VEHICLES = frozenset({"bicycle", "car", "motorcycle", "bus", "truck"})


@dataclass(frozen=True, slots=True)
class SubjectSeed:
    """Where the subject is at one moment: a box (xyxy), or a ground point (bottom centre) such as a stored
    track's path point; the detection it falls in (or nearest to) becomes the subject."""

    at: datetime
    box: Box | None = None
    point: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.box is None and self.point is None:
            raise ValueError("a subject seed needs a box or a point")

    def scaled(self, sx: float, sy: float) -> SubjectSeed:
        """The seed in another stream's pixels (a track on the substream, a recording of the main stream)."""
        box = None if self.box is None else (self.box[0] * sx, self.box[1] * sy, self.box[2] * sx, self.box[3] * sy)
        point = None if self.point is None else (self.point[0] * sx, self.point[1] * sy)
        return SubjectSeed(self.at, box, point)


@dataclass(frozen=True, slots=True)
class Region:
    kind: str  # face | plate | head
    box: Box


class FaceFinder(Protocol):  # as vigil.vision.face_detect.FaceFinder, without importing the models here
    def detect(self, image_bgr: np.ndarray) -> list:  # list[vigil.vision.face_detect.Face]
        ...


class PlateLocaliser(Protocol):
    def candidates(self, image_bgr: np.ndarray) -> list:  # list[vigil.vision.plate_localise.Candidate]
        ...


class ObjectDetector(Protocol):
    def detect(self, images: Sequence[np.ndarray]) -> list[sv.Detections]: ...


def box_iou(a: Box, b: Box) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def centre_inside(region: Box, box: Box, margin: float = 0.05) -> bool:
    """The centre of ``region`` lies inside ``box`` grown by ``margin`` of its size."""
    cx, cy = (region[0] + region[2]) / 2, (region[1] + region[3]) / 2
    mx, my = (box[2] - box[0]) * margin, (box[3] - box[1]) * margin
    return box[0] - mx <= cx <= box[2] + mx and box[1] - my <= cy <= box[3] + my


def grow(box: Box, fraction: float, width: int, height: int) -> tuple[int, int, int, int]:
    """``box`` grown by ``fraction`` of its size on every side, clipped to the image, as ints."""
    dx, dy = (box[2] - box[0]) * fraction, (box[3] - box[1]) * fraction
    return (max(0, int(box[0] - dx)), max(0, int(box[1] - dy)),
            min(width, int(np.ceil(box[2] + dx))), min(height, int(np.ceil(box[3] + dy))))


def obscure(image: np.ndarray, box: Box, method: Literal["pixelate", "blur"] = "pixelate",
            margin: float = 0.25) -> None:
    """Make ``box`` (grown by ``margin``: detector boxes are tight, hair and chin stick out) unrecognisable in
    place: coarse pixelation (5 blocks across the short side, then a blur so block edges carry nothing), or a
    strong Gaussian blur."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = grow(box, margin, width, height)
    if x2 - x1 < 2 or y2 - y1 < 2:
        return
    patch = image[y1:y2, x1:x2]
    if method == "pixelate":
        block = max(2, min(x2 - x1, y2 - y1) // 5)
        small = cv2.resize(patch, (max(1, (x2 - x1) // block), max(1, (y2 - y1) // block)),
                           interpolation=cv2.INTER_AREA)
        coarse = cv2.resize(small, (x2 - x1, y2 - y1), interpolation=cv2.INTER_NEAREST)
        k = max(3, (block // 2) * 2 + 1)
        image[y1:y2, x1:x2] = cv2.GaussianBlur(coarse, (k, k), 0)
    else:
        k = max(3, (min(x2 - x1, y2 - y1) // 2) * 2 + 1)
        image[y1:y2, x1:x2] = cv2.GaussianBlur(patch, (k, k), k / 3)


class SubjectFollower:
    """Follows the subject through frames with a ``Tracker`` over people/vehicle detections."""

    def __init__(self, tracker: Tracker, seed: SubjectSeed, min_iou: float = 0.2, max_coast_s: float = 1.0) -> None:
        self.tracker = tracker
        self.seed = seed
        self.min_iou = min_iou
        self.max_coast = timedelta(seconds=max_coast_s)
        self.track_id: int | None = None
        self.box: Box | None = None
        self.last_seen: datetime | None = None
        self.acquired = False

    def update(self, detections: sv.Detections, at: datetime, frame_s: float) -> Box | None:
        """The subject's box in this frame (None when unknown)."""
        tracked = self.tracker.update(detections, at).detections
        boxes = [tuple(float(v) for v in b) for b in tracked.xyxy]
        ids = [int(i) for i in (tracked.tracker_id if len(tracked) else [])]
        if not self.acquired:
            if at < self.seed.at - timedelta(seconds=frame_s / 2):
                return None
            self.acquired = True
            self._acquire(boxes, ids, at)
            return self.box
        if self.track_id in ids:
            self._see(boxes[ids.index(self.track_id)], self.track_id, at)
        elif self.box is not None:
            scored = [(box_iou(self.box, b), b, i) for b, i in zip(boxes, ids, strict=True)]
            best = max(scored, default=None)
            if best is not None and best[0] >= self.min_iou:
                self._see(best[1], best[2], at)
            elif self.last_seen is not None and at - self.last_seen > self.max_coast:
                self.box = None  # lost for good: from now on nothing is the subject's
        return self.box

    def _acquire(self, boxes: list[Box], ids: list[int], at: datetime) -> None:
        seed = self.seed
        if seed.box is not None:
            scored = [(box_iou(seed.box, b), b, i) for b, i in zip(boxes, ids, strict=True)]
            best = max(scored, default=None)
            if best is not None and best[0] >= self.min_iou:
                self._see(best[1], best[2], at)
            else:  # no detection there: follow the given box by IoU alone
                self.box, self.last_seen = seed.box, at
            return
        assert seed.point is not None
        px, py = seed.point
        containing = [(abs((b[0] + b[2]) / 2 - px) + abs(b[3] - py), b, i) for b, i in zip(boxes, ids, strict=True)
                      if b[0] <= px <= b[2] and b[1] <= py <= b[3] + 0.1 * (b[3] - b[1])]
        best = min(containing, default=None)
        if best is not None:
            self._see(best[1], best[2], at)

    def _see(self, box: Box, track_id: int, at: datetime) -> None:
        self.box, self.track_id, self.last_seen = box, track_id, at


@dataclass(slots=True)
class FrameRedaction:
    """What was done to one frame."""

    at: datetime
    subject: Box | None
    kept: list[Region] = field(default_factory=list)
    redacted: list[Region] = field(default_factory=list)


class Redactor:
    """Redacts frames in capture-time order; one instance per export."""

    def __init__(self, faces: FaceFinder, plates: PlateLocaliser | None, detector: ObjectDetector,
                 follower: SubjectFollower | None, masker: PrivacyMasker | None = None,
                 method: Literal["pixelate", "blur"] = "pixelate", small_person_px: float = 200.0,
                 head_fraction: float = 0.25) -> None:
        self.faces = faces
        self.plates = plates
        self.detector = detector
        self.follower = follower
        self.masker = masker
        self.method = method
        self.small_person_px = small_person_px
        self.head_fraction = head_fraction

    def regions(self, image: np.ndarray, detections: sv.Detections) -> list[Region]:
        """Every face, plate-like text and small person's head in ``image``."""
        found = [Region("face", tuple(float(v) for v in face.box)) for face in self.faces.detect(image)]
        if self.plates is not None:
            found += [Region("plate", tuple(float(v) for v in c.xyxy)) for c in self.plates.candidates(image)]
        for box, name in zip(detections.xyxy, class_names(detections), strict=True):
            x1, y1, x2, y2 = (float(v) for v in box)
            if name in PEOPLE and y2 - y1 < self.small_person_px:
                found.append(Region("head", (x1, y1, x2, y1 + (y2 - y1) * self.head_fraction)))
        return found

    def redact(self, image: np.ndarray, at: datetime, frame_s: float) -> FrameRedaction:
        """Mask, find, follow and obscure, in place."""
        if self.masker is not None:
            self.masker.apply(image)
        detections = self.detector.detect([image])[0]
        subject = self.follower.update(detections, at, frame_s) if self.follower is not None else None
        result = FrameRedaction(at, subject)
        for region in self.regions(image, detections):
            if subject is not None and centre_inside(region.box, subject):
                result.kept.append(region)
            else:
                result.redacted.append(region)
        for region in result.redacted:
            obscure(image, region.box, self.method)
        return result


def only_classes(detections: sv.Detections, classes: frozenset[str] = PEOPLE | VEHICLES) -> sv.Detections:
    """The detections of people and vehicles."""
    if len(detections) == 0:
        return detections
    keep = np.array([n in classes for n in class_names(detections)], bool)
    return detections[keep]
