"""Faces: BlazeFace detection, dlib embeddings, FAISS index and enrolment checks on real photos and generated files."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest

from vigil.errors import ModelError, VigilError
from vigil.paths import data_root
from vigil.vision.faces import (
    DLIB_THRESHOLD,
    EnrolmentError,
    FaceIndex,
    ImageError,
    enrol,
    face_quality,
    load_enrolment_image,
)

FACES = data_root() / "faces"


def _photo(relative: str):
    path = FACES / relative
    if not path.exists():
        pytest.skip(f"face data {relative} not found in {FACES} (set VIGIL_DATA)")
    return path


@pytest.fixture(scope="module")
def detector():
    from vigil.vision.face_detect import FaceDetector
    from vigil.vision.models import model_path

    try:
        return FaceDetector(model_path("blazeface"))
    except ModelError as exc:
        pytest.skip(f"BlazeFace not in the model cache: {exc}")


@pytest.fixture(scope="module")
def embedder():
    from vigil.vision.face_embed import FaceEmbedder
    from vigil.vision.models import model_path

    try:
        return FaceEmbedder(model_path("dlib-face-embedding"), model_path("dlib-landmarks-5"))
    except ModelError as exc:
        pytest.skip(f"dlib models not in the model cache: {exc}")


@pytest.mark.parametrize(("relative", "count"), [("_multi/kit_with_rose__kit_harington+rose_leslie.jpg", 2),
                                                  ("_multi/two_people.jpg", 2), ("obama/obama.jpg", 1)])
def test_detects_the_right_number_of_faces(detector, relative, count):
    image = cv2.imread(str(_photo(relative)))
    faces = detector.detect(image)
    assert len(faces) == count
    for face in faces:
        x1, y1, x2, y2 = face.box
        assert 0 <= x1 < x2 <= image.shape[1] and 0 <= y1 < y2 <= image.shape[0]
        right_eye, left_eye = face.landmarks[0], face.landmarks[1]  # eyes inside the box, upper half
        assert x1 < right_eye[0] < left_eye[0] < x2
        assert y1 < right_eye[1] < (y1 + y2) / 2


def test_detection_is_size_independent(detector):
    image = cv2.imread(str(_photo("obama/obama.jpg")))
    small = cv2.resize(image, None, fx=0.3, fy=0.3, interpolation=cv2.INTER_AREA)
    big, little = detector.detect(image)[0], detector.detect(small)[0]
    assert np.allclose(little.box / 0.3, big.box, atol=0.05 * (big.box[2] - big.box[0]))


def test_same_person_is_closer_than_threshold_and_others_farther(detector, embedder):
    vectors = {}
    for name in ("obama/obama.jpg", "obama/obama2.jpg", "biden/biden.jpg", "rose_leslie/img1.jpg"):
        image = cv2.imread(str(_photo(name)))
        vectors[name] = embedder.embed(image, detector.detect(image)[:1])[0]
    same = np.linalg.norm(vectors["obama/obama.jpg"] - vectors["obama/obama2.jpg"])
    different = [np.linalg.norm(vectors["obama/obama.jpg"] - vectors[o]) for o in ("biden/biden.jpg",
                                                                                    "rose_leslie/img1.jpg")]
    assert same < DLIB_THRESHOLD < min(different)


def test_enrol_and_identify_in_a_group_photo(detector, embedder):
    gallery = FaceIndex()
    for name in ("kit_harington", "rose_leslie", "obama"):
        first = sorted((FACES / name).glob("*.*"))[:1] if (FACES / name).is_dir() else []
        if not first:
            pytest.skip(f"face data {name} not found")
        gallery.add([name], enrol(first, detector, embedder)[None])
    image = cv2.imread(str(_photo("_multi/kit_with_rose__kit_harington+rose_leslie.jpg")))
    faces = detector.detect(image)
    matches = gallery.identify(embedder.embed(image, faces))
    assert sorted(m.label for m in matches if m) == ["kit_harington", "rose_leslie"]


def test_quality_scores_size_sharpness_and_pose(detector):
    image = cv2.imread(str(_photo("obama/obama.jpg")))
    face = detector.detect(image)[0]
    sharp = face_quality(image, face)
    blurred = face_quality(cv2.GaussianBlur(image, (0, 0), 5), face)
    assert sharp.inter_ocular > 80 and sharp.frontal > 0.8
    assert blurred.sharpness < sharp.sharpness / 5
    assert 0 < blurred.score < sharp.score <= 1


def test_face_index_flat_then_hnsw():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(300, 128)).astype(np.float32)
    index = FaceIndex(hnsw_from=200)
    index.add([f"id{i}" for i in range(150)], vectors[:150])
    assert index.kind == "flat"
    index.add([f"id{i}" for i in range(150, 300)], vectors[150:])
    assert index.kind == "hnsw" and len(index) == 300
    probe = vectors[[7, 250]] + 0.01
    hits = index.search(probe, k=3)
    assert [row[0].label for row in hits] == ["id7", "id250"]
    assert hits[0][0].distance < hits[0][1].distance
    far = rng.normal(size=(1, 128)).astype(np.float32) * 10
    assert index.identify(far) == [None]
    with pytest.raises(ValueError):
        index.add(["a"], vectors[:2])


# ------------------------------------------------------------------ bad enrolment files


def _png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _check(detector, path, words: str, kind: type[VigilError]):
    with pytest.raises(kind) as info:
        load_enrolment_image(path, detector)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    assert words in message


def test_rejects_a_file_that_is_not_an_image(detector, tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("not a photo at all")
    _check(detector, path, "not an image", ImageError)


def test_rejects_a_file_too_large(detector, tmp_path):
    path = tmp_path / "huge.jpg"
    with path.open("wb") as handle:
        handle.truncate(21 * 1024 * 1024)
    _check(detector, path, "too large", ImageError)


@pytest.mark.parametrize(("width", "height"), [(8000, 8000), (60000, 60000)])
def test_rejects_a_decompression_bomb_before_decoding(detector, tmp_path, width, height):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header(width, height))
    _check(detector, path, "decompression bomb", ImageError)


def test_rejects_a_photo_without_a_face(detector, tmp_path):
    path = tmp_path / "wall.png"
    rng = np.random.default_rng(1)
    cv2.imwrite(str(path), cv2.GaussianBlur(rng.integers(0, 255, (400, 400, 3), dtype=np.uint8), (0, 0), 3))
    _check(detector, path, "no face", EnrolmentError)


def test_rejects_a_photo_of_two_people(detector):
    _check(detector, _photo("_multi/two_people.jpg"), "2 faces", EnrolmentError)


def test_rejects_a_tiny_face(detector, tmp_path):
    image = cv2.imread(str(_photo("obama/obama.jpg")))
    path = tmp_path / "tiny.png"
    cv2.imwrite(str(path), cv2.resize(image, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA))
    _check(detector, path, "too small", EnrolmentError)


def test_rejects_a_blurred_face(detector, tmp_path):
    image = cv2.imread(str(_photo("obama/obama.jpg")))
    path = tmp_path / "blurred.png"
    cv2.imwrite(str(path), cv2.GaussianBlur(image, (0, 0), 7))
    _check(detector, path, "blurred", EnrolmentError)


def test_accepts_a_good_photo(detector):
    item = load_enrolment_image(_photo("obama/obama.jpg"), detector)
    assert item.quality.inter_ocular > 80 and item.image.shape[2] == 3
