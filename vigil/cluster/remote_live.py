"""``BusLiveState``: the command centre's ``LiveState`` when the cameras run in camera workers elsewhere.

It is fed by the workers' ``LivePublisher`` over NATS (``live_wire``): heartbeats give camera status, line
counts, detector timing and the nodes; previews and watched frames give the latest JPEG per camera; heatmaps
and backgrounds are asked of the camera's worker when a page wants one. Subscriptions live on the services'
event loop; the routes read plain dictionaries under a lock.

A camera reported by two nodes (while it moves) is shown from the freshest heartbeat. A node whose heartbeat
is older than ``cluster.node_lost_s`` is shown lost, and its cameras offline with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from nats.errors import Error as NatsError

from vigil.api.live import LiveFrame
from vigil.api.live_state import CameraStatus, DetectorStats, LineCounts, NodeStatus
from vigil.cluster.live_wire import (
    REQUEST_TIMEOUT_S,
    WATCH_EVERY_S,
    LiveSubjects,
    parse_frame,
    parse_heartbeat,
)

if TYPE_CHECKING:
    from vigil.assembly import Services


@dataclasses.dataclass
class _Heartbeat:
    received: float  # monotonic
    node: NodeStatus
    cameras: dict[str, CameraStatus]
    line_counts: dict[str, Any]
    detectors: list[DetectorStats]


class BusLiveState:
    def __init__(self, services: Services, lost_after_s: float = 5.0) -> None:
        from vigil.events.nats_bus import NatsBus

        if not isinstance(services.bus, NatsBus):
            raise ValueError("a command centre without cameras needs the NATS bus (bus: kind: nats)")
        self.services = services
        self.client = services.bus.client
        self.subjects = LiveSubjects(services.config.bus.subject_prefix)
        self.lost_after_s = lost_after_s
        self._lock = threading.Lock()
        self._beats: dict[str, _Heartbeat] = {}
        self._frames: dict[str, LiveFrame] = {}
        self._watchers: Counter[str] = Counter()
        self._subscriptions: list[Any] = []

    def start(self) -> BusLiveState:
        self.services.call(self._subscribe())
        self.services.spawn(self._watch_loop())
        return self

    async def _subscribe(self) -> None:
        self._subscriptions = [
            await self.client.subscribe(f"{self.subjects.root}.node.*", cb=self._on_heartbeat),
            await self.client.subscribe(self.subjects.every("preview"), cb=self._on_frame),
            await self.client.subscribe(self.subjects.every("frame"), cb=self._on_frame),
        ]

    async def _on_heartbeat(self, msg: Any) -> None:
        node, cameras, counts, detectors = parse_heartbeat(msg.data)
        with self._lock:
            self._beats[node.node] = _Heartbeat(time.monotonic(), node, {c.camera: c for c in cameras}, counts,
                                                detectors)

    async def _on_frame(self, msg: Any) -> None:
        camera_id, frame = parse_frame(msg.headers or {}, msg.data)
        with self._lock:
            current = self._frames.get(camera_id)
            if current is None or current.captured_at <= frame.captured_at:
                self._frames[camera_id] = frame

    async def _watch_loop(self) -> None:
        """Tell the workers, every ``WATCH_EVERY_S``, which cameras somebody here watches."""
        while True:
            with self._lock:
                watched = [c for c, n in self._watchers.items() if n > 0]
            for camera_id in watched:
                await self._send_watch(camera_id)
            await asyncio.sleep(WATCH_EVERY_S)

    async def _send_watch(self, camera_id: str) -> None:
        with contextlib.suppress(NatsError, OSError):
            await self.client.publish(self.subjects.camera("watch", camera_id), b"",
                                      headers={"Vigil-Camera": camera_id})

    # -- LiveState ------------------------------------------------------------------------------------------

    def _current(self) -> list[tuple[float, _Heartbeat]]:
        now = time.monotonic()
        with self._lock:
            return [(now - beat.received, beat) for beat in self._beats.values()]

    def statuses(self) -> dict[str, CameraStatus]:
        out: dict[str, tuple[float, CameraStatus]] = {}
        for age, beat in sorted(self._current(), key=lambda item: -item[0]):  # the freshest wins
            lost = age > self.lost_after_s
            for camera_id, status in beat.cameras.items():
                if lost:
                    if camera_id in out:
                        continue
                    status = dataclasses.replace(status, state="offline",
                                                 error=f"node {beat.node.node}: no heartbeat for {age:.0f} s")
                out[camera_id] = (age, status)
        return {camera_id: status for camera_id, (_, status) in out.items()}

    def nodes(self) -> list[NodeStatus]:
        return sorted((dataclasses.replace(beat.node, age_s=round(age, 1), lost=age > self.lost_after_s)
                       for age, beat in self._current()), key=lambda n: n.node)

    def latest(self, camera_id: str) -> LiveFrame | None:
        with self._lock:
            return self._frames.get(camera_id)

    def jpeg(self, frame: LiveFrame) -> bytes:
        assert frame.jpeg is not None, "frames from the bus are JPEG already"
        return frame.jpeg

    def line_counts(self, camera_id: str) -> LineCounts | None:
        beat = self._holder(camera_id)
        return None if beat is None else beat.line_counts.get(camera_id)

    def detectors(self) -> list[DetectorStats]:
        return [d for age, beat in self._current() if age <= self.lost_after_s for d in beat.detectors]

    def heatmap_png(self, camera_id: str) -> bytes | None:
        return self._ask("heatmap", camera_id)

    def density_png(self, camera_id: str) -> bytes | None:
        return self._ask("density", camera_id)

    def background_jpeg(self, camera_id: str) -> bytes | None:
        return self._ask("background", camera_id)

    @contextlib.contextmanager
    def watching(self, camera_id: str) -> Iterator[None]:
        with self._lock:
            self._watchers[camera_id] += 1
        self.services.spawn(self._send_watch(camera_id))  # the first full-rate frame comes without waiting
        try:
            yield
        finally:
            with self._lock:
                self._watchers[camera_id] -= 1

    # -- helpers --------------------------------------------------------------------------------------------

    def _holder(self, camera_id: str) -> _Heartbeat | None:
        live = [(age, beat) for age, beat in self._current() if camera_id in beat.cameras]
        return min(live, key=lambda item: item[0])[1] if live else None

    def _ask(self, kind: str, camera_id: str) -> bytes | None:
        """A worker's answer about its camera (None: no worker has the camera, or it has nothing yet)."""
        if self._holder(camera_id) is None:
            return None

        async def request() -> bytes:
            reply = await self.client.request(self.subjects.camera(kind, camera_id), b"",
                                              timeout=REQUEST_TIMEOUT_S, headers={"Vigil-Camera": camera_id})
            return reply.data

        try:
            data = self.services.call(request(), timeout=REQUEST_TIMEOUT_S + 1)
        except (NatsError, OSError, TimeoutError):
            return None
        return data or None
