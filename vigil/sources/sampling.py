"""Frame sampling by timestamp, and the bounded per-camera frame queue.

``FrameSampler`` keeps about ``fps`` frames per second of stream time, whatever the source rate, by
choosing the first frame of each 1/fps time slot (never "every Nth frame", which drifts when the
source rate is not a multiple of the analysis rate or varies).

``FrameQueue`` is what a reader hands frames through: small and bounded. A live source never waits
for the consumer: under overload the oldest frame is dropped and counted, so memory never grows and
the consumer always gets the freshest frames. A file read for a benchmark may instead block until
the consumer takes the frame, so nothing is dropped.
"""

from __future__ import annotations

import math
import threading
from collections import deque

from vigil.types import Frame

#: A timestamp this far (seconds) before the previous one is a discontinuity: sampling starts again.
BACKWARD_JUMP_S = 0.5
#: Slack, as a fraction of a slot, for timestamps that fall a rounding error before a slot boundary.
_SLOT_SLACK = 1e-3


class FrameSampler:
    """Keep the first frame of every ``1/fps`` second slot of stream time."""

    def __init__(self, fps: float) -> None:
        if fps <= 0:
            raise ValueError("fps must be positive")
        self.fps = fps
        self._origin: float | None = None
        self._last_slot = -1
        self._last_time = -math.inf

    def reset(self) -> None:
        """Forget the timeline (new connection, new file pass)."""
        self._origin = None
        self._last_slot = -1
        self._last_time = -math.inf

    def accept(self, t: float) -> bool:
        """True if the frame with stream time ``t`` (seconds) is to be analysed."""
        if self._origin is None or t < self._last_time - BACKWARD_JUMP_S:
            self._origin = t
            self._last_slot = -1
        self._last_time = t
        slot = math.floor((t - self._origin) * self.fps + _SLOT_SLACK)
        if slot > self._last_slot:
            self._last_slot = slot
            return True
        return False


class FrameQueue:
    """A bounded frame queue: drop-oldest for live sources, or blocking for lossless file reading.

    ``wakeup``, when given, is set on every put: one consumer can wait on a single event shared by
    many cameras' queues and then poll them with ``get_nowait``.
    """

    def __init__(self, maxlen: int = 4, wakeup: threading.Event | None = None) -> None:
        if maxlen < 1:
            raise ValueError("maxlen must be at least 1")
        self.maxlen = maxlen
        self._frames: deque[Frame] = deque()
        self._cond = threading.Condition()
        self._wakeup = wakeup
        self.drops = 0  # frames discarded because the consumer was too slow

    def __len__(self) -> int:
        with self._cond:
            return len(self._frames)

    def put(self, frame: Frame, *, block: bool = False, cancel: threading.Event | None = None) -> bool:
        """Add a frame. Full and ``block=False``: drop the oldest (counted in ``drops``).

        Full and ``block=True``: wait for room; give up (return False) once ``cancel`` is set.
        """
        with self._cond:
            if block:
                while len(self._frames) >= self.maxlen:
                    if cancel is not None and cancel.is_set():
                        return False
                    self._cond.wait(0.1)
            elif len(self._frames) >= self.maxlen:
                self._frames.popleft()
                self.drops += 1
            self._frames.append(frame)
            self._cond.notify_all()
        if self._wakeup is not None:
            self._wakeup.set()
        return True

    def get(self, timeout: float | None = None) -> Frame | None:
        """The oldest frame, waiting up to ``timeout`` seconds (None: forever); None if none came."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._frames, timeout):
                return None
            frame = self._frames.popleft()
            self._cond.notify_all()
            return frame

    def get_nowait(self) -> Frame | None:
        """The oldest frame, or None at once if the queue is empty."""
        return self.get(timeout=0)

    def drain(self) -> list[Frame]:
        """Every queued frame, oldest first, leaving the queue empty."""
        with self._cond:
            frames = list(self._frames)
            self._frames.clear()
            self._cond.notify_all()
            return frames
