"""What the command centre shows live, behind one interface: ``LiveState``.

Camera status, the latest analysed frame (snapshots, the MJPEG stream, the scene editor's size), the
background, heatmaps, line counts and the detector's timing. The routes and ``/metrics`` read only this, never a
``Node``: ``NodeLiveState`` serves it from a node in the same process (``vigil run``, the demo); a command centre
on its own reads the same interface fed by the camera workers over the bus (issue 12), and without either it is
empty (``NodeLiveState(None, ...)``: an API-only process answers 404 "no live analysis on this server").
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from vigil.analytics.heatmap import overlay, png
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
    node: str | None = None  # the worker that analyses it
    gop_s: float | None = None  # the analysed stream's keyframe interval: a quiet camera sees motion this late
    decoding: str = "all frames"  # or "keyframes", while the camera is quiet
    record_stream: str | None = None  # the main stream's reader state, for a camera with a substream


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """A camera worker as its last heartbeat described it (the nodes page, ``vigil cluster status``)."""

    node: str
    host: str
    cameras: tuple[str, ...]
    cores: int
    load_1m: float  # the host's 1-minute load average
    cpu_percent: float  # this worker process's CPU use since its last heartbeat, in % of one core
    analysed_fps: float  # summed over its cameras
    drops: int  # summed over its cameras
    rss_mb: float
    age_s: float  # seconds since that heartbeat
    lost: bool  # no heartbeat for ``cluster.node_lost_s``
    storage: str | None = None  # the name its recording segments are indexed under (``RecordingIndex.node``)
    media_url: str | None = None  # where it serves those segments to command centres (``SegmentServer``)


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

    def density_png(self, camera_id: str) -> bytes | None:
        """The camera's latest crowd density map over its frame (None: it counts no crowd by density)."""
        ...

    def line_counts(self, camera_id: str) -> LineCounts | None: ...

    def detectors(self) -> list[DetectorStats]: ...

    def nodes(self) -> list[NodeStatus]: ...

    def watching(self, camera_id: str) -> contextlib.AbstractContextManager[None]:
        """Held while somebody watches the camera's full-rate stream (a remote worker only sends it then)."""
        ...


def default_node_id() -> str:
    """``<host>-<pid>``: unique among the processes of a cluster."""
    return f"{socket.gethostname()}-{os.getpid()}"


class ProcessUsage:
    """This process's CPU use between two calls, in % of one core, and its resident memory."""

    def __init__(self) -> None:
        self._last = (time.monotonic(), time.process_time())

    def sample(self) -> tuple[float, float]:
        """(cpu_percent since the last sample, rss in MB)."""
        now, cpu = time.monotonic(), time.process_time()
        wall = now - self._last[0]
        percent = 100.0 * (cpu - self._last[1]) / wall if wall > 0 else 0.0
        self._last = (now, cpu)
        return round(percent, 1), round(_rss_mb(), 1)


def _rss_mb() -> float:
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    return 0.0


class NodeLiveState:
    """``LiveState`` of a node running in this process (None: no node, nothing live) and its ``LiveFrames``."""

    def __init__(self, node: Node | None, frames: LiveFrames, node_id: str | None = None) -> None:
        self.node = node
        self.frames = frames
        self.node_id = node_id or default_node_id()
        self._usage = ProcessUsage()
        if node is not None and frames not in node.on_result:
            node.on_result.append(frames)

    def statuses(self) -> dict[str, CameraStatus]:
        if self.node is None:
            return {}
        return {row["camera"]: CameraStatus(**row, node=self.node_id)  # type: ignore[arg-type]
                for row in self.node.status()}

    def nodes(self) -> list[NodeStatus]:
        if self.node is None:
            return []
        return [node_status(self.node_id, self.statuses().values(), self._usage)]

    @contextlib.contextmanager
    def watching(self, camera_id: str) -> Iterator[None]:
        yield  # every analysed frame is here already

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

    def density_png(self, camera_id: str) -> bytes | None:
        pipeline = self.node.pipelines.get(camera_id) if self.node is not None else None
        density = pipeline.rules.counter.latest if pipeline is not None else None
        if density is None:
            return None
        frame = self.frames.latest(camera_id)
        return png(overlay(density.normalised(), density.width, density.height,
                           frame.image if frame is not None else None))

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


def node_status(node_id: str, cameras: Iterator[CameraStatus] | list[CameraStatus], usage: ProcessUsage,
                storage: str | None = None, media_url: str | None = None) -> NodeStatus:
    """This process as a node: its cameras' summed fps and drops, the host's load, its own CPU and memory."""
    rows = list(cameras)
    cpu, rss = usage.sample()
    return NodeStatus(node_id, socket.gethostname(), tuple(r.camera for r in rows), os.cpu_count() or 1,
                      round(os.getloadavg()[0], 2), cpu, round(sum(r.analysed_fps for r in rows), 2),
                      sum(r.drops for r in rows), rss, 0.0, False, storage, media_url)
