"""Face and plate sightings: what retrospective search indexes besides tracks and events.

Face embeddings are float32 blobs in their ``sightings`` row, not a FAISS file beside the database: the row is
the single source of truth (written in the same transaction, shared by every node through PostgreSQL, removed
by retention with a plain DELETE). The FAISS index (``FaceIndex``: Flat, HNSW past 20k vectors) lives in
memory, is built on the first face search and then only extended with rows newer than the last one it holds;
rows deleted since are dropped when hits are joined back (and the index is rebuilt once too many are gone).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from sqlalchemy import delete, func, select

from vigil.store.db import Store, utcnow
from vigil.store.recognition_schema import SightingRow
from vigil.types import Sighting
from vigil.vision.faces import FaceIndex
from vigil.vision.plate_text import CONFUSABLES, clean

_FOLD = dict(CONFUSABLES)  # letter → the digit it is confused with


def canonical_plate(text: str) -> str:
    """Plate text cleaned and with confusable letters folded onto digits (O→0, I→1, B→8, S→5, Z→2, G→6)."""
    return "".join(_FOLD.get(ch, ch) for ch in clean(text))


@dataclass(slots=True)
class StoredSighting:
    id: int
    sighting: Sighting
    on_list: bool
    embedding: np.ndarray | None = None


def _stored(row: SightingRow, with_embedding: bool = False) -> StoredSighting:
    sighting = Sighting(kind=row.kind, camera_id=row.camera_id, start=row.start, end=row.end, track_id=row.track_id,
                        label=row.label, plate_text=row.plate_text, plate_confidence=row.plate_confidence,
                        embedding_ref=row.id if row.embedding is not None else None, thumbnail=row.thumbnail,
                        attributes=dict(row.attributes or {}))
    vector = np.frombuffer(row.embedding, np.float32).copy() if with_embedding and row.embedding else None
    return StoredSighting(row.id, sighting, bool(row.on_list), vector)


class SightingStore:
    """Writes face and plate sightings, searches faces by vector, and purges expired plate reads."""

    def __init__(self, store: Store, plate_retention_hours: float = 72.0, data_dir: Path | str | None = None,
                 hotlist_texts: Callable[[], Iterable[str]] | None = None, dimension: int = 128,
                 face_threshold: float = 0.6) -> None:
        self.store = store
        self.plate_retention = timedelta(hours=plate_retention_hours)
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.hotlist_texts = hotlist_texts
        self.dimension = dimension
        self.face_threshold = face_threshold
        self._lock = threading.Lock()
        self._index = FaceIndex(dimension, face_threshold)
        self._indexed_up_to = 0

    def add(self, sighting: Sighting, embedding: np.ndarray | None = None, on_list: bool = False) -> int:
        """Store a sighting (``plate_text`` is cleaned); returns its id, also set as ``embedding_ref`` for faces."""
        plate = clean(sighting.plate_text) if sighting.plate_text else None
        canon = canonical_plate(plate) if plate else None
        blob = None
        if embedding is not None:
            blob = np.ascontiguousarray(np.asarray(embedding, np.float32).reshape(self.dimension)).tobytes()
        row = SightingRow(kind=sighting.kind, camera_id=sighting.camera_id, start=sighting.start, end=sighting.end,
                          track_id=sighting.track_id, label=sighting.label, plate_text=plate, plate_canon=canon,
                          plate_rev=canon[::-1] if canon else None, plate_confidence=sighting.plate_confidence,
                          embedding=blob, on_list=on_list, thumbnail=sighting.thumbnail,
                          attributes={**sighting.attributes, **({"colour": sighting.colour} if sighting.colour else {}),
                                      **({"zones": list(sighting.zones)} if sighting.zones else {})},
                          created_at=utcnow())
        with self.store.session() as session:
            session.add(row)
            session.flush()
            row_id = int(row.id)
        if blob is not None:
            sighting.embedding_ref = row_id
        return row_id

    def get(self, ids: Iterable[int], with_embedding: bool = False) -> dict[int, StoredSighting]:
        wanted = list(dict.fromkeys(int(i) for i in ids))
        found: dict[int, StoredSighting] = {}
        with self.store.session() as session:
            for start in range(0, len(wanted), 500):
                rows = session.scalars(select(SightingRow).where(SightingRow.id.in_(wanted[start:start + 500])))
                found.update((r.id, _stored(r, with_embedding)) for r in rows)
        return found

    def count(self, kind: str | None = None) -> int:
        query = select(func.count(SightingRow.id))
        if kind is not None:
            query = query.where(SightingRow.kind == kind)
        with self.store.session() as session:
            return int(session.scalar(query) or 0)

    # ------------------------------------------------------------------ faces

    def nearest_faces(self, vector: np.ndarray, k: int = 50, threshold: float | None = None) -> list[tuple[int, float]]:
        """(sighting id, Euclidean distance) of the ``k`` nearest stored faces closer than ``threshold``."""
        threshold = self.face_threshold if threshold is None else threshold
        with self._lock:
            self._refresh_index()
            matches = self._index.search(np.asarray(vector, np.float32), k)[0]
        return [(int(m.label), m.distance) for m in matches if m.distance < threshold]

    def forget_missing(self, missing: int, asked: int) -> None:
        """Rebuild the vector index on the next search when most hits were rows deleted meanwhile."""
        if asked and missing * 2 > asked:
            with self._lock:
                self._index = FaceIndex(self.dimension, self.face_threshold)
                self._indexed_up_to = 0

    def _refresh_index(self) -> None:
        query = (select(SightingRow.id, SightingRow.embedding)
                 .where(SightingRow.kind == "face", SightingRow.embedding.is_not(None),
                        SightingRow.id > self._indexed_up_to)
                 .order_by(SightingRow.id))
        with self.store.session() as session:
            rows = session.execute(query).all()
        if rows:
            vectors = np.frombuffer(b"".join(blob for _, blob in rows), np.float32).reshape(-1, self.dimension)
            self._index.add([int(i) for i, _ in rows], vectors)
            self._indexed_up_to = int(rows[-1][0])

    # ------------------------------------------------------------------ retention

    def purge_expired_plate_reads(self, now: datetime | None = None) -> int:
        """Delete plate reads older than the retention that matched no hotlist entry (and whose text is on no
        hotlist now); their thumbnails go too. Returns how many were deleted."""
        cutoff = (now or utcnow()) - self.plate_retention
        keep = sorted(set(self.hotlist_texts() if self.hotlist_texts else ()))
        condition = [SightingRow.kind == "plate", SightingRow.on_list.is_(False), SightingRow.end < cutoff]
        if keep:
            condition.append(SightingRow.plate_text.not_in(keep))
        return self._delete(condition)

    def purge_faces(self, before: datetime, unmatched_only: bool = True) -> int:
        """Delete face sightings that ended before ``before`` (by default only those that matched no entry)."""
        condition = [SightingRow.kind == "face", SightingRow.end < before]
        if unmatched_only:
            condition.append(SightingRow.on_list.is_(False))
        return self._delete(condition)

    def _delete(self, condition: list) -> int:  # type: ignore[type-arg]
        with self.store.session() as session:
            thumbnails = [t for t in session.scalars(select(SightingRow.thumbnail).where(*condition)) if t]
            deleted = session.execute(delete(SightingRow).where(*condition)).rowcount or 0
        if self.data_dir is not None:
            for relative in thumbnails:
                (self.data_dir / relative).unlink(missing_ok=True)
        return int(deleted)
