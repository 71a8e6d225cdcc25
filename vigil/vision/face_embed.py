"""Face quality and embeddings: dlib ResNet (128-d, aligned with dlib's 5-point landmarks) and FaceRes (1024-d)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import dlib
import numpy as np
import onnxruntime as ort

from vigil.vision.face_detect import Face

DLIB_THRESHOLD = 0.6  # Euclidean distance on dlib 128-d embeddings: below = same person


@dataclass(frozen=True, slots=True)
class FaceQuality:
    """Inter-ocular distance (px), sharpness (variance of the Laplacian of the face, normalised to
    a 112-px crop), frontal-ness in [0, 1] (1 = nose midway between the eyes) and a combined score."""

    inter_ocular: float
    sharpness: float
    frontal: float

    @property
    def score(self) -> float:
        size = min(1.0, self.inter_ocular / 60.0)
        sharp = min(1.0, self.sharpness / 100.0)
        return round(size * sharp * self.frontal, 4)


def face_quality(image_bgr: np.ndarray, face: Face) -> FaceQuality:
    """Size, sharpness and frontal-ness of ``face`` in ``image_bgr``."""
    x1, y1, x2, y2 = (round(float(v)) for v in face.box)
    crop = image_bgr[max(0, y1):max(0, y2), max(0, x1):max(0, x2)]
    sharpness = 0.0
    if crop.size:
        grey = cv2.cvtColor(cv2.resize(crop, (112, 112), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
        sharpness = float(cv2.Laplacian(grey, cv2.CV_64F).var())
    right_eye, left_eye, nose = face.landmarks[0], face.landmarks[1], face.landmarks[2]
    eyes = left_eye - right_eye
    span = float(np.linalg.norm(eyes))
    if span < 1e-6:
        return FaceQuality(0.0, sharpness, 0.0)
    # position of the nose projected on the eye line: 0.5 when frontal, towards 0 or 1 when turned
    along = float(np.dot(nose - right_eye, eyes) / span**2)
    frontal = max(0.0, 1.0 - 2.0 * abs(along - 0.5))
    return FaceQuality(inter_ocular=span, sharpness=sharpness, frontal=round(frontal, 4))


def _dlib_rect(face: Face, shape: tuple[int, ...]) -> dlib.rectangle:
    """A dlib box from a BlazeFace box (used as is: shrinking or shifting it measurably hurt matching)."""
    x1, y1, x2, y2 = face.box
    return dlib.rectangle(int(max(0, x1)), int(max(0, y1)), int(min(shape[1] - 1, x2)), int(min(shape[0] - 1, y2)))


class FaceEmbedder:
    """dlib ResNet 128-d embeddings; faces aligned with the 5-point predictor and ``dlib.get_face_chip``."""

    dimension = 128
    threshold = DLIB_THRESHOLD

    def __init__(self, embedding_model: Path, landmarks_model: Path, jitter: int = 0):
        self.recogniser = dlib.face_recognition_model_v1(str(embedding_model))
        self.predictor = dlib.shape_predictor(str(landmarks_model))
        self.jitter = jitter

    def chip(self, image_bgr: np.ndarray, face: Face) -> np.ndarray:
        """The aligned 150×150 RGB face chip."""
        rgb = np.ascontiguousarray(image_bgr[:, :, ::-1])
        shape = self.predictor(rgb, _dlib_rect(face, rgb.shape))
        return np.asarray(dlib.get_face_chip(rgb, shape, size=150, padding=0.25))

    def embed(self, image_bgr: np.ndarray, faces: list[Face]) -> np.ndarray:
        """``(len(faces), 128)`` float32 embeddings (unit-ish length, compare with Euclidean distance)."""
        if not faces:
            return np.zeros((0, self.dimension), np.float32)
        chips = [self.chip(image_bgr, face) for face in faces]
        vectors = self.recogniser.compute_face_descriptor(chips, self.jitter)
        return np.asarray([np.asarray(v) for v in vectors], np.float32)


class FaceResEmbedder:
    """Fast FaceRes 1024-d embeddings (L2-normalised), from an eye-levelled square crop around the face.

    Experimental: with this crop and [0, 1] input it did NOT separate identities on the face set
    (same-person max 0.059 > different-person min 0.011); use :class:`FaceEmbedder` for matching."""

    dimension = 1024
    threshold = 0.9  # Euclidean on normalised vectors; thin margin, see the face benchmark

    def __init__(self, model: Path, threads: int = 2):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.output_index = [o.name for o in self.session.get_outputs()].index("global_pooling/Mean:0")

    def embed(self, image_bgr: np.ndarray, faces: list[Face]) -> np.ndarray:
        if not faces:
            return np.zeros((0, self.dimension), np.float32)
        crops = []
        for face in faces:
            centre = (face.box[:2] + face.box[2:]) / 2
            half = 0.55 * max(face.box[2] - face.box[0], face.box[3] - face.box[1])
            # rotate so the eyes are level, then crop
            dx, dy = face.landmarks[1] - face.landmarks[0]
            angle = float(np.degrees(np.arctan2(dy, dx)))
            matrix = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), angle, 224 / (2 * half))
            matrix[:, 2] += 112 - centre
            crops.append(cv2.warpAffine(image_bgr, matrix, (224, 224), flags=cv2.INTER_LINEAR)[:, :, ::-1])
        batch = np.asarray(crops, np.float32) / 255.0
        vectors = self.session.run(None, {self.input_name: batch})[self.output_index]
        return (vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)).astype(np.float32)
