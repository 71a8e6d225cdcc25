"""Request and response bodies of the command-centre API (``/tmp/api_contract.md``), as pydantic models.

Request models forbid unknown fields, so a typo in a client is a 422 naming the field, never silently ignored.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from vigil.config import LineConfig, ZoneConfig


def _utc(at: datetime | None) -> datetime | None:
    """Naive times are taken as UTC; aware ones are converted to UTC."""
    if at is None:
        return None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


UtcTime = Annotated[datetime, AfterValidator(_utc)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------------- auth

class LoginIn(Body):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class UserOut(BaseModel):
    username: str
    display_name: str = ""
    roles: list[str]
    cameras: list[str] | Literal["*"]
    permissions: list[str] = []  # addition: what the role may do (the UI hides what it cannot use)


class LoginOut(BaseModel):
    token: str
    user: UserOut


# ---------------------------------------------------------------------- cameras and scenes

CameraState = Literal["online", "offline", "connecting", "ended", "failed", "unknown", "stopped"]


class CameraOut(BaseModel):
    id: str
    name: str
    lat: float | None
    lon: float | None
    purpose: str
    state: CameraState
    fps: float | None
    lag_s: float | None
    open_alerts: int
    width: int | None
    height: int | None
    #: "recording", "paused (disk full)" (or another write failure) until a write succeeds again, or "off"
    recording: str = "off"
    node: str | None = None  # the worker that analyses it (None: no worker reports it)
    #: keyframe interval of the analysed stream (s): a quiet camera, decoding keyframes only, sees motion this late
    gop_s: float | None = None
    decoding: Literal["all frames", "keyframes"] | None = None


class NodeOut(BaseModel):
    """A camera worker as its last heartbeat described it."""

    node: str
    host: str
    cameras: list[str]  # those of its cameras the caller may see
    camera_count: int  # all of its cameras
    states: dict[str, int]  # camera state → how many of ``cameras`` are in it
    cores: int
    load_1m: float  # the host's 1-minute load average
    cpu_percent: float  # the worker process's CPU use, in % of one core
    analysed_fps: float  # summed over its cameras
    drops: int  # frames dropped, summed over its cameras
    rss_mb: float
    age_s: float  # seconds since its last heartbeat
    lost: bool  # no heartbeat for ``cluster.node_lost_s``


class SceneBody(Body):
    """A camera's zones and lines; ``width``/``height`` are the analysed frame's size (read-only on PUT)."""

    width: int | None = None
    height: int | None = None
    zones: list[ZoneConfig] = Field(default_factory=list, max_length=200)
    lines: list[LineConfig] = Field(default_factory=list, max_length=200)


# ---------------------------------------------------------------------- events

class ClipOut(BaseModel):
    camera_id: str
    start: datetime
    end: datetime
    playlist_url: str


class EventOut(BaseModel):
    id: str
    kind: str
    camera_id: str
    at: datetime
    severity: str
    track_id: int | None
    label: str | None
    zone: str | None
    payload: dict[str, Any]
    status: str
    snapshot_url: str | None
    clip: ClipOut | None
    acknowledged_by: str | None
    resolved_by: str | None


class EventPageOut(BaseModel):
    items: list[EventOut]
    next_cursor: str | None


class CommentOut(BaseModel):
    id: int
    author: str
    text: str
    created_at: datetime


class TrackOut(BaseModel):
    path: list[tuple[float, float]]
    first_seen: datetime
    last_seen: datetime


class EventDetailOut(EventOut):
    comments: list[CommentOut]
    track: TrackOut | None


class ResolveIn(Body):
    note: str | None = Field(None, max_length=4000)


class CommentIn(Body):
    text: str = Field(min_length=1, max_length=4000)


# ---------------------------------------------------------------------- search

class SearchIn(Body):
    from_: UtcTime | None = Field(None, alias="from")
    to: UtcTime | None = None
    cameras: list[str] | None = Field(None, max_length=1000)
    classes: list[str] | None = None
    colours: list[str] | None = None
    zones: list[str] | None = None
    plate: str | None = Field(None, max_length=32)
    fuzzy: bool = False
    kinds: list[Literal["event", "track", "plate", "face"]] | None = None
    event_kinds: list[str] | None = None  # addition: zone_enter, loitering, ...
    limit: int = Field(50, ge=1, le=500)
    offset: int = Field(0, ge=0, le=100_000)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class SearchHitOut(BaseModel):
    kind: str
    camera_id: str
    start: datetime
    end: datetime
    label: str | None
    colour: str | None
    zones: list[str]
    plate_text: str | None
    similarity: float | None
    thumbnail_url: str | None
    clip: ClipOut | None
    track_id: int | None = None  # addition
    event_kind: str | None = None  # addition: for event hits


class SearchOut(BaseModel):
    items: list[SearchHitOut]
    total: int  # hits found, counted up to SEARCH_COUNT_LIMIT
    next_offset: int | None = None  # addition


# ---------------------------------------------------------------------- counts and lines

class CountSeries(BaseModel):
    zone: str | None
    label: str
    points: list[tuple[datetime, int, float]]


class CountsOut(BaseModel):
    series: list[CountSeries]


class LinesOut(BaseModel):
    lines: dict[str, dict[str, dict[str, int]]]


# ---------------------------------------------------------------------- watchlists and hotlists

class ListIn(Body):
    name: str = Field(min_length=1, max_length=100)
    description: str = Field("", max_length=2000)


class EntryOut(BaseModel):
    id: int
    name: str
    reason: str
    authority: str
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    plate_text: str | None = None
    images: int = 0


class ListOut(BaseModel):
    id: int
    name: str
    kind: str
    description: str
    created_by: str
    created_at: datetime
    entries: list[EntryOut]


class HotlistEntryIn(Body):
    text: str = Field(min_length=1, max_length=32)
    reason: str = Field(min_length=1, max_length=2000)
    authority: str = Field(min_length=1, max_length=500)
    expires: UtcTime | None = None
