"""Redacted evidence exports for a case, and their verification (DESIGN §6).

``export_case`` checks the requester (``export`` permission, camera grant) and the authorisation (required
when asked; recorded when given), decodes the recorded segments of the range, redacts every frame
(``vigil.governance.redaction``), re-encodes with libx264 (only for this export), writes ``redaction.json``
(what was obscured per frame), appends an ``export`` entry to the audit log holding the sha256 of every file,
signs the head, and writes ``manifest.json`` with the hashes, the audit reference (seq + hash), the
authorisation and the case metadata. Refusals are audited as ``export_refused``.

``verify_export`` re-hashes every file against the manifest and, given the audit log, checks that the entry
exists, is intact (its hash recomputed) and names the same files and hashes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from vigil.config import CameraConfig, Config
from vigil.errors import VigilError
from vigil.governance.audit import AuditLog
from vigil.governance.chain import entry_hash
from vigil.governance.errors import AuthorisationError, PermissionDenied
from vigil.governance.redaction import FrameRedaction, Redactor, SubjectFollower, SubjectSeed
from vigil.governance.service import Governance
from vigil.governance.users import ALL_CAMERAS, User
from vigil.sources.masks import PrivacyMasker
from vigil.sources.stream_space import in_stream, scale
from vigil.store.clips import MANIFEST, sha256_file, write_manifest
from vigil.store.events import EventStore
from vigil.store.recordings import RecordingError, RecordingIndex, Segment
from vigil.vision.tracker import create_tracker

EXPORT_FORMAT = "vigil-evidence-export/1"
VIDEO = "redacted.mp4"
REDACTION_LOG = "redaction.json"
EXPORT_ACTION = "export"
#: PP-OCR text detection runs on frames scaled to this longest side (not up to 736 on the shortest: 2-4x faster).
PLATE_DET_SIDE = 640


class ExportError(VigilError):
    """An evidence export cannot be made or read; the message names the case, folder or file."""


@dataclass(frozen=True, slots=True)
class CaseRequest:
    """What to export: a camera's range for a case, with the subject to leave unredacted (None: nobody)."""

    case_id: str
    camera_id: str
    start: datetime
    end: datetime
    subject: SubjectSeed | None = None
    reason: str = ""
    authorisation_id: int | None = None


@dataclass(slots=True)
class ExportTools:
    """The models an export runs: face detector, plate localiser (None: plates not redacted), object detector."""

    faces: Any
    plates: Any
    detector: Any

    @classmethod
    def load(cls, config: Config) -> ExportTools:
        from rapidocr import RapidOCR

        from vigil.vision.detector import create_detector
        from vigil.vision.faces import create_face_detector
        from vigil.vision.models import model_path
        from vigil.vision.plates import PlateReader

        det, rec, cls_model = model_path("ppocr-det"), model_path("ppocr-rec"), model_path("ppocr-cls")
        ocr = RapidOCR(params={  # as vigil.vision.plates.make_ocr, with a bounded detection size
            "Global.log_level": "error", "Global.use_cls": False, "Global.model_root_dir": str(det.parent),
            "Det.model_path": str(det), "Rec.model_path": str(rec), "Cls.model_path": str(cls_model),
            "Det.limit_side_len": PLATE_DET_SIDE, "Det.limit_type": "max",
            "EngineConfig.onnxruntime.intra_op_num_threads": 2, "EngineConfig.onnxruntime.inter_op_num_threads": 1})
        return cls(create_face_detector(purpose="redaction"), PlateReader(ocr, localiser="det"),
                   create_detector(config.detector))


@dataclass(slots=True)
class CaseExport:
    out_dir: Path
    video: Path
    manifest: Path
    audit_seq: int
    audit_hash: str
    frames: int
    subject_frames: int
    redacted: dict[str, int] = field(default_factory=dict)  # region kind → count over all frames
    authorisation_id: int | None = None


@dataclass(slots=True)
class ExportCheck:
    ok: bool
    problems: list[str]
    audit_seq: int | None = None


