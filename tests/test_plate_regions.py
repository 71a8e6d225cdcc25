"""Plate regions as data: US, Chinese and EU reads with their regions, Serbian normalisation (Cyrillic too), a
camera with two regions, config validation of region names, and the crop benchmark."""

from __future__ import annotations

import csv
from datetime import UTC, datetime

import cv2
import numpy as np
import pytest
import supervision as sv

from vigil.config import PlateRecognitionConfig, parse_config
from vigil.errors import ConfigError
from vigil.paths import data_root
from vigil.store.db import open_store
from vigil.store.lists import ListMatcher, ListStore
from vigil.types import Frame, Track, TrackState
from vigil.vision.enrichers import PlateEnricher, RecognitionEnrichers, RecognitionModels
from vigil.vision.plate_formats import check_regions, known_regions, region_formats
from vigil.vision.plate_text import PlateNormaliser, clean
from vigil.vision.tracker import TrackUpdate

PLATES = data_root() / "plates"


def _photo(set_name: str, stem: str) -> tuple[np.ndarray, str]:
    folder = PLATES / set_name
    if not folder.is_dir():
        pytest.skip(f"plate data not found in {folder} (set VIGIL_DATA)")
    fields = (folder / f"{stem}.txt").read_text().split()
    return cv2.imread(str(folder / fields[0])), fields[5]


def _cn_crop(name: str) -> tuple[np.ndarray, str]:
    folder = PLATES / "cn_crops"
    if not folder.is_dir():
        pytest.skip(f"plate data not found in {folder} (set VIGIL_DATA)")
    with (folder / "groundtruth.csv").open(encoding="utf-8") as handle:
        truth = {row[0]: row[2] for row in csv.reader(handle)}
    return cv2.imread(str(folder / name)), truth[name]


def _rendered_plate(text: str) -> np.ndarray:
    """A white plate with black text on a grey background (OpenCV's Hershey font)."""
    scene = np.full((300, 520, 3), 90, np.uint8)
    cv2.rectangle(scene, (80, 120), (440, 190), (245, 245, 245), -1)
    cv2.rectangle(scene, (80, 120), (440, 190), (20, 20, 20), 3)
    cv2.putText(scene, text, (98, 170), cv2.FONT_HERSHEY_SIMPLEX, 1.3, (10, 10, 10), 3, cv2.LINE_AA)
    return scene


@pytest.mark.parametrize("stem", ["316b64c0-55bf-4079-a1c0-d93f461a576f", "21d8c31d-3deb-494b-9c63-c0223306fd82"])
def test_reads_a_us_photo_with_region_us(plate_reader, stem):
    image, truth = _photo("us", stem)
    reads = plate_reader.with_regions("us").read(image)
    assert reads and reads[0].text == truth


def test_reads_an_eu_photo_with_region_eu(plate_reader):
    image, truth = _photo("eu", "test_050")
    assert plate_reader.read(image)[0].text == truth


def test_reads_a_chinese_crop_with_its_province_character(plate_reader):
    image, truth = _cn_crop("cn0000.jpg")  # 京PL3N67
    read = plate_reader.with_regions("cn").read_crop(image)
    assert read.text == truth and read.text[0] == "京"
    missing, truth = _cn_crop("cn0020.jpg")  # PP-OCR's greedy read drops the 皖; the probabilities keep it
    assert plate_reader.with_regions("cn").read_crop(missing).text == truth


def test_serbian_plates_normalise_with_confusables_and_cyrillic():
    rs = PlateNormaliser.for_regions("rs")
    assert rs.normalise("BG1Z3AB").text == "BG123AB"  # Z in a digit position
    assert rs.normalise("BG 1234-AB").text == "BG1234AB"
    assert rs.normalise("ВG123АВ").text == "BG123AB"  # Cyrillic В and А
    assert rs.normalise("ČA 123-ŠŽ").text == "CA123SZ"  # Latin letters with marks
    assert rs.normalise("NS O45-KK").text == "NS045KK"
    assert clean("ВG·123-АВ") == "BG123AB"


def test_reads_a_rendered_serbian_plate(plate_reader):
    reads = plate_reader.with_regions("rs").read(_rendered_plate("BG 1234-AB"))
    assert reads and reads[0].text == "BG1234AB"


def test_chinese_characters_are_kept_only_for_cn():
    assert PlateNormaliser.for_regions("cn").normalise("皖A·OT999").text == "皖A0T999"  # no letter O in a serial
    assert PlateNormaliser.for_regions("eu").normalise("皖RK755AJ").text == "RK755AJ"
    assert PlateNormaliser.for_regions("generic").normalise("皖A12345").text == "A12345"


