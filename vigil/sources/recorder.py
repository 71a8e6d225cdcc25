"""``Recorder``: writes one camera's encoded packets into fragmented-MP4 segments and indexes them.

- Pass ``recorder.on_packet`` as the ``StreamReader``'s ``on_packet`` hook. H.264 / H.265 packets are
  **copied without re-encoding** (a copy of each packet is muxed; the reader's packet is left untouched).
- Any other codec (MPEG-4 part 2, MS-MPEG4, MJPEG, ...) cannot go into MP4 as is: it is **decoded and
  encoded once with libx264 ``ultrafast``**. That costs a second decode plus an encode per recorded
  camera (tens of % of a core at 720p), so prefer cameras that send H.264/H.265.
- Segments are cut on keyframes after ``segment_seconds`` and written with
  ``movflags=frag_keyframe+empty_moov+default_base_moof`` (+ ``flush_packets``): after a crash a segment
  plays up to its last complete fragment. Timestamps inside are capture time since ``MEDIA_EPOCH``
  (ffprobe shows a large ``start_time``, and the end time as ``duration``: length = duration - start_time).
  Path: ``<data_dir>/recordings/<camera>/<yyyy-mm-dd>/<HHMMSS-mmm>.mp4``.
- Capture times: live streams are anchored at the wall clock at the first packet of a connection;
  files at ``start_time`` (each loop continues where the last ended). Times in the index are UTC.
- ``events`` mode keeps finished segments pending for ``pre_roll_s`` + one segment and keeps (indexes)
  only those overlapping some ``mark_event(at)`` window [at - pre_roll, at + post_roll]; others are deleted.
- Recording never raises into the reader: a full disk (ENOSPC) calls ``free_space`` (retention) first,
  logs one line and pauses recording for ``resume_after_s``, then retries; other write errors do the same.
  The interrupted segment is kept (indexed) up to its last complete fragment. ``status()`` says
  ``paused (disk full)`` until a fragment is written again; retries failing the same way are not logged
  again, and one line says when recording resumed.
- A finished segment the database refuses to index (locked, away) is tried again after 0.5, 1, 2, 4 and 8 s
  before one error line; the file stays on disk either way, and start-up recovery indexes what was missed.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import BinaryIO

import av

from vigil.config import RecordingConfig
from vigil.sources.masks import PrivacyMasker
from vigil.store.recordings import MEDIA_EPOCH, ClipRef, RecordingIndex, Segment, segment_relpath
from vigil.store.recovery import salvage

log = logging.getLogger(__name__)

#: Codecs MP4 (and browsers) take as they come.
COPY_CODECS = frozenset({"h264", "hevc"})
#: ``frag_discont`` + ``avoid_negative_ts=disabled`` keep our timestamps (the muxer would start each file at 0).
MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof+frag_discont"
#: Live streams: a segment starting further than this from the wall clock re-anchors the timeline.
MAX_DRIFT_S = 2.0
#: waits (s) before each new attempt to index a finished segment when the database refused it
INDEX_RETRY_S = (0.5, 1.0, 2.0, 4.0, 8.0)


def copy_packet(packet: av.Packet) -> av.Packet:
    """A copy of ``packet`` (data and timing) that can be muxed without touching the original."""
    out = av.Packet(packet)
    out.pts, out.dts, out.duration = packet.pts, packet.dts, packet.duration
    out.time_base = packet.time_base
    out.is_keyframe = packet.is_keyframe
    return out


@dataclass(slots=True)
class _Open:
    """The segment being written."""

    container: av.container.OutputContainer
    stream: av.VideoStream
    relpath: str
    start: datetime
    origin: int  # output timestamp (time_base units) of the segment's start
    last_end: float = 0.0  # seconds after start of the end of the last packet
    keyframes: int = 0
    file: BinaryIO | None = None  # we own the file handle so it is closed even when the muxer fails


class Recorder:
    """Records one camera. Thread-safe between ``on_packet`` (reader thread) and ``mark_event`` (any thread)."""

    def __init__(
        self,
        camera_id: str,
        index: RecordingIndex,
        config: RecordingConfig,
        *,
        start_time: datetime | None = None,
        free_space: Callable[[], int] | None = None,
        resume_after_s: float = 10.0,
        transcode_preset: str = "ultrafast",
        masker: PrivacyMasker | None = None,
    ) -> None:
        """``start_time``: capture time of a file's first packet (None: live, wall clock).
        ``free_space()``: called on a full disk, returns bytes freed (e.g. ``Retention.free_space``).
        ``masker``: the camera's privacy masks. A masked camera cannot be recorded by copying its packets:
        they hold what the masks hide. Its frames are decoded, masked and encoded (libx264), which costs CPU."""
        self.camera_id = camera_id
        self.index = index
        self.config = config
        self._start_time = start_time
        self._free_space = free_space
        self._resume_after_s = resume_after_s
        self._preset = transcode_preset
        self._masker = masker if masker else None
        self._lock = threading.Lock()
        self._indexer = ThreadPoolExecutor(1, thread_name_prefix=f"vigil-index-{camera_id}")
        self.index_retry_s: tuple[float, ...] = INDEX_RETRY_S
        self._source: av.VideoStream | None = None
        self._seconds_per_tick = 0.0  # the source stream's time base
        self._decoder: av.CodecContext | None = None
        self._resync = False
        self._anchor: datetime | None = None  # capture time of input time 0 of the current source
        self._origin_pts: int | None = None
        self._shift = 0  # input timestamp + shift = output timestamp (time since MEDIA_EPOCH)
        self._open: _Open | None = None
        self._timeline_end: datetime | None = None
        self._paused_until = 0.0
        self._pending: deque[Segment] = deque()
        self._windows: list[tuple[datetime, datetime]] = []
        self.segments_written = 0
        self.bytes_written = 0
        self.transcoding = False
        self.last_error: str | None = None
        self._paused_reason: str | None = None  # set by a failed write, cleared by the next one that succeeds
        self.pauses = 0  # times recording paused (one per ``resume_after_s`` retry while the disk stays full)

    # -- public ----------------------------------------------------------------------------------

    def on_packet(self, packet: av.Packet) -> None:
        """The reader hook: record one encoded video packet. Never raises."""
        if self.config.mode == "off" or time.monotonic() < self._paused_until:
            return
        with self._lock:
            try:
                self._handle(packet)
            except Exception as exc:  # a recorder bug must not stop the camera
                self._pause(exc)

    def status(self) -> str:
        """``recording``; ``paused (<why>)`` (e.g. ``paused (disk full)``) from a failed write until a write
        succeeds again; ``off`` when the camera is not recorded."""
        if self.config.mode == "off":
            return "off"
        reason = self._paused_reason
        return f"paused ({reason})" if reason else "recording"

    def mark_event(self, at: datetime) -> ClipRef:
        """An event at ``at``: keep [at - pre_roll, at + post_roll] (``events`` mode); returns the clip reference."""
        clip = self.index.clip_for(self.camera_id, at, self.config.pre_roll_s, self.config.post_roll_s)
        with self._lock:
            self._windows.append((clip.start, clip.end))
            self._settle()
        return clip

    def close(self) -> None:
        """Finish the open segment, settle pending ones, wait for indexing."""
        with self._lock:
            self._finish()
            self._settle(final=True)
        self._indexer.shutdown(wait=True)

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- packets ---------------------------------------------------------------------------------

    def _handle(self, packet: av.Packet) -> None:
        stream = packet.stream
        if stream is not self._source:
            self._new_source(stream)
        ts = packet.pts if packet.pts is not None else packet.dts
        if ts is None or packet.time_base is None:
            return
        if self._origin_pts is None:
            assert self._anchor is not None
            self._origin_pts = ts
            self._shift = round((self._anchor - MEDIA_EPOCH).total_seconds() / stream.time_base) - ts
        if self._decoder is None:
            self._write(copy_packet(packet), ts, packet.is_keyframe)
            return
        if self._resync:  # after a pause: a fresh decoder, fed from a keyframe
            if not packet.is_keyframe:
                return
            self._decoder = self._make_decoder(stream)
            self._resync = False
        try:
            frames = self._decoder.decode(copy_packet(packet))
        except av.FFmpegError:
            return  # a damaged packet costs its frame; the reader reports broken streams
        for frame in frames:
            if frame.pts is not None:
                if self._masker is not None:
                    frame = self._masked(frame)
                self._write(frame, frame.pts, True)  # re-encoding: any frame can start a segment

    def _masked(self, frame: av.VideoFrame) -> av.VideoFrame:
        image = self._masker.apply(frame.to_ndarray(format="bgr24"))  # type: ignore[union-attr]
        masked = av.VideoFrame.from_ndarray(image, format="bgr24")
        masked.pts, masked.time_base = frame.pts, frame.time_base
        return masked

    def _new_source(self, stream: av.VideoStream) -> None:
        """A new connection (or a file's next loop): finish the segment, set up copy or transcode."""
        self._finish()
        frame_s = 1 / float(self._source.average_rate or 25) if self._source is not None else 0.0
        self._source = stream
        self._seconds_per_tick = float(stream.time_base)  # floats per packet: Fraction arithmetic costs µs
        self._origin_pts = None
        name = stream.codec_context.name
        self.transcoding = name not in COPY_CODECS or self._masker is not None
        self._decoder = self._make_decoder(stream) if self.transcoding else None
        self._resync = self.transcoding
        if self._masker is not None:
            log.info("camera %s has privacy masks: recording re-encodes the masked frames with libx264", self.camera_id)
        elif self.transcoding:
            log.info("camera %s: %s cannot be copied into MP4; recording re-encodes with libx264", self.camera_id, name)
        if self._start_time is None:
            self._anchor = datetime.now(UTC)
        else:
            previous = self._timeline_end + timedelta(seconds=frame_s) if self._timeline_end else None
            self._anchor = previous or self._start_time

    @staticmethod
    def _make_decoder(stream: av.VideoStream) -> av.CodecContext:
        source = stream.codec_context
        decoder = av.CodecContext.create(source.name, "r")
        decoder.width, decoder.height = source.width, source.height
        if source.extradata:
            decoder.extradata = source.extradata
        decoder.codec_tag = source.codec_tag
        return decoder

    def _capture_time(self, ts: int) -> datetime:
        assert self._anchor is not None and self._origin_pts is not None and self._source is not None
        return self._anchor + timedelta(seconds=(ts - self._origin_pts) * self._seconds_per_tick)

    def _reanchor(self, at: datetime, ts: int) -> datetime:
        """Live: follow the wall clock when the camera's clock has drifted from it (never going backwards)."""
        now = datetime.now(UTC)
        if self._start_time is not None or abs((now - at).total_seconds()) <= MAX_DRIFT_S:
            return at
        target = max(now, self._timeline_end or now)
        assert self._anchor is not None and self._source is not None and self._origin_pts is not None
        self._anchor += target - at
        self._shift = round((self._anchor - MEDIA_EPOCH).total_seconds() / self._source.time_base) - self._origin_pts
        return self._capture_time(ts)

    def _write(self, item: av.Packet | av.VideoFrame, ts: int, keyframe: bool) -> None:
        at = self._capture_time(ts)
        seg = self._open
        if keyframe and (seg is None or (at - seg.start).total_seconds() >= self.config.segment_seconds):
            self._finish()
            if time.monotonic() < self._paused_until:
                return
            at = self._reanchor(at, ts)
            seg = self._open = self._start_segment(at, ts + self._shift)
        if seg is None:
            return  # waiting for a keyframe (or paused)
        try:
            if isinstance(item, av.Packet):
                self._mux_packet(seg, item)
            else:
                self._encode(seg, item)
        except (OSError, av.FFmpegError) as exc:
            self._pause(exc)
            return
        self._timeline_end = max(self._timeline_end or at, at)
        if seg.keyframes >= 2:  # the muxer wrote the segment's first fragment out: the disk takes writes again
            self._resumed()

    def _mux_packet(self, seg: _Open, packet: av.Packet) -> None:
        assert packet.time_base is not None
        shift = self._shift
        packet.pts = packet.pts + shift if packet.pts is not None else None
        packet.dts = packet.dts + shift if packet.dts is not None else packet.pts
        packet.stream = seg.stream
        seg.keyframes += int(packet.is_keyframe)
        end = (packet.pts if packet.pts is not None else packet.dts) + (packet.duration or 0)
        seg.last_end = max(seg.last_end, (end - seg.origin) * self._seconds_per_tick)
        seg.container.mux(packet)

    def _encode(self, seg: _Open, frame: av.VideoFrame) -> None:
        assert self._source is not None
        frame.pts = frame.pts + self._shift
        frame.time_base = self._source.time_base
        frame.pict_type = av.video.frame.PictureType.NONE
        for packet in seg.stream.encode(frame.reformat(format="yuv420p")):
            seg.keyframes += int(packet.is_keyframe)
            seg.container.mux(packet)
        rate = self._source.average_rate or self._source.guessed_rate or 25
        seg.last_end = max(seg.last_end, float((frame.pts - seg.origin) * self._source.time_base) + 1 / float(rate))

    # -- segments --------------------------------------------------------------------------------

    def _start_segment(self, at: datetime, origin: int) -> _Open | None:
        relpath = segment_relpath(self.camera_id, at)
        path = self.index.file(relpath)
        file: BinaryIO | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            options = {"movflags": MOVFLAGS, "flush_packets": "1", "avoid_negative_ts": "disabled"}
            file = path.open("wb")
            container = av.open(file, "w", format="mp4", options=options)
            assert self._source is not None
            if self._decoder is None:
                stream = container.add_stream_from_template(self._source)
                if self._source.codec_context.name == "hevc":
                    stream.codec_tag = "hvc1"  # what browsers and hls.js expect
            else:
                stream = self._encoder_stream(container)
        except (OSError, av.FFmpegError) as exc:
            if file is not None:
                file.close()
                path.unlink(missing_ok=True)
            self._pause(exc)
            return None
        return _Open(container, stream, relpath, at, origin, file=file)

    def _encoder_stream(self, container: av.container.OutputContainer) -> av.VideoStream:
        assert self._source is not None and self._decoder is not None
        rate = self._source.average_rate or self._source.guessed_rate or Fraction(25)
        stream = container.add_stream("libx264", rate=rate)
        stream.width = self._decoder.width or self._source.codec_context.width
        stream.height = self._decoder.height or self._source.codec_context.height
        stream.pix_fmt = "yuv420p"
        stream.time_base = self._source.time_base
        stream.codec_context.time_base = self._source.time_base
        stream.codec_context.gop_size = max(1, round(float(rate) * 2))
        stream.options = {"preset": self._preset, "crf": "23", "tune": "zerolatency"}
        return stream

    def _finish(self) -> None:
        """Close the open segment and hand it to the index (or the events-mode buffer)."""
        seg, self._open = self._open, None
        if seg is None:
            return
        try:
            if self._decoder is not None:
                for packet in seg.stream.encode(None):
                    seg.keyframes += int(packet.is_keyframe)
                    seg.container.mux(packet)
        except (OSError, av.FFmpegError) as exc:
            self._open = seg  # _pause closes it and keeps its complete fragments
            self._pause(exc)
            return
        error = _close(seg)
        if error is not None:
            self._keep_partial(seg)
            self._pause(error)
            return
        path = self.index.file(seg.relpath)
        size = path.stat().st_size if path.exists() else 0
        if seg.keyframes == 0 or size == 0:
            path.unlink(missing_ok=True)
            return
        self._resumed()
        codec = "h264" if self._decoder is not None else self._source.codec_context.name if self._source else "?"
        end = seg.start + timedelta(seconds=seg.last_end)
        self._done(Segment(self.camera_id, seg.start, end, seg.relpath, size, seg.keyframes, codec))

    def _keep_partial(self, seg: _Open) -> None:
        """After a failed write: keep (index) the segment up to its last complete fragment, or delete it. Deleting
        it would throw away the video it holds, and free the space only for the next retry to fill it again."""
        try:
            kept = salvage(self.index.file(seg.relpath))
        except OSError:
            kept = None
        if kept is not None:
            size, duration, keyframes, codec = kept
            end = seg.start + timedelta(seconds=duration)
            self._done(Segment(self.camera_id, seg.start, end, seg.relpath, size, keyframes, codec))

    def _done(self, segment: Segment) -> None:
        """A finished segment: to the index, or (events mode) to the pending buffer."""
        size = segment.size_bytes
        self.segments_written += 1
        self.bytes_written += size
        if self.config.mode == "continuous":
            self._submit(segment)
        else:
            self._pending.append(segment)
            self._settle()

    def _settle(self, final: bool = False) -> None:
        """Events mode: index pending segments inside an event window; delete those no event can want."""
        horizon = self.config.pre_roll_s + self.config.segment_seconds
        latest = self._timeline_end
        keep: deque[Segment] = deque()
        for seg in self._pending:
            if any(seg.overlaps(start, end) for start, end in self._windows):
                self._submit(dataclasses.replace(seg, kind="event"))
            elif final or (latest is not None and (latest - seg.end).total_seconds() > horizon):
                self.index.file(seg).unlink(missing_ok=True)
            else:
                keep.append(seg)
        self._pending = keep
        starts = [seg.start for seg in self._pending] + ([self._open.start] if self._open else [])
        cutoff = min(starts) if starts else latest
        if cutoff is not None:  # no segment still to come can start before cutoff
            self._windows = [w for w in self._windows if w[1] > cutoff]

    def _submit(self, segment: Segment) -> None:
        future = self._indexer.submit(self._add_to_index, segment)
        future.add_done_callback(self._indexed)

    def _add_to_index(self, segment: Segment) -> None:
        """Index a finished segment, trying again after ``index_retry_s`` waits: a database busy for a moment
        (SQLite locked by many cameras closing segments together, a PostgreSQL failover) must not lose it."""
        for wait in (*self.index_retry_s, None):
            try:
                self.index.add(segment)
                return
            except Exception:
                if wait is None:
                    raise
                time.sleep(wait)

    def _indexed(self, future: object) -> None:
        exc = future.exception()  # type: ignore[attr-defined]
        if exc is not None:
            log.error("camera %s: cannot index recording segment (tried %d times): %s", self.camera_id,
                      len(self.index_retry_s) + 1, str(exc).splitlines()[0])

    def _resumed(self) -> None:
        if self._paused_reason is not None:
            log.warning("camera %s: recording resumed after %s", self.camera_id, self._paused_reason)
            self._paused_reason = None

    def _pause(self, exc: BaseException) -> None:
        """Stop writing for ``resume_after_s``; free space first when the disk is full."""
        seg, self._open = self._open, None
        if seg is not None:
            _close(seg)
            self._keep_partial(seg)
        self._paused_until = time.monotonic() + self._resume_after_s
        self._resync = self.transcoding
        full = getattr(exc, "errno", None) == errno.ENOSPC
        freed = 0
        if full and self._free_space is not None:
            try:
                freed = self._free_space()
            except Exception as free_exc:
                log.error("camera %s: freeing disk space failed: %s", self.camera_id, free_exc)
        reason = "disk full" if full else f"write failed ({' '.join(str(exc).split())})"
        again = reason == self._paused_reason  # a retry that failed the same way: logged once per outage
        self.last_error = self._paused_reason = reason
        self.pauses += 1
        log.log(
            logging.DEBUG if again else logging.ERROR,
            "camera %s: recording paused for %.0f s: %s in %s; freed %.1f MB",
            self.camera_id,
            self._resume_after_s,
            reason,
            self.index.data_dir,
            freed / 1e6,
        )


def _close(seg: _Open) -> BaseException | None:
    """Close a segment's muxer and file handle (both, whatever fails); the error, if any."""
    error: BaseException | None = None
    try:
        seg.container.close()
    except (OSError, av.FFmpegError) as exc:
        error = exc
    if seg.file is not None:
        try:
            seg.file.close()
        except OSError as exc:
            error = error or exc
    return error
