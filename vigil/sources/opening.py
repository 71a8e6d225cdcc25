"""Opening a camera URL or video file with PyAV, and one-line descriptions of what went wrong."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import av
from av.container import InputContainer

from vigil.config import redact_url
from vigil.errors import SourceError

#: URL schemes read as live streams (wall-clock capture times, reconnect on loss).
LIVE_SCHEMES = frozenset({"rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt", "rtp"})


#: Demuxers whose timestamps are made up (a guessed frame rate): sample these by arrival time instead.
_MADE_UP_TIMESTAMPS = frozenset({"mpjpeg", "mjpeg", "jpeg_pipe", "image2pipe", "h264", "hevc"})


def has_real_timestamps(container: InputContainer) -> bool:
    """False for formats such as MJPEG over HTTP whose frame times are not real (FFmpeg assumes 25 fps)."""
    return not set(container.format.name.split(",")) & _MADE_UP_TIMESTAMPS


def is_live(url: str) -> bool:
    """True for a network stream, False for a file path (or ``file://`` URL)."""
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    return scheme in LIVE_SCHEMES


def file_path(url: str) -> Path:
    """The path of a file source (``file://`` stripped)."""
    return Path(url.removeprefix("file://"))


def describe(exc: BaseException) -> str:
    """A short reason for an exception, without the URL (which FFmpeg puts in, password included)."""
    if isinstance(exc, av.FFmpegError):
        reason = exc.strerror or type(exc).__name__
    elif isinstance(exc, OSError):
        reason = exc.strerror or str(exc)
    else:
        reason = str(exc) or type(exc).__name__
    return " ".join(str(reason).split())  # one line


def source_error(camera_id: str, url: str, what: str) -> SourceError:
    """``SourceError("camera <id> (<url, password hidden>): <what>")``."""
    return SourceError(f"camera {camera_id} ({redact_url(url)}): {what}")


def open_input(
    camera_id: str, url: str, *, open_timeout: float, read_timeout: float, decode_threads: int
) -> tuple[InputContainer, av.VideoStream]:
    """Open ``url`` and its first video stream, set up for threaded decoding.

    RTSP goes over TCP (no UDP loss or firewall trouble). ``open_timeout`` bounds connecting and
    probing, ``read_timeout`` bounds each read, so a dead camera raises within seconds.
    Raises ``SourceError`` (one line, password hidden).
    """
    live = is_live(url)
    if not live:
        path = file_path(url)
        if not path.is_file():
            raise source_error(camera_id, url, "file not found")
    # Probe 1 s of a live stream, not FFmpeg's 5 s: connecting is faster and fewer frames arrive in a burst.
    options: dict[str, str] = {"analyzeduration": "1000000"} if live else {}
    scheme = urlsplit(url).scheme.lower() if live else ""
    if scheme in ("rtsp", "rtsps"):
        options["rtsp_transport"] = "tcp"
        options["timeout"] = str(int(read_timeout * 1_000_000))  # socket I/O timeout, microseconds
    elif scheme in ("http", "https"):
        options["rw_timeout"] = str(int(read_timeout * 1_000_000))
    try:
        container = av.open(url if live else str(file_path(url)), options=options, timeout=(open_timeout, read_timeout))
    except (av.FFmpegError, OSError) as exc:
        raise source_error(camera_id, url, f"cannot open ({describe(exc)})") from None
    if not container.streams.video:
        container.close()
        raise source_error(camera_id, url, "no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    if decode_threads > 0:
        stream.codec_context.thread_count = decode_threads
    return container, stream
