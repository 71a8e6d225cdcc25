"""JPEG snapshots of events (the track's box drawn) and track thumbnails, written atomically under the data dir.

Paths returned are relative to ``root`` (what ``Event.snapshot`` holds):
``snapshots/<camera>/<yyyy-mm-dd>/<event_id>.jpg`` and ``thumbnails/<camera>/<yyyy-mm-dd>/<track>-<hhmmss>.jpg``.
A full or failing disk costs the picture, never the event: ``None``, and one log line (for a full disk, one per
outage: the next snapshots are not logged again until one is saved, which is logged too).
"""

from __future__ import annotations

import errno
import logging
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

BOX_COLOUR = (0, 0, 255)  # BGR red


def draw_box(image: np.ndarray, box: tuple[float, float, float, float], label: str | None = None) -> np.ndarray:
    """A copy of ``image`` with ``box`` (xyxy) outlined and optionally labelled."""
    out = image.copy()
    height, width = out.shape[:2]
    x1, y1, x2, y2 = (round(v) for v in box)
    x1, x2 = max(0, min(x1, width - 1)), max(0, min(x2, width - 1))
    y1, y2 = max(0, min(y1, height - 1)), max(0, min(y2, height - 1))
    thickness = max(2, round(min(height, width) / 240))
    cv2.rectangle(out, (x1, y1), (x2, y2), BOX_COLOUR, thickness)
    if label:
        scale = max(0.5, min(height, width) / 720)
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        top = max(0, y1 - th - base - 2)
        cv2.rectangle(out, (x1, top), (x1 + tw + 4, top + th + base + 2), BOX_COLOUR, -1)
        cv2.putText(
            out, label, (x1 + 2, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA
        )
    return out


class SnapshotStore:
    """Writes event snapshots and track thumbnails below ``root`` (usually ``Config.data_dir``)."""

    def __init__(self, root: Path | str, quality: int = 85) -> None:
        self.root = Path(root)
        self.quality = quality
        self.failures = 0
        self._full_since: int | None = None  # ``failures`` when the disk was found full (one line per outage)

    def save_event(
        self,
        camera_id: str,
        event_id: str,
        at: datetime,
        image: np.ndarray,
        box: tuple[float, float, float, float] | None = None,
        label: str | None = None,
    ) -> str | None:
        """Write the frame (box drawn) for an event; the relative path, or None if the disk refused it."""
        picture = draw_box(image, box, label) if box is not None else image
        relative = Path("snapshots") / camera_id / _day(at) / f"{event_id}.jpg"
        return self._write(relative, picture, f"event {event_id} on camera {camera_id}")

    def save_thumbnail(self, camera_id: str, track_id: int, at: datetime, crop: np.ndarray) -> str | None:
        """Write a track's best crop; the relative path, or None if the disk refused it."""
        stamp = _utc(at).strftime("%H%M%S")
        relative = Path("thumbnails") / camera_id / _day(at) / f"{track_id}-{stamp}.jpg"
        return self._write(relative, crop, f"track {track_id} on camera {camera_id}")

    def path(self, relative: str) -> Path:
        """The absolute file of a relative snapshot path."""
        return self.root / relative

    def _write(self, relative: Path, image: np.ndarray, what: str) -> str | None:
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            log.error("snapshot for %s: image could not be encoded as JPEG", what)
            return None
        target = self.root / relative
        tmp_name: str | None = None
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=target.parent)
            with os.fdopen(fd, "wb") as tmp:
                tmp.write(jpeg.tobytes())
            os.replace(tmp_name, target)
            tmp_name = None
        except OSError as exc:
            self.failures += 1
            if exc.errno == errno.ENOSPC:
                if self._full_since is None:
                    self._full_since = self.failures - 1
                    log.error("snapshot for %s not saved: disk full at %s; the event is kept without it", what,
                              self.root)
            else:
                log.error("snapshot for %s not saved: %s (%s)", what, target, exc.strerror or exc)
            return None
        finally:
            if tmp_name is not None:
                Path(tmp_name).unlink(missing_ok=True)
        if self._full_since is not None:
            log.warning("snapshots are saved again at %s (%d not saved while the disk was full)", self.root,
                        self.failures - self._full_since)
            self._full_since = None
        return relative.as_posix()


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _day(at: datetime) -> str:
    return _utc(at).strftime("%Y-%m-%d")
