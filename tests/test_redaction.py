"""Redacted evidence exports on a generated scene of real faces and a real plate, recorded by the real Recorder.

Two face photos (``faces/obama``, ``faces/biden``) move across a PETS09 frame, a real EU plate is pasted in a
corner; the video is H.264-encoded, recorded into fMP4 segments and indexed, then exported for a case with one
face as the subject. BlazeFace on the exported frames must find only the subject's face, and OCR no plate.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from vigil.config import Config, RecordingConfig
from vigil.governance.errors import AuthorisationError, PermissionDenied
from vigil.governance.evidence import CaseRequest, ExportTools, export_case, verify_export
from vigil.governance.redaction import SubjectSeed, centre_inside
from vigil.governance.service import open_governance
from vigil.sources.recorder import Recorder
from vigil.store.db import open_store
from vigil.store.recordings import RecordingIndex
from vigil.vision.face_detect import FaceDetector
from vigil.vision.face_embed import FaceEmbedder
from vigil.vision.models import model_path

T0 = datetime(2026, 2, 1, 10, 0, 0, tzinfo=UTC)
FPS = 10
FRAMES = 20
SPRITE_H = 220
PASSWORD = "correct horse battery"


def face_sprite(path: Path, detector: FaceDetector) -> np.ndarray:
    """Head and shoulders around the photo's face, SPRITE_H pixels tall."""
    image = cv2.imread(str(path))
    face = detector.detect(image)[0].box
    cx, cy, size = (face[0] + face[2]) / 2, (face[1] + face[3]) / 2, (face[2] - face[0]) * 1.7
    x1, y1 = max(0, int(cx - size / 2)), max(0, int(cy - size / 2))
    crop = image[y1:int(cy + size * 0.6), x1:int(cx + size / 2)]
    return cv2.resize(crop, (round(crop.shape[1] * SPRITE_H / crop.shape[0]), SPRITE_H))


def sprite_boxes(i: int, widths: tuple[int, int]) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int]]:
    """Where the subject (moving right, top) and the bystander (moving left, bottom) are in frame ``i``."""
    ax = 20 + i * 12
    bx = 740 - widths[1] - i * 12
    return (ax, 20, ax + widths[0], 20 + SPRITE_H), (bx, 300, bx + widths[1], 300 + SPRITE_H)


