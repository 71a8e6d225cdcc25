"""``/api/watchlists`` (faces) and ``/api/hotlists`` (plates): lists and entries. Every change is audited."""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, File, Form, HTTPException, UploadFile

from vigil.api.deps import ApiState, DbId, api_state, require
from vigil.api.openapi import answers
from vigil.api.schemas import EntryOut, HotlistEntryIn, ListIn, ListOut, _utc
from vigil.governance.users import User
from vigil.store.lists import Entry, ListInfo

router = APIRouter(tags=["lists"])
MAX_IMAGES, MAX_IMAGE_BYTES = 10, 10 * 1024 * 1024
KINDS = {"watchlists": "watchlist", "hotlists": "hotlist"}


def _entry(e: Entry) -> EntryOut:
    return EntryOut(id=e.id, name=e.name, reason=e.reason, authority=e.authority, created_by=e.created_by,
                    created_at=e.created_at, expires_at=e.expires_at, plate_text=e.plate_text,
                    images=len(e.image_paths))


def _out(state: ApiState, info: ListInfo) -> ListOut:
    entries = [_entry(e) for e in state.lists.entries(info.name)]
    return ListOut(id=info.id, name=info.name, kind=info.kind, description=info.description,
                   created_by=info.created_by, created_at=info.created_at, entries=entries)


def _find(state: ApiState, kind: str, list_id: int) -> ListInfo:
    found = next((i for i in state.lists.lists(kind) if i.id == list_id), None)
    if found is None:
        raise HTTPException(404, f"no {kind} with id {list_id}")
    return found


def _routes(plural: str) -> None:
    kind = KINDS[plural]

    @router.get(f"/api/{plural}", response_model=list[ListOut], name=f"list_{plural}")
    def list_lists(_user: User = Depends(require("watchlist.manage")),
                   state: ApiState = Depends(api_state)) -> list[ListOut]:
        return [_out(state, info) for info in state.lists.lists(kind)]

    @router.post(f"/api/{plural}", response_model=ListOut, status_code=201, name=f"create_{kind}",
                 responses=answers(409))
    def create(body: ListIn, user: User = Depends(require("watchlist.manage")),
               state: ApiState = Depends(api_state)) -> ListOut:
        info = state.lists.create_list(body.name, kind, user.username, body.description)
        state.audit.record(user, f"{kind}.create", f"{kind}:{info.name}", details={"description": body.description})
        return _out(state, info)

    @router.delete(f"/api/{plural}/{{list_id}}", status_code=204, name=f"delete_{kind}")
    def delete(list_id: DbId, user: User = Depends(require("watchlist.manage")),
               state: ApiState = Depends(api_state)) -> None:
        info = _find(state, kind, list_id)
        removed = state.lists.delete_list(info.name)
        state.audit.record(user, f"{kind}.delete", f"{kind}:{info.name}", details={"entries": removed})

    @router.delete(f"/api/{plural}/{{list_id}}/entries/{{entry_id}}", status_code=204, name=f"delete_{kind}_entry")
    def delete_entry(list_id: DbId, entry_id: DbId,
                     user: User = Depends(require("watchlist.manage")), state: ApiState = Depends(api_state)) -> None:
        info = _find(state, kind, list_id)
        entry = state.lists.get_entry(entry_id)
        if entry.list_name != info.name:
            raise HTTPException(404, f"{kind} {info.name!r} has no entry {entry_id}")
        state.lists.remove_entry(entry_id)
        state.audit.record(user, f"{kind}.entry_remove", f"{kind}:{info.name}",
                           details={"entry": entry_id, "name": entry.name})


for _plural in KINDS:
    _routes(_plural)


@router.post("/api/hotlists/{list_id}/entries", response_model=EntryOut, status_code=201)
def add_plate(list_id: DbId, body: HotlistEntryIn, user: User = Depends(require("watchlist.manage")),
              state: ApiState = Depends(api_state)) -> EntryOut:
    info = _find(state, "hotlist", list_id)
    entry = state.lists.add_plate(info.name, body.text, reason=body.reason, authority=body.authority,
                                  created_by=user.username, expires_at=body.expires)
    state.audit.record(user, "hotlist.entry_add", f"hotlist:{info.name}",
                       details={"entry": entry.id, "plate": entry.plate_text, "reason": body.reason,
                                "authority": body.authority,
                                "expires": body.expires.isoformat() if body.expires else None})
    return _entry(entry)


@router.post("/api/watchlists/{list_id}/entries", response_model=EntryOut, status_code=201)
async def enrol(list_id: DbId, name: Annotated[str, Form(min_length=1, max_length=200)],
                reason: Annotated[str, Form(min_length=1, max_length=2000)],
                authority: Annotated[str, Form(min_length=1, max_length=500)],
                images: Annotated[list[UploadFile], File(description="photos with one face each")],
                expires: Annotated[datetime | None, Form()] = None,
                user: User = Depends(require("watchlist.manage")), state: ApiState = Depends(api_state)) -> EntryOut:
    """Enrol a person from 1-10 photos (each must show one sharp face). Audited."""
    if not 1 <= len(images) <= MAX_IMAGES:
        raise HTTPException(422, f"send 1 to {MAX_IMAGES} images")
    info = await anyio.to_thread.run_sync(_find, state, "watchlist", list_id)
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for n, upload in enumerate(images):
            data = await upload.read(MAX_IMAGE_BYTES + 1)
            if len(data) > MAX_IMAGE_BYTES:
                raise HTTPException(413, f"image {upload.filename!r} is larger than {MAX_IMAGE_BYTES // 2**20} MB")
            suffix = Path(upload.filename or "").suffix.lower()
            path = Path(folder) / f"{n}{suffix if suffix in ('.jpg', '.jpeg', '.png') else '.jpg'}"
            path.write_bytes(data)
            paths.append(path)

        def work() -> Entry:
            return state.lists.enrol_face(info.name, name, paths, state.recognition.face_detector(),
                                          state.recognition.face_embedder(), reason=reason, authority=authority,
                                          created_by=user.username, expires_at=_utc(expires))

        entry = await anyio.to_thread.run_sync(work)
    state.audit.record(user, "watchlist.entry_add", f"watchlist:{info.name}",
                       details={"entry": entry.id, "name": name, "reason": reason, "authority": authority,
                                "images": len(paths), "expires": expires.isoformat() if expires else None})
    return _entry(entry)
