"""``/api/search``: forensic search over events, tracks, plate reads and (with an authorisation) faces.

Both routes call ``vigil.store.search.search``; the query is limited to the caller's cameras and audited.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, File, Form, HTTPException, UploadFile
from pydantic import ValidationError

from vigil.api.convert import clip_out, media_url
from vigil.api.deps import ApiState, api_state, camera_filter, permitted_cameras, require
from vigil.api.schemas import SearchHitOut, SearchIn, SearchOut
from vigil.governance.users import User
from vigil.store.search import SearchHit, SearchQuery, embed_probe, search

router = APIRouter(prefix="/api/search", tags=["search"])
SEARCH_COUNT_LIMIT = 1000  # hits counted for ``total``
MAX_PROBE_BYTES = 10 * 1024 * 1024


def _hit(hit: SearchHit) -> SearchHitOut:
    details = hit.details
    return SearchHitOut(
        kind=hit.kind, camera_id=hit.camera_id, start=hit.start, end=hit.end, label=hit.label,
        colour=details.get("colour"), zones=list(details.get("zones") or ([details["zone"]] if details.get("zone")
                                                                          else [])),
        plate_text=hit.text if hit.kind == "plate" else None, similarity=hit.similarity,
        thumbnail_url=media_url(hit.thumbnail), clip=clip_out(hit.camera_id, hit.clip.start, hit.clip.end),
        track_id=hit.track_id, event_kind=hit.text if hit.kind == "event" else None)


def _query(body: SearchIn, cameras: list[str] | None) -> SearchQuery:
    return SearchQuery(start=body.from_, end=body.to, cameras=cameras, kinds=body.kinds, classes=body.classes,
                       zones=body.zones, colours=body.colours, event_kinds=body.event_kinds, plate=body.plate,
                       fuzzy=body.fuzzy, limit=SEARCH_COUNT_LIMIT, offset=0)


def _page(state: ApiState, query: SearchQuery, body: SearchIn) -> SearchOut:
    found = search(state.services.store, query).hits
    page = found[body.offset:body.offset + body.limit]
    more = len(found) > body.offset + body.limit
    return SearchOut(items=[_hit(h) for h in page], total=len(found),
                     next_offset=body.offset + body.limit if more else None)


def _audit_query(body: SearchIn, cameras: list[str] | None) -> dict[str, Any]:
    query = body.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_defaults=True)
    query["cameras"] = cameras if cameras is not None else "*"
    return query


@router.post("", response_model=SearchOut)
def run_search(body: SearchIn, user: User = Depends(require("search")),
               state: ApiState = Depends(api_state)) -> SearchOut:
    """Structured search (time, cameras, classes, colours, zones, plate, kinds). Audited with the query."""
    if "face" in (body.kinds or []):
        raise HTTPException(422, "face search needs a probe image: use POST /api/search/face")
    cameras = camera_filter(state, user, body.cameras)
    state.audit.record(user, "search", "search:structured", details=_audit_query(body, cameras))
    if cameras == []:
        return SearchOut(items=[], total=0)
    return _page(state, _query(body, cameras), body)


@router.post("/face", response_model=SearchOut)
async def face_search(image: Annotated[UploadFile, File(description="a photo with one face")],
                      filters: Annotated[str, Form(description="SearchIn as JSON")] = "{}",
                      user: User = Depends(require("search.face")),
                      state: ApiState = Depends(api_state)) -> SearchOut:
    """Retrospective face search: needs an active ``face_search`` authorisation covering every searched camera
    (403 saying why otherwise). Audited with the query and the authorisation."""
    try:
        body = SearchIn.model_validate(json.loads(filters or "{}"))
    except (ValueError, ValidationError) as exc:
        raise HTTPException(422, f"filters: not a valid search query ({str(exc).splitlines()[0]})") from None
    cameras = camera_filter(state, user, body.cameras) or []
    if not cameras and not body.cameras:
        cameras = permitted_cameras(state, user)
    if state.authorisations is None:
        raise HTTPException(403, "face search is off: no authorisation store is configured")
    decisions = {}
    for camera_id in cameras:
        decision = await anyio.to_thread.run_sync(state.authorisations.check, "face_search", camera_id,
                                                  user.username)
        if not decision.allowed:
            raise HTTPException(403, f"face search refused: {decision.reason}")
        decisions[camera_id] = decision
    if not decisions:
        raise HTTPException(403, "face search refused: no camera to search")
    data = await image.read(MAX_PROBE_BYTES + 1)
    if len(data) > MAX_PROBE_BYTES:
        raise HTTPException(413, f"probe image is larger than {MAX_PROBE_BYTES // 2**20} MB")
    vector = await anyio.to_thread.run_sync(_embed, state, data, image.filename or "probe.jpg")
    details = _audit_query(body, cameras) | {"authorisations": sorted({d.authorisation_id for d in
                                                                       decisions.values()})}
    cases = ",".join(sorted({d.case_ref for d in decisions.values() if d.case_ref}))
    state.audit.record(user, "search.face", "search:face", details=details, purpose=cases or None)
    query = _query(body, cameras)
    query.kinds, query.face_vector = ["face"], vector
    return await anyio.to_thread.run_sync(_page, state, query, body)


def _embed(state: ApiState, data: bytes, name: str) -> Any:
    suffix = Path(name).suffix.lower() if Path(name).suffix.lower() in (".jpg", ".jpeg", ".png") else ".jpg"
    with tempfile.TemporaryDirectory() as folder:
        probe = Path(folder) / f"probe{suffix}"
        probe.write_bytes(data)
        return embed_probe(probe, state.recognition.face_detector(), state.recognition.face_embedder())
