"""Recognition on live tracks: faces against watchlists, plates against hotlists, colour of every track.

``recognition_enrichers(config, lists, sightings)`` is the ``Node(enrichers=...)`` factory: every camera gets a
``ColourEnricher``; cameras with ``recognition.faces`` a ``FaceEnricher``; with ``recognition.plates`` a
``PlateEnricher``. Models are loaded once, on the first camera that needs them, and shared (enrichers run on
the node's single inference thread).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np

from vigil.config import CameraConfig, Config, FaceRecognitionConfig, PlateRecognitionConfig
from vigil.store.db import utcnow
from vigil.store.lists import Entry, ListMatcher, ListStore
from vigil.store.sightings import SightingStore
from vigil.types import Event, Frame, Sighting, Track, TrackState
from vigil.vision.colour import ColourEnricher
from vigil.vision.face_detect import Face, FaceFinder
from vigil.vision.face_embed import FaceEmbedder, face_quality
from vigil.vision.plate_text import PlateVoter

if TYPE_CHECKING:
    from vigil.runtime import Enricher
    from vigil.store.snapshots import SnapshotStore
    from vigil.vision.plates import PlateReader
    from vigil.vision.tracker import TrackUpdate

VEHICLE_LABELS = ("car", "bus", "truck", "motorcycle")
#: ``allowed(camera_id, at) -> bool``: whether live face (or hotlist) matching is authorised on a camera at a time.
Allowed = Callable[[str, datetime], bool]
Box = tuple[float, float, float, float]


def _clip_box(box: Box, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    height, width = shape[:2]
    x1, y1, x2, y2 = (round(float(v)) for v in box)
    return max(0, x1), max(0, y1), min(width, x2), min(height, y2)


def _best_picture(frame: Frame, box: Box) -> tuple[np.ndarray, Box]:
    """The picture to crop faces and plates from, and ``box`` in its pixels: the main stream's picture at the
    frame's time when the camera has one (a 1080p crop, not a 360p one), else the analysed frame."""
    main = frame.main_picture() if frame.main_picture is not None else None
    if main is None:
        return frame.image, box
    sx, sy = main.shape[1] / frame.image.shape[1], main.shape[0] / frame.image.shape[0]
    return main, (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%H%M%S%f")[:-3]


@dataclass(slots=True)
class _FaceShot:
    quality: float
    embedding: np.ndarray
    crop: np.ndarray
    at: datetime


@dataclass(slots=True)
class _FaceTrack:
    last_try: datetime | None = None
    last_area: float = 0.0
    shots: list[_FaceShot] = field(default_factory=list)
    matched: dict[int, float] = field(default_factory=dict)  # entry id → best distance


class FaceEnricher:
    """Faces on person tracks, matched live against the active watchlist entries.

    At most one attempt per track every ``interval_s`` (sooner when the box grew by ``grow_factor``): the face
    detector (``recognition.faces.detector``) on the head region of the person, quality gate (``min_quality``),
    dlib embedding, FAISS match. Up to ``max_shots_per_track`` good shots are kept per track; ONE ``face_match``
    event per (track, entry).
    When the track ends, a face sighting (best shot's embedding and crop) is stored if it matched an entry, or
    for every face when ``store_sightings`` is on; otherwise the embeddings are dropped.
    Switch it at run time with ``set_enabled`` or the ``allowed(camera_id, at)`` callable, asked on every
    frame with the frame's capture time (``vigil.governance.gate.AuthorisationGate`` caches it to the
    authorisation windows' bounds).
    """

    def __init__(self, camera_id: str, detector: FaceFinder, embedder: FaceEmbedder, matcher: ListMatcher,
                 config: FaceRecognitionConfig, sightings: SightingStore | None = None,
                 snapshots: SnapshotStore | None = None, allowed: Allowed | None = None, interval_s: float = 1.0,
                 grow_factor: float = 1.3, min_person_height: int = 64,
                 now: Callable[[], datetime] = utcnow) -> None:
        self.camera_id = camera_id
        self.detector, self.embedder, self.matcher = detector, embedder, matcher
        self.config = config
        self.sightings, self.snapshots = sightings, snapshots
        self.allowed = allowed
        self.interval_s, self.grow_factor = interval_s, grow_factor
        self.min_person_height = min_person_height
        self.now = now
        self.enabled = True
        self._tracks: dict[int, _FaceTrack] = {}
        self.attempts = 0  # face detector runs, for status and tests
        self.embedded = 0  # faces that passed the quality gate and were embedded

    def set_enabled(self, enabled: bool) -> None:
        """Switch live face matching on this camera on or off (off: nothing is detected, embedded or kept)."""
        self.enabled = enabled
        if not enabled:
            self._tracks.clear()

    def active(self, at: datetime) -> bool:
        if not self.enabled:
            return False
        if self.allowed is None:
            return True
        return bool(self.allowed(self.camera_id, at))  # asked every frame: the caller caches (AuthorisationGate)

    def process(self, frame: Frame, update: TrackUpdate) -> list[Event]:
        if not self.active(frame.captured_at):
            return []
        events: list[Event] = []
        for track in update.active:
            if track.label != "person" or track.state is TrackState.LOST or not track.boxes:
                continue
            state = self._tracks.setdefault(track.track_id, _FaceTrack())
            if self._due(track, state, frame.captured_at):
                events += self._attempt(frame, track, state)
        return events

    def _due(self, track: Track, state: _FaceTrack, at: datetime) -> bool:
        if len(state.shots) >= self.config.max_shots_per_track:
            return False
        x1, y1, x2, y2 = track.box
        if y2 - y1 < self.min_person_height:
            return False
        area = (x2 - x1) * (y2 - y1)
        return (state.last_try is None or (at - state.last_try).total_seconds() >= self.interval_s
                or area >= state.last_area * self.grow_factor)

    def _head_region(self, image: np.ndarray, box: Box) -> tuple[int, int, int, int]:
        """The upper part of a full-body box (the whole box for a head-and-shoulders view), widened a little."""
        x1, y1, x2, y2 = box
        width, height = x2 - x1, y2 - y1
        if height > 1.6 * width:
            y2 = y1 + 0.45 * height
        pad = 0.15 * width
        return _clip_box((x1 - pad, y1 - 0.1 * height, x2 + pad, y2), image.shape)

    def _attempt(self, frame: Frame, track: Track, state: _FaceTrack) -> list[Event]:
        x1, y1, x2, y2 = track.box
        state.last_try, state.last_area = frame.captured_at, (x2 - x1) * (y2 - y1)
        image, box = _best_picture(frame, track.box)
        rx1, ry1, rx2, ry2 = self._head_region(image, box)
        if rx2 - rx1 < 16 or ry2 - ry1 < 16:
            return []
        self.attempts += 1
        faces = self.detector.detect(image[ry1:ry2, rx1:rx2])
        if not faces:
            return []
        best = max(faces, key=lambda f: f.score)
        offset = np.array([rx1, ry1], np.float32)
        face = Face(best.box + np.concatenate([offset, offset]), best.landmarks + offset, best.score)
        quality = face_quality(image, face).score
        if quality < self.config.min_quality:
            return []
        embedding = self.embedder.embed(image, [face])[0]
        self.embedded += 1
        fx1, fy1, fx2, fy2 = _clip_box(tuple(face.box), image.shape)  # type: ignore[arg-type]
        state.shots.append(_FaceShot(quality, embedding, image[fy1:fy2, fx1:fx2].copy(), frame.captured_at))
        events = []
        for entry, distance in self.matcher.match_face(embedding, self.now()):
            if entry.id in state.matched:
                state.matched[entry.id] = min(state.matched[entry.id], distance)
                continue
            state.matched[entry.id] = distance
            track.attributes["face_match"] = entry.name
            events.append(self._event(frame.captured_at, track, entry, distance, quality))
        return events

    def _event(self, at: datetime, track: Track, entry: Entry, distance: float, quality: float) -> Event:
        return Event(kind="face_match", camera_id=self.camera_id, at=at, severity="critical", track_id=track.track_id,
                     label=track.label, payload={
                         "watchlist": entry.list_name, "entry_id": entry.id, "name": entry.name,
                         "distance": round(distance, 4), "similarity": round(max(0.0, 1.0 - distance), 4),
                         "threshold": self.matcher.face_threshold, "quality": quality,
                         "enrolled_image": entry.image_paths[0] if entry.image_paths else None,
                         "reason": entry.reason, "authority": entry.authority})

    def finish(self, ended: list[Track], at: datetime) -> list[Event]:
        for track in ended:
            state = self._tracks.pop(track.track_id, None)
            if state is None or not state.shots or self.sightings is None:
                continue
            if not state.matched and not self.config.store_sightings:
                continue  # a face that matched nothing is not kept (DESIGN §6)
            best = max(state.shots, key=lambda s: s.quality)
            thumbnail = None
            if self.snapshots is not None and best.crop.size:
                thumbnail = self.snapshots.save_event(self.camera_id, f"face-{track.track_id}-{_stamp(best.at)}",
                                                      best.at, best.crop)
            sighting = Sighting(kind="face", camera_id=self.camera_id, start=track.first_seen, end=track.last_seen,
                                track_id=track.track_id, label=track.label, thumbnail=thumbnail,
                                attributes={"quality": best.quality, "shots": len(state.shots), "seen_at":
                                            best.at.isoformat(), "entries": sorted(state.matched)})
            self.sightings.add(sighting, best.embedding, on_list=bool(state.matched))
        return []


@dataclass(slots=True)
class _PlateTrack:
    voter: PlateVoter = field(default_factory=PlateVoter)
    last_try: datetime | None = None
    best_confidence: float = -1.0
    crop: np.ndarray | None = None
    crop_at: datetime | None = None
    raised: dict[int, float] = field(default_factory=dict)  # entry id → distance


class PlateEnricher:
    """Plates on vehicle tracks: read inside the vehicle box at most ``reads_per_second`` per track (vehicles
    smaller than ``min_vehicle`` px skipped), vote across the track, raise ``plate_match`` as soon as the voted
    text matches an active hotlist entry, and store one plate-read sighting when the track ends.

    ``allowed(camera_id, at)`` (None: always) gates hotlist matching only: plates are still read and stored as
    plate reads (under their own retention), but no ``plate_match`` is raised outside an authorisation."""

    def __init__(self, camera_id: str, reader: PlateReader, matcher: ListMatcher, config: PlateRecognitionConfig,
                 sightings: SightingStore | None = None, snapshots: SnapshotStore | None = None,
                 reads_per_second: float = 2.0, min_vehicle: tuple[int, int] = (64, 40),
                 now: Callable[[], datetime] = utcnow, allowed: Allowed | None = None) -> None:
        self.camera_id = camera_id
        self.allowed = allowed
        self.reader, self.matcher, self.config = reader, matcher, config
        self.sightings, self.snapshots = sightings, snapshots
        self.interval_s = 1.0 / reads_per_second
        self.min_vehicle = min_vehicle
        self.now = now
        self._tracks: dict[int, _PlateTrack] = {}
        self.reads = 0  # OCR runs, for status and tests

    def matching(self, at: datetime) -> bool:
        """Hotlist matching is authorised on this camera at ``at`` (the gate caches its decisions)."""
        return self.allowed is None or bool(self.allowed(self.camera_id, at))

    def process(self, frame: Frame, update: TrackUpdate) -> list[Event]:
        events: list[Event] = []
        for track in update.active:
            if track.label not in VEHICLE_LABELS or track.state is TrackState.LOST or not track.boxes:
                continue
            x1, y1, x2, y2 = track.box
            if x2 - x1 < self.min_vehicle[0] or y2 - y1 < self.min_vehicle[1]:
                continue
            state = self._tracks.setdefault(track.track_id, _PlateTrack())
            if state.last_try is not None and (frame.captured_at - state.last_try).total_seconds() < self.interval_s:
                continue
            state.last_try = frame.captured_at
            events += self._read(frame, track, state)
        return events

    def _read(self, frame: Frame, track: Track, state: _PlateTrack) -> list[Event]:
        self.reads += 1
        image, box = _best_picture(frame, track.box)
        reads = self.reader.read(image, box)
        if not reads:
            return []
        best = reads[0]
        state.voter.add(best.text, best.confidence)
        if best.confidence > state.best_confidence:
            vx1, vy1, vx2, vy2 = _clip_box(box, image.shape)
            state.best_confidence, state.crop_at = best.confidence, frame.captured_at
            state.crop = image[vy1:vy2, vx1:vx2].copy()
        text, confidence = state.voter.result()
        track.attributes["plate"] = text
        events: list[Event] = []
        if not self.matching(frame.captured_at):
            return events
        for entry, distance in self.matcher.match_plate(text, self.now()):
            if entry.id in state.raised:
                continue
            state.raised[entry.id] = distance
            events.append(Event(kind="plate_match", camera_id=self.camera_id, at=frame.captured_at,
                                severity="critical", track_id=track.track_id, label=track.label, payload={
                                    "text": text, "confidence": confidence, "hotlist": entry.list_name,
                                    "entry_id": entry.id, "entry": entry.plate_text, "name": entry.name,
                                    "distance": round(distance, 4), "reason": entry.reason,
                                    "authority": entry.authority}))
        return events

    def finish(self, ended: list[Track], at: datetime) -> list[Event]:
        for track in ended:
            state = self._tracks.pop(track.track_id, None)
            if state is None or not state.voter.reads:
                continue
            text, confidence = state.voter.result()
            track.attributes["plate"] = text
            on_list = bool(state.raised) or (self.matching(at) and bool(self.matcher.match_plate(text, self.now())))
            if self.sightings is None:
                continue
            thumbnail = None
            if self.snapshots is not None and state.crop is not None and state.crop.size and state.crop_at:
                thumbnail = self.snapshots.save_event(self.camera_id, f"plate-{track.track_id}-{_stamp(state.crop_at)}",
                                                      state.crop_at, state.crop)
            self.sightings.add(Sighting(kind="plate", camera_id=self.camera_id, start=track.first_seen,
                                        end=track.last_seen, track_id=track.track_id, label=track.label,
                                        plate_text=text, plate_confidence=confidence, thumbnail=thumbnail,
                                        attributes={"reads": len(state.voter.reads),
                                                    "entries": sorted(state.raised)}), on_list=on_list)
        return []


class RecognitionModels:
    """The recognition models, loaded on first use from the model cache and shared by every camera."""

    def __init__(self, plate_region: str | list[str] = "generic", faces: FaceRecognitionConfig | None = None) -> None:
        self.plate_region = plate_region
        self.faces = faces or FaceRecognitionConfig()
        self._face_detector: FaceFinder | None = None
        self._face_embedder: FaceEmbedder | None = None
        self._plate_reader: PlateReader | None = None

    def face_detector(self) -> FaceFinder:
        """The recognition face detector chosen by ``recognition.faces`` (see ``create_face_detector``)."""
        if self._face_detector is None:
            from vigil.vision.faces import create_face_detector

            faces = self.faces
            self._face_detector = create_face_detector(faces.detector, upscale=faces.detector_upscale,
                                                       max_side=faces.detector_max_side)
        return self._face_detector

    def face_embedder(self) -> FaceEmbedder:
        if self._face_embedder is None:
            from vigil.vision.models import model_path

            self._face_embedder = FaceEmbedder(model_path("dlib-face-embedding"), model_path("dlib-landmarks-5"))
        return self._face_embedder

    def plate_reader(self) -> PlateReader:
        if self._plate_reader is None:
            from vigil.vision.plates import PlateReader

            self._plate_reader = PlateReader(region=self.plate_region)
        return self._plate_reader


class RecognitionEnrichers:
    """The ``Node(enrichers=...)`` factory; keeps each camera's ``FaceEnricher`` in ``faces`` so governance can
    switch live face matching per camera (``set_face_matching``)."""

    def __init__(self, config: Config, lists: ListStore, sightings: SightingStore | None,
                 snapshots: SnapshotStore | None = None, face_allowed: Allowed | None = None,
                 models: RecognitionModels | None = None, colour: bool = True,
                 plate_allowed: Allowed | None = None) -> None:
        faces, plates = config.recognition.faces, config.recognition.plates
        self.config, self.sightings, self.snapshots = config, sightings, snapshots
        self.face_allowed, self.plate_allowed = face_allowed, plate_allowed
        self.colour = colour
        self.models = models or RecognitionModels(plates.region, faces)
        self.matcher = ListMatcher(lists, faces.threshold, plates.max_distance, plates.confusable_weight)
        self.faces: dict[str, FaceEnricher] = {}
        self.plates: dict[str, PlateEnricher] = {}

    def __call__(self, camera: CameraConfig) -> list[Enricher]:
        enrichers: list[Enricher] = [ColourEnricher()] if self.colour else []
        if camera.recognition.faces:
            face = FaceEnricher(camera.id, self.models.face_detector(), self.models.face_embedder(), self.matcher,
                                self.config.recognition.faces, self.sightings, self.snapshots, self.face_allowed)
            self.faces[camera.id] = face
            enrichers.append(face)
        if camera.recognition.plates:
            reader = self.models.plate_reader()
            regions = self.config.recognition.plates.regions_for(camera)
            if camera.recognition.plate_regions:  # its own regions, sharing the site reader's models
                reader = reader.with_regions(regions)
            plate = PlateEnricher(camera.id, reader, self.matcher, self.config.recognition.plates,
                                  self.sightings, self.snapshots, allowed=self.plate_allowed)
            self.plates[camera.id] = plate
            enrichers.append(plate)
        return enrichers

    def set_face_matching(self, camera_id: str, enabled: bool) -> None:
        if camera_id in self.faces:
            self.faces[camera_id].set_enabled(enabled)


def recognition_enrichers(config: Config, lists: ListStore, sightings: SightingStore | None,
                          snapshots: SnapshotStore | None = None, face_allowed: Allowed | None = None,
                          models: RecognitionModels | None = None,
                          plate_allowed: Allowed | None = None) -> RecognitionEnrichers:
    """The enricher factory for ``Node(enrichers=...)``: colour on every camera, faces and plates where enabled."""
    return RecognitionEnrichers(config, lists, sightings, snapshots, face_allowed, models, plate_allowed=plate_allowed)
