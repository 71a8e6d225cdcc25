"""Recovering segments left unindexed by a crash (issue 17 §2): re-indexed at start, not deleted as orphans.

A node killed while recording leaves the segment it was writing on disk without an index row (and possibly
finished ones whose row was not written yet). ``recover_segments`` runs once at start, before any recorder
writes (``Services.start``), over every ``recordings/**.mp4`` file the index does not know:

- A fragment cut in the middle by the kill (a ``moof`` or ``mdat`` box running past the end of the file) is
  trimmed off, so the file plays to its end; the complete fragments before it are kept.
- The file is probed (PyAV) for its first and last packet and indexed: start and end are its media time
  (capture time since ``MEDIA_EPOCH``), or the start in its file name if the media time does not match it.
- A file with no complete fragment or no readable video is moved to ``<data_dir>/quarantine/`` (same relative
  path) and reported, never indexed and never silently deleted. Only a file holding nothing but its header (the
  node was killed before the first fragment of a new segment was written: no video at all) is deleted, and logged.
- A camera recording in ``events`` mode keeps (as ``event`` segments) only the files overlapping the clip window
  of a stored event, as its recorder would have; the others are deleted.

One node per data dir: a file another running process is writing would be indexed too early.
"""

from __future__ import annotations

import logging
import os
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from vigil.config import RecordingConfig
from vigil.store.recordings import MEDIA_EPOCH, RECORDINGS_DIR, RecordingError, RecordingIndex, Segment, probe_span
from vigil.store.schema import EventRow

log = logging.getLogger(__name__)

QUARANTINE_DIR = "quarantine"
#: media time further than this from the start in the file name: the name is trusted instead
MAX_NAME_DRIFT_S = 2.0
_NAME = re.compile(r"^(\d{4}-\d{2}-\d{2})/(\d{6})-(\d{3})\.mp4$")


@dataclass(slots=True)
class RecoveryReport:
    """What ``recover_segments`` did, by relative path."""

    reindexed: list[str] = field(default_factory=list)
    trimmed: dict[str, int] = field(default_factory=dict)  # path -> bytes of an incomplete fragment cut off
    quarantined: dict[str, str] = field(default_factory=dict)  # path -> why
    discarded: list[str] = field(default_factory=list)  # events mode: no event wanted them
    empty: list[str] = field(default_factory=list)  # header only, no video: deleted

    def __bool__(self) -> bool:
        return bool(self.reindexed or self.quarantined or self.discarded or self.empty)


def complete_length(path: Path) -> tuple[int, int]:
    """(bytes of ``path`` made of complete top-level MP4 boxes, ending after the last whole fragment, fragment
    count). A ``moof`` counts only with the complete ``mdat`` after it."""
    size = path.stat().st_size
    good = offset = fragments = 0
    pending_moof = False
    with path.open("rb") as file:
        while offset + 8 <= size:
            file.seek(offset)
            head = file.read(16)
            box_size, kind = struct.unpack(">I4s", head[:8])
            if box_size == 1 and len(head) == 16:
                box_size = struct.unpack(">Q", head[8:16])[0]
            elif box_size == 0:
                box_size = size - offset  # "to the end of the file"
            if box_size < 8 or offset + box_size > size:
                break  # cut short by the crash
            offset += box_size
            if kind == b"moof":
                pending_moof = True
            elif kind == b"mdat" and pending_moof:
                pending_moof = False
                fragments += 1
                good = offset
            elif not pending_moof:
                good = offset
    return good, fragments


def salvage(path: Path) -> tuple[int, float, int, str] | None:
    """A segment whose writing failed (full disk): cut it after its last complete fragment and probe it;
    (size, duration in seconds, keyframes, codec), or None (the file is deleted) when nothing whole is left."""
    good, fragments = complete_length(path)
    if fragments:
        if good < path.stat().st_size:
            os.truncate(path, good)
        try:
            first, last, keyframes, codec = probe_span(path)
            return good, last - first, keyframes, codec
        except RecordingError:
            pass
    path.unlink(missing_ok=True)
    return None


