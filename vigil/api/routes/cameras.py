"""``/api/cameras``: status, latest snapshot, MJPEG live view, scene (zones and lines) and heatmap."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated, Literal

import yaml
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response, StreamingResponse

from vigil.api.deps import ApiState, CameraAccess, api_state, require, require_camera
from vigil.api.live import BOUNDARY, mjpeg_stream
from vigil.api.schemas import CameraOut, CameraState, SceneBody
from vigil.config import Config, parse_config
from vigil.errors import ConfigError
from vigil.governance.users import User

#: Events that are alerts for an operator; info events (zone entries, line crossings) are records.
ALERT_SEVERITIES = ("warning", "critical")

router = APIRouter(prefix="/api/cameras", tags=["cameras"])
JPEG = {200: {"content": {"image/jpeg": {}}}}
MAX_MJPEG_CLIENTS = 16  # per camera
TOTAL_HEADER = "X-Total-Count"  # GET /api/cameras: how many cameras match, before paging


@router.get("", response_model=list[CameraOut], responses={200: {"headers": {TOTAL_HEADER: {
    "description": "cameras matching the filters, before limit and offset", "schema": {"type": "integer"}}}}})
def list_cameras(
    response: Response,
    user: User = Depends(require()),
    state: ApiState = Depends(api_state),
    q: Annotated[str | None, Query(max_length=100)] = None,
    states: Annotated[list[CameraState] | None, Query(alias="state")] = None,
    node: Annotated[list[str] | None, Query(max_length=100)] = None,
    alerts: Literal["open"] | None = None,
    limit: Annotated[int | None, Query(ge=1, le=10_000)] = None,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> list[CameraOut]:
    """The cameras the user may see, in config order, with their live state, node and open alerts.

    Filters: ``q`` (part of the id or name, any case; exact matches first), ``state`` and ``node`` (repeatable:
    any of them), ``alerts=open`` (only cameras with open alerts). ``limit``/``offset`` page the list;
    ``X-Total-Count`` is how many cameras match. Without parameters: every camera the user may see."""
    rows = camera_rows(state, user)
    needle = q.strip().casefold() if q else ""
    if needle:
        rows = [c for c in rows if needle in c.id.casefold() or needle in c.name.casefold()]
        rows.sort(key=lambda c: needle not in (c.id.casefold(), c.name.casefold()))  # stable: exact ones first
    if states:
        rows = [c for c in rows if c.state in states]
    if node:
        rows = [c for c in rows if c.node in node]
    if alerts == "open":
        rows = [c for c in rows if c.open_alerts > 0]
    response.headers[TOTAL_HEADER] = str(len(rows))
    return rows[offset:offset + limit if limit is not None else None]


def camera_rows(state: ApiState, user: User) -> list[CameraOut]:
    """Every camera ``user`` may see, with its live state and open alerts (one grouped query for all of them)."""
    statuses = state.live.statuses()
    open_alerts = state.services.events.count_by_camera(statuses=["open"], severities=ALERT_SEVERITIES)
    out = []
    for camera in state.config.cameras:
        if not user.sees_camera(camera.id):
            continue
        status = statuses.get(camera.id)
        frame = state.live.latest(camera.id)
        width, height = frame.size if frame is not None else (None, None)
        out.append(CameraOut(
            id=camera.id, name=camera.name or camera.id, lat=camera.lat, lon=camera.lon, purpose=camera.purpose,
            state=(status.state if status else "unknown") if camera.enabled else "stopped",
            fps=status.fps if status else None, lag_s=status.lag_s if status else None,
            open_alerts=open_alerts.get(camera.id, 0), width=width, height=height,
            recording=status.recording if status else "off", node=status.node if status else None,
            gop_s=status.gop_s if status else None, decoding=status.decoding if status else None))
    return out


@router.get("/{camera_id}/snapshot.jpg", response_class=Response, responses=JPEG)
def snapshot(access: CameraAccess = Depends(require_camera("video.live")),
             state: ApiState = Depends(api_state)) -> Response:
    """The latest analysed frame (privacy masks applied, tracked boxes drawn). Audited (once a minute)."""
    frame = state.live.latest(access.camera.id)
    if frame is None:
        raise HTTPException(404, f"camera {access.camera.id!r} has no analysed frame yet")
    data = state.live.jpeg(frame)
    state.audit.record(access.user, "video.snapshot", f"camera:{access.camera.id}", dedupe=True)
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@router.get("/{camera_id}/background.jpg", response_class=Response, responses=JPEG)
def background(access: CameraAccess = Depends(require_camera("config.manage")),
               state: ApiState = Depends(api_state)) -> Response:
    """The camera's background — a slow average of its frames in which passers-by fade out — for drawing zones
    and lines without watching anyone (administrators have no video). Audited (once a minute)."""
    data = state.live.background_jpeg(access.camera.id)
    if data is None:
        raise HTTPException(404, f"camera {access.camera.id!r} has no analysed frame yet")
    state.audit.record(access.user, "video.background", f"camera:{access.camera.id}", dedupe=True)
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@router.get("/{camera_id}/live.mjpg", response_class=StreamingResponse,
            responses={200: {"content": {f"multipart/x-mixed-replace; boundary={BOUNDARY}": {}}}})
def live(request: Request, access: CameraAccess = Depends(require_camera("video.live")),
         state: ApiState = Depends(api_state)) -> StreamingResponse:
    """MJPEG of the analysed frames at the analysis rate; ends when the client goes. Audited."""
    camera = access.camera
    clients = state.mjpeg_clients.get(camera.id, 0)
    if clients >= MAX_MJPEG_CLIENTS:
        raise HTTPException(503, f"camera {camera.id!r} already has {clients} live viewers; try again later")
    state.audit.record(access.user, "video.live", f"camera:{camera.id}")

    async def parts():  # type: ignore[no-untyped-def]
        state.mjpeg_clients[camera.id] = state.mjpeg_clients.get(camera.id, 0) + 1
        try:
            with state.live.watching(camera.id):  # a remote worker sends full-rate frames only while watched
                async for part in mjpeg_stream(state.live, camera.id, camera.fps, request.is_disconnected):
                    yield part
        finally:
            state.mjpeg_clients[camera.id] -= 1

    return StreamingResponse(parts(), media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                             headers={"Cache-Control": "no-store"})


@router.get("/{camera_id}/heatmap.png", response_class=Response, responses={200: {"content": {"image/png": {}}}})
def heatmap(access: CameraAccess = Depends(require_camera("video.live")),
            state: ApiState = Depends(api_state),
            source: Literal["presence", "density"] = Query("presence", description=(
                "presence: where people stood and walked since the node started; density: the latest crowd "
                "density map (cameras whose crowd rule counts by density)"))) -> Response:
    """A heatmap over the latest frame: presence since the node started, or the latest crowd density map."""
    if source == "density":
        data = state.live.density_png(access.camera.id)
        if data is None:
            raise HTTPException(404, f"camera {access.camera.id!r} has no crowd density map (its crowd rule does "
                                     "not count by density, or no map is made yet)")
    elif (data := state.live.heatmap_png(access.camera.id)) is None:
        raise HTTPException(404, f"camera {access.camera.id!r} has no live analysis on this server yet")
    state.audit.record(access.user, "video.heatmap", f"camera:{access.camera.id}", dedupe=True)
    return Response(data, media_type="image/png", headers={"Cache-Control": "no-store"})


@router.get("/{camera_id}/scene", response_model=SceneBody)
def get_scene(access: CameraAccess = Depends(require_camera("events.read")),
              state: ApiState = Depends(api_state)) -> SceneBody:
    frame = state.live.latest(access.camera.id)
    width, height = frame.size if frame is not None else (None, None)
    return SceneBody(width=width, height=height, zones=access.camera.zones, lines=access.camera.lines)


@router.put("/{camera_id}/scene", response_model=SceneBody)
def put_scene(body: SceneBody, access: CameraAccess = Depends(require_camera("config.manage")),
              state: ApiState = Depends(api_state)) -> SceneBody:
    """Replace the camera's zones and lines in the YAML config file (other fields kept). Audited.

    The running rules keep the old scene until the node restarts."""
    camera = access.camera
    frame = state.live.latest(camera.id)
    if frame is not None:
        _check_inside(body, *frame.size)
    if state.config_path is None:
        raise HTTPException(409, "this server was started without a config file, so the scene cannot be saved")
    zones = [z.model_dump(mode="json", exclude_defaults=True) for z in body.zones]
    lines = [ln.model_dump(mode="json", exclude_defaults=True) for ln in body.lines]
    with state.config_lock:
        before = {"zones": [z.name for z in camera.zones], "lines": [ln.name for ln in camera.lines]}
        validated = write_scene(state.config_path, camera.id, zones, lines)
        fresh = validated.camera(camera.id)
        camera.zones, camera.lines = fresh.zones, fresh.lines
    state.audit.record(access.user, "config.scene_update", f"camera:{camera.id}",
                       details={"before": before, "zones": zones, "lines": lines})
    width, height = frame.size if frame is not None else (None, None)
    return SceneBody(width=width, height=height, zones=camera.zones, lines=camera.lines)


def _check_inside(body: SceneBody, width: int, height: int) -> None:
    shapes = [(f"zone {z.name!r}", z.polygon) for z in body.zones]
    shapes += [(f"line {ln.name!r}", [ln.start, ln.end]) for ln in body.lines]
    for what, points in shapes:
        for x, y in points:
            if not (0 <= x <= width and 0 <= y <= height):
                raise HTTPException(422, f"{what}: point ({x:g}, {y:g}) is outside the {width}x{height} frame")


def write_scene(path: Path, camera_id: str, zones: list[dict], lines: list[dict]) -> Config:
    """Rewrite ``path`` with the camera's new zones and lines; the validated config. ``ConfigError`` if the
    result would not be valid (nothing is written then)."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc})") from None
    cameras = data.get("cameras") if isinstance(data, dict) else None
    entry = next((c for c in cameras or [] if isinstance(c, dict) and c.get("id") == camera_id), None)
    if entry is None:
        raise ConfigError(f"{path}: camera {camera_id!r} is not in the config file")
    entry["zones"], entry["lines"] = zones, lines
    config = parse_config(data, source=str(path))
    fd, tmp = tempfile.mkstemp(prefix=".config-", suffix=".yaml", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            yaml.safe_dump(data, fh, sort_keys=False, allow_unicode=True)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise ConfigError(f"{path}: cannot write the config file ({exc.strerror})") from None
    return config
