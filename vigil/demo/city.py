"""The demo city: the cameras of ``city.yaml`` beside the PETS09 junction, with their files from VIGIL_DATA.

A camera whose file is missing is left out with a one-line reason. A camera whose ``url`` is a glob of
JPEG frames (UCSD Ped2) is encoded once into an H.264 MP4 in the demo's output folder: the reader opens
files and streams, not image sequences.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import yaml

from vigil.config import CameraConfig, parse_config
from vigil.paths import data_root

CITY_CONFIG = Path(__file__).with_name("city.yaml")
GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True, slots=True)
class LeftOut:
    """A camera of the demo city that could not be set up, and why."""

    camera_id: str
    name: str
    reason: str

    def __str__(self) -> str:
        return f"{self.camera_id}: {self.reason}"


def city_cameras(sources_dir: Path, root: Path | None = None) -> tuple[list[CameraConfig], list[LeftOut]]:
    """The cameras of ``city.yaml`` whose data is in ``root`` (default: VIGIL_DATA), as looped real-time
    replays with absolute URLs, and those left out. Frame sequences are encoded into ``sources_dir``."""
    root = data_root() if root is None else root
    data = yaml.safe_load(CITY_CONFIG.read_text())
    sequence_fps = int(data.pop("sequence_fps", 10))
    cameras, left_out = [], []
    for camera in parse_config(data, source=str(CITY_CONFIG)).cameras:
        try:
            camera.url = str(_source(camera.url, root, sources_dir / f"{camera.id}.mp4", sequence_fps))
        except LookupError as exc:
            left_out.append(LeftOut(camera.id, camera.name, str(exc)))
            continue
        camera.realtime = camera.loop = True
        cameras.append(camera)
    return cameras, left_out


def _source(relative: str, root: Path, target: Path, fps: int) -> Path:
    """The file behind ``relative`` (a path or a glob of frames inside ``root``); LookupError if absent."""
    if not GLOB_CHARS & set(relative):
        path = root / relative
        if not path.is_file():
            raise LookupError(f"{relative} not found in {root}")
        return path
    frames = sorted(root.glob(relative))
    if not frames:
        raise LookupError(f"no frames {relative} in {root}")
    if not target.is_file():
        try:
            encode_frames(frames, target, fps)
        except (OSError, av.FFmpegError, ValueError) as exc:
            raise LookupError(f"could not encode {relative} into {target} ({exc})") from None
    return target


def encode_frames(frames: list[Path], target: Path, fps: int) -> int:
    """Encode image files, in order, into an H.264 MP4 at ``fps`` (GOP 2 s, no B-frames, so the recorder
    copies it); frames of another size are resized to the first's. Written whole or not at all."""
    first = cv2.imread(str(frames[0]))
    if first is None:
        raise ValueError(f"{frames[0]} is not a readable image")
    height, width = first.shape[:2]
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    written = 0
    with av.open(str(partial), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width - width % 2, height - height % 2, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "23", "bf": "0", "g": str(2 * fps)}
        for path in frames:
            image = cv2.imread(str(path))
            if image is None:
                continue
            if image.shape[:2] != (stream.height, stream.width):
                image = cv2.resize(image, (stream.width, stream.height))
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
            written += 1
        container.mux(stream.encode())
    os.replace(partial, target)
    return written
