"""A real RTSP camera on 127.0.0.1 for tests and benches: the GStreamer RTSP server replaying a video file in
real time.

Run as a script with the SYSTEM Python (Debian's ``python3-gi``; the project venv has no ``gi``); it uses
the standard library only, so it also runs from an installed package, by path::

    /usr/bin/python3 vigil/bench/rtsp_camera.py --port 8554 --file clip.mp4 [--mount /cam] [--loop-minutes 10]
                                                [--user u --password p]

It prints ``READY rtsp://127.0.0.1:<port><mount>`` once it listens. The stream is H.264 over RTP:
an H.264 MP4 is sent as is; anything else is first converted with the ``ffmpeg`` command. Looping is
done by writing the clip several times over into one file (``ffmpeg -stream_loop``, no re-encode)
so the stream's timestamps run on without a jump; RTSP clients share one live stream like a camera.

Imported from the venv (``vigil.bench.rtsp_camera``), ``RtspCamera`` starts, kills and restarts that script as a
subprocess.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SYSTEM_PYTHON = "/usr/bin/python3"
SCRIPT = Path(__file__).resolve()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _video_codec_and_duration(path: Path) -> tuple[str, float]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=codec_name:format=duration",
         "-of", "json", str(path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    info = json.loads(out.stdout)
    return info["streams"][0]["codec_name"], float(info["format"]["duration"])


def prepare_stream_file(source: Path, target: Path, loop_minutes: float = 0.0) -> Path:
    """Write ``target``: an H.264 MP4 of ``source`` repeated to last at least ``loop_minutes``."""
    codec, duration = _video_codec_and_duration(source)
    loops = max(0, int(loop_minutes * 60 / max(duration, 0.1)))
    video = ["-c:v", "copy"] if codec == "h264" else ["-c:v", "libx264", "-preset", "ultrafast", "-g", "20", "-bf", "0"]
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-stream_loop", str(loops), "-i", str(source), "-an", *video,
         "-movflags", "+faststart", str(target)],
        check=True,
    )  # fmt: skip
    return target


def serve(port: int, path: Path, mount: str, user: str | None, password: str | None) -> None:
    """Serve ``path`` (an H.264 MP4) at rtsp://127.0.0.1:port/mount until killed."""
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f'( filesrc location="{path}" ! qtdemux ! h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 )'
    )
    factory.set_shared(True)
    if user is not None:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "viewer")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password or ""), token)
        server.set_auth(auth)
        factory.add_role_from_structure(
            Gst.Structure.new_from_string(
                "viewer, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
            )
        )
    server.get_mount_points().add_factory(mount, factory)
    if server.attach(None) == 0:
        raise SystemExit(f"rtsp_camera: cannot listen on 127.0.0.1:{port}")
    print(f"READY rtsp://127.0.0.1:{port}{mount}", flush=True)
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, loop.quit)
    loop.run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--file", type=Path, required=True)
    parser.add_argument("--mount", default="/cam")
    parser.add_argument("--loop-minutes", type=float, default=0.0, help="repeat the file to last this long")
    parser.add_argument("--user")
    parser.add_argument("--password")
    args = parser.parse_args()
    if args.loop_minutes <= 0 and is_servable(args.file):
        serve(args.port, args.file.resolve(), args.mount, args.user, args.password)
        return
    work = Path(tempfile.mkdtemp(prefix="vigil-rtsp-"))
    try:
        path = prepare_stream_file(args.file, work / "stream.mp4", args.loop_minutes)
        serve(args.port, path, args.mount, args.user, args.password)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def is_servable(path: Path) -> bool:
    """True if ``path`` is an H.264 MP4 the server can send as it is."""
    return path.suffix.lower() in (".mp4", ".mov") and _video_codec_and_duration(path)[0] == "h264"


class RtspCamera:
    """An RTSP camera for tests and benches: the script above run by the system Python, on a free port of 127.0.0.1."""

    def __init__(self, file: Path, *, port: int | None = None, mount: str = "/cam", loop_minutes: float = 0.0,
                 user: str | None = None, password: str | None = None) -> None:  # fmt: skip
        """``file`` is converted/looped first if needed (into a temporary folder, removed by ``close``)."""
        self._work: Path | None = None
        self.file = Path(file)
        if loop_minutes > 0 or not is_servable(self.file):
            self._work = Path(tempfile.mkdtemp(prefix="vigil-rtsp-"))
            self.file = prepare_stream_file(self.file, self._work / "stream.mp4", loop_minutes)
        self.port = port or free_port()
        self.mount = mount
        self.user = user
        self.password = password
        self.process: subprocess.Popen[str] | None = None

    @staticmethod
    def available() -> str | None:
        """None if a server can run here, else why not (for ``pytest.skip``)."""
        if not Path(SYSTEM_PYTHON).exists():
            return f"{SYSTEM_PYTHON} not found"
        if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
            return "ffmpeg/ffprobe not installed"
        probe = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
        if subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True).returncode != 0:
            return "GStreamer RTSP server for the system Python missing (python3-gi, gir1.2-gst-rtsp-server-1.0)"
        return None

    @property
    def url(self) -> str:
        credentials = f"{self.user}:{self.password}@" if self.user else ""
        return f"rtsp://{credentials}127.0.0.1:{self.port}{self.mount}"

    def start(self, timeout: float = 15.0) -> RtspCamera:
        """Start the server and wait until it listens."""
        command = [SYSTEM_PYTHON, str(SCRIPT), "--port", str(self.port), "--file", str(self.file)]
        command += ["--mount", self.mount]
        if self.user:
            command += ["--user", self.user, "--password", self.password or ""]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, start_new_session=True)
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if line.startswith("READY"):
                return self
            if not line and self.process.poll() is not None:
                break
        self.kill()
        raise RuntimeError(f"RTSP camera server did not start on port {self.port}")

    def kill(self) -> None:
        """Kill the server at once, as a crashed camera would disappear."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(5)
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()
        self.process = None

    def restart(self) -> RtspCamera:
        """Kill and start again on the same port."""
        self.kill()
        return self.start()

    def close(self) -> None:
        """Kill the server and remove any converted file."""
        self.kill()
        if self._work is not None:
            shutil.rmtree(self._work, ignore_errors=True)
            self._work = None

    def __enter__(self) -> RtspCamera:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.close()


if __name__ == "__main__":
    if sys.path and Path(sys.path[0]).resolve() == SCRIPT.parent:
        del sys.path[0]  # run by path: vigil/bench's modules must not shadow anything gi imports
    main()
