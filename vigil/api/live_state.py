"""What the command centre shows live, behind one interface: ``LiveState``.

Camera status, the latest analysed frame (snapshots, the MJPEG stream, the scene editor's size), the
background, heatmaps, line counts and the detector's timing. The routes and ``/metrics`` read only this, never a
``Node``: ``NodeLiveState`` serves it from a node in the same process (``vigil run``, the demo); a command centre
on its own reads the same interface fed by the camera workers over the bus (issue 12), and without either it is
empty (``NodeLiveState(None, ...)``: an API-only process answers 404 "no live analysis on this server").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from vigil.api.live import LiveFrame, LiveFrames

if TYPE_CHECKING:
    from vigil.runtime import Node

LineCounts = dict[str, dict[str, dict[str, int]]]  # line → "in"/"out" → label → crossings


@dataclass(frozen=True, slots=True)
class CameraStatus:
    """A camera's live state as its worker last reported it."""

    camera: str
    state: str  # a ``ReaderState`` value: connecting, online, offline, ended, failed, stopped
    fps: float  # frames read per second
    analysed_fps: float  # frames analysed per second (last 5 s)
    lag_s: float | None  # seconds since the capture time of the newest frame read
    drops: int
    frames: int
    detected: int
    tracks: int
    events: int
    reconnects: int
    recording: str  # "off", "recording", "paused (...)", ...
    error: str | None


@dataclass(frozen=True, slots=True)
class DetectorStats:
    """One worker's detector: calls per ``buckets_s`` bucket (the last is above every bound) and total time."""

    model: str
    buckets_s: tuple[float, ...]
    counts: tuple[int, ...]
    total_s: float


class LiveState(Protocol):
    def statuses(self) -> dict[str, CameraStatus]: ...

    def latest(self, camera_id: str) -> LiveFrame | None: ...

    def jpeg(self, frame: LiveFrame) -> bytes: ...

    def background_jpeg(self, camera_id: str) -> bytes | None: ...

    def heatmap_png(self, camera_id: str) -> bytes | None: ...

    def line_counts(self, camera_id: str) -> LineCounts | None: ...

    def detectors(self) -> list[DetectorStats]: ...


class NodeLiveState:
    """``LiveState`` of a node running in this process (None: no node, nothing live) and its ``LiveFrames``."""

    def __init__(self, node: Node | None, frames: LiveFrames) -> None:
        self.node = node
        self.frames = frames
        if node is not None and frames not in node.on_result:
            node.on_result.append(frames)

    def statuses(self) -> dict[str, CameraStatus]:
        if self.node is None:
            return {}
        return {row["camera"]: CameraStatus(**row) for row in self.node.status()}  # type: ignore[arg-type]

    def latest(self, camera_id: str) -> LiveFrame | None:
        return self.frames.latest(camera_id)

    def jpeg(self, frame: LiveFrame) -> bytes:
        return self.frames.jpeg(frame)

    def background_jpeg(self, camera_id: str) -> bytes | None:
        return self.frames.background_jpeg(camera_id)

    def heatmap_png(self, camera_id: str) -> bytes | None:
        pipeline = self.node.pipelines.get(camera_id) if self.node is not None else None
        if pipeline is None or pipeline.heatmap is None:
            return None
        frame = self.frames.latest(camera_id)
        return pipeline.heatmap.to_png(frame.image if frame is not None else None)

    def line_counts(self, camera_id: str) -> LineCounts | None:
        pipeline = self.node.pipelines.get(camera_id) if self.node is not None else None
        if pipeline is None:
            return None
        return {name: {"in": dict(d.get("in", {})), "out": dict(d.get("out", {}))}
                for name, d in pipeline.rules.line_counts().items()}

    def detectors(self) -> list[DetectorStats]:
        if self.node is None:
            return []
        from vigil.runtime import INFERENCE_BUCKETS_S

        node = self.node
        return [DetectorStats(node.config.detector.model, INFERENCE_BUCKETS_S, tuple(node.inference_counts),
                              node.inference_s)]