# ---------------------------------------------------------------- checks


def _refuse(gov: Governance, user: User, request: CaseRequest, error: VigilError) -> VigilError:
    gov.audit.append(user.username, EXPORT_ACTION + "_refused", f"camera:{request.camera_id}",
                     purpose=request.case_id, details={"reason": str(error)})
    return error


def check_export_allowed(gov: Governance, user: User, request: CaseRequest,
                         require_authorisation: bool = False) -> int | None:
    """Raise (audited) unless ``user`` may export ``request``; returns the authorisation id it runs under."""
    current = gov.users.get(user.username)  # the account as it is now (disabled, role changed)
    if not current.can("export"):
        state = "disabled" if current.disabled else f"role {current.role!r}"
        raise _refuse(gov, current, request, PermissionDenied(f"{current.username!r} ({state}) may not export"))
    if not current.sees_camera(request.camera_id):
        raise _refuse(gov, current, request, PermissionDenied(
            f"{current.username!r} has no grant for camera {request.camera_id!r}"))
    if request.authorisation_id is None:
        if require_authorisation:
            raise _refuse(gov, current, request, AuthorisationError(
                f"case {request.case_id}: exports need an authorisation (--authorisation ID)"))
        return None
    auth = gov.authorisations.get(request.authorisation_id)
    state = auth.state(gov.authorisations.clock())
    if state != "active":
        raise _refuse(gov, current, request, AuthorisationError(
            f"authorisation {auth.id} is {state}, not active"))
    if ALL_CAMERAS not in auth.cameras and request.camera_id not in auth.cameras:
        raise _refuse(gov, current, request, AuthorisationError(
            f"authorisation {auth.id} does not cover camera {request.camera_id!r}"))
    return auth.id


# ---------------------------------------------------------------- decode, redact, encode


def decoded_frames(index: RecordingIndex, segments: list[Segment], start: datetime,
                   end: datetime) -> Iterator[tuple[av.VideoFrame, datetime, Fraction]]:
    """Every decoded frame of ``segments`` captured in [start, end): (frame, capture time, frame rate)."""
    for seg in segments:
        try:
            container = av.open(str(index.file(seg)))
        except (av.FFmpegError, OSError) as exc:
            raise RecordingError(f"segment {seg.path}: unreadable ({exc})") from None
        with container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            rate = stream.average_rate or stream.guessed_rate or Fraction(25)
            first: int | None = None
            try:
                for frame in container.decode(stream):
                    if frame.pts is None:
                        continue
                    first = frame.pts if first is None else first
                    at = seg.start + timedelta(seconds=float((frame.pts - first) * stream.time_base))
                    if at >= end:
                        break
                    if at >= start:
                        yield frame, at, Fraction(rate)
            except av.FFmpegError as exc:
                raise RecordingError(f"segment {seg.path}: damaged ({exc})") from None


class _Encoder:
    """libx264 MP4 with millisecond timestamps from capture times."""

    def __init__(self, path: Path, width: int, height: int, rate: Fraction, crf: int = 18) -> None:
        self.container = av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"})
        self.stream = self.container.add_stream("libx264", rate=rate)
        self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, "yuv420p"
        self.stream.codec_context.time_base = Fraction(1, 1000)
        self.stream.options = {"preset": "veryfast", "crf": str(crf)}
        self.origin: datetime | None = None
        self.last = -1

    def write(self, image: np.ndarray, at: datetime) -> None:
        self.origin = self.origin or at
        pts = max(self.last + 1, round((at - self.origin).total_seconds() * 1000))
        self.last = pts
        frame = av.VideoFrame.from_ndarray(image, format="bgr24").reformat(format="yuv420p")
        frame.pts, frame.time_base = pts, Fraction(1, 1000)
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def close(self) -> None:
        for packet in self.stream.encode(None):
            self.container.mux(packet)
        self.container.close()