@pytest.fixture(scope="module")
def scene(data_dir, tmp_path_factory):
    """The recorded scene: data dir with an indexed recording, and the ground-truth boxes per frame."""
    root = tmp_path_factory.mktemp("scene")
    faces = FaceDetector(model_path("blazeface"), score_threshold=0.5)
    background = None
    with av.open(str(data_dir / "video/vtest.avi")) as container:
        background = next(container.decode(video=0)).to_ndarray(format="bgr24")  # 768x576
    subject = face_sprite(data_dir / "faces/obama/obama.jpg", faces)
    bystander = face_sprite(data_dir / "faces/biden/biden.jpg", faces)
    plate_photo = cv2.imread(str(data_dir / "plates/eu/eu1.jpg"))
    x, y, w, h = 396, 340, 203, 46  # eu1.txt
    plate = plate_photo[y - 12:y + h + 12, x - 12:x + w + 12]
    source = root / "scene.mp4"
    truth = []
    with av.open(str(source), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 768, 576, "yuv420p"
        stream.codec_context.gop_size = FPS
        stream.options = {"preset": "veryfast", "crf": "18", "bf": "0"}
        for i in range(FRAMES):
            image = background.copy()
            image[576 - plate.shape[0] - 10:566, 10:10 + plate.shape[1]] = plate
            a, b = sprite_boxes(i, (subject.shape[1], bystander.shape[1]))
            image[a[1]:a[3], a[0]:a[2]] = subject
            image[b[1]:b[3], b[0]:b[2]] = bystander
            truth.append((a, b))
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    data = root / "data"
    store = open_store("sqlite:///vigil.db", data_dir=data)
    index = RecordingIndex(store, data)
    with Recorder("cam1", index, RecordingConfig(mode="continuous", segment_seconds=1.0), start_time=T0) as rec, \
            av.open(str(source)) as container:
        for packet in container.demux(video=0):
            if packet.size:
                rec.on_packet(packet)
    gov = open_governance(store, data)
    gov.users.create("ines", PASSWORD, "investigator", "admin", cameras=["cam1"])
    gov.users.create("otto", PASSWORD, "operator", "admin", cameras=["cam1"])
    gov.users.create("sam", PASSWORD, "supervisor", "admin", cameras=["*"])
    tools = ExportTools.load(Config())
    yield root, gov, index, tools, truth
    store.close()


def exported_frames(video: Path) -> list[np.ndarray]:
    with av.open(str(video)) as container:
        return [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]


@pytest.fixture(scope="module")
def export(scene):
    root, gov, index, tools, truth = scene
    subject_box = tuple(float(v) for v in truth[0][0])
    request = CaseRequest("CASE-7", "cam1", T0, T0 + timedelta(seconds=FRAMES / FPS), SubjectSeed(T0, subject_box),
                          reason="assault on platform 2")
    result = export_case(gov, index, gov.users.get("ines"), request, root / "export", tools)
    return result


def test_only_the_subjects_face_remains_detectable(scene, export, data_dir):
    _, _, index, tools, truth = scene
    assert len(index.segments("cam1")) >= 2  # 2 s in 1 s segments: the export spans segment boundaries
    frames = exported_frames(export.video)
    assert len(frames) == FRAMES == export.frames
    standard = FaceDetector(model_path("blazeface"))  # the detector's own threshold (0.7); redaction uses 0.5
    embedder = FaceEmbedder(model_path("dlib-face-embedding"), model_path("dlib-landmarks-5"))
    original = cv2.imread(str(data_dir / "faces/biden/biden.jpg"))
    bystander_vector = embedder.embed(original, standard.detect(original)[:1])[0]
    subject_found = bystander_found = 0
    weak = []
    for image, (subject, _) in zip(frames, truth, strict=True):
        for face in standard.detect(image):
            inside = centre_inside(tuple(face.box), subject, margin=0.0)
            subject_found += inside
            bystander_found += not inside
        weak += [(image, f) for f in tools.faces.detect(image) if not centre_inside(tuple(f.box), subject, 0.0)]
    assert bystander_found == 0
    assert subject_found >= FRAMES * 0.9  # the subject stays recognisable
    # at the redactor's more sensitive 0.5 a pixelated blob may still look face-shaped, but it is nobody's face
    assert len(weak) <= FRAMES // 4
    for image, face in weak:
        assert np.linalg.norm(embedder.embed(image, [face])[0] - bystander_vector) > 0.6
    assert export.subject_frames == FRAMES
    assert export.redacted.get("face", 0) >= FRAMES * 0.9  # the bystander's face, in (nearly) every frame


def test_the_original_recording_shows_both_faces_and_the_plate(scene):
    """The test has teeth: without redaction both faces are found and the plate is read."""
    root, _, _, tools, truth = scene
    with av.open(str(root / "scene.mp4")) as container:
        image = next(container.decode(video=0)).to_ndarray(format="bgr24")
    faces = tools.faces.detect(image)  # both photos' faces (and the PETS09 walkers' few-pixel heads)
    for sprite in truth[0]:
        assert sum(centre_inside(tuple(f.box), sprite, 0.0) for f in faces) == 1, (sprite, faces)
    reads = tools.plates.read(image)
    assert any(r.text.replace(" ", "") in ("M5XSX", "M5X5X") for r in reads), reads


def test_the_plate_is_unreadable_in_the_export(scene, export):
    _, _, _, tools, _ = scene
    frames = exported_frames(export.video)
    for image in frames[:: FRAMES // 3]:
        corner = image[480:576, 0:260]
        assert not [r for r in tools.plates.read(corner) if len(r.text) >= 4]
    assert export.redacted.get("plate", 0) >= FRAMES


def test_manifest_audit_reference_and_verification(scene, export):
    _, gov, _, _, _ = scene
    manifest = json.loads(export.manifest.read_text())
    assert {f["name"] for f in manifest["files"]} == {"redacted.mp4", "redaction.json"}
    assert manifest["case"] == "CASE-7" and manifest["requester"] == "ines" and manifest["reencoded"] is True
    assert manifest["audit"]["seq"] == export.audit_seq and len(manifest["source_segments"]) >= 2
    entry = gov.audit.entries(action="export", limit=1)[0]
    assert entry.seq == export.audit_seq and entry.hash == export.audit_hash and entry.purpose == "CASE-7"
    assert verify_export(export.out_dir, gov.audit).ok
    assert gov.audit.verify().ok


def test_tampering_is_detected(scene, export, tmp_path):
    import shutil

    _, gov, _, _, _ = scene
    copy = tmp_path / "copy"
    shutil.copytree(export.out_dir, copy)
    with (copy / "redacted.mp4").open("ab") as fh:
        fh.write(b"\0")
    check = verify_export(copy, gov.audit)
    assert not check.ok and any("redacted.mp4: sha256" in p for p in check.problems)
    manifest = json.loads((copy / "manifest.json").read_text())  # re-hash the file in the manifest: the audit
    manifest["files"][0]["sha256"] = "0" * 64  # entry still holds the original hashes
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert any("does not record these files" in p for p in verify_export(copy, gov.audit).problems)


def test_refusals_are_audited(scene, tmp_path):
    _, gov, index, tools, _ = scene
    request = CaseRequest("CASE-8", "cam1", T0, T0 + timedelta(seconds=1))
    with pytest.raises(PermissionDenied, match=r"'otto'.*may not export"):
        export_case(gov, index, gov.users.get("otto"), request, tmp_path / "x", tools)
    with pytest.raises(AuthorisationError, match="need an authorisation"):
        export_case(gov, index, gov.users.get("ines"), request, tmp_path / "y", tools, require_authorisation=True)
    refused = gov.audit.entries(action="export_refused", limit=5)
    assert [e.actor for e in refused[:2]] == ["ines", "otto"]
    assert not (tmp_path / "x").exists()


def test_export_under_an_authorisation_records_it(scene, tmp_path):
    _, gov, index, tools, _ = scene
    now = gov.authorisations.clock()
    auth = gov.authorisations.request("ines", legal_basis="court order 12/26", case_ref="CASE-9", purpose="evidence",
                                      features=["person_search"], cameras=["cam1"], valid_from=now - timedelta(1),
                                      valid_until=now + timedelta(1))
    gov.authorisations.approve(auth.id, "sam")
    request = CaseRequest("CASE-9", "cam1", T0, T0 + timedelta(seconds=0.5), authorisation_id=auth.id)
    result = export_case(gov, index, gov.users.get("ines"), request, tmp_path / "e", tools, require_authorisation=True)
    manifest = json.loads(result.manifest.read_text())
    assert manifest["authorisation"] == auth.id and result.subject_frames == 0  # no subject: everyone redacted
    assert gov.audit.entries(action="export", limit=1)[0].details["authorisation"] == auth.id


def test_cli_verify(scene, export):
    from typer.testing import CliRunner

    from vigil.governance.evidence_commands import export_app

    root = scene[0]
    config = root / "vigil.yaml"
    config.write_text("data_dir: data\n")
    result = CliRunner().invoke(export_app, ["verify", str(export.out_dir), "-c", str(config)])
    assert result.exit_code == 0 and "export ok" in result.output, result.output
    (export.out_dir / "extra.txt").write_text("x")
    try:
        bad = CliRunner().invoke(export_app, ["verify", str(export.out_dir)])
        assert bad.exit_code == 1 and "extra.txt: not listed" in bad.output
    finally:
        (export.out_dir / "extra.txt").unlink()
