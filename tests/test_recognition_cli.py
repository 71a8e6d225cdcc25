"""``vigil lists`` and ``vigil search``: enrolment with one-line errors for every bad file, plate and face search."""

from __future__ import annotations

import struct
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest.mock import ANY

import cv2
import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from vigil.config import load_config
from vigil.errors import ModelError, VigilError
from vigil.governance.service import open_governance
from vigil.paths import data_root
from vigil.recognition_commands import lists_app, search_app
from vigil.store.db import open_store
from vigil.store.events import EventStore, TrackSummary
from vigil.store.lists import ListStore
from vigil.store.sightings import SightingStore
from vigil.types import Sighting

FACES = data_root() / "faces"
T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)

app = typer.Typer(pretty_exceptions_enable=False)
app.add_typer(lists_app, name="lists")
app.add_typer(search_app, name="search")


def _photo(relative: str) -> Path:
    path = FACES / relative
    if not path.exists():
        pytest.skip(f"face data {relative} not found in {FACES} (set VIGIL_DATA)")
    return path


@pytest.fixture(scope="module")
def models():  # type: ignore[no-untyped-def]
    from vigil.vision.enrichers import RecognitionModels

    models = RecognitionModels()
    try:
        models.face_detector(), models.face_embedder()
    except ModelError as exc:
        pytest.skip(f"face models not in the cache: {exc}")
    return models


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "vigil.yaml"
    path.write_text("data_dir: data\nstore:\n  database: sqlite:///vigil.db\n")
    return path


def cli(config_file: Path, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, [*args, "-c", str(config_file)], env={"COLUMNS": "300"})


def _png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _bad_file(kind: str, folder: Path) -> Path:
    """A bad enrolment file of each kind the core rejects."""
    if kind == "two faces":
        return _photo("_multi/two_people.jpg")
    path = folder / f"{kind.replace(' ', '_')}.png"
    if kind == "not an image":
        path.write_text("not a photo at all")
    elif kind == "too large":
        with path.open("wb") as handle:
            handle.truncate(21 * 1024 * 1024)
    elif kind == "decompression bomb":
        path.write_bytes(_png_header(60000, 60000))
    elif kind == "no face":
        noise = np.random.default_rng(1).integers(0, 255, (400, 400, 3), dtype=np.uint8)
        cv2.imwrite(str(path), cv2.GaussianBlur(noise, (0, 0), 3))
    elif kind == "too small":
        image = cv2.imread(str(_photo("obama/obama.jpg")))
        cv2.imwrite(str(path), cv2.resize(image, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA))
    elif kind == "blurred":
        cv2.imwrite(str(path), cv2.GaussianBlur(cv2.imread(str(_photo("obama/obama.jpg"))), (0, 0), 7))
    return path


def test_enrol_and_list(models, config_file: Path):
    assert cli(config_file, "lists", "create-watchlist", "wanted", "--by", "alice").exit_code == 0
    result = cli(config_file, "lists", "enrol", "wanted", "Barack Obama", str(_photo("obama/obama.jpg")),
                 str(_photo("obama/obama1.jpg")), "--reason", "missing person", "--authority", "case 12/2024",
                 "--expires", "2999-01-01T00:00:00Z", "--by", "alice")
    assert result.exit_code == 0, result.output
    assert "enrolled 'Barack Obama' on 'wanted'" in result.output and "2 photo(s)" in result.output
    listing = cli(config_file, "lists", "list", "wanted")
    assert "Barack Obama" in listing.output and "case 12/2024" in listing.output and "active" in listing.output
    assert "wanted" in cli(config_file, "lists", "list").output
    config = load_config(config_file)
    with open_store(config.store.database, data_dir=config.data_dir) as store:
        entry = ListStore(store, config.data_dir).entries("wanted")[0]
    assert entry.embedding is not None and entry.embedding.shape == (128,) and len(entry.image_paths) == 2
    assert all((config.data_dir / p).is_file() for p in entry.image_paths)
    removed = cli(config_file, "lists", "remove", str(entry.id))
    assert removed.exit_code == 0 and not (config.data_dir / entry.image_paths[0]).exists()
    assert cli(config_file, "lists", "delete", "wanted").exit_code == 0
    assert [(e.actor, e.action, e.object) for e in audit_entries(config)] == [
        ("cli:alice", "watchlist.create", "watchlist:wanted"), ("cli:alice", "watchlist.entry_add", "watchlist:wanted"),
        (ANY, "watchlist.entry_remove", "watchlist:wanted"), (ANY, "watchlist.delete", "watchlist:wanted")]