def _frame_log(result: FrameRedaction) -> dict[str, Any]:
    rounded = lambda box: [round(v, 1) for v in box]  # noqa: E731
    return {"at": result.at.isoformat(), "subject": rounded(result.subject) if result.subject else None,
            "kept": [{"kind": r.kind, "box": rounded(r.box)} for r in result.kept],
            "redacted": [{"kind": r.kind, "box": rounded(r.box)} for r in result.redacted]}


def redact_range(index: RecordingIndex, segments: list[Segment], request: CaseRequest, redactor: Redactor,
                 out_video: Path) -> list[FrameRedaction]:
    """Decode, redact and encode [start, end) into ``out_video``; the per-frame redaction results."""
    encoder: _Encoder | None = None
    results: list[FrameRedaction] = []
    try:
        for frame, at, rate in decoded_frames(index, segments, request.start, request.end):
            image = frame.to_ndarray(format="bgr24")
            results.append(redactor.redact(image, at, float(1 / rate)))
            if encoder is None:
                encoder = _Encoder(out_video, image.shape[1] // 2 * 2, image.shape[0] // 2 * 2, rate)
            encoder.write(image[: encoder.stream.height, : encoder.stream.width], at)
    finally:
        if encoder is not None:
            encoder.close()
    if not results:
        out_video.unlink(missing_ok=True)
        raise RecordingError(f"camera {request.camera_id}: no recorded frames between {request.start.isoformat()} "
                             f"and {request.end.isoformat()}")
    return results


# ---------------------------------------------------------------- the export


def export_case(gov: Governance, index: RecordingIndex, user: User, request: CaseRequest, out_dir: Path | str,
                tools: ExportTools, camera: CameraConfig | None = None, require_authorisation: bool = False,
                tracker_config: Any = None) -> CaseExport:
    """Make the redacted export of ``request`` in ``out_dir`` (created; must be empty). See the module doc."""
    from vigil.config import TrackerConfig

    if request.end <= request.start:
        raise ExportError(f"case {request.case_id}: end {request.end.isoformat()} is not after start")
    auth_id = check_export_allowed(gov, user, request, require_authorisation)
    segments = index.segments(request.camera_id, request.start, request.end)
    if not segments:
        raise RecordingError(f"camera {request.camera_id}: no recording between {request.start.isoformat()} and "
                             f"{request.end.isoformat()}")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise ExportError(f"{out}: export folder is not empty")
    out.mkdir(parents=True, exist_ok=True)
    follower = None
    if camera is not None:  # recordings are of the main stream; masks and tracks may be in the substream's pixels
        camera = in_stream(camera, "record")
    if request.subject is not None:
        tracker = create_tracker(tracker_config or TrackerConfig(), request.camera_id, fps=10.0)
        seed = request.subject if camera is None else request.subject.scaled(*scale(camera, "record", "detect"))
        follower = SubjectFollower(tracker, seed)
    masker = PrivacyMasker(camera.privacy_masks) if camera is not None and camera.privacy_masks else None
    redactor = Redactor(tools.faces, tools.plates, tools.detector, follower, masker)
    video = out / VIDEO
    results = redact_range(index, segments, request, redactor, video)

    counts: dict[str, int] = {}
    for result in results:
        for region in result.redacted:
            counts[region.kind] = counts.get(region.kind, 0) + 1
    log_path = out / REDACTION_LOG
    log_path.write_text(json.dumps({"frames": [_frame_log(r) for r in results]}, indent=1) + "\n")
    files = [video, log_path]
    hashes = {f.name: sha256_file(f) for f in files}
    subject = None
    if request.subject is not None:
        subject = {"at": request.subject.at.isoformat(), "box": request.subject.box, "point": request.subject.point}
    details = {"case": request.case_id, "camera": request.camera_id, "start": request.start.isoformat(),
               "end": request.end.isoformat(), "files": hashes, "authorisation": auth_id, "reason": request.reason,
               "subject": subject}
    entry = gov.audit.append(user.username, EXPORT_ACTION, f"camera:{request.camera_id}", purpose=request.case_id,
                             details=details)
    gov.audit.checkpoint()
    subject_frames = sum(1 for r in results if r.subject is not None)
    info = {
        "format": EXPORT_FORMAT, "case": request.case_id, "requester": user.username, "reason": request.reason,
        "camera": request.camera_id, "start": request.start.isoformat(), "end": request.end.isoformat(),
        "reencoded": True, "redaction": {"method": redactor.method, "frames": len(results),
                                         "subject_frames": subject_frames, "redacted": counts, "subject": subject,
                                         "privacy_masks": bool(masker)},
        "authorisation": auth_id,
        "audit": {"seq": entry.seq, "hash": entry.hash, "action": EXPORT_ACTION, "key_id": gov.audit.signer.key_id},
        "source_segments": [{"path": s.path, "start": s.start.isoformat(), "end": s.end.isoformat(),
                             "sha256": sha256_file(index.file(s))} for s in segments],
    }
    manifest = write_manifest(out, files, info)
    return CaseExport(out, video, manifest, entry.seq, entry.hash, len(results), subject_frames, counts, auth_id)


def seed_from_track(events: EventStore, camera_id: str, track_id: int, start: datetime,
                    end: datetime) -> SubjectSeed:
    """A subject seed from a stored track: its ground point (bottom centre) when it is first seen in the range."""
    found = [t for t in events.tracks([camera_id], start, end, limit=10_000) if t.track_id == track_id]
    if not found:
        raise ExportError(f"camera {camera_id}: no track {track_id} between {start.isoformat()} and {end.isoformat()}")
    track = min(found, key=lambda t: t.first_seen)
    if not track.path:
        raise ExportError(f"camera {camera_id}: track {track_id} has no stored path to find it by")
    at = max(track.first_seen, start)
    life = (track.last_seen - track.first_seen).total_seconds()
    fraction = (at - track.first_seen).total_seconds() / life if life > 0 else 0.0
    point = track.path[min(len(track.path) - 1, round(fraction * (len(track.path) - 1)))]
    return SubjectSeed(at, point=(float(point[0]), float(point[1])))


# ---------------------------------------------------------------- verification


def _find_entry(audit: AuditLog, seq: int) -> Any:
    found = audit.entries(before_seq=seq + 1, limit=1)
    return found[0] if found and found[0].seq == seq else None


def verify_export(out_dir: Path | str, audit: AuditLog | None = None) -> ExportCheck:
    """Check every file's sha256 against the manifest and, with ``audit``, the export's audit entry."""
    folder = Path(out_dir)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        listed = {f["name"]: f["sha256"] for f in manifest["files"]}
        reference = manifest["audit"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return ExportCheck(False, [f"{folder / MANIFEST}: unreadable manifest ({exc})"])
    problems = []
    for name, digest in listed.items():
        file = folder / name
        if not file.is_file():
            problems.append(f"{name}: missing")
        elif sha256_file(file) != digest:
            problems.append(f"{name}: sha256 differs from the manifest")
    extra = sorted(p.name for p in folder.iterdir() if p.name not in listed and p.name != MANIFEST)
    problems += [f"{name}: not listed in the manifest" for name in extra]
    if audit is not None:
        entry = _find_entry(audit, int(reference["seq"]))
        if entry is None:
            problems.append(f"audit entry {reference['seq']}: not in the audit log")
        else:
            recomputed = entry_hash(entry.seq, entry.at, entry.actor, entry.action, entry.object, entry.purpose,
                                    entry.details_json, entry.prev_hash)
            if entry.hash != reference["hash"] or recomputed != entry.hash:
                problems.append(f"audit entry {entry.seq}: hash does not match the manifest's reference")
            if entry.action != EXPORT_ACTION or entry.details.get("files") != listed:
                problems.append(f"audit entry {entry.seq}: does not record these files and hashes")
            if entry.purpose != manifest.get("case"):
                problems.append(f"audit entry {entry.seq}: is for case {entry.purpose!r}, not {manifest.get('case')!r}")
    return ExportCheck(not problems, problems, int(reference["seq"]))
