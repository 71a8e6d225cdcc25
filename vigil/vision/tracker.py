"""Multi-object tracking on one camera: detections in, ``Track`` lifecycles out.

Association (Kalman prediction + IoU matching) is Roboflow's ``trackers`` package (ByteTrack, OC-SORT or
SORT). This module adds what the rest of Vigil needs on top: stable ids per camera, the lifecycle
new → confirmed → lost → ended driven by capture time, recent boxes, ground-point trajectory, majority
label, and a best snapshot. Classes are associated in separate groups (people, two-wheelers, other
vehicles), so a person and a car can never swap identities.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import numpy as np
import supervision as sv
from trackers import BIoU, ByteTrackTracker, OCSORTTracker, SORTTracker
from trackers.core.base import BaseTracker

from vigil.config import TrackerConfig
from vigil.types import Track, TrackState

#: COCO class index → name, for detections that carry no ``class_name``.
COCO_NAMES = {0: "person", 1: "bicycle", 2: "car", 3: "motorcycle", 5: "bus", 7: "truck"}
#: Classes associated together; a detector that flips car/truck on one object keeps one track.
CLASS_GROUPS = {
    "person": "person",
    "bicycle": "two_wheeler",
    "motorcycle": "two_wheeler",
    "car": "vehicle",
    "bus": "vehicle",
    "truck": "vehicle",
}
_ROW = "_vigil_row"  # temporary data key: the input row of each detection, through the library's reordering
IOU_BUFFER = 0.3  # buffered-IoU margin, relative to box size (see create_association)
EDGE_MARGIN = 0.01  # a box this close to the picture's edge (fraction of its longer side) touches it
_TIME_STEP = 1e-6  # seconds added to a repeated or backwards capture time, so association still advances


@dataclass(slots=True)
class TrackUpdate:
    """What one ``Tracker.update`` produced."""

    detections: sv.Detections  # input detections that belong to a track, ``tracker_id`` = ``Track.track_id``
    active: list[Track]  # tracks still alive (new, confirmed or lost); live objects owned by the tracker
    ended: list[Track]  # tracks that ended at this update (reported exactly once)

    def confirmed_detections(self) -> sv.Detections:
        """The subset of ``detections`` whose track is confirmed (what most consumers want)."""
        confirmed = {t.track_id for t in self.active if t.state is TrackState.CONFIRMED}
        if len(self.detections) == 0:
            return self.detections
        return self.detections[np.isin(self.detections.tracker_id, list(confirmed))]


class Tracker(Protocol):
    """One per camera: call ``update`` with each analysed frame's detections, in capture-time order."""

    def update(self, detections: sv.Detections, at: datetime, image: np.ndarray | None = None) -> TrackUpdate: ...

    def flush(self, at: datetime) -> list[Track]: ...


def class_names(detections: sv.Detections) -> list[str]:
    """Each detection's class name: ``data["class_name"]``, else the COCO name of ``class_id``, else "object"."""
    names = detections.data.get("class_name")
    if names is not None:
        return [str(n) for n in names]
    if detections.class_id is not None:
        return [COCO_NAMES.get(int(c), f"class_{int(c)}") for c in detections.class_id]
    return ["object"] * len(detections)


def create_association(config: TrackerConfig, fps: float) -> BaseTracker:
    """The library tracker that does association for one class group, set from ``config``.

    Boxes are compared with buffered IoU (each box grown by ``IOU_BUFFER`` of its size): at analysis rates
    of 5–10 fps a walking person moves about half a body width per frame, and plain IoU then loses them.
    As in the ByteTrack paper, a new track needs ``high_threshold + 0.1``. The library keeps an unmatched
    track ``end_after_s`` seconds (its buffer counts 30 fps frames) and gives an id from the second matched
    detection on; confirmation after ``confirm_hits`` is ours.
    """
    buffer = max(1, round(config.end_after_s * 30))
    iou = BIoU(IOU_BUFFER)
    activation = min(config.high_threshold + 0.1, 0.95)
    if config.kind == "bytetrack":
        return ByteTrackTracker(
            lost_track_buffer=buffer,
            frame_rate=fps,
            track_activation_threshold=activation,
            minimum_consecutive_frames=1,
            minimum_iou_threshold=config.match_threshold,
            high_conf_det_threshold=config.high_threshold,
            iou=iou,
        )
    if config.kind == "ocsort":
        return OCSORTTracker(
            lost_track_buffer=buffer,
            frame_rate=fps,
            minimum_consecutive_frames=1,
            minimum_iou_threshold=config.match_threshold,
            high_conf_det_threshold=config.high_threshold,
            iou=iou,
        )
    return SORTTracker(
        lost_track_buffer=buffer,
        frame_rate=fps,
        track_activation_threshold=activation,
        minimum_consecutive_frames=1,
        minimum_iou_threshold=config.match_threshold,
        iou=iou,
    )


