"""Clip export: an MP4 of one camera and time range, copied from the recorded segments without re-encoding.

The range is widened to the keyframe at or before ``start`` (a copied stream can only begin on a keyframe)
and ends at the last packet before ``end``. Segments whose codec parameters differ (after a camera
reconnected with other settings) go into a new part file. ``manifest.json`` lists every file with its
sha256, the source segments and the range, so a recipient can verify the export.

The steps are composable for redacted exports (which re-encode): ``export_segments`` picks and copies,
``write_manifest`` hashes whatever files an export consists of.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import av

from vigil.store.db import utcnow
from vigil.store.recordings import RecordingError, RecordingIndex, Segment

MANIFEST = "manifest.json"


@dataclass(slots=True)
class ExportResult:
    camera_id: str
    start: datetime
    end: datetime
    files: list[Path] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    manifest: Path | None = None


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _params(stream: av.VideoStream) -> tuple[Any, ...]:
    ctx = stream.codec_context
    return (ctx.name, ctx.width, ctx.height, bytes(ctx.extradata or b""))


class _Writer:
    """One output MP4; packets are shifted so its timeline is continuous and starts at 0."""

    def __init__(self, path: Path, template: av.VideoStream) -> None:
        self.path = path
        self.container = av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"})
        self.stream = self.container.add_stream_from_template(template)
        self.params = _params(template)
        self.origin: datetime | None = None
        self.last_dts = -1.0
        self.packets = 0

    def write(self, packet: av.Packet, at: datetime) -> None:
        """Mux ``packet``, captured at ``at``, at its place on the output timeline (0 = first packet)."""
        assert packet.time_base is not None
        if self.origin is None:
            self.origin = at
        tb = packet.time_base
        dts = packet.dts if packet.dts is not None else packet.pts
        shift = round((at - self.origin).total_seconds() / tb) - dts
        if (dts + shift) * tb <= self.last_dts:  # capture-time jitter must not make dts go backwards
            shift = int(self.last_dts / tb) - dts + max(1, packet.duration or 1)
        packet.pts = packet.pts + shift if packet.pts is not None else None
        packet.dts = dts + shift
        self.last_dts = float(packet.dts * tb)
        packet.stream = self.stream
        self.container.mux(packet)
        self.packets += 1

    def close(self) -> None:
        self.container.close()


def export_segments(
    index: RecordingIndex, segments: list[Segment], start: datetime, end: datetime, out_path: Path
) -> list[Path]:
    """Copy the packets of ``segments`` in [keyframe <= start, end) into ``out_path`` (plus ``-partN`` files)."""
    files: list[Path] = []
    writer: _Writer | None = None
    pending: list[tuple[av.Packet, datetime]] = []  # packets since the last keyframe before ``start``
    started = False
    try:
        for seg in segments:
            try:
                container = av.open(str(index.file(seg)))
            except (av.FFmpegError, OSError) as exc:
                raise RecordingError(f"segment {seg.path}: unreadable ({exc})") from None
            with container:
                stream = container.streams.video[0]
                if writer is not None and _params(stream) != writer.params:
                    writer.close()
                    writer = None
                if writer is None:
                    path = out_path if not files else out_path.with_stem(f"{out_path.stem}-part{len(files) + 1}")
                    writer = _Writer(path, stream)
                    files.append(path)
                first_ts: int | None = None
                for packet in container.demux(stream):
                    ts = packet.dts if packet.dts is not None else packet.pts
                    if ts is None:
                        continue
                    first_ts = ts if first_ts is None else first_ts
                    at = seg.start + timedelta(seconds=float((ts - first_ts) * stream.time_base))
                    if at >= end:
                        break
                    if not started:
                        if packet.is_keyframe:
                            pending = []
                        pending.append((packet, at))
                        if at < start:
                            continue
                        started = True
                        for early, early_at in pending:
                            writer.write(early, early_at)
                        pending = []
                        continue
                    writer.write(packet, at)
    finally:
        if writer is not None:
            writer.close()
    if not started:
        for path in files:
            path.unlink(missing_ok=True)
        raise RecordingError(f"no recorded video between {start.isoformat()} and {end.isoformat()}")
    return files


def write_manifest(out_dir: Path, files: list[Path], info: dict[str, Any]) -> Path:
    """``manifest.json`` in ``out_dir``: ``info`` plus name, size and sha256 of every file."""
    manifest = {
        **info,
        "created_at": utcnow().isoformat(),
        "files": [{"name": f.name, "size_bytes": f.stat().st_size, "sha256": sha256_file(f)} for f in files],
    }
    path = out_dir / MANIFEST
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return path


def export_clip(
    index: RecordingIndex, camera_id: str, start: datetime, end: datetime, out_dir: Path | str, name: str = "clip"
) -> ExportResult:
    """Export ``camera_id`` over [start, end) into ``out_dir`` (``<name>.mp4`` + ``manifest.json``), no re-encode."""
    if end <= start:
        raise RecordingError(f"export of camera {camera_id}: end {end.isoformat()} is not after start")
    segments = index.segments(camera_id, start, end)
    if not segments:
        raise RecordingError(f"camera {camera_id}: no recording between {start.isoformat()} and {end.isoformat()}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = export_segments(index, segments, start, end, out / f"{name}.mp4")
    info = {
        "camera": camera_id,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "reencoded": False,
        "segments": [{"path": s.path, "start": s.start.isoformat(), "end": s.end.isoformat()} for s in segments],
    }
    manifest = write_manifest(out, files, info)
    return ExportResult(camera_id, start, end, files, segments, manifest)
