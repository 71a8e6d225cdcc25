"""Face detection with BlazeFace (MediaPipe "back"/full-range model, 256×256) on onnxruntime.

The model (converted from TF.js) takes NHWC ``[b, 256, 256, 3]`` RGB in [-1, 1] and returns, for
896 SSD anchors (stride 16: 16×16 cells × 2 anchors = 512; stride 32: 8×8 cells × 6 anchors = 384),
a score logit and 16 regressors: box centre x/y, width, height, then 6 key points (x, y) in
input pixels relative to the anchor centre. Any image size works: it is letterboxed to 256.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import onnxruntime as ort

INPUT_SIZE = 256
LANDMARK_NAMES = ("right_eye", "left_eye", "nose", "mouth", "right_ear", "left_ear")  # subject's right = image left


@dataclass(slots=True)
class Face:
    """One detected face in image pixels: box ``xyxy``, landmarks ``(n, 2)`` and score.

    The first four landmarks are always ``LANDMARK_NAMES[:4]`` (eyes, image-left first, nose, mouth centre);
    BlazeFace adds the ears, CenterFace has no more."""

    box: np.ndarray
    landmarks: np.ndarray
    score: float

    @property
    def inter_ocular(self) -> float:
        """Distance between the eye centres in pixels."""
        return float(np.linalg.norm(self.landmarks[0] - self.landmarks[1]))


def blazeface_anchors() -> np.ndarray:
    """Anchor centres ``(896, 2)`` in [0, 1] for the 256 model (MediaPipe SSD anchor options:
    strides 16, 32, 32, 32; 2 anchors per layer; fixed anchor size; offset 0.5)."""
    centres = []
    for stride, per_cell in ((16, 2), (32, 6)):
        grid = INPUT_SIZE // stride
        ys, xs = np.mgrid[0:grid, 0:grid]
        cell = np.stack([(xs + 0.5) / grid, (ys + 0.5) / grid], axis=-1).reshape(-1, 2)
        centres.append(np.repeat(cell, per_cell, axis=0))
    return np.concatenate(centres).astype(np.float32)


def letterbox(image_bgr: np.ndarray, size: int = INPUT_SIZE) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Resize keeping the aspect ratio and pad to ``size``²; returns (RGB image, scale, (pad_x, pad_y))."""
    height, width = image_bgr.shape[:2]
    scale = size / max(height, width)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    resized = cv2.resize(image_bgr, (new_w, new_h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    pad_x, pad_y = (size - new_w) // 2, (size - new_h) // 2
    canvas = np.zeros((size, size, 3), np.uint8)
    canvas[pad_y:pad_y + new_h, pad_x:pad_x + new_w] = resized
    return cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB), scale, (pad_x, pad_y)


def weighted_nms(boxes: np.ndarray, points: np.ndarray, scores: np.ndarray,
                 iou_threshold: float) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """MediaPipe's blending NMS: overlapping detections are averaged, weighted by score."""
    order = np.argsort(-scores)
    boxes, points, scores = boxes[order], points[order], scores[order]
    remaining = np.ones(len(scores), bool)
    kept = []
    for i in range(len(scores)):
        if not remaining[i]:
            continue
        iou = box_iou(boxes[i], boxes)
        group = remaining & (iou >= iou_threshold)
        remaining &= ~group
        weights = scores[group][:, None]
        kept.append(((boxes[group] * weights).sum(0) / weights.sum(),
                     (points[group] * weights[:, :, None]).sum(0) / weights.sum(), float(scores[i])))
    return kept


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[int]:
    """Indices of the boxes kept by greedy NMS, highest score first."""
    order = list(np.argsort(-scores))
    kept: list[int] = []
    while order:
        best, order = order[0], order[1:]
        kept.append(int(best))
        if order:
            rest = np.asarray(order)
            order = list(rest[box_iou(boxes[best], boxes[rest]) < iou_threshold])
    return kept


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one ``xyxy`` box with each of ``boxes``."""
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return inter / np.maximum(area(box) + area(boxes) - inter, 1e-9)


class FaceFinder(Protocol):
    def detect(self, image_bgr: np.ndarray) -> list[Face]: ...


class FaceDetector:
    """BlazeFace detector: ``detect(image_bgr) -> list[Face]`` sorted by score."""

    def __init__(self, model: Path, score_threshold: float = 0.7, iou_threshold: float = 0.3, threads: int = 2):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.anchors = blazeface_anchors()
        self.score_threshold = score_threshold
        self.iou_threshold = iou_threshold

    def _raw(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        tensor = (rgb.astype(np.float32) / 127.5 - 1.0)[None]
        score16, score32, reg16, reg32 = self.session.run(None, {self.input_name: tensor})
        logits = np.concatenate([score16[0, :, 0], score32[0, :, 0]])
        return 1.0 / (1.0 + np.exp(-np.clip(logits, -80, 80))), np.concatenate([reg16[0], reg32[0]])

    def detect(self, image_bgr: np.ndarray) -> list[Face]:
        """Faces in ``image_bgr`` (any size), in image pixels."""
        rgb, scale, (pad_x, pad_y) = letterbox(image_bgr)
        scores, reg = self._raw(rgb)
        keep = scores >= self.score_threshold
        if not keep.any():
            return []
        scores, reg, anchors = scores[keep], reg[keep], self.anchors[keep] * INPUT_SIZE
        centre = anchors + reg[:, :2]
        half = reg[:, 2:4] / 2
        boxes = np.concatenate([centre - half, centre + half], axis=1)
        points = anchors[:, None, :] + reg[:, 4:16].reshape(-1, 6, 2)
        height, width = image_bgr.shape[:2]
        faces = []
        for box, pts, score in weighted_nms(boxes, points, scores, self.iou_threshold):
            box = (box - [pad_x, pad_y, pad_x, pad_y]) / scale
            box = np.clip(box, 0, [width, height, width, height])
            faces.append(Face(box=box.astype(np.float32), landmarks=((pts - [pad_x, pad_y]) / scale).astype(np.float32),
                              score=score))
        return faces


class TiledDetector:
    """A face detector run on the whole image, then on an enlarged copy (``upscale``, long side at most
    ``max_side``) cut into overlapping square tiles of ``tile`` px (0: one pass over the enlarged copy);
    all detections merged by NMS. A face of ``n`` px is ``upscale·n`` px in the tiles, so faces too small
    for the whole-image pass are found. Tile detections touching an inner tile edge are dropped: a face
    smaller than ``overlap`` lies wholly in a neighbouring tile, a bigger one comes from the whole image."""

    def __init__(self, base: FaceFinder, upscale: float = 2.0, tile: int = 0, overlap: int = 96,
                 max_side: int = 2048, iou_threshold: float = 0.3):
        self.base = base
        self.upscale, self.tile, self.overlap, self.max_side = upscale, tile, overlap, max_side
        self.iou_threshold = iou_threshold

    def _windows(self, height: int, width: int) -> list[tuple[int, int, int, int]]:
        if not self.tile or (height <= self.tile and width <= self.tile):
            return [(0, 0, width, height)]
        step = max(1, self.tile - self.overlap)

        def starts(length: int) -> list[int]:
            if length <= self.tile:
                return [0]
            return sorted({*range(0, length - self.tile, step), length - self.tile})

        return [(x, y, min(width, x + self.tile), min(height, y + self.tile))
                for y in starts(height) for x in starts(width)]

    def detect(self, image_bgr: np.ndarray) -> list[Face]:
        """Faces in ``image_bgr``, in image pixels, highest score first."""
        faces = list(self.base.detect(image_bgr))
        height, width = image_bgr.shape[:2]
        scale = min(self.upscale, self.max_side / max(height, width))
        if scale > 1.05:
            big = cv2.resize(image_bgr, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_LINEAR)
            big_h, big_w = big.shape[:2]
            for x1, y1, x2, y2 in self._windows(big_h, big_w):
                inner = np.array([x1 > 0, y1 > 0, x2 < big_w, y2 < big_h])
                for face in self.base.detect(big[y1:y2, x1:x2]):
                    box = face.box
                    touches = np.array([box[0] <= 1, box[1] <= 1, box[2] >= x2 - x1 - 1, box[3] >= y2 - y1 - 1])
                    if (touches & inner).any():
                        continue
                    offset = np.array([x1, y1], np.float32)
                    faces.append(Face(box=((box.reshape(2, 2) + offset) / scale).reshape(4).astype(np.float32),
                                      landmarks=((face.landmarks + offset) / scale).astype(np.float32),
                                      score=face.score))
        return merge(faces, self.iou_threshold)


def merge(faces: list[Face], iou_threshold: float = 0.3, inside: float = 0.7) -> list[Face]:
    """NMS over ``faces``, then drop a face lying mostly (``inside`` of its area) within a kept face at least
    twice its size: an enlarged pass fires on parts of a big face."""
    if len(faces) < 2:
        return faces
    boxes = np.array([f.box for f in faces])
    kept = nms(boxes, np.array([f.score for f in faces]), iou_threshold)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    out = []
    for i in kept:
        x1 = np.maximum(boxes[i, 0], boxes[kept, 0])
        y1 = np.maximum(boxes[i, 1], boxes[kept, 1])
        x2 = np.minimum(boxes[i, 2], boxes[kept, 2])
        y2 = np.minimum(boxes[i, 3], boxes[kept, 3])
        covered = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None) / max(area[i], 1e-9)
        if not ((covered >= inside) & (area[kept] >= 2 * area[i])).any():
            out.append(faces[i])
    return out