def recover_segments(index: RecordingIndex, cameras: Mapping[str, RecordingConfig] | None = None) -> RecoveryReport:
    """Trim, probe and index every unindexed segment file under ``recordings/`` (see the module's docstring).
    ``cameras``: the recording config of each configured camera (others' files are indexed as continuous)."""
    report = RecoveryReport()
    root = index.data_dir / RECORDINGS_DIR
    if not root.is_dir():
        return report
    cameras = cameras or {}
    indexed = index.paths()
    for file in sorted(root.rglob("*.mp4")):
        rel = file.relative_to(index.data_dir).as_posix()
        if rel in indexed or not file.is_file():
            continue
        camera_id = file.relative_to(root).parts[0]
        try:
            _recover(index, file, rel, camera_id, cameras.get(camera_id), report)
        except OSError as exc:
            log.error("recording %s left by an unclean stop could not be recovered: %s", rel, exc)
    if report:
        log.warning(
            "recordings left by an unclean stop: %d re-indexed (%d with an incomplete fragment cut off), "
            "%d quarantined in %s, %d discarded (events mode, no event), %d without any video deleted",
            len(report.reindexed), len(report.trimmed), len(report.quarantined),
            index.data_dir / QUARANTINE_DIR, len(report.discarded), len(report.empty),
        )
    return report


def _recover(index: RecordingIndex, file: Path, rel: str, camera_id: str, config: RecordingConfig | None,
             report: RecoveryReport) -> None:
    good, fragments = complete_length(file)
    size = file.stat().st_size
    if fragments == 0 and good == size:  # a header and nothing else: no video to keep
        file.unlink()
        report.empty.append(rel)
        return
    if fragments == 0:
        _quarantine(index, file, rel, "no complete fragment", report)
        return
    if good < size:
        os.truncate(file, good)
        report.trimmed[rel] = size - good
    try:
        first, last, keyframes, codec = probe_span(file)
    except RecordingError as exc:
        _quarantine(index, file, rel, str(exc).rsplit(": ", 1)[-1], report)
        return
    start = MEDIA_EPOCH + timedelta(seconds=first)
    named = _name_start(file.relative_to(index.data_dir / RECORDINGS_DIR / camera_id).as_posix())
    if named is not None and abs((start - named).total_seconds()) > MAX_NAME_DRIFT_S:
        start = named
    end = start + timedelta(seconds=last - first)
    kind = "continuous"
    if config is not None and config.mode == "events":
        if not _event_wants(index, camera_id, start, end, config):
            file.unlink(missing_ok=True)
            report.discarded.append(rel)
            return
        kind = "event"
    index.add(Segment(camera_id, start, end, rel, good, keyframes, codec, kind))
    report.reindexed.append(rel)


def _quarantine(index: RecordingIndex, file: Path, rel: str, why: str, report: RecoveryReport) -> None:
    target = index.data_dir / QUARANTINE_DIR / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(file, target)
    report.quarantined[rel] = why
    log.error("recording %s left by an unclean stop is unreadable (%s): moved to %s", rel, why, target)


def _name_start(name: str) -> datetime | None:
    """The start time in a segment's ``<yyyy-mm-dd>/<HHMMSS-mmm>.mp4`` name, if it is one."""
    match = _NAME.match(name)
    if match is None:
        return None
    day, hms, ms = match.groups()
    try:
        at = datetime.strptime(f"{day} {hms}", "%Y-%m-%d %H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None
    return at + timedelta(milliseconds=int(ms))


def _event_wants(index: RecordingIndex, camera_id: str, start: datetime, end: datetime,
                 config: RecordingConfig) -> bool:
    """Events mode: is there a stored event whose clip [at - pre_roll, at + post_roll] overlaps [start, end]?"""
    low, high = start - timedelta(seconds=config.post_roll_s), end + timedelta(seconds=config.pre_roll_s)
    query = select(func.count()).where(EventRow.camera_id == camera_id, EventRow.at > low, EventRow.at < high)
    with index.store.session() as session:
        return bool(session.scalar(query))
