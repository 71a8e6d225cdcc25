"""``/api/events``: list and filter, detail, acknowledge, resolve, comment, and the live SSE stream."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi import Path as PathParam
from sse_starlette import EventSourceResponse, ServerSentEvent

from vigil.api.convert import event_out
from vigil.api.deps import ApiState, api_state, camera_filter, check, require
from vigil.api.schemas import (
    CommentIn,
    CommentOut,
    EventDetailOut,
    EventOut,
    EventPageOut,
    ResolveIn,
    TrackOut,
    UtcTime,
)
from vigil.governance.users import ALL_CAMERAS, User
from vigil.store.events import BadPageCursor, EventRecord

router = APIRouter(prefix="/api/events", tags=["events"])
EventId = Annotated[str, PathParam(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
KEEPALIVE_S = 15


def _event(state: ApiState, user: User, event_id: str, permission: str) -> EventRecord:
    """The event when the user may use ``permission`` on its camera (403 saying why, 404 when unknown)."""
    check(user, permission)
    record = state.services.events.get_event(event_id)
    if not user.sees_camera(record.event.camera_id):
        raise HTTPException(403, f"user {user.username!r} has no access to camera {record.event.camera_id!r}")
    return record


@router.get("", response_model=EventPageOut)
def list_events(
    user: User = Depends(require("events.read")),
    state: ApiState = Depends(api_state),
    from_: Annotated[UtcTime | None, Query(alias="from")] = None,
    to: UtcTime | None = None,
    camera: Annotated[list[str] | None, Query(max_length=1000)] = None,
    kind: Annotated[list[str] | None, Query(max_length=100)] = None,
    status: Annotated[list[Literal["open", "acknowledged", "resolved"]] | None, Query()] = None,
    severity: Annotated[list[Literal["info", "warning", "critical"]] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> EventPageOut:
    """Events newest first, filtered; pass ``next_cursor`` back as ``cursor`` for the next page."""
    if from_ is not None and to is not None and to <= from_:
        raise HTTPException(422, "'to' must be after 'from'")
    cameras = camera_filter(state, user, camera)
    try:
        page = state.services.events.list_events(from_, to, cameras, kind, status, severity, limit, cursor)
    except BadPageCursor as exc:
        raise HTTPException(422, f"cursor: {exc}") from None
    return EventPageOut(items=[event_out(r.event, r) for r in page.items], next_cursor=page.next_cursor)


@router.get("/stream", response_class=EventSourceResponse,
            responses={200: {"content": {"text/event-stream": {}}}})
async def stream(request: Request, user: User = Depends(require("events.read")),
                 state: ApiState = Depends(api_state)) -> EventSourceResponse:
    """Server-Sent Events: ``event: vigil`` / ``data: <EventOut>`` for the user's cameras, keep-alives every 15 s.

    A ``: connected`` comment is sent once the subscription is live."""
    cameras = None if ALL_CAMERAS in user.cameras else list(user.cameras)

    async def events():  # type: ignore[no-untyped-def]
        async with state.bridge.subscribe(cameras) as queue:
            yield ServerSentEvent(comment="connected")
            while True:
                event = await queue.get()
                yield ServerSentEvent(data=event_out(event).model_dump_json(), event="vigil", id=event.id)

    return EventSourceResponse(events(), ping=KEEPALIVE_S, send_timeout=30, headers={"Cache-Control": "no-store"})


@router.get("/{event_id}", response_model=EventDetailOut)
def get_event(event_id: EventId, user: User = Depends(require("events.read")),
              state: ApiState = Depends(api_state)) -> EventDetailOut:
    """One event with its comments and the path of its track (when the track has ended and was stored)."""
    record = _event(state, user, event_id, "events.read")
    event = record.event
    comments = [CommentOut(id=c.id, author=c.author, text=c.text, created_at=c.created_at)
                for c in state.services.events.comments(event_id)]
    track = None
    if event.track_id is not None:
        candidates = state.services.events.tracks([event.camera_id], event.at - timedelta(hours=1),
                                                  event.at + timedelta(seconds=1), limit=500)
        found = [t for t in candidates if t.track_id == event.track_id and t.first_seen <= event.at]
        if found:
            best = min(found, key=lambda t: abs((t.first_seen - event.at).total_seconds()))
            track = TrackOut(path=best.path, first_seen=best.first_seen, last_seen=best.last_seen)
    return EventDetailOut(**event_out(event, record).model_dump(), comments=comments, track=track)


@router.post("/{event_id}/ack", response_model=EventOut)
def acknowledge(event_id: EventId, user: User = Depends(require("events.ack")),
                state: ApiState = Depends(api_state)) -> EventOut:
    _event(state, user, event_id, "events.ack")
    record = state.services.events.acknowledge(event_id, user.username)
    state.audit.record(user, "event.acknowledge", f"event:{event_id}")
    return event_out(record.event, record)


@router.post("/{event_id}/resolve", response_model=EventOut)
def resolve(event_id: EventId, body: ResolveIn | None = None, user: User = Depends(require("events.ack")),
            state: ApiState = Depends(api_state)) -> EventOut:
    _event(state, user, event_id, "events.ack")
    note = body.note.strip() if body and body.note else None
    record = state.services.events.resolve(event_id, user.username, note or None)
    state.audit.record(user, "event.resolve", f"event:{event_id}", details={"note": note} if note else None)
    return event_out(record.event, record)


@router.post("/{event_id}/comments", response_model=CommentOut, status_code=201)
def comment(event_id: EventId, body: CommentIn, user: User = Depends(require("events.ack")),
            state: ApiState = Depends(api_state)) -> CommentOut:
    _event(state, user, event_id, "events.ack")
    added = state.services.events.add_comment(event_id, user.username, body.text)
    return CommentOut(id=added.id, author=added.author, text=added.text, created_at=added.created_at)
