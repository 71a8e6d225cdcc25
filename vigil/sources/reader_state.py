"""What a ``StreamReader`` reports: its state, a stats snapshot, and what one connection produced."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ReaderState(enum.StrEnum):
    CONNECTING = "connecting"  # first connection under way
    ONLINE = "online"  # frames are arriving
    OFFLINE = "offline"  # live stream lost; reconnecting with backoff
    ENDED = "ended"  # a file played to its end (loop off)
    FAILED = "failed"  # a file that cannot be read at all; the reader has stopped
    STOPPED = "stopped"  # stop() was called


@dataclass(slots=True, frozen=True)
class ReaderStats:
    """A snapshot for the status table."""

    camera_id: str
    state: ReaderState
    fps: float  # frames delivered (sampled) per second, over the last few seconds
    lag_s: float | None  # now - captured_at of the last delivered frame
    drops: int  # frames dropped from the queue because the consumer was too slow
    decoded: int  # frames decoded (before sampling)
    delivered: int  # frames put into the queue
    reconnects: int  # times the stream came back after an outage
    last_error: str | None
    gop_s: float | None = None  # keyframe interval, measured
    keyframes_only: bool = False  # decoding only keyframes now (the camera is quiet)


@dataclass(slots=True)
class PassResult:
    """What one connection, or one pass over a file, produced."""

    delivered: int = 0
    error: str | None = None  # why it ended early, if it did
    last_time: float | None = None  # timeline time (s) of the last decoded frame
    expected_end: float | None = None  # file: timeline time the pass should have reached
    frame_interval: float = 0.1
