"""Watchlists (faces) and hotlists (plates): create, list and delete lists and entries.

Every entry records why it is there (``reason``), on whose authority (warrant, case or order reference),
who added it and until when it holds; an expired entry is skipped when matching (checked at match time).
Face entries keep the enrolment embedding and copies of the enrolment photos below ``data_dir``.
"""

from __future__ import annotations

import shutil
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vigil.errors import VigilError
from vigil.store.db import Store, utcnow
from vigil.store.recognition_schema import LIST_KINDS, ListEntryRow, RecognitionList
from vigil.store.sightings import canonical_plate
from vigil.vision.faces import Embedder, FaceFinder, FaceIndex, enrol
from vigil.vision.plate_text import clean, plate_distance

ENROLMENT_DIR = "watchlists"


class ListError(VigilError):
    """A list or entry does not exist, already exists, or is of the wrong kind; the message names it."""


@dataclass(slots=True)
class ListInfo:
    id: int
    name: str
    kind: str
    description: str
    created_by: str
    created_at: datetime
    entries: int = 0


@dataclass(slots=True)
class Entry:
    """A watchlist or hotlist entry. ``embedding`` is set for face entries, ``plate_text`` for plate entries."""

    id: int
    list_name: str
    kind: str
    name: str
    reason: str
    authority: str
    created_by: str
    created_at: datetime
    expires_at: datetime | None = None
    plate_text: str | None = None
    image_paths: list[str] = field(default_factory=list)
    embedding: np.ndarray | None = None

    def active(self, at: datetime) -> bool:
        """True while the entry has not expired at ``at``."""
        return self.expires_at is None or at < self.expires_at


def _entry(row: ListEntryRow, owner: RecognitionList) -> Entry:
    vector = np.frombuffer(row.embedding, np.float32).copy() if row.embedding is not None else None
    return Entry(row.id, owner.name, owner.kind, row.name, row.reason, row.authority, row.created_by, row.created_at,
                 row.expires_at, row.plate_text, list(row.image_paths or []), vector)


def _check_text(what: str, value: str) -> str:
    value = value.strip()
    if not value:
        raise ListError(f"{what} must not be empty")
    return value


