"""Face detection with BlazeFace (MediaPipe "back"/full-range model, 256×256) on onnxruntime.

The model (converted from TF.js) takes NHWC ``[b, 256, 256, 3]`` RGB in [-1, 1] and returns, for
896 SSD anchors (stride 16: 16×16 cells × 2 anchors = 512; stride 32: 8×8 cells × 6 anchors = 384),
a score logit and 16 regressors: box centre x/y, width, height, then 6 key points (x, y) in
input pixels relative to the anchor centre. Any image size works: it is letterboxed to 256.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

INPUT_SIZE = 256
LANDMARK_NAMES = ("right_eye", "left_eye", "nose", "mouth", "right_ear", "left_ear")  # subject's right = image left


@dataclass(slots=True)
class Face:
    """One detected face in image pixels: box ``xyxy``, 6 landmarks ``(6, 2)`` and score."""

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


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one ``xyxy`` box with each of ``boxes``."""
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return inter / np.maximum(area(box) + area(boxes) - inter, 1e-9)


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
