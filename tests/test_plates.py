"""Plate reading: real openalpr EU photos, a rendered plate, normalisation, voting and hotlist distance."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vigil.paths import data_root
from vigil.vision.plate_text import PlateNormaliser, PlateVoter, clean, match_hotlist, plate_distance

EU = data_root() / "plates" / "eu"


def _truth(name: str) -> tuple[np.ndarray, tuple[float, float, float, float], str]:
    if not EU.is_dir():
        pytest.skip(f"plate data not found in {EU} (set VIGIL_DATA)")
    fields = (EU / f"{name}.txt").read_text().split()
    x, y, w, h = (float(v) for v in fields[1:5])
    return cv2.imread(str(EU / fields[0])), (x, y, x + w, y + h), fields[5]


@pytest.mark.parametrize("name", ["eu1", "test_050", "test_072"])
def test_reads_real_eu_plates_end_to_end(plate_reader, name):
    image, (x1, y1, x2, y2), truth = _truth(name)
    reads = plate_reader.read(image)
    assert reads, f"no plate read in {name}"
    best = reads[0]
    assert best.text == truth
    bx1, by1, bx2, by2 = best.box  # the read box lies on the labelled plate
    assert bx1 < x2 and bx2 > x1 and by1 < y2 and by2 > y1


def test_vehicle_box_restricts_the_search_and_keeps_image_coordinates(plate_reader):
    image, (x1, y1, x2, y2), truth = _truth("eu1")
    vehicle = (max(0, x1 - 150), max(0, y1 - 120), x2 + 150, y2 + 60)
    reads = plate_reader.read(image, vehicle_box=vehicle)
    assert reads[0].text == truth
    assert abs(reads[0].box[0] - x1) < 60 and abs(reads[0].box[1] - y1) < 30
    elsewhere = plate_reader.read(image, vehicle_box=(0, 0, 200, 150))  # a box away from the plate
    assert all(read.text != truth for read in elsewhere)


def test_reads_a_rendered_plate(plate_reader):
    scene = np.full((480, 640, 3), 90, np.uint8)
    cv2.rectangle(scene, (200, 300), (440, 360), (245, 245, 245), -1)
    cv2.rectangle(scene, (200, 300), (440, 360), (20, 20, 20), 3)
    cv2.putText(scene, "AB 123 CD", (214, 345), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (10, 10, 10), 3, cv2.LINE_AA)
    reads = plate_reader.read(scene)
    assert reads and reads[0].text == "AB123CD"
    assert 180 < reads[0].box[0] < 260 and 280 < reads[0].box[1] < 330


def test_normaliser_resolves_confusables_by_format():
    eu = PlateNormaliser.for_region("eu")
    assert eu.normalise("RK-O99AN").text == "RK099AN"  # O in a digit position
    assert eu.normalise("RK7S5AJ").text == "RK755AJ"  # S in a digit position
    assert eu.normalise("BB=135B0").text == "BB135BO"  # 0 in a letter position
    assert eu.normalise("1B8O338").text == "1B80338"  # Czech format
    assert eu.normalise("SK RK755AJ").text == "RK755AJ"  # country code dropped
    assert eu.normalise("4B2:81875").text == "4B21875"  # sticker between groups read as 8
    assert eu.normalise("GWAGEN").text == "GWAGEN"  # vanity plate: no format, left alone
    generic = PlateNormaliser.for_region("generic")
    assert generic.normalise("ab-12 o").text == "AB12O"
    assert clean("m5·xsx") == "M5XSX"
    with pytest.raises(KeyError):
        PlateNormaliser.for_region("atlantis")


def test_custom_formats_per_region():
    formats = {"zz": (r"\d{3}[A-Z]{3}",)}
    normaliser = PlateNormaliser.for_region("zz", formats)
    assert normaliser.normalise("I2O ABC").text == "120ABC"
    assert normaliser.normalise("12Z AB5").text == "122ABS"


def test_voter_weights_characters_by_confidence():
    voter = PlateVoter()
    assert voter.result() == ("", 0.0)
    for text, conf in [("RK755AJ", 0.9), ("RK755AI", 0.5), ("RK7S5AJ", 0.6), ("K755AJ", 0.7), ("RK-755AJ", 0.8)]:
        voter.add(text, conf)
    text, confidence = voter.result()
    assert text == "RK755AJ"
    assert 0 < confidence < 1


def test_plate_distance_and_hotlist():
    assert plate_distance("RK755AJ", "RK755AJ") == 0
    assert plate_distance("RK099AN", "RKO99AN") == pytest.approx(0.3)  # confusable swap is cheap
    assert plate_distance("RK099AN", "RKX99AN") == 1.0
    assert plate_distance("RK755AJ", "RK755A") == 1.0
    assert plate_distance("rk-755 aj", "RK755AJ") == 0
    assert plate_distance("B8", "8B", confusable_weight=0.5) == pytest.approx(1.0)
    hits = match_hotlist("RK099AN", ["RKO99AN", "RK099AM", "XY123ZZ"], max_distance=1.0)
    assert [h.entry for h in hits] == ["RKO99AN", "RK099AM"]
    assert match_hotlist("RK099AN", ["XY123ZZ"]) == []
