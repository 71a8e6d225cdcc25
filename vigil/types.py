"""Core types, one per stage of the data flow (DESIGN §2).

Plain dataclasses with no behaviour hidden in them; the stages are functions over these.
Detections between detector and tracker are ``supervision.Detections``.
"""

from __future__ import annotations

import enum
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np


@dataclass(slots=True)
class Frame:
    """One decoded, sampled picture from one camera."""

    camera_id: str
    captured_at: datetime  # UTC, timezone-aware
    index: int  # sequence number of the analysed frame on this camera
    image: np.ndarray  # BGR, HxWx3 uint8
    pts: float | None = None  # stream time in seconds, when the source has one
    #: a camera with a substream: the main stream's picture at this capture time (BGR, decoded on demand; None
    #: when none is buffered), for the face and plate crops that the small picture cannot give
    main_picture: Callable[[], np.ndarray | None] | None = None


class TrackState(enum.StrEnum):
    """Lifecycle of a track: new → confirmed → (lost ↔ confirmed) → ended."""

    NEW = "new"
    CONFIRMED = "confirmed"
    LOST = "lost"
    ENDED = "ended"


@dataclass(slots=True)
class Track:
    """A tracked object's identity and life on one camera."""

    camera_id: str
    track_id: int
    label: str
    first_seen: datetime
    last_seen: datetime
    state: TrackState = TrackState.NEW
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)  # recent xyxy
    box_times: list[datetime] = field(default_factory=list)  # capture time of each recent box
    trajectory: list[tuple[float, float]] = field(default_factory=list)  # bottom-centre points
    confidence: float = 0.0
    hits: int = 0
    best_snapshot: np.ndarray | None = None  # BGR crop of the best view so far
    best_score: float = 0.0
    attributes: dict[str, Any] = field(default_factory=dict)  # colour, face match, plate read

    @property
    def box(self) -> tuple[float, float, float, float]:
        """The most recent box (xyxy)."""
        return self.boxes[-1]

    @property
    def ground_point(self) -> tuple[float, float]:
        """The most recent bottom-centre point: where the object touches the ground."""
        return self.trajectory[-1]


def new_event_id() -> str:
    """A time-sortable id: 48-bit milliseconds then 80 random bits, as 32 hex digits (ULID-like)."""
    return f"{int(time.time() * 1000):012x}{os.urandom(10).hex()}"


@dataclass(slots=True)
class Event:
    """Something a rule saw, that sinks store, push and alert on."""

    kind: str  # e.g. zone_enter, line_cross, loitering, crowd_threshold, camera_offline
    camera_id: str
    at: datetime  # capture time of the frame that produced it (UTC)
    severity: str = "info"  # info | warning | critical
    track_id: int | None = None
    label: str | None = None
    zone: str | None = None  # zone or line name
    payload: dict[str, Any] = field(default_factory=dict)
    snapshot: str | None = None  # path of the JPEG snapshot, relative to the data dir
    clip: str | None = None  # clip reference (camera + time range), filled by the recorder
    id: str = field(default_factory=new_event_id)


@dataclass(frozen=True, slots=True)
class CountSample:
    """Objects of one label counted in one zone (None: the whole view) at one second of capture time."""

    camera_id: str
    at: datetime
    zone: str | None
    label: str
    count: int


@dataclass(slots=True)
class Sighting:
    """What forensic search indexes: a track summary, a face, or a plate read."""

    kind: str  # object | face | plate
    camera_id: str
    start: datetime
    end: datetime
    track_id: int | None = None
    label: str | None = None
    colour: str | None = None
    zones: list[str] = field(default_factory=list)
    plate_text: str | None = None
    plate_confidence: float | None = None
    embedding_ref: int | None = None  # row in the vector index, for faces
    thumbnail: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
