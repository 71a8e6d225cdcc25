"""Live view and live events for the API.

- ``LiveFrames``: a ``Node.on_result`` hook keeping each camera's latest analysed frame. The hook only keeps a
  reference to the frame and copies of the track boxes (microseconds on the frame path); drawing and JPEG
  encoding happen on demand, once per frame whatever the number of viewers. Privacy masks are already applied
  by the reader.
- ``mjpeg_stream``: ``multipart/x-mixed-replace`` parts of a camera's latest frames, at most at the analysis
  rate; each client holds at most one frame (a slow client gets fewer frames, never a backlog).
- ``EventBridge``: bus subscriptions live on the services' event loop (their own thread); each SSE client gets
  its own filtered subscription there, and a pump coroutine hands events over with ``call_soon_threadsafe``
  into a bounded ``asyncio.Queue`` on the web server's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

import cv2
import numpy as np
import supervision as sv

from vigil.types import Event, TrackState

if TYPE_CHECKING:
    from vigil.assembly import Services
    from vigil.runtime import FrameResult

BOUNDARY = "vigilframe"


@dataclass(slots=True)
class LiveFrame:
    """One camera's latest analysed frame and the boxes to draw on it (track id, xyxy, label).

    A frame that came over the bus from a remote worker has no ``image``: only its annotated ``jpeg`` and its
    ``width`` and ``height``."""

    seq: int
    captured_at: datetime
    image: np.ndarray | None
    boxes: list[tuple[int, tuple[float, float, float, float], str]]
    jpeg: bytes | None = field(default=None)
    width: int = 0
    height: int = 0

    @property
    def size(self) -> tuple[int, int]:
        if self.image is None:
            return self.width, self.height
        height, width = self.image.shape[:2]
        return width, height


class LiveFrames:
    """Latest analysed frame per camera, as JPEG with tracked boxes and ids drawn. Thread-safe.

    It also keeps each camera's *background*: a slow running average of its frames (one in
    ``BACKGROUND_EVERY``, weight ``BACKGROUND_RATE``), in which people passing by fade out. The scene
    editor draws zones on it, so an administrator configures a camera without seeing anyone."""

    BACKGROUND_EVERY = 5
    BACKGROUND_RATE = 0.05

    def __init__(self, quality: int = 80) -> None:
        self.quality = quality
        self._backgrounds: dict[str, tuple[int, np.ndarray]] = {}  # camera → (frames seen, float32 average)
        self._latest: dict[str, LiveFrame] = {}
        self._lock = threading.Lock()
        self._seq = 0
        self._boxes = sv.BoxAnnotator(color_lookup=sv.ColorLookup.TRACK, thickness=2)
        self._labels = sv.LabelAnnotator(color_lookup=sv.ColorLookup.TRACK, text_scale=0.5, text_padding=3)

    def __call__(self, result: FrameResult) -> None:
        """The ``Node.on_result`` hook."""
        if result.frame is None:
            return
        boxes = [(int(t.track_id), tuple(float(v) for v in t.box), t.label) for t in result.update.active
                 if t.boxes and t.state in (TrackState.NEW, TrackState.CONFIRMED)]
        self.put(result.camera.id, result.frame.captured_at, result.frame.image, boxes)  # type: ignore[arg-type]

    def put(self, camera_id: str, captured_at: datetime, image: np.ndarray,
            boxes: Iterable[tuple[int, tuple[float, float, float, float], str]] = ()) -> None:
        with self._lock:
            self._seq += 1
            self._latest[camera_id] = LiveFrame(self._seq, captured_at, image, list(boxes))
            seen, average = self._backgrounds.get(camera_id, (0, None))
            if average is None or average.shape != image.shape:
                average = image.astype(np.float32)
            elif seen % self.BACKGROUND_EVERY == 0:
                cv2.accumulateWeighted(image, average, self.BACKGROUND_RATE)
            self._backgrounds[camera_id] = (seen + 1, average)

    def background_jpeg(self, camera_id: str) -> bytes | None:
        """The camera's background (people averaged out) as JPEG; None before its first frame."""
        with self._lock:
            entry = self._backgrounds.get(camera_id)
            image = None if entry is None else entry[1].astype(np.uint8)
        if image is None:
            return None
        return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])[1].tobytes()

    def latest(self, camera_id: str) -> LiveFrame | None:
        with self._lock:
            return self._latest.get(camera_id)

    def cameras(self) -> list[str]:
        with self._lock:
            return sorted(self._latest)

    def annotated(self, frame: LiveFrame) -> np.ndarray:
        """A copy of the frame with the boxes and ``#id label`` drawn."""
        assert frame.image is not None, "a frame from the bus is drawn already"
        image = frame.image.copy()
        if not frame.boxes:
            return image
        detections = sv.Detections(xyxy=np.array([b[1] for b in frame.boxes], dtype=np.float32),
                                   tracker_id=np.array([b[0] for b in frame.boxes], dtype=int),
                                   class_id=np.zeros(len(frame.boxes), dtype=int))
        image = self._boxes.annotate(image, detections)
        return self._labels.annotate(image, detections, labels=[f"#{b[0]} {b[2]}" for b in frame.boxes])

    def jpeg(self, frame: LiveFrame) -> bytes:
        """The frame as JPEG (encoded on first use and kept with the frame)."""
        if frame.jpeg is None and frame.image is not None:
            ok, data = cv2.imencode(".jpg", self.annotated(frame), [cv2.IMWRITE_JPEG_QUALITY, self.quality])
            if not ok:
                raise ValueError("frame could not be encoded as JPEG")
            frame.jpeg = data.tobytes()
        assert frame.jpeg is not None
        return frame.jpeg


