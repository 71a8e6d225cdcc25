"""Recognition store: lists, sightings and forensic search, on SQLite and on real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from vigil.store.db import Base, Store
from vigil.store.events import EventStore, TrackSummary
from vigil.store.lists import ListError, ListMatcher, ListStore
from vigil.store.recognition_schema import ListEntryRow, RecognitionList, SightingRow
from vigil.store.search import SearchError, SearchQuery, search
from vigil.store.sightings import SightingStore, canonical_plate
from vigil.types import Event, Sighting

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
NOW = datetime.now(UTC)


@pytest.fixture
def lists(store: Store, tmp_path) -> ListStore:  # type: ignore[no-untyped-def]
    return ListStore(store, tmp_path / "data")


def _vector(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    return vector / np.linalg.norm(vector)


def test_migration_matches_the_orm_tables(store: Store):
    mine = {RecognitionList.__tablename__, ListEntryRow.__tablename__, SightingRow.__tablename__}
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    ours = [d for d in diff if any(name in repr(d) for name in mine)]
    assert ours == []


def test_lists_and_plate_entries(lists: ListStore):
    lists.create_list("stolen", "hotlist", "alice", "stolen vehicles")
    lists.create_list("wanted", "watchlist", "bob")
    with pytest.raises(ListError, match="already exists"):
        lists.create_list("stolen", "hotlist", "alice")
    with pytest.raises(ListError, match="is a watchlist, not a hotlist"):
        lists.add_plate("wanted", "AB123CD", reason="r", authority="a", created_by="alice")
    with pytest.raises(ListError, match="no list named 'nope'"):
        lists.add_plate("nope", "AB123CD", reason="r", authority="a", created_by="alice")
    with pytest.raises(ListError, match="authority must not be empty"):
        lists.add_plate("stolen", "AB123CD", reason="r", authority=" ", created_by="alice")
    entry = lists.add_plate("stolen", "ab-123 cd", reason="reported stolen", authority="case 2024/17",
                            created_by="alice", expires_at=NOW + timedelta(days=1))
    assert entry.plate_text == "AB123CD" and entry.name == "ab-123 cd" and entry.created_by == "alice"
    assert entry.created_at <= datetime.now(UTC) and entry.expires_at > NOW
    lists.add_plate("stolen", "XY999ZZ", reason="old", authority="case 1", created_by="alice",
                    expires_at=NOW - timedelta(hours=1))
    infos = [(i.name, i.kind, i.entries) for i in lists.lists()]
    assert infos == [("stolen", "hotlist", 2), ("wanted", "watchlist", 0)]
    assert [e.plate_text for e in lists.entries("stolen", active_at=NOW)] == ["AB123CD"]
    assert lists.hotlist_texts() == {"AB123CD", "XY999ZZ"}

    matcher = ListMatcher(lists, max_distance=1.0)
    assert [(e.plate_text, d) for e, d in matcher.match_plate("AB123CD", NOW)] == [("AB123CD", 0.0)]
    assert matcher.match_plate("A8123CD", NOW)[0][1] == pytest.approx(0.3)  # confusable B/8
    assert matcher.match_plate("AB123CX", NOW)[0][1] == 1.0  # one real edit
    assert matcher.match_plate("AB124CX", NOW) == []  # two edits
    assert matcher.match_plate("XY999ZZ", NOW) == []  # expired: checked at match time

    removed = lists.remove_entry(entry.id)
    assert removed.plate_text == "AB123CD"
    assert lists.delete_list("stolen") == 1
    assert [i.name for i in lists.lists()] == ["wanted"]


def test_face_entries_match_through_faiss_and_expire(lists: ListStore, store: Store):
    lists.create_list("wanted", "watchlist", "bob")
    with store.session() as session:  # enrolment from photos is tested with real models in test_recognition_live
        owner = session.query(RecognitionList).one()
        for name, seed, expires in (("ann", 1, None), ("ben", 2, NOW - timedelta(minutes=1))):
            session.add(ListEntryRow(list_id=owner.id, name=name, embedding=_vector(seed).tobytes(), image_paths=[],
                                     reason="r", authority="a", created_by="bob", created_at=NOW, expires_at=expires))
    matcher = ListMatcher(lists, face_threshold=0.6)
    probe = _vector(1) + 0.02 * _vector(5)
    found = matcher.match_face(probe, NOW)
    assert [e.name for e, _ in found] == ["ann"] and found[0][1] == pytest.approx(0.02, abs=0.01)
    assert matcher.match_face(_vector(2), NOW) == []  # ben has expired
    assert matcher.match_face(_vector(2), NOW - timedelta(hours=1))[0][0].name == "ben"
    assert matcher.match_face(_vector(9), NOW) == []  # nobody


def _plate(sightings: SightingStore, text: str, end: datetime, camera: str = "cam1", track_id: int = 1,
           on_list: bool = False) -> int:
    return sightings.add(Sighting("plate", camera, end - timedelta(seconds=5), end, track_id, "car", plate_text=text,
                                  plate_confidence=0.9), on_list=on_list)


def test_plate_reads_are_purged_after_retention_unless_on_a_hotlist(lists: ListStore, store: Store):
    lists.create_list("stolen", "hotlist", "alice")
    lists.add_plate("stolen", "HOT111", reason="r", authority="a", created_by="alice")
    sightings = SightingStore(store, plate_retention_hours=72, hotlist_texts=lists.hotlist_texts)
    old = NOW - timedelta(hours=80)
    _plate(sightings, "OLD111", old)
    _plate(sightings, "HOT111", old)  # its text is on a hotlist now
    _plate(sightings, "MATCH1", old, on_list=True)  # matched when read
    _plate(sightings, "NEW111", NOW - timedelta(hours=1))
    assert sightings.purge_expired_plate_reads(NOW) == 1
    left = search(store, SearchQuery(kinds=["plate"], plate="OLD111"))
    assert left.hits == []
    assert sightings.count("plate") == 3


def test_search_tracks_events_and_plates(store: Store):
    events, sightings = EventStore(store), SightingStore(store)
    for i, (label, colour, zones) in enumerate([("person", "red", ["gate"]), ("car", "blue", []),
                                                ("car", "red", ["gate", "road"]), ("person", "black", [])]):
        start = T0 + timedelta(minutes=i)
        events.save_track(TrackSummary("cam1" if i < 3 else "cam2", i + 1, label, start, start + timedelta(seconds=30),
                                       colour, zones, [], f"thumbnails/t{i}.jpg"))
    events.add_event(Event("zone_enter", "cam1", T0 + timedelta(seconds=10), track_id=1, label="person", zone="gate"))
    events.add_event(Event("plate_match", "cam1", T0 + timedelta(minutes=2, seconds=5), track_id=3, label="car"))
    first = T0 + timedelta(minutes=2)
    sightings.add(Sighting("plate", "cam1", first, first + timedelta(seconds=30), 3, "car", plate_text="AB123CD",
                           plate_confidence=0.93, thumbnail="snapshots/cam1/p3.jpg"))
    sightings.add(Sighting("plate", "cam1", T0 + timedelta(minutes=1), T0 + timedelta(minutes=1, seconds=30), 2, "car",
                           plate_text="A81Z3CD", plate_confidence=0.7))

    red = search(store, SearchQuery(colours=["red"]))
    assert [(h.kind, h.label, h.details["colour"]) for h in red.hits] == [("track", "car", "red"),
                                                                          ("track", "person", "red")]
    gate = search(store, SearchQuery(kinds=["track"], zones=["gate"], classes=["car"]))
    assert [h.track_id for h in gate.hits] == [3]
    window = search(store, SearchQuery(start=T0 + timedelta(minutes=1, seconds=40),
                                       end=T0 + timedelta(minutes=2, seconds=10), cameras=["cam1"]))
    assert [(h.kind, h.text) for h in window.hits] == [("track", None), ("event", "plate_match")]  # latest end first
    assert window.hits[0].clip.camera_id == "cam1" and window.hits[0].thumbnail == "thumbnails/t2.jpg"
    matches = search(store, SearchQuery(event_kinds=["plate_match"]))
    assert [h.track_id for h in matches.hits] == [3]

    exact = search(store, SearchQuery(plate="ab 123 cd"))
    assert len(exact.hits) == 1
    hit = exact.hits[0]
    assert (hit.kind, hit.text, hit.track_id, hit.details["colour"]) == ("plate", "AB123CD", 3, "red")
    assert hit.details["track_ref"].startswith("track:") and hit.thumbnail == "snapshots/cam1/p3.jpg"
    assert (hit.clip.start, hit.clip.end) == (first, first + timedelta(seconds=30))
    fuzzy = search(store, SearchQuery(plate="AB123CD", fuzzy=True))
    assert [(h.text, h.distance) for h in fuzzy.hits] == [("AB123CD", 0.0), ("A81Z3CD", 0.6)]
    assert [h.text for h in search(store, SearchQuery(plate="XB123CD", fuzzy=True)).hits] == ["AB123CD"]
    assert search(store, SearchQuery(plate="AB123CD", fuzzy=True, colours=["blue"])).hits[0].text == "A81Z3CD"

    page1 = search(store, SearchQuery(kinds=["track"], limit=3))
    page2 = search(store, SearchQuery(kinds=["track"], limit=3, offset=page1.next_offset))
    assert len(page1.hits) == 3 and len(page2.hits) == 1 and page2.next_offset is None
    assert {h.id for h in page1.hits}.isdisjoint(h.id for h in page2.hits)
    with pytest.raises(SearchError, match="unknown search kind"):
        search(store, SearchQuery(kinds=["cats"]))


def test_face_sightings_are_found_by_vector_and_forgotten_when_purged(store: Store):
    sightings = SightingStore(store)
    ids = {}
    for seed in (1, 2, 3):
        at = T0 + timedelta(minutes=seed)
        ids[seed] = sightings.add(Sighting("face", "cam1", at, at + timedelta(seconds=4), seed, "person",
                                           thumbnail=f"snapshots/cam1/f{seed}.jpg"), _vector(seed))
    probe = _vector(2) + 0.05 * _vector(7)
    page = search(store, SearchQuery(face_vector=probe), sightings)
    assert [h.id for h in page.hits] == [f"sighting:{ids[2]}"]
    assert page.hits[0].similarity > 0.9 and page.hits[0].thumbnail == "snapshots/cam1/f2.jpg"
    assert search(store, SearchQuery(face_vector=probe, cameras=["cam9"]), sightings).hits == []
    later = sightings.add(Sighting("face", "cam2", T0 + timedelta(hours=1), T0 + timedelta(hours=1), 9, "person"),
                          probe)  # the in-memory index picks up rows added after it was built
    found = search(store, SearchQuery(face_vector=probe), sightings).hits
    assert [h.id for h in found] == [f"sighting:{later}", f"sighting:{ids[2]}"]
    assert sightings.purge_faces(T0 + timedelta(days=1)) == 4
    assert search(store, SearchQuery(face_vector=probe), sightings).hits == []


def test_canonical_plate_folds_confusables():
    assert canonical_plate("ob-8 s1") == "08851" == canonical_plate("0885I")
