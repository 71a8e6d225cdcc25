"""``RecordStreamReader``: a camera's main stream, demuxed for the recorder and never decoded.

A camera with a substream (``record_url``) analyses the substream and records the main stream. The main
stream's packets go to the recorder's ``on_packet`` as they arrive; none is decoded, so recording 1080p costs
what copying its packets costs. Connecting, reconnecting with backoff and file looping are the
``StreamReader``'s; its events are ``record_stream_online``, ``record_stream_offline`` and
``record_stream_error``, so that a lost main stream is reported without marking the camera offline while its
substream is still analysed. Files with ``realtime`` are paced at their packets' timestamps.

A camera that reads faces or plates also keeps the packets of the current GOP (keyframe first, with their
capture times), so that ``picture_at(at)`` can decode the main stream's picture of a moment on demand: its face
and plate crops come from the 1080p picture (one GOP's decode at most, only when an enricher asks).
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import av
import numpy as np

from vigil.config import CameraConfig
from vigil.sources.opening import describe
from vigil.sources.reader import PacketCallback, StreamReader
from vigil.sources.reader_state import PassResult

#: a paced file's packets go out in bursts of this much video (a wake-up per packet cost 1.6 ms a camera-second)
PACE_SLACK_S = 0.2
#: packets of the current GOP kept for ``picture_at`` (a 10 s GOP at 25 fps fits)
MAX_GOP_PACKETS = 300


class RecordStreamReader(StreamReader):
    """Reads ``camera.record_url`` in its own thread and hands every video packet to ``on_packet``."""

    EVENTS = "record_stream"

    def __init__(self, camera: CameraConfig, *, on_packet: PacketCallback, **kwargs: object) -> None:
        if camera.record_url is None:
            raise ValueError(f"camera {camera.id} has no record stream")
        super().__init__(camera, on_packet=on_packet, url=camera.record_url, **kwargs)  # type: ignore[arg-type]
        #: only a camera whose enrichers crop faces or plates needs the main stream's pictures
        self.keeps_pictures = camera.recognition.faces or camera.recognition.plates
        self._gop: list[tuple[datetime, av.Packet]] = []
        self._codec: av.CodecContext | None = None
        self._gop_lock = threading.Lock()

    def picture_at(self, at: datetime) -> np.ndarray | None:
        """The main stream's picture at capture time ``at`` (BGR), decoded from the buffered GOP up to that
        moment; None when nothing is buffered or it cannot be decoded."""
        with self._gop_lock:
            gop, codec = list(self._gop), self._codec
        if not gop or codec is None:
            return None
        chosen = [packet for when, packet in gop if when <= at] or [gop[0][1]]
        decoder = av.CodecContext.create(codec.name, "r")
        if codec.extradata:
            decoder.extradata = codec.extradata
        picture = None
        try:
            for packet in [*chosen, None]:
                for frame in decoder.decode(packet):
                    picture = frame
        except av.FFmpegError:
            pass  # a damaged packet: the last good picture, if any
        return None if picture is None else picture.to_ndarray(format="bgr24")

    def _keep(self, packet: av.Packet, at: datetime, stream: av.VideoStream) -> None:
        with self._gop_lock:
            if packet.is_keyframe:
                self._gop, self._codec = [(at, packet)], stream.codec_context
            elif self._gop and len(self._gop) < MAX_GOP_PACKETS:
                self._gop.append((at, packet))

    def _pump(self, container: av.container.InputContainer, stream: av.VideoStream, offset: float) -> PassResult:
        """Demux one connection (or one pass over a file) into the recorder, until it ends or ``stop()``."""
        rate = stream.average_rate or stream.guessed_rate
        result = PassResult(frame_interval=float(1 / rate) if rate else 0.04)
        if not self.live and stream.duration and stream.time_base:
            result.expected_end = offset + float(stream.duration * stream.time_base)
        paced = not self.live and self.camera.realtime
        time_base = float(stream.time_base or 0)
        first: float | None = None
        origin = time.monotonic()
        try:
            for packet in container.demux(stream):
                if self._stop.is_set():
                    break
                if not packet.size:
                    continue
                ts = packet.pts if packet.pts is not None else packet.dts
                t = ts * time_base if ts is not None else None  # a float: Fraction arithmetic cost 30 µs a packet
                if t is not None:
                    first = t if first is None else first
                    result.last_time = offset + t - first
                    ahead = origin + (t - first) - time.monotonic()
                    if paced and ahead > PACE_SLACK_S and self._stop.wait(ahead):  # in bursts, as from a network
                        break
                self._tap(packet)
                if self.keeps_pictures:
                    assert self._start_time is not None
                    self._keep(packet, datetime.now(UTC) if self.live or result.last_time is None
                               else self._start_time + timedelta(seconds=result.last_time), stream)
                result.delivered += 1
                self._count_delivery()
        except av.ExitError:
            result.error = f"no data for {self._read_timeout:g} s"
        except (av.FFmpegError, OSError) as exc:
            result.error = describe(exc)
        return result
