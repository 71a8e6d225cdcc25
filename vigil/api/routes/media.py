"""Stored pictures and recordings: event snapshots and thumbnails, HLS playlists and segments. Every view audited."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, Response

from vigil.api.deps import ApiState, CameraAccess, DbId, api_state, check, require_any, require_camera
from vigil.api.openapi import answers
from vigil.api.schemas import UtcTime
from vigil.governance.roles import VIDEO_PERMISSIONS
from vigil.governance.users import User
from vigil.store.hls import playlist
from vigil.store.recordings import RecordingError

router = APIRouter(tags=["media"])
MEDIA_FOLDERS = ("snapshots", "thumbnails")  # <folder>/<camera>/<day>/<file>.jpg below the data dir
MAX_RANGE_S = 24 * 3600


def _may_see_video(user: User, camera_id: str) -> None:
    """Stills of a camera: live or playback permission, and the camera granted (403 saying why)."""
    if not any(user.can(p) for p in VIDEO_PERMISSIONS):
        check(user, "video.playback")
    if not user.sees_camera(camera_id):
        raise HTTPException(403, f"user {user.username!r} has no access to camera {camera_id!r}")


@router.get("/api/snapshots/{relative:path}", response_class=FileResponse,
            responses={200: {"content": {"image/jpeg": {}}}, **answers(400)})
def snapshot_file(relative: Annotated[str, PathParam(max_length=512)],
                  user: User = Depends(require_any(*sorted(VIDEO_PERMISSIONS))),
                  state: ApiState = Depends(api_state)) -> FileResponse:
    """An event snapshot or track thumbnail (``snapshots/<camera>/...`` or ``thumbnails/<camera>/...``)."""
    parts = PurePosixPath(relative).parts
    if (len(parts) < 3 or parts[0] not in MEDIA_FOLDERS or any(p in ("..", ".", "") or "\\" in p for p in parts)
            or not relative.endswith(".jpg")):
        raise HTTPException(400, f"not a snapshot path: {relative!r} (expected snapshots/<camera>/.../<file>.jpg)")
    _may_see_video(user, parts[1])
    root = Path(state.config.data_dir).resolve()
    file = (root / relative).resolve()
    if not file.is_relative_to(root):
        raise HTTPException(400, f"snapshot path {relative!r} leaves the data directory")
    if not file.is_file():
        raise HTTPException(404, f"no snapshot {relative!r}")
    state.audit.record(user, "video.still", f"camera:{parts[1]}", details={"file": relative}, dedupe=True)
    return FileResponse(file, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


@router.get("/api/recordings/{camera_id}/playlist.m3u8", response_class=Response,
            responses={200: {"content": {"application/vnd.apple.mpegurl": {}}}})
def recording_playlist(from_: Annotated[UtcTime, Query(alias="from")], to: UtcTime,
                       access: CameraAccess = Depends(require_camera("video.playback")),
                       state: ApiState = Depends(api_state)) -> Response:
    """HLS VOD playlist of ``camera``'s recording in [from, to). Audited (video.playback)."""
    user, camera_id = access.user, access.camera.id
    if to <= from_ or (to - from_).total_seconds() > MAX_RANGE_S:
        raise HTTPException(422, f"'to' must be after 'from' and at most {MAX_RANGE_S // 3600} h later")
    text = playlist(state.recordings, camera_id, from_, to, uri=lambda seg: f"segments/{seg.id}")
    state.audit.record(user, "video.playback", f"camera:{camera_id}",
                       details={"from": from_.isoformat(), "to": to.isoformat()})
    return Response(text, media_type="application/vnd.apple.mpegurl", headers={"Cache-Control": "no-store"})


@router.get("/api/recordings/{camera_id}/segments/{segment_id}", response_class=FileResponse,
            responses={200: {"content": {"video/mp4": {}}}})
def recording_segment(segment_id: DbId,
                      access: CameraAccess = Depends(require_camera("video.playback")),
                      state: ApiState = Depends(api_state)) -> FileResponse:
    """One fMP4 segment (byte ranges supported). Viewing is audited with its playlist."""
    camera_id = access.camera.id
    segment = next((s for s in state.recordings.segments_by_id([segment_id]) if s.camera_id == camera_id), None)
    if segment is None:
        raise HTTPException(404, f"camera {camera_id!r} has no recording segment {segment_id}")
    try:
        file = state.recordings.file(segment).resolve()  # fetched from its node when held by another
    except RecordingError as exc:
        raise HTTPException(503, str(exc)) from None
    roots = [Path(state.config.data_dir).resolve()]
    if not any(file.is_relative_to(root) for root in roots) or not file.is_file():
        raise HTTPException(404, f"recording segment {segment_id} of camera {camera_id!r} is missing on disk")
    return FileResponse(file, media_type="video/mp4")
