"""Clip export (byte copy + manifest) and the HLS playlist played by ffmpeg over a local HTTP server."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import re
import subprocess
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import av
import pytest
from test_recording import T0, feed, ffprobe, make_h264, open_index, packet_bytes

from vigil.config import RecordingConfig
from vigil.sources.recorder import Recorder
from vigil.store.clips import export_clip
from vigil.store.hls import init_size, playlist
from vigil.store.recordings import RecordingError, RecordingIndex


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, RecordingIndex]]:
    root = tmp_path_factory.mktemp("rec")
    video = make_h264(root / "pattern.mp4", 7)
    store, index = open_index(root / "data")
    feed(video, Recorder("cam1", index, RecordingConfig(mode="continuous", segment_seconds=2), start_time=T0))
    yield video, index
    store.close()


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with single ``Range: bytes=a-b`` support (what HLS byte ranges need)."""

    def log_message(self, *_args: object) -> None:
        pass

    def send_head(self):  # type: ignore[no-untyped-def]
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        path = Path(self.translate_path(self.path))
        if match is None or not path.is_file():
            return super().send_head()
        size = path.stat().st_size
        first, last = int(match[1]), int(match[2]) if match[2] else size - 1
        with path.open("rb") as fh:
            fh.seek(first)
            data = fh.read(last - first + 1)
        self.send_response(206)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        return io.BytesIO(data)


@pytest.fixture
def http_root(recorded: tuple[Path, RecordingIndex]) -> Iterator[str]:
    handler = functools.partial(RangeHandler, directory=str(recorded[1].data_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_export_is_a_byte_copy_with_a_manifest(recorded: tuple[Path, RecordingIndex], tmp_path: Path) -> None:
    video, index = recorded
    result = export_clip(index, "cam1", T0 + timedelta(seconds=2.5), T0 + timedelta(seconds=5), tmp_path / "out")
    [clip] = result.files
    # starts at the keyframe at 2 s (copying cannot start mid-GOP), ends before 5 s
    assert packet_bytes(clip) == packet_bytes(video)[2 * 25 : 5 * 25]
    probe = ffprobe(clip, "format=duration,start_time", "stream=codec_name,profile,width,height,pix_fmt")
    source = ffprobe(video, "stream=codec_name,profile,width,height,pix_fmt")
    assert probe["streams"] == source["streams"]  # same codec parameters: not re-encoded
    assert float(probe["format"]["start_time"]) == 0.0
    assert float(probe["format"]["duration"]) == pytest.approx(3.0, abs=0.05)
    manifest = json.loads(result.manifest.read_text())  # type: ignore[union-attr]
    assert manifest["camera"] == "cam1" and manifest["reencoded"] is False
    assert [s["path"] for s in manifest["segments"]] == [s.path for s in result.segments]
    [entry] = manifest["files"]
    assert entry["name"] == "clip.mp4" and entry["size_bytes"] == clip.stat().st_size
    assert entry["sha256"] == hashlib.sha256(clip.read_bytes()).hexdigest()


def test_export_of_an_empty_range_is_a_one_line_error(recorded: tuple[Path, RecordingIndex], tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match="camera cam1: no recording between"):
        export_clip(recorded[1], "cam1", T0 - timedelta(hours=2), T0 - timedelta(hours=1), tmp_path)


def test_hls_playlist_plays_through_ffmpeg_over_http(recorded: tuple[Path, RecordingIndex], http_root: str) -> None:
    index = recorded[1]
    text = playlist(index, "cam1", T0, T0 + timedelta(seconds=7))
    segments = index.segments("cam1")
    assert text.startswith("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n") and text.endswith("#EXT-X-ENDLIST\n")
    assert text.count("#EXT-X-MAP:") == text.count("#EXTINF:") == len(segments) == 4
    assert "#EXT-X-DISCONTINUITY" not in text  # one continuous recording
    head = init_size(index.file(segments[0]))
    assert f'#EXT-X-MAP:URI="{segments[0].path}",BYTERANGE="{head}@0"' in text
    (index.data_dir / "cam1.m3u8").write_text(text)
    url = f"{http_root}/cam1.m3u8"
    decode = subprocess.run(["ffmpeg", "-v", "error", "-i", url, "-f", "null", "-"], capture_output=True, text=True)
    assert decode.returncode == 0 and not decode.stderr.strip()
    frames = int(ffprobe(url, "stream=nb_read_frames")["streams"][0]["nb_read_frames"])
    assert frames == 7 * 25  # every frame of every segment
    with av.open(url) as container:  # and PyAV (what a thumbnailer would use) reads it the same way
        assert sum(1 for p in container.demux(container.streams.video[0]) if p.size) == 7 * 25