def test_several_regions_pick_the_best_fit_across_their_formats():
    both = PlateNormaliser.for_regions(["rs", "br"])
    assert both.normalise("BG1Z3AB").text == "BG123AB"  # Serbian, one swap
    assert both.normalise("ABC1D23").text == "ABC1D23"  # Mercosul
    assert both.normalise("A8C1234").text == "ABC1234"  # old Brazilian, one swap
    assert PlateNormaliser.for_regions("rs,br").regions == ("rs", "br")
    eu = {f.regex.pattern for f in region_formats("eu-all")}
    assert {f.regex.pattern for f in region_formats("pl")} <= eu  # a country alone is part of the union
    assert {"eu", "de", "fr", "pl", "rs", "uk", "us", "us-ca", "br", "cn", "generic"} <= set(known_regions())


def test_a_camera_with_two_regions_reads_both(plate_reader):
    config = parse_config({
        "recognition": {"plates": {"region": "eu"}},
        "cameras": [
            {"id": "border", "url": "border.mp4", "recognition": {"plates": True, "plate_regions": ["cn", "eu"]}},
            {"id": "street", "url": "street.mp4", "recognition": {"plates": True}},
        ],
    })
    border, street = config.cameras
    assert config.recognition.plates.regions_for(street) == "eu"
    models = RecognitionModels("eu")
    models._plate_reader = plate_reader  # the module's reader: its models are loaded once
    enrichers = RecognitionEnrichers(config, lists=None, sightings=None, models=models, colour=False)  # type: ignore[arg-type]
    enrichers(border), enrichers(street)
    camera_reader = enrichers.plates["border"].reader  # what the live pipeline of that camera reads with
    assert camera_reader.regions == ("cn", "eu") and enrichers.plates["street"].reader is plate_reader
    crop, cn_truth = _cn_crop("cn0000.jpg")
    photo, eu_truth = _photo("eu", "test_050")
    assert camera_reader.read_crop(crop).text == cn_truth
    assert camera_reader.read(photo)[0].text == eu_truth
    assert plate_reader.read_crop(crop).text != cn_truth  # the site's eu alone drops the province character


def test_unknown_region_is_a_one_line_config_error():
    with pytest.raises(ConfigError) as site:
        parse_config({"recognition": {"plates": {"region": ["rs", "atlantis"]}}})
    message = str(site.value)
    assert "recognition.plates.region" in message and "'atlantis'" in message and "known: generic, eu" in message
    assert "\n" not in message
    with pytest.raises(ConfigError, match=r"cameras\[0\]\.recognition\.plate_regions: unknown plate region 'zz'"):
        parse_config({"cameras": [{"id": "a", "url": "a.mp4", "recognition": {"plate_regions": "zz"}}]})
    assert parse_config({"recognition": {"plates": {"region": "RS, EU"}}}).recognition.plates.region == ["rs", "eu"]
    with pytest.raises(ValueError, match="known"):
        check_regions("narnia")


def test_crop_bench_reports_per_set(tmp_path, plate_reader):
    if not (PLATES / "cn_crops").is_dir():
        pytest.skip("cn_crops not found")
    from vigil.bench.plates import run_crop_bench

    report = run_crop_bench("cn_crops", limit=6, misses_to=tmp_path / "misses.png")
    assert report["region"] == "cn" and report["images"] == 6 and report["detect_recall"] is None
    assert {"exact", "within_one", "exact_given_detected", "ms_per_image", "baseline"} <= set(report)
    assert report["exact"] >= report["baseline"]["exact"]


def test_a_substream_camera_reads_the_plate_on_the_main_stream_picture(plate_reader, tmp_path):
    """The analysed 320×180 picture is too small to read a plate that the 1280×720 main stream shows well: the
    enricher reads it on the main stream's picture of that moment, with the track's box scaled up."""
    main = np.full((720, 1280, 3), 90, np.uint8)
    main[300:392, 400:560] = cv2.resize(_rendered_plate("BG 1234-AB"), (160, 92), interpolation=cv2.INTER_AREA)
    small = cv2.resize(main, (320, 180), interpolation=cv2.INTER_AREA)
    at = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    car = Track(camera_id="gate", track_id=1, label="car", first_seen=at, last_seen=at, state=TrackState.CONFIRMED,
                boxes=[(90.0, 65.0, 175.0, 120.0)], box_times=[at])
    with open_store(f"sqlite:///{tmp_path / 'vigil.db'}") as store:
        matcher = ListMatcher(ListStore(store, tmp_path))
        reads = {}
        for name, main_picture in (("substream only", None), ("main stream", lambda: main)):
            enricher = PlateEnricher("gate", plate_reader.with_regions("rs"), matcher, PlateRecognitionConfig())
            car.attributes.pop("plate", None)
            frame = Frame("gate", at, 0, small.copy(), main_picture=main_picture)
            enricher.process(frame, TrackUpdate(sv.Detections.empty(), [car], []))
            reads[name] = car.attributes.get("plate")
    assert reads == {"substream only": None, "main stream": "BG1234AB"}