class ListStore:
    """Watchlists and hotlists in the metadata database; enrolment photos are copied below ``data_dir``."""

    def __init__(self, store: Store, data_dir: Path | str) -> None:
        self.store = store
        self.data_dir = Path(data_dir)

    # ------------------------------------------------------------------ lists

    def create_list(self, name: str, kind: str, created_by: str, description: str = "") -> ListInfo:
        if kind not in LIST_KINDS:
            raise ListError(f"list kind must be one of {', '.join(LIST_KINDS)}, not {kind!r}")
        name = _check_text("list name", name)
        try:
            with self.store.session() as session:
                row = RecognitionList(name=name, kind=kind, description=description,
                                      created_by=_check_text("created_by", created_by), created_at=utcnow())
                session.add(row)
                session.flush()
                return ListInfo(row.id, row.name, row.kind, row.description, row.created_by, row.created_at)
        except IntegrityError:
            raise ListError(f"a list named {name!r} already exists") from None

    def lists(self, kind: str | None = None) -> list[ListInfo]:
        counts = (select(ListEntryRow.list_id, func.count(ListEntryRow.id).label("n"))
                  .group_by(ListEntryRow.list_id).subquery())
        query = (select(RecognitionList, counts.c.n).outerjoin(counts, counts.c.list_id == RecognitionList.id)
                 .order_by(RecognitionList.name))
        if kind is not None:
            query = query.where(RecognitionList.kind == kind)
        with self.store.session() as session:
            return [ListInfo(r.id, r.name, r.kind, r.description, r.created_by, r.created_at, int(n or 0))
                    for r, n in session.execute(query)]

    def delete_list(self, name: str) -> int:
        """Delete a list, its entries and their enrolment photos; returns how many entries went with it."""
        with self.store.session() as session:
            owner = self._list(session, name)
            paths = [p for e in owner.entries for p in (e.image_paths or [])]
            count = len(owner.entries)
            session.delete(owner)
        self._remove_files(paths)
        return count

    # ------------------------------------------------------------------ entries

    def enrol_face(self, watchlist: str, name: str, images: Iterable[Path | str], detector: FaceFinder,
                   embedder: Embedder, *, reason: str, authority: str, created_by: str,
                   expires_at: datetime | None = None) -> Entry:
        """Enrol a person from one or more photos (each checked: one sharp, big enough face).

        Raises the core's one-line ``EnrolmentError`` / ``ImageError`` naming the bad file; nothing is stored then.
        """
        images = [Path(p) for p in images]
        vector = enrol(images, detector, embedder)
        with self.store.session() as session:
            owner = self._list(session, watchlist, "watchlist")
            row = self._new_entry(owner, name, reason, authority, created_by, expires_at)
            row.embedding = np.asarray(vector, np.float32).tobytes()
            session.add(row)
            session.flush()
            row.image_paths = self._copy_images(owner.name, row.id, images)
            return _entry(row, owner)

    def add_plate(self, hotlist: str, text: str, *, reason: str, authority: str, created_by: str,
                  expires_at: datetime | None = None) -> Entry:
        plate = clean(text)
        if not 2 <= len(plate) <= 16:
            raise ListError(f"plate {text!r}: needs 2 to 16 letters or digits")
        with self.store.session() as session:
            owner = self._list(session, hotlist, "hotlist")
            row = self._new_entry(owner, text.strip(), reason, authority, created_by, expires_at)
            row.plate_text = plate
            session.add(row)
            session.flush()
            return _entry(row, owner)

    def remove_entry(self, entry_id: int) -> Entry:
        """Delete one entry (and its enrolment photos); returns what was removed."""
        with self.store.session() as session:
            row = session.get(ListEntryRow, entry_id)
            if row is None:
                raise ListError(f"no list entry with id {entry_id}")
            removed = _entry(row, row.owner)
            session.delete(row)
        self._remove_files(removed.image_paths)
        return removed

    def entries(self, list_name: str | None = None, kind: str | None = None,
                active_at: datetime | None = None) -> list[Entry]:
        """Entries of one list (or of every list of ``kind``); with ``active_at``, only those not expired then."""
        query = select(ListEntryRow, RecognitionList).join(RecognitionList).order_by(ListEntryRow.id)
        if list_name is not None:
            query = query.where(RecognitionList.name == list_name)
        if kind is not None:
            query = query.where(RecognitionList.kind == kind)
        with self.store.session() as session:
            if list_name is not None:
                self._list(session, list_name)
            found = [_entry(row, owner) for row, owner in session.execute(query)]
        return [e for e in found if active_at is None or e.active(active_at)]

    def get_entry(self, entry_id: int) -> Entry:
        with self.store.session() as session:
            row = session.get(ListEntryRow, entry_id)
            if row is None:
                raise ListError(f"no list entry with id {entry_id}")
            return _entry(row, row.owner)

    def hotlist_texts(self) -> set[str]:
        """Every plate on any hotlist (expired or not), for retention decisions."""
        with self.store.session() as session:
            return set(session.scalars(select(ListEntryRow.plate_text).where(ListEntryRow.plate_text.is_not(None))))

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _list(session: Session, name: str, kind: str | None = None) -> RecognitionList:
        owner = session.scalar(select(RecognitionList).where(RecognitionList.name == name))
        if owner is None:
            raise ListError(f"no list named {name!r}")
        if kind is not None and owner.kind != kind:
            raise ListError(f"list {name!r} is a {owner.kind}, not a {kind}")
        return owner

    @staticmethod
    def _new_entry(owner: RecognitionList, name: str, reason: str, authority: str, created_by: str,
                   expires_at: datetime | None) -> ListEntryRow:
        if expires_at is not None and expires_at.tzinfo is None:
            raise ListError("expires_at must carry a time zone (e.g. 2025-01-31T00:00:00+00:00)")
        return ListEntryRow(list_id=owner.id, name=_check_text("entry name", name),
                            reason=_check_text("reason", reason), authority=_check_text("authority", authority),
                            created_by=_check_text("created_by", created_by), created_at=utcnow(),
                            expires_at=expires_at, image_paths=[])

    def _copy_images(self, list_name: str, entry_id: int, images: list[Path]) -> list[str]:
        folder = Path(ENROLMENT_DIR) / f"list-{_safe(list_name)}"
        (self.data_dir / folder).mkdir(parents=True, exist_ok=True)
        copied = []
        for i, image in enumerate(images):
            relative = folder / f"{entry_id}-{i}{image.suffix.lower() or '.jpg'}"
            shutil.copyfile(image, self.data_dir / relative)
            copied.append(relative.as_posix())
        return copied

    def _remove_files(self, relative_paths: Iterable[str]) -> None:
        for relative in relative_paths:
            (self.data_dir / relative).unlink(missing_ok=True)


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)[:64]



