"""Faces: the face detector every user gets, enrolment from user-supplied photos, the FAISS index of watchlists.

Detection lives in ``centerface`` (CenterFace) and ``face_detect`` (BlazeFace, tiling), quality and embeddings in
``face_embed`` (dlib ResNet 128-d). :func:`create_face_detector` is the one place a face detector is made.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import faiss
import numpy as np

from vigil.errors import VigilError
from vigil.vision.face_detect import Face, FaceDetector, FaceFinder, TiledDetector
from vigil.vision.face_embed import DLIB_THRESHOLD, FaceEmbedder, FaceQuality, FaceResEmbedder, face_quality
from vigil.vision.imageio import ImageError, load_image

__all__ = [
    "DLIB_THRESHOLD", "EnrolmentError", "EnrolmentImage", "Face", "FaceDetector", "FaceEmbedder", "FaceFinder",
    "FaceIndex", "FaceQuality", "FaceResEmbedder", "ImageError", "Match", "create_face_detector", "enrol",
    "face_quality", "load_enrolment_image",
]

MIN_INTER_OCULAR = 40.0
MIN_BOX = 80.0
MIN_SHARPNESS = 15.0

#: chosen by measurement (``vigil bench faces``: recall and precision on faces pasted into CCTV frames)
DEFAULT_FACE_DETECTOR = "centerface"
FACE_DETECTORS = ("centerface", "blazeface")
#: score thresholds: recognition wants few false faces, redaction must miss none (a false one only blurs a patch)
THRESHOLDS = {("centerface", "recognition"): 0.5, ("centerface", "redaction"): 0.3, ("blazeface", "recognition"): 0.7}
CENTERFACE_MAX_SIDE = 1280  # the whole-image pass: bigger images are scaled down to this long side
BLAZEFACE_TILE = 256  # its input size: tiles are not scaled down


def create_face_detector(kind: str = DEFAULT_FACE_DETECTOR, *, purpose: Literal["recognition", "redaction"] =
                         "recognition", upscale: float = 2.0, max_side: int = 1536, threads: int = 2) -> FaceFinder:
    """The face detector for recognition (live enricher, enrolment, probes: ``recognition.faces.detector`` and
    its tiling) or for redaction, which always takes the stronger one by measurement (CenterFace, low threshold,
    enlarged 2× up to a 2560-px long side) whatever the recognition settings.

    ``upscale`` > 1 adds a pass over the image enlarged so (long side at most ``max_side``; CenterFace in one
    pass, BlazeFace in 256-px tiles) for faces too small for the whole-image pass (:class:`TiledDetector`)."""
    from vigil.vision.models import model_path

    if purpose == "redaction":
        kind, upscale, max_side = "centerface", 2.0, 2560
    if kind not in FACE_DETECTORS:
        raise ValueError(f"unknown face detector {kind!r}; known: {', '.join(FACE_DETECTORS)}")
    threshold = THRESHOLDS[(kind, purpose)]
    if kind == "centerface":
        from vigil.vision.centerface import CenterFaceDetector

        base: FaceFinder = CenterFaceDetector(model_path("centerface"), score_threshold=threshold, threads=threads,
                                              max_side=CENTERFACE_MAX_SIDE)
        tile = 0
    else:
        base = FaceDetector(model_path("blazeface"), score_threshold=threshold, threads=threads)
        tile = BLAZEFACE_TILE
    if upscale <= 1.0:
        return base
    return TiledDetector(base, upscale=upscale, tile=tile, overlap=tile // 4, max_side=max_side)


class EnrolmentError(VigilError):
    """An enrolment photo is unusable (no face, several faces, too small, too blurred); names the file."""


class Embedder(Protocol):
    dimension: int

    def embed(self, image_bgr: np.ndarray, faces: list[Face]) -> np.ndarray: ...


@dataclass(slots=True)
class EnrolmentImage:
    path: Path
    image: np.ndarray
    face: Face
    quality: FaceQuality


def load_enrolment_image(path: Path | str, detector: FaceFinder, min_inter_ocular: float = MIN_INTER_OCULAR,
                         min_box: float = MIN_BOX, min_sharpness: float = MIN_SHARPNESS) -> EnrolmentImage:
    """Load a photo for enrolment: exactly one face big enough (faces too small to enrol, such as people far
    behind, are ignored), sharp enough; else a one-line error naming the file."""
    path = Path(path)
    image = load_image(path)
    faces = detector.detect(image)
    if not faces:
        raise EnrolmentError(f"{path}: no face found")

    def box_size(face: Face) -> float:
        return float(min(face.box[2] - face.box[0], face.box[3] - face.box[1]))

    big = [f for f in faces if f.inter_ocular >= min_inter_ocular and box_size(f) >= min_box]
    if len(big) > 1:
        raise EnrolmentError(f"{path}: {len(big)} faces found; enrolment needs a photo of one person")
    face = big[0] if big else faces[0]
    quality = face_quality(image, face)
    if not big:
        raise EnrolmentError(f"{path}: face too small ({quality.inter_ocular:.0f} px between the eyes, "
                             f"{box_size(face):.0f} px box; need ≥ {min_inter_ocular:.0f} and ≥ {min_box:.0f})")
    if quality.sharpness < min_sharpness:
        raise EnrolmentError(f"{path}: face too blurred (sharpness {quality.sharpness:.0f} < {min_sharpness:.0f})")
    return EnrolmentImage(path, image, face, quality)


def enrol(paths: Iterable[Path | str], detector: FaceFinder, embedder: Embedder) -> np.ndarray:
    """One enrolment vector: the normalised mean of the embeddings of ≥ 1 photos (each checked as above).

    dlib embeddings are compared by Euclidean distance at their natural scale (norm ≈ 1), so the mean
    is rescaled to the mean norm of its inputs rather than to 1.
    """
    vectors = []
    for path in paths:
        item = load_enrolment_image(path, detector)
        vectors.append(embedder.embed(item.image, [item.face])[0])
    if not vectors:
        raise EnrolmentError("enrolment needs at least one photo")
    stacked = np.asarray(vectors, np.float32)
    mean = stacked.mean(0)
    return (mean * np.linalg.norm(stacked, axis=1).mean() / max(np.linalg.norm(mean), 1e-9)).astype(np.float32)


@dataclass(frozen=True, slots=True)
class Match:
    label: Hashable
    distance: float  # Euclidean


class FaceIndex:
    """Nearest-neighbour search over face embeddings (Euclidean), FAISS Flat for small sets and HNSW
    once the set grows past ``hnsw_from`` vectors. Labels are any hashable (watchlist entry ids)."""

    def __init__(self, dimension: int = 128, threshold: float = DLIB_THRESHOLD, hnsw_from: int = 20_000,
                 hnsw_neighbours: int = 32):
        self.dimension = dimension
        self.threshold = threshold
        self.hnsw_from = hnsw_from
        self.hnsw_neighbours = hnsw_neighbours
        self.labels: list[Hashable] = []
        self.vectors = np.zeros((0, dimension), np.float32)
        self.index: faiss.Index = faiss.IndexFlatL2(dimension)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def kind(self) -> str:
        return "hnsw" if isinstance(self.index, faiss.IndexHNSWFlat) else "flat"

    def add(self, labels: Sequence[Hashable], vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(np.asarray(vectors, np.float32).reshape(-1, self.dimension))
        if len(labels) != len(vectors):
            raise ValueError(f"{len(labels)} labels for {len(vectors)} vectors")
        self.labels.extend(labels)
        self.vectors = np.concatenate([self.vectors, vectors])
        if self.kind == "flat" and len(self.labels) >= self.hnsw_from:
            self.index = faiss.IndexHNSWFlat(self.dimension, self.hnsw_neighbours)
            self.index.hnsw.efSearch = 64
            self.index.add(self.vectors)
        else:
            self.index.add(vectors)

    def search(self, vectors: np.ndarray, k: int = 1) -> list[list[Match]]:
        """The ``k`` nearest entries of each query vector, closest first (Euclidean distances)."""
        vectors = np.ascontiguousarray(np.asarray(vectors, np.float32).reshape(-1, self.dimension))
        if not len(self.labels) or not len(vectors):
            return [[] for _ in range(len(vectors))]
        squared, positions = self.index.search(vectors, min(k, len(self.labels)))
        return [[Match(self.labels[p], float(np.sqrt(max(d, 0.0))))
                 for d, p in zip(row_d, row_p, strict=True) if p >= 0]
                for row_d, row_p in zip(squared, positions, strict=True)]

    def identify(self, vectors: np.ndarray) -> list[Match | None]:
        """The nearest entry of each vector when closer than ``threshold``, else ``None``."""
        return [row[0] if row and row[0].distance < self.threshold else None for row in self.search(vectors, 1)]
