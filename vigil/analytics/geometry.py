"""Plane geometry for the rules: points in polygons, sides of lines, segment crossings, ground mapping.

Image coordinates are pixels with y pointing down, as in OpenCV and supervision.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from vigil.errors import ConfigError

Point = tuple[float, float]


def point_in_polygon(point: Point, polygon: np.ndarray) -> bool:
    """True when ``point`` is inside ``polygon`` (an Nx2 float32 array) or on its border."""
    return cv2.pointPolygonTest(polygon, (float(point[0]), float(point[1])), False) >= 0


def signed_distance(point: Point, polygon: np.ndarray) -> float:
    """Distance in pixels from ``point`` to the polygon's border: positive inside, negative outside."""
    return cv2.pointPolygonTest(polygon, (float(point[0]), float(point[1])), True)


def as_polygon(points: Sequence[Point]) -> np.ndarray:
    """A polygon as the Nx2 float32 array that ``point_in_polygon`` expects."""
    return np.asarray(points, dtype=np.float32).reshape(-1, 2)


def side_of_line(point: Point, start: Point, end: Point) -> float:
    """Cross product (end − start) × (point − start), the same sign convention as ``supervision``.

    In image coordinates (y down) it is negative for a point on the left-hand side of start→end as drawn
    on screen, positive on the right-hand side, and zero on the line itself.
    """
    return (end[0] - start[0]) * (point[1] - start[1]) - (end[1] - start[1]) * (point[0] - start[0])


def segments_intersect(a: Point, b: Point, c: Point, d: Point) -> bool:
    """True when segment a–b meets segment c–d (touching counts)."""
    d1, d2 = side_of_line(c, a, b), side_of_line(d, a, b)
    d3, d4 = side_of_line(a, c, d), side_of_line(b, c, d)
    if d1 == d2 == 0:  # collinear: they meet only if their extents overlap
        return _collinear_overlap(a, b, c, d)
    return d1 * d2 <= 0 and d3 * d4 <= 0


def _collinear_overlap(a: Point, b: Point, c: Point, d: Point) -> bool:
    axis = 0 if abs(b[0] - a[0]) >= abs(b[1] - a[1]) else 1
    lo1, hi1 = sorted((a[axis], b[axis]))
    lo2, hi2 = sorted((c[axis], d[axis]))
    return lo1 <= hi2 and lo2 <= hi1


def distance(a: Point, b: Point) -> float:
    """Euclidean distance."""
    return math.hypot(b[0] - a[0], b[1] - a[1])


def distance_to_line(point: Point, start: Point, end: Point) -> float:
    """Distance from ``point`` to the infinite line through start and end."""
    length = distance(start, end)
    return abs(side_of_line(point, start, end)) / length if length else distance(point, start)


class GroundMapper:
    """Maps image points to ground-plane metres with a camera's 3x3 homography."""

    def __init__(self, homography: Sequence[Sequence[float]], camera_id: str = "") -> None:
        matrix = np.asarray(homography, dtype=np.float64)
        if matrix.shape != (3, 3) or not np.all(np.isfinite(matrix)) or abs(np.linalg.det(matrix)) < 1e-12:
            where = f"camera {camera_id!r}: " if camera_id else ""
            raise ConfigError(f"{where}homography must be an invertible 3x3 matrix of finite numbers")
        self.matrix = matrix

    def to_ground(self, points: Sequence[Point] | np.ndarray) -> np.ndarray:
        """Nx2 image points → Nx2 ground points in metres."""
        array = np.asarray(points, dtype=np.float64).reshape(-1, 1, 2)
        if array.shape[0] == 0:
            return np.empty((0, 2))
        return cv2.perspectiveTransform(array, self.matrix).reshape(-1, 2)
