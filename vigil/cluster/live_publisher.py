"""A camera worker's side of the live picture: it serves its ``NodeLiveState`` on the bus (``live_wire``).

Runs on the services' event loop. JPEG encoding and heatmap drawing run in threads (``asyncio.to_thread``),
so the loop that also relays the outbox never waits on them. Full-rate frames are sent only for cameras a
command centre watches; nothing is sent for a camera the worker no longer holds (``may_serve``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from nats.aio.client import Client
from nats.errors import Error as NatsError

from vigil.api.live_state import NodeLiveState, ProcessUsage, node_status
from vigil.cluster.live_wire import WATCH_TTL_S, LiveSubjects, frame_headers, heartbeat_body

log = logging.getLogger(__name__)

TICK_S = 0.05  # how often new frames of watched cameras are looked for


class LivePublisher:
    def __init__(self, client: Client, prefix: str, live: NodeLiveState, heartbeat_s: float = 1.0,
                 preview_s: float = 2.0, may_serve: Callable[[str], bool] | None = None,
                 storage: str | None = None, media_url: str | None = None) -> None:
        """``storage``, ``media_url``: where command centres fetch this node's recording segments."""
        self.storage = storage
        self.media_url = media_url
        self.client = client
        self.subjects = LiveSubjects(prefix)
        self.live = live
        self.heartbeat_s = heartbeat_s
        self.preview_s = preview_s
        self.may_serve = may_serve or (lambda _camera: True)
        self.watched: dict[str, float] = {}  # camera → monotonic time of the last watch message
        self._sent_seq: dict[str, int] = {}  # camera → seq of the last full-rate frame sent
        self._preview_at: dict[str, float] = {}
        self.sent = {"heartbeats": 0, "previews": 0, "frames": 0}
        self._usage = ProcessUsage()

    def cameras(self) -> list[str]:
        node = self.live.node
        return [c for c in (node.pipelines if node is not None else {}) if self.may_serve(c)]

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until ``stop`` is set; a bus outage only delays the live picture."""
        subscriptions = [
            await self.client.subscribe(self.subjects.every("watch"), cb=self._on_watch),
            await self.client.subscribe(self.subjects.every("heatmap"), cb=self._answer(self.live.heatmap_png)),
            await self.client.subscribe(self.subjects.every("density"), cb=self._answer(self.live.density_png)),
            await self.client.subscribe(self.subjects.every("background"),
                                        cb=self._answer(self.live.background_jpeg)),
        ]
        next_heartbeat = 0.0
        try:
            while not stop.is_set():
                now = time.monotonic()
                try:
                    if now >= next_heartbeat:
                        next_heartbeat = now + self.heartbeat_s
                        await self._heartbeat()
                    await self._frames(now)
                except (NatsError, OSError, TimeoutError) as exc:  # the client reconnects by itself
                    log.debug("live picture not sent: %s", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), TICK_S)
        finally:
            for subscription in subscriptions:
                with contextlib.suppress(Exception):
                    await subscription.unsubscribe()

    async def _heartbeat(self) -> None:
        cameras = set(self.cameras())
        statuses = [s for c, s in self.live.statuses().items() if c in cameras]
        status = node_status(self.live.node_id, statuses, self._usage, self.storage, self.media_url)
        counts = {c: self.live.line_counts(c) for c in cameras}
        body = heartbeat_body(status, statuses, counts, self.live.detectors())
        await self.client.publish(self.subjects.node(self.live.node_id), body)
        self.sent["heartbeats"] += 1

    async def _frames(self, now: float) -> None:
        """A preview per camera every ``preview_s``; every new frame of a watched camera."""
        for camera_id in self.cameras():
            frame = self.live.latest(camera_id)
            if frame is None:
                continue
            watched = now - self.watched.get(camera_id, -1e9) < WATCH_TTL_S
            preview = now >= self._preview_at.get(camera_id, 0.0)
            if watched and self._sent_seq.get(camera_id) != frame.seq:
                self._sent_seq[camera_id] = frame.seq
                jpeg = await asyncio.to_thread(self.live.jpeg, frame)
                await self.client.publish(self.subjects.camera("frame", camera_id), jpeg,
                                          headers=frame_headers(camera_id, frame))
                self.sent["frames"] += 1
            if preview:
                self._preview_at[camera_id] = now + self.preview_s
                jpeg = await asyncio.to_thread(self.live.jpeg, frame)
                await self.client.publish(self.subjects.camera("preview", camera_id), jpeg,
                                          headers=frame_headers(camera_id, frame))
                self.sent["previews"] += 1

    async def _on_watch(self, msg: Any) -> None:
        camera_id = (msg.headers or {}).get("Vigil-Camera")
        if camera_id and camera_id in self.cameras():
            self.watched[camera_id] = time.monotonic()

    def _answer(self, produce: Callable[[str], bytes | None]) -> Callable[[Any], Any]:
        async def answer(msg: Any) -> None:
            camera_id = (msg.headers or {}).get("Vigil-Camera")
            if not camera_id or camera_id not in self.cameras() or not msg.reply:
                return  # another worker's camera: it answers
            data = await asyncio.to_thread(produce, camera_id)
            with contextlib.suppress(NatsError, OSError):
                await msg.respond(data or b"")

        return answer