@dataclass(slots=True)
class _Life:
    """Our bookkeeping for one track, beside the public ``Track``."""

    track: Track
    key: tuple[str, int]  # (class group, library id)
    votes: Counter[str] = field(default_factory=Counter)
    confidence_sum: float = 0.0


class AssociationTracker:
    """``Tracker`` over the ``trackers`` library: one association instance per class group."""

    def __init__(self, config: TrackerConfig, camera_id: str, fps: float = 10.0) -> None:
        """``fps`` is the nominal analysis rate: the Kalman filter's unit step (real gaps come from ``at``)."""
        self.config = config
        self.camera_id = camera_id
        self.fps = fps
        self._associations: dict[str, BaseTracker] = {}
        self._lives: dict[int, _Life] = {}  # our track id → life, for tracks not yet ended
        self._by_key: dict[tuple[str, int], int] = {}
        self._next_id = 1
        self._last_at: datetime | None = None
        self._last_stamp = float("-inf")
        self._picture: tuple[int, int] | None = None  # width, height of the last image seen

    def update(self, detections: sv.Detections, at: datetime, image: np.ndarray | None = None) -> TrackUpdate:
        """Associate this frame's detections, advance every track's lifecycle to ``at``, and report."""
        now = at if self._last_at is None or at > self._last_at else self._last_at
        self._last_at = now
        stamp = max(at.timestamp(), self._last_stamp + _TIME_STEP)
        self._last_stamp = stamp

        names = class_names(detections)
        rows, ids = self._associate(detections, names, stamp, now)
        for row, track_id in zip(rows, ids, strict=True):
            self._observe(self._lives[track_id], detections, row, names[row], now, image)

        if image is not None:
            self._picture = image.shape[1], image.shape[0]
        ended = self._advance(now)
        output = detections[np.array(rows, dtype=int)] if rows else _empty_like(detections)
        output.tracker_id = np.array(ids, dtype=int)
        return TrackUpdate(detections=output, active=[life.track for life in self._lives.values()], ended=ended)

    def flush(self, at: datetime) -> list[Track]:
        """End every track (end of stream) and forget the association state."""
        ended = []
        for life in self._lives.values():
            life.track.state = TrackState.ENDED
            ended.append(life.track)
        self._lives.clear()
        self._by_key.clear()
        self._associations.clear()
        self._last_at = at if self._last_at is None else max(at, self._last_at)
        return ended

    def _associate(self, detections: sv.Detections, names: list[str], stamp: float,
                   now: datetime) -> tuple[list[int], list[int]]:
        """Run each class group's association; return (input rows, our track ids), sorted by row."""
        groups = np.array([CLASS_GROUPS.get(name, name) for name in names], dtype=object)
        pairs: list[tuple[int, int]] = []
        for group in sorted(set(groups.tolist()) | set(self._associations)):
            association = self._associations.get(group)
            if association is None:
                association = self._associations[group] = create_association(self.config, self.fps)
            subset = detections[groups == group] if len(detections) else _empty_like(detections)
            subset.data[_ROW] = np.flatnonzero(groups == group)
            result = association.update(subset, timestamp=stamp)
            if len(result) == 0:
                continue
            for row, library_id in zip(result.data[_ROW], result.tracker_id, strict=True):
                if library_id >= 0:
                    pairs.append((int(row), self._track_for((group, int(library_id)), now)))
        pairs.sort()
        return [row for row, _ in pairs], [track_id for _, track_id in pairs]

    def _track_for(self, key: tuple[str, int], now: datetime) -> int:
        """Our track id for a library id, starting a new track the first time it is seen."""
        track_id = self._by_key.get(key)
        if track_id is None:
            track_id, self._next_id = self._next_id, self._next_id + 1
            track = Track(camera_id=self.camera_id, track_id=track_id, label="", first_seen=now, last_seen=now)
            self._lives[track_id] = _Life(track=track, key=key)
            self._by_key[key] = track_id
        return track_id

    def _observe(self, life: _Life, detections: sv.Detections, row: int, name: str, at: datetime,
                 image: np.ndarray | None) -> None:
        """Add one matched detection to its track."""
        track, history = life.track, self.config.history
        x1, y1, x2, y2 = (float(v) for v in detections.xyxy[row])
        confidence = float(detections.confidence[row]) if detections.confidence is not None else 1.0
        track.boxes.append((x1, y1, x2, y2))
        track.box_times.append(at)
        track.trajectory.append(((x1 + x2) / 2, y2))
        for series in (track.boxes, track.box_times, track.trajectory):
            del series[:-history]
        track.hits += 1
        track.last_seen = at
        life.votes[name] += 1
        life.confidence_sum += confidence
        track.label = life.votes.most_common(1)[0][0]
        track.confidence = life.confidence_sum / track.hits
        if image is not None:
            score = max(0.0, x2 - x1) * max(0.0, y2 - y1) * confidence
            if score > track.best_score:
                crop = _crop(image, (x1, y1, x2, y2))
                if crop is not None:
                    track.best_snapshot, track.best_score = crop, score

    def _advance(self, now: datetime) -> list[Track]:
        """Set every track's state for time ``now``; remove and return those that ended."""
        ended = []
        for track_id, life in list(self._lives.items()):
            track = life.track
            unseen = (now - track.last_seen).total_seconds()
            if unseen >= self.config.end_after_s or (unseen >= self.config.lost_after_s and self._left_view(track)):
                track.state = TrackState.ENDED
                ended.append(track)
                del self._lives[track_id]
                self._by_key.pop(life.key, None)
            elif unseen >= self.config.lost_after_s:
                track.state = TrackState.LOST
            else:
                track.state = TrackState.CONFIRMED if track.hits >= self.config.confirm_hits else TrackState.NEW
        return ended

    def _left_view(self, track: Track) -> bool:
        """Was the track last seen touching the picture's edge? Lost there, it walked out: it ends at once
        instead of being kept ``end_after_s`` for an occlusion to pass."""
        if self._picture is None or not track.boxes:
            return False
        width, height = self._picture
        x1, y1, x2, y2 = track.boxes[-1]
        margin = EDGE_MARGIN * max(width, height)
        return x1 <= margin or y1 <= margin or x2 >= width - margin or y2 >= height - margin


def create_tracker(config: TrackerConfig, camera_id: str, fps: float = 10.0) -> Tracker:
    """A tracker for one camera analysed at about ``fps`` frames per second."""
    return AssociationTracker(config, camera_id, fps)


def _empty_like(detections: sv.Detections) -> sv.Detections:
    """An empty ``Detections`` with the same data keys (so concatenation and annotators keep working)."""
    empty = sv.Detections.empty()
    empty.tracker_id = np.empty(0, dtype=int)
    empty.data = {key: np.asarray(value)[:0] for key, value in detections.data.items() if key != _ROW}
    return empty


def _crop(image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray | None:
    """A copy of the box's pixels, clipped to the image, or ``None`` when nothing is left."""
    height, width = image.shape[:2]
    x1, y1 = max(0, int(box[0])), max(0, int(box[1]))
    x2, y2 = min(width, int(np.ceil(box[2]))), min(height, int(np.ceil(box[3])))
    if x2 <= x1 or y2 <= y1:
        return None
    return image[y1:y2, x1:x2].copy()
