"""Forensic search: ONE query model over events, object tracks, plate reads and face sightings.

``search(store, SearchQuery(...)) -> SearchPage``; the CLI and the API both call it. What is searched follows
from the query: a plate text searches plate reads, a face probe searches face sightings, anything else
searches tracks (class, colour, zone) and events (kind, class, zone). Every hit carries a thumbnail and a clip
reference (camera + time range) for playback.

Plate search folds confusable characters (O/0, I/1, B/8, S/5, Z/2, G/6) and, for fuzzy search within one real
edit, uses index range scans on the folded text's prefix and on its reversed suffix (one half of a plate
with one edit is intact), then ranks candidates by ``plate_distance``.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, String, and_, cast, func, or_, select, type_coerce, union_all
from sqlalchemy.dialects.postgresql import JSONB

from vigil.errors import VigilError
from vigil.store.db import Store
from vigil.store.recognition_schema import SightingRow
from vigil.store.recordings import ClipRef
from vigil.store.schema import EventRow, TrackRow
from vigil.store.sightings import SightingStore, canonical_plate
from vigil.vision.plate_text import clean, plate_distance

HIT_KINDS = ("track", "event", "plate", "face")
FUZZY_SCAN_LIMIT = 200_000  # candidate rows ranked at most, for fuzzy plate search
#: Tracks and sightings are assumed to last less than this: it bounds the index scan of a time-window search
#: (a hit overlapping the window ends after its start and before its end plus this span).
MAX_SPAN = timedelta(hours=6)
EVENT_CLIP_BEFORE_S, EVENT_CLIP_AFTER_S = 5.0, 10.0


@dataclass(slots=True)
class SearchQuery:
    """Filters (all optional, combined with AND) and paging. Times are UTC-aware; a hit matches the time range
    when it overlaps it."""

    start: datetime | None = None
    end: datetime | None = None
    cameras: list[str] | None = None
    kinds: list[str] | None = None  # track | event | plate | face; None: chosen from the other filters
    classes: list[str] | None = None  # object labels: person, car, …
    zones: list[str] | None = None
    colours: list[str] | None = None
    event_kinds: list[str] | None = None  # zone_enter, face_match, …
    plate: str | None = None
    fuzzy: bool = False
    max_distance: float = 1.0
    confusable_weight: float = 0.3
    face_vector: np.ndarray | None = None
    face_threshold: float = 0.6
    face_top_k: int = 200
    limit: int = 50
    offset: int = 0

    def searched_kinds(self) -> list[str]:
        if self.kinds:
            unknown = sorted(set(self.kinds) - set(HIT_KINDS))
            if unknown:
                raise SearchError(f"unknown search kind {unknown[0]!r}; choose from {', '.join(HIT_KINDS)}")
            return list(self.kinds)
        if self.face_vector is not None:
            return ["face"]
        if self.plate:
            return ["plate"]
        if self.colours:
            return ["track"]
        return ["track", "event"] if not self.event_kinds else ["event"]


@dataclass(slots=True)
class SearchHit:
    kind: str  # track | event | plate | face
    id: str  # "track:<row>", "event:<id>", "sighting:<row>"
    camera_id: str
    start: datetime
    end: datetime
    clip: ClipRef
    label: str | None = None
    track_id: int | None = None
    thumbnail: str | None = None  # relative to the data dir
    text: str | None = None  # plate text, event kind
    distance: float | None = None  # plate edit distance, face Euclidean distance
    similarity: float | None = None  # faces: 1 − distance, clipped to [0, 1]
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class SearchPage:
    hits: list[SearchHit]
    offset: int
    limit: int
    next_offset: int | None  # None on the last page


class SearchError(VigilError):
    """A malformed query (unknown kind, bad paging)."""


# ---------------------------------------------------------------------- entry point

def search(store: Store, query: SearchQuery, sightings: SightingStore | None = None) -> SearchPage:
    """Run ``query``. Pass the node's or API's ``SightingStore`` to reuse its face index across searches."""
    if query.limit < 1 or query.offset < 0:
        raise SearchError("limit must be ≥ 1 and offset ≥ 0")
    kinds = query.searched_kinds()
    want = query.offset + query.limit + 1
    hits: list[SearchHit] = []
    ranked = False
    if "face" in kinds and query.face_vector is not None:
        hits += _faces(store, query, sightings or SightingStore(store, face_threshold=query.face_threshold))
        ranked = True
    if "plate" in kinds:
        plate_hits, ranked_plates = _plates(store, query, want)
        hits += plate_hits
        ranked = ranked or ranked_plates
    if "track" in kinds:
        hits += _tracks(store, query, want)
    if "event" in kinds:
        hits += _events(store, query, want)
    if ranked:
        hits.sort(key=lambda h: (h.distance if h.distance is not None else math.inf, -h.start.timestamp()))
    else:
        hits.sort(key=lambda h: (h.end, h.id), reverse=True)
    page = hits[query.offset:query.offset + query.limit]
    more = len(hits) > query.offset + query.limit
    return SearchPage(page, query.offset, query.limit, query.offset + query.limit if more else None)


def embed_probe(path: Path | str, detector: Any, embedder: Any) -> np.ndarray:
    """The embedding of the single face in a probe photo (checked like an enrolment photo; one-line errors)."""
    from vigil.vision.faces import load_enrolment_image

    item = load_enrolment_image(path, detector)
    return embedder.embed(item.image, [item.face])[0]


# ---------------------------------------------------------------------- per kind

def _overlap(start_col: Any, end_col: Any, query: SearchQuery) -> list[ColumnElement[bool]]:
    conditions = []
    if query.start is not None:
        conditions.append(end_col >= query.start)
    if query.end is not None:
        conditions += [start_col < query.end, end_col < query.end + MAX_SPAN]
    return conditions


def _zone_filter(store: Store, zones: list[str]) -> ColumnElement[bool]:
    if store.dialect == "postgresql":
        return or_(*[type_coerce(TrackRow.zones, JSONB).contains([zone]) for zone in zones])
    return or_(*[cast(TrackRow.zones, String).like(f"%{json.dumps(zone)}%") for zone in zones])


def _object_filters(store: Store, query: SearchQuery, camera: Any, label: Any) -> list[ColumnElement[bool]]:
    """Cameras and classes on the given columns; colours and zones on the track (what a track and a
    sighting joined to its track share)."""
    conditions = []
    if query.cameras:
        conditions.append(camera.in_(query.cameras))
    if query.classes:
        conditions.append(label.in_(query.classes))
    if query.colours:
        conditions.append(TrackRow.colour.in_(query.colours))
    if query.zones:
        conditions.append(_zone_filter(store, query.zones))
    return conditions


def _track_conditions(store: Store, query: SearchQuery) -> list[ColumnElement[bool]]:
    return [*_overlap(TrackRow.first_seen, TrackRow.last_seen, query),
            *_object_filters(store, query, TrackRow.camera_id, TrackRow.label)]


def _track_hit(row: TrackRow) -> SearchHit:
    return SearchHit("track", f"track:{row.id}", row.camera_id, row.first_seen, row.last_seen,
                     ClipRef(row.camera_id, row.first_seen, row.last_seen), row.label, row.track_id, row.thumbnail,
                     details={"colour": row.colour, "zones": list(row.zones or []), **dict(row.attributes or {})})


PER_CAMERA_MAX = 50  # up to this many cameras: one newest-first (camera_id, last_seen) index range per camera


def _tracks(store: Store, query: SearchQuery, want: int) -> list[SearchHit]:
    """The newest ``want`` tracks matching the query. With a few cameras, each camera's newest come from its own
    index range and are merged: scanning the time index and skipping other cameras costs 10× more at 10M rows."""
    conditions = _track_conditions(store, query)
    order = (TrackRow.last_seen.desc(), TrackRow.id.desc())
    statement = select(TrackRow).where(*conditions)
    if query.cameras and len(query.cameras) <= PER_CAMERA_MAX:
        newest = [select(TrackRow.id).where(*conditions, TrackRow.camera_id == camera).order_by(*order)
                  .limit(want).subquery() for camera in dict.fromkeys(query.cameras)]
        ids = union_all(*[select(part.c.id) for part in newest]).subquery()
        statement = select(TrackRow).join(ids, TrackRow.id == ids.c.id)
    with store.session() as session:
        return [_track_hit(row) for row in session.scalars(statement.order_by(*order).limit(want))]


def _events(store: Store, query: SearchQuery, want: int) -> list[SearchHit]:
    conditions = []
    if query.start is not None:
        conditions.append(EventRow.at >= query.start)
    if query.end is not None:
        conditions.append(EventRow.at < query.end)
    for column, values in ((EventRow.camera_id, query.cameras), (EventRow.label, query.classes),
                           (EventRow.zone, query.zones), (EventRow.kind, query.event_kinds)):
        if values:
            conditions.append(column.in_(values))
    statement = select(EventRow).where(*conditions).order_by(EventRow.at.desc(), EventRow.id.desc()).limit(want)
    hits = []
    with store.session() as session:
        for row in session.scalars(statement):
            clip = ClipRef(row.camera_id, row.at - timedelta(seconds=EVENT_CLIP_BEFORE_S),
                           row.at + timedelta(seconds=EVENT_CLIP_AFTER_S))
            hits.append(SearchHit("event", f"event:{row.id}", row.camera_id, row.at, row.at, clip, row.label,
                                  row.track_id, row.snapshot, row.kind,
                                  details={"severity": row.severity, "zone": row.zone, "status": row.status,
                                           "clip": row.clip, **dict(row.payload or {})}))
    return hits


def _sighting_statement(store: Store, query: SearchQuery, kind: str) -> Any:
    """Sightings of ``kind`` with the track they came from (outer join), filtered by the query."""
    track = and_(TrackRow.camera_id == SightingRow.camera_id, TrackRow.track_id == SightingRow.track_id,
                 TrackRow.first_seen == SightingRow.start)
    conditions = [SightingRow.kind == kind, *_overlap(SightingRow.start, SightingRow.end, query),
                  *_object_filters(store, query, SightingRow.camera_id, SightingRow.label)]
    return select(SightingRow, TrackRow).outerjoin(TrackRow, track).where(*conditions)


def _sighting_hit(kind: str, row: SightingRow, track: TrackRow | None) -> SearchHit:
    details: dict[str, Any] = dict(row.attributes or {})
    if track is not None:
        details.update(track_ref=f"track:{track.id}", colour=track.colour, zones=list(track.zones or []),
                       track_thumbnail=track.thumbnail)
    if kind == "plate":
        details["confidence"] = row.plate_confidence
    details["on_list"] = bool(row.on_list)
    return SearchHit(kind, f"sighting:{row.id}", row.camera_id, row.start, row.end,
                     ClipRef(row.camera_id, row.start, row.end), row.label, row.track_id,
                     row.thumbnail or (track.thumbnail if track is not None else None), row.plate_text,
                     details=details)


def _plates(store: Store, query: SearchQuery, want: int) -> tuple[list[SearchHit], bool]:
    """Plate-read hits; the second value says whether they are ranked by distance (fuzzy) or by time."""
    text = clean(query.plate or "")
    if not text:
        raise SearchError("plate search needs letters or digits")
    statement = _sighting_statement(store, query, "plate").order_by(SightingRow.end.desc(), SightingRow.id.desc())
    if not query.fuzzy:
        statement = statement.where(SightingRow.plate_text == text).limit(want)
        with store.session() as session:
            return [_sighting_hit("plate", row, track) for row, track in session.execute(statement)], False
    # rank (id, text) candidates first, then load only the rows of the best ``want``
    candidates = statement.with_only_columns(SightingRow.id, SightingRow.plate_text, SightingRow.end)
    candidates = candidates.where(_fuzzy_prefilter(canonical_plate(text), query.max_distance)).limit(FUZZY_SCAN_LIMIT)
    distances: dict[str, float] = {}
    ranked = []
    with store.session() as session:
        for row_id, plate, end in session.execute(candidates):
            if plate not in distances:
                distances[plate] = plate_distance(text, plate or "", query.confusable_weight)
            if distances[plate] <= query.max_distance:
                ranked.append((distances[plate], -end.timestamp(), row_id))
        ranked.sort()
        best = {row_id: distance for distance, _, row_id in ranked[:want]}
        rows = session.execute(_sighting_statement(store, query, "plate").where(SightingRow.id.in_(list(best))))
        hits = []
        for row, track in rows:
            hit = _sighting_hit("plate", row, track)
            hit.distance = round(best[row.id], 4)
            hits.append(hit)
    return hits, True


def _fuzzy_prefilter(canon: str, max_distance: float) -> ColumnElement[bool]:
    """A necessary condition, on indexed columns where possible, for ``plate_distance <= max_distance``.

    Folded confusables cost nothing, so at most ``k = floor(max_distance)`` real edits remain: split the folded
    plate into k + 1 pieces and one of them is intact: the first as a prefix (index range), the last as a
    suffix (range on the reversed text), a middle one as a substring (scanned)."""
    edits = math.floor(max_distance)
    length = func.length(SightingRow.plate_canon)
    if edits == 0 or len(canon) <= edits:
        return SightingRow.plate_canon == canon if edits == 0 else length <= len(canon) + edits
    bounds = [round(i * len(canon) / (edits + 1)) for i in range(edits + 2)]
    pieces = [canon[a:b] for a, b in itertools.pairwise(bounds)]
    prefix, suffix = pieces[0], pieces[-1][::-1]
    options = [and_(SightingRow.plate_canon >= prefix, SightingRow.plate_canon < prefix + "~"),
               and_(SightingRow.plate_rev >= suffix, SightingRow.plate_rev < suffix + "~")]
    options += [SightingRow.plate_canon.contains(piece) for piece in pieces[1:-1] if piece]
    return and_(or_(*options), length.between(len(canon) - edits, len(canon) + edits))


def _faces(store: Store, query: SearchQuery, sightings: SightingStore) -> list[SearchHit]:
    nearest = sightings.nearest_faces(np.asarray(query.face_vector, np.float32), query.face_top_k,
                                      query.face_threshold)
    if not nearest:
        return []
    distances = dict(nearest)
    statement = _sighting_statement(store, query, "face").where(SightingRow.id.in_(list(distances)))
    hits = []
    with store.session() as session:
        for row, track in session.execute(statement):
            hit = _sighting_hit("face", row, track)
            hit.distance = round(distances[row.id], 4)
            hit.similarity = round(max(0.0, 1.0 - distances[row.id]), 4)
            hits.append(hit)
        present = session.scalar(select(func.count(SightingRow.id)).where(SightingRow.id.in_(list(distances))))
    sightings.forget_missing(len(distances) - int(present or 0), len(distances))  # rows purged since indexing
    return hits
