"""HLS (VOD) playlists over the recorded fMP4 segments, for hls.js in the command centre and for ffmpeg.

Each segment file is self-contained (``ftyp`` + empty ``moov`` + ``moof``/``mdat`` fragments); its media
time is capture time since ``MEDIA_EPOCH``, so consecutive segments continue one timeline. The playlist
(version 7) addresses every file twice by byte range: its ``ftyp``+``moov`` as the ``#EXT-X-MAP``
initialisation section and the rest as the media segment. ``#EXT-X-DISCONTINUITY`` marks gaps in the
recording and codec changes. ``#EXT-X-PROGRAM-DATE-TIME`` carries each segment's UTC capture time.
The server of the segment files must answer HTTP ``Range`` requests (Starlette's ``FileResponse`` does).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from vigil.store.recordings import RecordingError, RecordingIndex, Segment

#: A jump between one segment's end and the next one's start larger than this is a discontinuity.
GAP_S = 0.5


def init_size(path: Path) -> int:
    """Bytes before the first ``moof`` box: the file's initialisation section (``ftyp`` + ``moov``)."""
    offset = 0
    try:
        with path.open("rb") as fh:
            while True:
                header = fh.read(8)
                if len(header) < 8:
                    break
                size, box = struct.unpack(">I4s", header)
                if box == b"moof":
                    return offset
                if size == 1:
                    size = struct.unpack(">Q", fh.read(8))[0]
                if size < 8:
                    break
                offset += size
                fh.seek(offset)
    except OSError as exc:
        raise RecordingError(f"segment {path}: unreadable ({exc.strerror})") from None
    raise RecordingError(f"segment {path}: not a fragmented MP4 (no moof box)")


def segment_layout(index: RecordingIndex, segment: Segment) -> tuple[int, int]:
    """(initialisation-section bytes, file bytes) of a segment, asked of its node when it is held elsewhere."""
    local = index.data_dir / segment.path
    if index.is_remote(segment) and not local.exists():
        assert index.remote is not None
        return index.remote.layout(segment)
    return init_size(local), local.stat().st_size


def playlist(
    index: RecordingIndex,
    camera_id: str,
    start: datetime,
    end: datetime,
    *,
    uri: Callable[[Segment], str] | None = None,
) -> str:
    """An m3u8 VOD playlist of the segments of ``camera_id`` overlapping [start, end).

    ``uri(segment)`` gives each file's URI as the client resolves it against the playlist's URL
    (default: the path relative to the data dir, for a playlist served from the data dir's root).
    Raises ``RecordingError`` when there is no recording in the range.
    """
    segments = index.segments(camera_id, start, end)
    if not segments:
        raise RecordingError(f"camera {camera_id}: no recording between {start.isoformat()} and {end.isoformat()}")
    name = uri or (lambda seg: seg.path)
    target = max(1, math.ceil(max(seg.duration_s for seg in segments)))
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:7",
        f"#EXT-X-TARGETDURATION:{target}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-PLAYLIST-TYPE:VOD",
        "#EXT-X-INDEPENDENT-SEGMENTS",
    ]
    previous: Segment | None = None
    for seg in segments:
        head, size = segment_layout(index, seg)
        if previous is not None and (
            abs((seg.start - previous.end).total_seconds()) > GAP_S or seg.codec != previous.codec
        ):
            lines.append("#EXT-X-DISCONTINUITY")
        previous = seg
        lines += [
            f'#EXT-X-MAP:URI="{name(seg)}",BYTERANGE="{head}@0"',
            f"#EXT-X-PROGRAM-DATE-TIME:{seg.start.isoformat(timespec='milliseconds')}",
            f"#EXTINF:{seg.duration_s:.3f},",
            f"#EXT-X-BYTERANGE:{size - head}@{head}",
            name(seg),
        ]
    lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"