class FrameSource(Protocol):
    """Where ``mjpeg_stream`` takes frames from (``LiveFrames``, or any ``LiveState``)."""

    def latest(self, camera_id: str) -> LiveFrame | None: ...

    def jpeg(self, frame: LiveFrame) -> bytes: ...


async def mjpeg_stream(live: FrameSource, camera_id: str, fps: float,
                       disconnected: Callable[[], asyncio.Future | object]) -> AsyncIterator[bytes]:
    """MJPEG parts of ``camera_id``'s new frames, polled at twice ``fps``; ends when ``disconnected()`` is true."""
    last = -1
    pause = min(0.1, 0.5 / max(fps, 0.5))
    while True:
        if await disconnected():  # type: ignore[misc]
            return
        frame = live.latest(camera_id)
        if frame is not None and frame.seq != last:
            last = frame.seq
            data = await asyncio.to_thread(live.jpeg, frame)
            yield (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n".encode()
                   + data + b"\r\n")
        await asyncio.sleep(pause)


class EventBridge:
    """Per-client bus subscriptions made on the services' loop, delivered into the caller's loop."""

    def __init__(self, services: Services, queue_size: int = 4096) -> None:
        """``queue_size``: events a slow client may fall behind by before it loses the oldest (a city's
        supervisor stream carries ≈ 1,700 events/s at 1,000 busy cameras: 256 overflowed in a pause of 0.2 s)."""
        self.services = services
        self.queue_size = queue_size
        self.dropped = 0

    @contextlib.asynccontextmanager
    async def subscribe(self, cameras: Iterable[str] | None) -> AsyncIterator[asyncio.Queue[Event]]:
        """A queue receiving events of ``cameras`` (None: all) published from the moment this returns."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Event] = asyncio.Queue(self.queue_size)
        ready: asyncio.Future[None] = loop.create_future()
        wanted = None if cameras is None else list(cameras)

        def deliver(event: Event) -> None:
            if queue.full():  # the client is slow: drop its oldest event
                queue.get_nowait()
                self.dropped += 1
            queue.put_nowait(event)

        async def pump() -> None:
            subscription = self.services.bus.subscribe(cameras=wanted)
            loop.call_soon_threadsafe(lambda: ready.done() or ready.set_result(None))
            try:
                async for event in subscription:
                    loop.call_soon_threadsafe(deliver, event)
            finally:
                await subscription.close()

        task = self.services.spawn(pump())
        try:
            await asyncio.wait_for(ready, 5.0)
            yield queue
        finally:
            task.cancel()
