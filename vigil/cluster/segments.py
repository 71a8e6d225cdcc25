"""Recordings across nodes: each worker serves its own segment files, command centres fetch them when needed.

Recordings stay on the disk of the node that wrote them, as on a recording server; the shared index says
which node (``SegmentRow.node``). A command centre asked to play or export a segment held elsewhere asks that
node, found through the workers' heartbeats (``NodeStatus.storage`` / ``media_url``):

- ``SegmentServer`` (in each worker): ``GET /segments/{id}`` (the file, with byte ranges) and
  ``GET /segments/{id}/layout`` (its initialisation-section and total sizes, for playlists without
  fetching the file), for this node's segments only, behind ``Authorization: Bearer <cluster.media_token>``.
- ``NodeSegments`` (in the command centre): ``RecordingIndex.remote``; fetched files are cached under
  ``<data_dir>/remote-cache/<node>/`` for ``CACHE_HOURS`` hours.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from fastapi import FastAPI, Header, HTTPException
from fastapi.responses import FileResponse
from sqlalchemy import select

from vigil.api.live_state import NodeStatus
from vigil.store.recording_schema import SegmentRow
from vigil.store.recordings import RecordingError, RecordingIndex, Segment

log = logging.getLogger(__name__)

CACHE_DIR = "remote-cache"
CACHE_HOURS = 1.0
FETCH_TIMEOUT_S = 30.0


def segment_server(index: RecordingIndex, token: str) -> FastAPI:
    """The app a worker serves its segments with (``serve_in_thread``)."""
    from vigil.store.hls import init_size

    app = FastAPI(title="Vigil segment server", openapi_url=None, docs_url=None, redoc_url=None)

    def local_file(segment_id: int, authorization: str | None) -> Path:
        if not authorization or not hmac.compare_digest(authorization.encode(), f"Bearer {token}".encode()):
            raise HTTPException(401, "a valid media token is required")
        with index.store.session() as session:
            path = session.scalar(select(SegmentRow.path).where(SegmentRow.id == segment_id,
                                                                SegmentRow.node == index.node))
        file = index.data_dir / path if path else None
        if file is None or not file.is_file():
            raise HTTPException(404, f"segment {segment_id} is not on node {index.node}")
        return file

    @app.get("/segments/{segment_id}")
    def segment(segment_id: int, authorization: str | None = Header(None)) -> FileResponse:
        return FileResponse(local_file(segment_id, authorization), media_type="video/mp4")

    @app.get("/segments/{segment_id}/layout")
    def layout(segment_id: int, authorization: str | None = Header(None)) -> dict[str, int]:
        file = local_file(segment_id, authorization)
        return {"init": init_size(file), "size": file.stat().st_size}

    return app


class NodeSegments:
    """Fetches segments from the node that holds them (``RecordingIndex.remote`` of a command centre)."""

    def __init__(self, nodes: Callable[[], list[NodeStatus]], token: str | None, data_dir: Path) -> None:
        self.nodes = nodes
        self.token = token
        self.cache = data_dir / CACHE_DIR
        self._layouts: dict[int, tuple[int, int]] = {}
        self._client = httpx.Client(timeout=FETCH_TIMEOUT_S)

    def _url(self, segment: Segment) -> str:
        if self.token is None:
            raise RecordingError(f"segment {segment.id} of camera {segment.camera_id} is on node {segment.node}; "
                                 "set cluster.media_token to play recordings held by other nodes")
        for node in self.nodes():
            if node.storage == segment.node and node.media_url and not node.lost:
                return f"{node.media_url}/segments/{segment.id}"
        raise RecordingError(f"segment {segment.id} of camera {segment.camera_id} is on node {segment.node}, "
                             "which is not reachable now")

    def _get(self, url: str, segment: Segment) -> httpx.Response:
        try:
            response = self._client.get(url, headers={"Authorization": f"Bearer {self.token}"})
        except httpx.HTTPError as exc:
            raise RecordingError(f"segment {segment.id} from node {segment.node}: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise RecordingError(f"segment {segment.id} from node {segment.node}: HTTP {response.status_code}")
        return response

    def layout(self, segment: Segment) -> tuple[int, int]:
        """(initialisation-section bytes, file bytes), asked of the node (and remembered)."""
        assert segment.id is not None
        if segment.id not in self._layouts:
            body = self._get(self._url(segment) + "/layout", segment).json()
            self._layouts[segment.id] = (int(body["init"]), int(body["size"]))
        return self._layouts[segment.id]

    def fetch(self, segment: Segment) -> Path:
        """The segment's file in the local cache, fetched from its node unless already there."""
        cached = self.cache / str(segment.node) / segment.path
        if cached.is_file():
            return cached
        response = self._get(self._url(segment), segment)
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(f".part{os.getpid()}")
        partial.write_bytes(response.content)
        partial.replace(cached)
        self._evict()
        return cached

    def _evict(self) -> None:
        """Delete cached segments not used for ``CACHE_HOURS``."""
        limit = time.time() - CACHE_HOURS * 3600
        for file in self.cache.rglob("*.mp4"):
            try:
                if file.stat().st_atime < limit and file.stat().st_mtime < limit:
                    file.unlink()
            except OSError:
                continue