class ListMatcher:
    """Live matching against the active entries: a FAISS index over the watchlist embeddings and a prefix/suffix
    table over the hotlist plates. Entries are re-read at most every ``refresh_s`` seconds (monotonic clock);
    expiry is checked on every match against ``now``. Shared by every camera of a node."""

    def __init__(self, lists: ListStore, face_threshold: float = 0.6, max_distance: float = 1.0,
                 confusable_weight: float = 0.3, refresh_s: float = 5.0, dimension: int = 128,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.lists = lists
        self.face_threshold = face_threshold
        self.max_distance = max_distance
        self.confusable_weight = confusable_weight
        self.refresh_s = refresh_s
        self.dimension = dimension
        self.monotonic = monotonic
        self._loaded_at: float | None = None
        self._faces = FaceIndex(dimension, face_threshold)
        self._entries: dict[int, Entry] = {}
        self._plates: list[Entry] = []
        self._by_prefix: dict[str, list[Entry]] = defaultdict(list)
        self._by_suffix: dict[str, list[Entry]] = defaultdict(list)

    def refresh(self, force: bool = False) -> None:
        """Re-read the entries when ``refresh_s`` has passed (or ``force``)."""
        now = self.monotonic()
        if not force and self._loaded_at is not None and now - self._loaded_at < self.refresh_s:
            return
        entries = self.lists.entries()
        faces = [e for e in entries if e.embedding is not None and e.embedding.size == self.dimension]
        self._faces = FaceIndex(self.dimension, self.face_threshold)
        if faces:
            self._faces.add([e.id for e in faces], np.stack([e.embedding for e in faces]))  # type: ignore[misc]
        self._entries = {e.id: e for e in entries}
        self._plates = [e for e in entries if e.plate_text]
        self._by_prefix, self._by_suffix = defaultdict(list), defaultdict(list)
        for entry in self._plates:
            canon = canonical_plate(entry.plate_text or "")
            for cut in range(1, len(canon) + 1):
                self._by_prefix[canon[:cut]].append(entry)
                self._by_suffix[canon[-cut:]].append(entry)
        self._loaded_at = now

    def match_face(self, vector: np.ndarray, now: datetime, k: int = 5) -> list[tuple[Entry, float]]:
        """Active watchlist entries closer than the threshold to ``vector``: (entry, distance), closest first."""
        self.refresh()
        found = []
        for match in self._faces.search(np.asarray(vector, np.float32), k)[0]:
            entry = self._entries.get(int(match.label))  # type: ignore[call-overload]
            if entry is not None and match.distance < self.face_threshold and entry.active(now):
                found.append((entry, match.distance))
        return found

    def match_plate(self, text: str, now: datetime) -> list[tuple[Entry, float]]:
        """Active hotlist entries within ``max_distance`` of ``text`` (confusables cheaper), closest first."""
        self.refresh()
        canon = canonical_plate(text)
        if not canon:
            return []
        if self.max_distance < 2:  # ≤ 1 real edit: the first or the second half of the plate is intact
            half = len(canon) // 2 or 1
            near = self._by_prefix.get(canon[:half], []) + self._by_suffix.get(canon[half:], [])
            pool = list({e.id: e for e in near}.values())
        else:
            pool = self._plates
        found = []
        for entry in pool:
            distance = plate_distance(text, entry.plate_text or "", self.confusable_weight)
            if distance <= self.max_distance and entry.active(now):
                found.append((entry, distance))
        return sorted(found, key=lambda pair: (pair[1], pair[0].id))
