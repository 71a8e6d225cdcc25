"""Presence heatmap: where people stood and walked, accumulated on a downscaled grid.

Each call adds one unit per confirmed track of the chosen labels at its ground point, so the map
weights places by presence time (someone standing still for a minute weighs more than a passer-by).
Rendered with an OpenCV colormap, blurred, and blended over a frame; hand-written rather than
``supervision.HeatMapAnnotator`` because that one accumulates full-resolution circles per frame,
while this grid is small enough to keep per camera for hours and to save as a number array.
"""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np

from vigil.errors import VigilError
from vigil.types import Track, TrackState


class DensityHeatmap:
    """A ``ceil(height/cell_px) × ceil(width/cell_px)`` grid of presence counts for a ``width×height`` image."""

    def __init__(self, width: int, height: int, cell_px: int = 8, labels: Iterable[str] = ("person",)) -> None:
        if width <= 0 or height <= 0 or cell_px <= 0:
            raise VigilError(f"heatmap size {width}x{height} with cell {cell_px} px is not valid")
        self.width, self.height, self.cell_px = width, height, cell_px
        self.labels = frozenset(labels)
        self.grid = np.zeros((-(-height // cell_px), -(-width // cell_px)), dtype=np.float32)

    def add_points(self, points: Iterable[tuple[float, float]], weight: float = 1.0) -> None:
        """Add image points (pixels); points outside the image are ignored."""
        for x, y in points:
            if 0 <= x < self.width and 0 <= y < self.height:
                self.grid[int(y) // self.cell_px, int(x) // self.cell_px] += weight

    def add_tracks(self, tracks: Iterable[Track]) -> None:
        """Add the ground point of every confirmed track of the heatmap's labels (call once per frame)."""
        self.add_points(t.ground_point for t in tracks
                        if t.state is TrackState.CONFIRMED and t.label in self.labels and t.trajectory)

    def reset(self) -> None:
        self.grid[:] = 0

    def normalised(self, blur_cells: int = 3) -> np.ndarray:
        """The grid blurred over ``blur_cells`` and scaled to 0..1 (all zeros when empty)."""
        heat = self.grid
        if blur_cells > 0:
            size = 2 * blur_cells + 1
            heat = cv2.GaussianBlur(heat, (size, size), 0)
        peak = float(heat.max())
        return heat / peak if peak > 0 else np.zeros_like(heat)

    def render(self, frame: np.ndarray | None = None, opacity: float = 0.6,
               colormap: int = cv2.COLORMAP_JET) -> np.ndarray:
        """A BGR image of the heat over ``frame`` (or alone), at the heatmap's full size; cold cells stay clear."""
        return overlay(self.normalised(), self.width, self.height, frame, opacity, colormap)

    def to_png(self, frame: np.ndarray | None = None, opacity: float = 0.6) -> bytes:
        """``render`` encoded as PNG bytes."""
        return png(self.render(frame, opacity))


def overlay(heat: np.ndarray, width: int, height: int, frame: np.ndarray | None = None, opacity: float = 0.6,
            colormap: int = cv2.COLORMAP_JET) -> np.ndarray:
    """Heat in 0..1 (any grid size) coloured at ``width×height`` over ``frame`` (or alone); cold places stay clear.
    Shared by the presence heatmap and the crowd density map."""
    heat = cv2.resize(heat.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    coloured = cv2.applyColorMap((np.clip(heat, 0, 1) * 255).astype(np.uint8), colormap)
    if frame is None:
        return coloured
    if frame.shape[:2] != (height, width):
        frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
    alpha = (np.clip(heat * 4, 0, 1) * opacity)[..., None]  # fade in from zero heat
    return (frame.astype(np.float32) * (1 - alpha) + coloured.astype(np.float32) * alpha).astype(np.uint8)


def png(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise VigilError("heatmap could not be encoded as PNG")
    return data.tobytes()
