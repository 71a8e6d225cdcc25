"""Faces at a distance: real face photos pasted small into a real PETS09 frame (``vtest.avi``).

BlazeFace (the previous detector, at its recognition and redaction thresholds) misses them; the pipeline's
detector (``RecognitionModels().face_detector()``) finds them, and the export's ``Redactor`` smooths them away.
The composite generator of ``vigil bench faces`` puts faces where its truth says.
"""

from __future__ import annotations

from datetime import UTC, datetime

import cv2
import numpy as np
import pytest

from vigil.bench import face_composites as fc
from vigil.config import Config
from vigil.errors import ModelError
from vigil.vision.face_detect import FaceDetector

#: (photo, pixels between the eyes, where): small enough that BlazeFace misses them in a 768×576 frame
SMALL_FACES = (("biden/biden.jpg", 14.0, (600.0, 480.0)), ("obama/obama.jpg", 12.0, (120.0, 470.0)))


@pytest.fixture(scope="module")
def models():
    dlib = pytest.importorskip("dlib")
    from vigil.vision.models import model_path

    try:
        return (FaceDetector(model_path("blazeface")),
                dlib.shape_predictor(str(model_path("dlib-landmarks-5"))), model_path("centerface"))
    except ModelError as exc:
        pytest.skip(f"face models not in the model cache: {exc}")


def sprite(data_dir, relative: str, models) -> fc.Sprite:
    blazeface, predictor, _ = models
    path = data_dir / "faces" / relative
    if not path.exists():
        pytest.skip(f"face photo {relative} not found in {data_dir / 'faces'} (set VIGIL_DATA)")
    image = cv2.imread(str(path))
    return fc.cut_sprite(image, fc.eye_centres(predictor, image, blazeface.detect(image)[0]), relative)


@pytest.fixture(scope="module")
def pets_frame(data_dir) -> np.ndarray:
    capture = cv2.VideoCapture(str(data_dir / "video" / "vtest.avi"))
    ok, frame = capture.read()
    capture.release()
    assert ok, "vtest.avi did not decode"
    return frame


@pytest.fixture(scope="module")
def small_scene(data_dir, models, pets_frame):
    """The first PETS09 frame with two small real faces pasted in, blurred, noisy and JPEG-compressed."""
    canvas = pets_frame.astype(np.float32)
    truth = [fc.paste(canvas, sprite(data_dir, name, models), eye_px, at, 0.9) for name, eye_px, at in SMALL_FACES]
    return fc.camera_effects(canvas, np.random.default_rng(1)), truth


def test_blazeface_misses_small_faces_the_pipeline_finds(small_scene, models):
    from vigil.vision.enrichers import RecognitionModels
    from vigil.vision.models import model_path

    image, truth = small_scene
    for threshold in (0.7, 0.5):  # BlazeFace as recognition and as redaction used it
        matched, _ = fc.match(truth, FaceDetector(model_path("blazeface"), score_threshold=threshold).detect(image))
        assert matched == [None, None], f"BlazeFace at {threshold} found a small face"
    recognition = RecognitionModels(faces=Config().recognition.faces)
    faces = recognition.face_detector().detect(image)
    matched, _ = fc.match(truth, faces)
    assert None not in matched, [f.box for f in faces]
    for face_index, face in zip(matched, truth, strict=True):
        found = faces[face_index]
        eyes = np.asarray(face.eyes)  # the landmarks are eyes in BlazeFace's order: image-left first
        assert np.linalg.norm(found.landmarks[:2] - eyes, axis=1).max() < 0.35 * face.eye_px
        assert abs(found.inter_ocular - face.eye_px) < 0.3 * face.eye_px


def test_the_export_redactor_smooths_the_small_faces(small_scene):
    from vigil.governance.evidence import ExportTools
    from vigil.governance.redaction import Redactor, centre_inside

    image, truth = small_scene
    try:
        tools = ExportTools.load(Config())
    except ModelError as exc:
        pytest.skip(f"export models not in the model cache: {exc}")
    redacted = image.copy()
    result = Redactor(tools.faces, tools.plates, tools.detector, follower=None).redact(
        redacted, datetime(2026, 1, 1, tzinfo=UTC), 0.1)
    for face in truth:
        assert any(r.kind == "face" and centre_inside(r.box, face.box, 0.0) for r in result.redacted), face
        x1, y1, x2, y2 = (round(v) for v in face.box)
        before = cv2.cvtColor(image[y1:y2, x1:x2], cv2.COLOR_BGR2GRAY)
        after = cv2.cvtColor(redacted[y1:y2, x1:x2], cv2.COLOR_BGR2GRAY)
        assert np.abs(after.astype(int) - before.astype(int)).mean() > 3  # the pixels changed
        detail = cv2.Laplacian(before, cv2.CV_64F).var()
        assert cv2.Laplacian(after, cv2.CV_64F).var() < 0.2 * detail  # and lost their detail


def test_composites_put_faces_where_the_truth_says(data_dir, models, pets_frame):
    from vigil.vision.centerface import CenterFaceDetector

    blazeface, _, centerface_model = models
    sprites = [sprite(data_dir, name, models) for name in ("obama/obama.jpg", "biden/biden.jpg",
                                                           "rose_leslie/img1.jpg")]
    frames = fc.make_composites(sprites, {"vtest.avi": pets_frame}, faces=3, frames=1, empty=1, seed=5,
                                min_eye=40, max_eye=60)
    composite, empty = frames
    assert len(composite.faces) == 3 and not empty.faces
    assert all(40 <= f.eye_px <= 61 for f in composite.faces)
    assert fc.make_composites(sprites, {"vtest.avi": pets_frame}, faces=3, frames=1, empty=0, seed=5,
                              min_eye=40, max_eye=60)[0].image.tobytes() == composite.image.tobytes()  # seeded
    for detector in (blazeface, CenterFaceDetector(centerface_model)):
        faces = detector.detect(composite.image)
        matched, false = fc.match(composite.faces, faces)
        assert None not in matched and false == 0
        for index, truth in zip(matched, composite.faces, strict=True):
            eyes = faces[index].landmarks[:2]
            assert np.linalg.norm(eyes - np.asarray(truth.eyes), axis=1).max() < 0.15 * truth.eye_px