def audit_entries(config):  # type: ignore[no-untyped-def]
    """The audit log, oldest first, with its chain verified."""
    with open_store(config.store.database, data_dir=config.data_dir) as store:
        log = open_governance(store, config.data_dir).audit
        assert log.verify().ok
        return list(log.iter_entries())


@pytest.mark.parametrize("kind", ["not an image", "too large", "decompression bomb", "no face", "two faces",
                                  "too small", "blurred"])
def test_bad_enrolment_files_get_one_line_errors(models, config_file: Path, tmp_path: Path, kind: str):
    cli(config_file, "lists", "create-watchlist", "wanted")
    bad = _bad_file(kind, tmp_path)
    good = _photo("obama/obama.jpg")
    result = cli(config_file, "lists", "enrol", "wanted", "Someone", str(good), str(bad), "--reason", "r",
                 "--authority", "a")
    assert result.exit_code != 0
    error = result.exception
    assert isinstance(error, VigilError), result.output
    message = str(error)
    assert str(bad) in message and ("2 faces" if kind == "two faces" else kind) in message and "\n" not in message
    assert "0 entries" in cli(config_file, "lists", "delete", "wanted").output  # nothing was enrolled


def test_bad_options_are_one_line_errors(config_file: Path):
    cli(config_file, "lists", "create-hotlist", "stolen")
    result = cli(config_file, "lists", "add-plate", "stolen", "AB123CD", "--reason", "r", "--authority", "a",
                 "--expires", "next tuesday")
    assert isinstance(result.exception, VigilError) and "--expires" in str(result.exception)
    result = cli(config_file, "lists", "add-plate", "nolist", "AB123CD", "--reason", "r", "--authority", "a")
    assert isinstance(result.exception, VigilError) and "no list named 'nolist'" in str(result.exception)


def test_search_plate_objects_and_face(models, config_file: Path):
    assert cli(config_file, "lists", "create-hotlist", "stolen").exit_code == 0
    added = cli(config_file, "lists", "add-plate", "stolen", "ab 123 cd", "--reason", "stolen", "--authority", "P-1")
    assert "plate AB123CD added" in added.output
    config = load_config(config_file)
    image = cv2.imread(str(_photo("biden/biden2.jpg")))
    faces = models.face_detector().detect(image)
    vector = models.face_embedder().embed(image, faces[:1])[0]
    with open_store(config.store.database, data_dir=config.data_dir) as store:
        EventStore(store).save_track(TrackSummary("gate", 7, "car", T0, T0 + timedelta(seconds=9), "red", ["road"], [],
                                                  "thumbnails/gate/7.jpg"))
        sightings = SightingStore(store)
        sightings.add(Sighting("plate", "gate", T0, T0 + timedelta(seconds=9), 7, "car", plate_text="AB123CD",
                               plate_confidence=0.9, thumbnail="snapshots/gate/plate-7.jpg"), on_list=True)
        sightings.add(Sighting("face", "door", T0, T0 + timedelta(seconds=3), 3, "person",
                               thumbnail="snapshots/door/face-3.jpg"), vector)

    exact = cli(config_file, "search", "plate", "AB123CD")
    assert exact.exit_code == 0 and "gate" in exact.output and "plate-7.jpg" in exact.output
    fuzzy = cli(config_file, "search", "plate", "AB123C0", "--fuzzy")
    assert "distance 1.00" in fuzzy.output and "AB123CD" in fuzzy.output
    assert "gate" not in cli(config_file, "search", "plate", "AB123C0").output
    objects = cli(config_file, "search", "objects", "--class", "car", "--colour", "red", "--zone", "road")
    assert objects.exit_code == 0 and "7.jpg" in objects.output and "red" in objects.output
    assert "7.jpg" not in cli(config_file, "search", "objects", "--colour", "blue").output
    face = cli(config_file, "search", "face", str(_photo("biden/biden.jpg")))
    assert face.exit_code == 0, face.output
    assert "door" in face.output and "similarity" in face.output and "face-3.jpg" in face.output
    assert "door" not in cli(config_file, "search", "face", str(_photo("obama/obama.jpg"))).output
    searches = [e for e in audit_entries(config) if e.action.startswith("search")]
    assert [e.action for e in searches] == ["search"] * 5 + ["search.face"] * 2  # every search, with its query
    assert searches[1].details["plate"] == "AB123C0" and searches[1].details["fuzzy"] is True
