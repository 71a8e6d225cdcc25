"""A camera's geometry in one of its streams' pixels.

Zones, lines, privacy masks and the homography are drawn in the pixels of the stream named by
``camera.coordinates`` (the analysed substream by default, or the recorded main stream). Analysis needs
them in the substream's pixels, and recordings (masks burnt into exports) in the main stream's:
``in_stream(camera, role)`` gives the camera with its geometry scaled to that stream. A camera with one
stream, or whose coordinates are already in that stream, is returned as it is.
"""

from __future__ import annotations

import numpy as np

from vigil.config import CameraConfig, StreamRole


def scale(camera: CameraConfig, role: StreamRole, source: StreamRole | None = None) -> tuple[float, float]:
    """(x, y) factors from ``source``'s pixels (default: ``camera.coordinates``') to ``role``'s; (1, 1) when they
    are the same stream."""
    source = source or camera.coordinates
    if not camera.has_substream or source == role:
        return 1.0, 1.0
    assert camera.size is not None and camera.record_size is not None  # the config requires both
    sizes = {"detect": camera.size, "record": camera.record_size}
    return sizes[role][0] / sizes[source][0], sizes[role][1] / sizes[source][1]


def in_stream(camera: CameraConfig, role: StreamRole) -> CameraConfig:
    """``camera`` with zones, lines, privacy masks and homography in ``role``'s pixels."""
    sx, sy = scale(camera, role)
    if (sx, sy) == (1.0, 1.0):
        return camera

    def point(p: tuple[float, float]) -> tuple[float, float]:
        return (p[0] * sx, p[1] * sy)

    zones = [z.model_copy(update={"polygon": [point(p) for p in z.polygon]}) for z in camera.zones]
    lines = [ln.model_copy(update={"start": point(ln.start), "end": point(ln.end)}) for ln in camera.lines]
    masks = [[point(p) for p in mask] for mask in camera.privacy_masks]
    homography = camera.homography
    if homography is not None:  # ground = H · p_old and p_old = S⁻¹ · p_new, so H_new = H · S⁻¹
        homography = (np.asarray(homography) @ np.diag([1 / sx, 1 / sy, 1.0])).tolist()
    return camera.model_copy(update={"zones": zones, "lines": lines, "privacy_masks": masks,
                                     "homography": homography, "coordinates": role})
