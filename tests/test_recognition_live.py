"""Live recognition through the real pipeline: real photos as frames → NanoDet → tracker → face / plate / colour
enrichers → store sink; then retrospective search of what they stored."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest

from vigil.config import CameraConfig, CameraRecognition, Config, FaceRecognitionConfig, TrackerConfig
from vigil.errors import ModelError
from vigil.events.outbox import EventWriter
from vigil.events.store_sink import StoreSink
from vigil.governance.gate import AuthorisationGate
from vigil.governance.service import open_governance
from vigil.paths import data_root
from vigil.runtime import CameraPipeline
from vigil.store.db import Store, open_store
from vigil.store.events import EventStore
from vigil.store.lists import ListStore
from vigil.store.search import SearchQuery, embed_probe, search
from vigil.store.sightings import SightingStore
from vigil.store.snapshots import SnapshotStore
from vigil.types import Event, Frame
from vigil.vision.colour import ColourEnricher, dominant_colour
from vigil.vision.enrichers import FaceEnricher, RecognitionModels, recognition_enrichers

FACES = data_root() / "faces"
EU = data_root() / "plates" / "eu"
T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
NOW = datetime.now(UTC)
TRACKER = TrackerConfig(high_threshold=0.4)  # eu6 scores 0.55-0.60 on CPUs without VNNI (new tracks need +0.1)


def _data(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"test data {path} not found (set VIGIL_DATA)")
    return path


@pytest.fixture(scope="module")
def models() -> RecognitionModels:
    models = RecognitionModels(plate_region="eu")
    try:
        models.face_detector(), models.face_embedder()
    except ModelError as exc:
        pytest.skip(f"face models not in the cache: {exc}")
    return models


@pytest.fixture(scope="module")
def plate_models(models: RecognitionModels) -> RecognitionModels:
    """``models`` whose PP-OCR plate reader loads (else the test is skipped, naming why)."""
    try:
        models.plate_reader()
    except ModelError as exc:
        pytest.skip(f"PP-OCR models not in the cache: {exc}")
    return models


@pytest.fixture(scope="module")
def detector():  # type: ignore[no-untyped-def]
    from vigil.config import DetectorConfig
    from vigil.vision.detector import create_detector

    try:
        return create_detector(DetectorConfig())
    except ModelError as exc:
        pytest.skip(f"detector not in the cache: {exc}")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path / 'vigil.db'}") as opened:
        yield opened


@pytest.fixture
def lists(store: Store, tmp_path: Path) -> ListStore:
    return ListStore(store, tmp_path)


def _frames(photo: Path, count: int = 8, height: int | None = 640, camera: str = "cam1") -> list[Frame]:
    """The photo (scaled to ``height``) on a grey canvas 20 px larger all round, drifting 4 px right per frame,
    5 frames a second."""
    image = cv2.imread(str(photo))
    if height is not None:
        scale = height / image.shape[0]
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    frames = []
    for i in range(count):
        canvas = np.full((image.shape[0] + 40, image.shape[1] + 40 + 4 * count, 3), 110, np.uint8)
        canvas[20:20 + image.shape[0], 20 + 4 * i:20 + 4 * i + image.shape[1]] = image
        frames.append(Frame(camera, T0 + timedelta(seconds=0.2 * i), i, canvas))
    return frames


def _run(frames: list[Frame], camera: CameraConfig, enrichers: list, detector, store: Store,  # type: ignore[no-untyped-def]
         snapshots: SnapshotStore | None = None) -> list[Event]:
    """Frames through detector → CameraPipeline (tracker, rules, enrichers) → StoreSink, as ``Node.step`` does."""
    events = EventStore(store)
    writer = EventWriter(events)
    sink = StoreSink(events, writer, snapshots, TRACKER.confirm_hits)
    pipeline = CameraPipeline(camera, TRACKER, motion_gate=False, enrichers=enrichers)
    raised = []
    for frame in frames:
        result = pipeline.process(frame, detector.detect([frame.image])[0])
        raised += result.output.events
        sink(result)
    final = pipeline.finish(frames[-1].captured_at)
    if final is not None:
        raised += final.output.events
        sink(final)
    writer.flush()
    return raised


def _camera(faces: bool = False, plates: bool = False) -> CameraConfig:
    return CameraConfig(id="cam1", url="file.mp4", recognition=CameraRecognition(faces=faces, plates=plates))


def _enrol(lists: ListStore, models: RecognitionModels, person: str, photo: str,
           expires_at: datetime | None = None) -> int:
    if not lists.lists(kind="watchlist"):
        lists.create_list("wanted", "watchlist", "tester")
    entry = lists.enrol_face("wanted", person, [_data(FACES / photo)], models.face_detector(), models.face_embedder(),
                             reason="test", authority="case T-1", created_by="tester", expires_at=expires_at)
    return entry.id


def test_enrolled_face_raises_one_face_match_per_track(models, detector, store, lists, tmp_path):
    entry_id = _enrol(lists, models, "Barack Obama", "obama/obama.jpg")
    assert (tmp_path / lists.get_entry(entry_id).image_paths[0]).is_file()  # enrolment photo copied to data_dir
    sightings = SightingStore(store)
    snapshots = SnapshotStore(tmp_path)
    factory = recognition_enrichers(Config(), lists, sightings, snapshots, models=models)
    enrichers = factory(_camera(faces=True))
    events = _run(_frames(_data(FACES / "obama/obama2.jpg")), _camera(faces=True), enrichers, detector, store,
                  snapshots)
    matches = [e for e in events if e.kind == "face_match"]
    assert len(matches) == 1, [e.kind for e in events]
    payload = matches[0].payload
    assert payload["name"] == "Barack Obama" and payload["entry_id"] == entry_id and payload["watchlist"] == "wanted"
    assert payload["distance"] < 0.6 and payload["similarity"] > 0.4 and payload["enrolled_image"]
    stored = EventStore(store).list_events(kinds=["face_match"]).items
    assert len(stored) == 1 and stored[0].event.snapshot and (tmp_path / stored[0].event.snapshot).is_file()
    face = factory.faces["cam1"]
    assert face.embedded >= 2  # several shots were embedded, still one event
    assert sightings.count("face") == 1  # a matched face is kept for the investigation


def test_unknown_face_matches_nothing_and_keeps_no_embedding(models, detector, store, lists):
    _enrol(lists, models, "Barack Obama", "obama/obama.jpg")
    sightings = SightingStore(store)
    enrichers = recognition_enrichers(Config(), lists, sightings, models=models)(_camera(faces=True))
    events = _run(_frames(_data(FACES / "biden/biden2.jpg")), _camera(faces=True), enrichers, detector, store)
    face = next(e for e in enrichers if isinstance(e, FaceEnricher))
    assert face.embedded >= 1  # the face was seen and embedded ...
    assert not [e for e in events if e.kind == "face_match"]
    assert sightings.count() == 0  # ... and its embedding was not stored


def test_expired_or_disabled_face_matching_raises_nothing(models, detector, store, lists):
    _enrol(lists, models, "Barack Obama", "obama/obama.jpg", expires_at=NOW - timedelta(minutes=1))
    frames = _frames(_data(FACES / "obama/obama2.jpg"))
    factory = recognition_enrichers(Config(), lists, SightingStore(store), models=models)
    events = _run(frames, _camera(faces=True), factory(_camera(faces=True)), detector, store)
    assert factory.faces["cam1"].embedded >= 1 and not [e for e in events if e.kind == "face_match"]

    _enrol(lists, models, "Obama again", "obama/obama.jpg")
    for switch in ("set_enabled", "allowed"):
        allowed = (lambda camera, at: False) if switch == "allowed" else None
        factory = recognition_enrichers(Config(), lists, SightingStore(store), face_allowed=allowed, models=models)
        enrichers = factory(_camera(faces=True))
        if switch == "set_enabled":
            factory.set_face_matching("cam1", False)
        events = _run(frames, _camera(faces=True), enrichers, detector, store)
        assert factory.faces["cam1"].attempts == 0 and not [e for e in events if e.kind == "face_match"]


def test_stored_face_sightings_are_found_by_a_probe_photo(models, detector, store, lists, tmp_path):
    config = Config(recognition={"faces": FaceRecognitionConfig(store_sightings=True)})
    sightings = SightingStore(store)
    enrichers = recognition_enrichers(config, lists, sightings, SnapshotStore(tmp_path), models=models)
    _run(_frames(_data(FACES / "biden/biden2.jpg")), _camera(faces=True), enrichers(_camera(faces=True)), detector,
         store)
    assert sightings.count("face") == 1
    probe = embed_probe(_data(FACES / "biden/biden.jpg"), models.face_detector(), models.face_embedder())
    page = search(store, SearchQuery(face_vector=probe), sightings)
    assert len(page.hits) == 1
    hit = page.hits[0]
    assert hit.kind == "face" and hit.camera_id == "cam1" and hit.similarity > 0.4
    assert hit.thumbnail and (tmp_path / hit.thumbnail).is_file() and hit.details["track_ref"].startswith("track:")
    other = embed_probe(_data(FACES / "obama/obama.jpg"), models.face_detector(), models.face_embedder())
    assert search(store, SearchQuery(face_vector=other), sightings).hits == []


def _eu_car() -> tuple[Path, str]:
    """A car photo that the detectors track (a score ≥ 0.5 starts a track: TRACKER) and whose plate reads exactly."""
    photo = _data(EU / "eu6.jpg")
    return photo, (EU / "eu6.txt").read_text().split()[5]


def test_hotlisted_plate_raises_plate_match_and_search_finds_the_track(plate_models, detector, store, lists,
                                                                         tmp_path):
    photo, truth = _eu_car()
    lists.create_list("stolen", "hotlist", "tester")
    entry = lists.add_plate("stolen", truth, reason="stolen", authority="case P-9", created_by="tester")
    lists.add_plate("stolen", "ZZ999", reason="expired", authority="case P-1", created_by="tester",
                    expires_at=NOW - timedelta(days=1))
    sightings = SightingStore(store)
    factory = recognition_enrichers(Config(), lists, sightings, SnapshotStore(tmp_path), models=plate_models)
    frames = _frames(photo, count=5, height=None)
    events = _run(frames, _camera(plates=True), factory(_camera(plates=True)), detector, store, SnapshotStore(tmp_path))
    matches = [e for e in events if e.kind == "plate_match"]
    assert len(matches) == 1
    assert matches[0].payload["text"] == truth and matches[0].payload["entry_id"] == entry.id
    assert matches[0].payload["distance"] == 0.0 and matches[0].label in ("car", "truck", "bus")
    assert factory.plates["cam1"].reads <= 3  # 5 frames over 0.8 s, at most 2 reads a second

    hits = search(store, SearchQuery(plate=truth)).hits
    assert len(hits) == 1 and hits[0].details["on_list"] is True
    track = search(store, SearchQuery(kinds=["track"])).hits
    assert hits[0].details["track_ref"] == track[0].id  # the read leads to the vehicle track that produced it
    assert track[0].details["colour"] is not None and track[0].details["plate"] == truth
    assert (tmp_path / hits[0].thumbnail).is_file()
    fuzzy = search(store, SearchQuery(plate=truth[:-1] + "K", fuzzy=True)).hits
    assert [(h.text, h.distance) for h in fuzzy] == [(truth, 1.0)]


def test_expired_hotlist_entry_does_not_match(plate_models, detector, store, lists):
    photo, truth = _eu_car()
    lists.create_list("stolen", "hotlist", "tester")
    lists.add_plate("stolen", truth, reason="old", authority="case P-2", created_by="tester",
                    expires_at=NOW - timedelta(seconds=1))
    sightings = SightingStore(store, hotlist_texts=lists.hotlist_texts)
    enrichers = recognition_enrichers(Config(), lists, sightings, models=plate_models)(_camera(plates=True))
    events = _run(_frames(photo, count=3, height=None), _camera(plates=True), enrichers, detector, store)
    assert not [e for e in events if e.kind == "plate_match"]
    assert search(store, SearchQuery(plate=truth)).hits[0].details["on_list"] is False


def _scene(shirt_bgr: tuple[int, int, int]) -> np.ndarray:
    crop = np.full((200, 80, 3), (60, 60, 60), np.uint8)  # dark trousers, grey background
    cv2.rectangle(crop, (10, 30), (70, 115), shirt_bgr, -1)
    cv2.circle(crop, (40, 15), 12, (140, 170, 210), -1)
    return crop


@pytest.mark.parametrize(("bgr", "name"), [((30, 30, 200), "red"), ((200, 60, 20), "blue"), ((40, 180, 40), "green"),
                                           ((240, 240, 240), "white"), ((20, 20, 20), "black"),
                                           ((0, 215, 245), "yellow"), ((30, 70, 110), "brown")])
def test_colour_of_a_generated_person(bgr, name):
    assert dominant_colour(_scene(bgr), "person") == name


def test_colour_enricher_sets_the_track_colour_before_the_sink_saves_it(detector, store):
    photo, _ = _eu_car()
    _run(_frames(photo, count=4, height=None), _camera(), [ColourEnricher()], detector, store)
    tracks = EventStore(store).tracks()
    assert tracks and all(t.colour for t in tracks)


def test_plate_match_only_inside_a_plate_hotlist_authorisation(models, detector, store, lists, tmp_path):
    """With ``plate_hotlist`` required by config, hotlist matching is off until an authorisation is active."""
    photo, truth = _eu_car()
    lists.create_list("stolen", "hotlist", "tester")
    lists.add_plate("stolen", truth, reason="stolen", authority="case P-9", created_by="tester")
    gov = open_governance(store, tmp_path)
    gov.users.create("inv", "scarlet bicycle ocean 21", "investigator", "setup", cameras=["*"])
    gov.users.create("sup", "scarlet bicycle ocean 21", "supervisor", "setup", cameras=["*"])
    frames = _frames(photo, count=3, height=None)
    at = frames[0].captured_at

    def plate_matches() -> list:
        factory = recognition_enrichers(Config(), lists, SightingStore(store), models=models,
                                        plate_allowed=AuthorisationGate(gov.authorisations, "plate_hotlist"))
        events = _run(frames, _camera(plates=True), factory(_camera(plates=True)), detector, store)
        return [e for e in events if e.kind == "plate_match"]

    assert plate_matches() == []
    auth = gov.authorisations.request("inv", legal_basis="x", case_ref="C1", purpose="p", features=["plate_hotlist"],
                                      cameras=["cam1"], valid_from=at - timedelta(hours=1),
                                      valid_until=max(at, NOW) + timedelta(days=1))
    gov.authorisations.approve(auth.id, "sup")
    assert len(plate_matches()) == 1
