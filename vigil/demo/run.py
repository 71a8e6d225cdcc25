"""``vigil demo``: the whole pipeline on PETS09-S2L1 with the shipped scene config, then a live city.

Writes an annotated MP4, a heatmap PNG, a counts chart PNG, the events database (SQLite) and a
JSON-lines event log into the output folder, and returns a summary. ``live_config`` then adds the
cameras of ``city.yaml`` (vigil/demo/city.py) for the command centre.
"""

from __future__ import annotations

import secrets
import shutil
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import yaml
from rich.progress import Progress

from vigil.assembly import open_services
from vigil.config import Config, load_config
from vigil.demo.artefacts import AnnotatedVideo, counts_chart, draw_scene
from vigil.demo.city import LeftOut, city_cameras
from vigil.errors import DataError
from vigil.paths import data_root
from vigil.runtime import FrameResult, Node
from vigil.types import CountSample
from vigil.vision.detector import create_detector

DEMO_CONFIG = Path(__file__).with_name("vtest.yaml")
DEBIAN_VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
DEMO_START = datetime(2026, 1, 15, 9, 0, 0, tzinfo=UTC)  # capture time given to the file's first frame


def locate_vtest() -> Path:
    """``video/vtest.avi`` from VIGIL_DATA, else Debian's opencv-doc copy."""
    for candidate in (data_root() / "video" / "vtest.avi", DEBIAN_VTEST):
        if candidate.exists():
            return candidate
    raise DataError(f"vtest.avi not found in {data_root() / 'video'} nor at {DEBIAN_VTEST} "
                    "(set VIGIL_DATA, or apt-get install opencv-doc)")


def demo_config(out_dir: Path, video: Path, realtime: bool = False, loop: bool = False) -> Config:
    config = load_config(DEMO_CONFIG)
    config.data_dir = out_dir.resolve()
    for camera in config.cameras:
        camera.url = str(video)
        camera.realtime = realtime
        camera.loop = loop
    return config


@dataclass
class DemoSummary:
    out_dir: Path
    frames: int = 0
    events: Counter = field(default_factory=Counter)
    line_counts: dict = field(default_factory=dict)
    tracks: int = 0
    files: dict[str, Path] = field(default_factory=dict)


def run_demo(out_dir: Path, progress: Progress | None = None) -> DemoSummary:
    """Process the whole video once (as fast as the machine allows) and write the artefacts."""
    video = locate_vtest()
    if out_dir.exists():
        shutil.rmtree(out_dir)
    config = demo_config(out_dir, video)
    camera = config.cameras[0]
    services = open_services(config, start_time=DEMO_START).start(jsonl=out_dir / "events.jsonl")
    node = Node(config, create_detector(config.detector), start_time=DEMO_START, packet_hooks=services.packet_hooks(),
                enrichers=services.enrichers())
    annotated = AnnotatedVideo(out_dir / "annotated.mp4", camera, camera.fps)
    summary = DemoSummary(out_dir)
    samples: list[CountSample] = []
    last_image: list[np.ndarray] = []
    task = progress.add_task("analysing vtest.avi", total=_expected_frames(video, camera.fps)) if progress else None

    def record(result: FrameResult) -> None:
        summary.events.update(e.kind for e in result.output.events)
        samples.extend(result.output.counts)
        if result.frame is None:
            return
        summary.frames += 1
        last_image[:] = [result.frame.image]
        pipeline = node.pipelines[camera.id]
        annotated.write(result.frame.image, result.frame.captured_at, result.update.active, result.output.events,
                        pipeline.rules.line_counts())
        if progress:
            progress.advance(task)

    services.attach(node).on_result.append(record)
    try:
        node.start().run(until_end=True)
    finally:
        annotated.close()
        services.close()
    pipeline = node.pipelines[camera.id]
    summary.line_counts = pipeline.rules.line_counts()
    summary.tracks = services.sink.tracks_saved
    background = draw_scene(last_image[0], camera) if last_image else None
    heatmap_path = out_dir / "heatmap.png"
    if pipeline.heatmap is not None:
        heatmap_path.write_bytes(pipeline.heatmap.to_png(background))
    summary.files = {
        "annotated video": annotated.path,
        "heatmap": heatmap_path,
        "counts chart": counts_chart(samples, out_dir / "counts.png", f"People per zone — {camera.name}"),
        "events database": out_dir / "vigil.db",
        "event log": out_dir / "events.jsonl",
        "snapshots": out_dir / "snapshots",
        "recordings": out_dir / "recordings",
    }
    return summary


DEMO_USER = "demo"


def live_config(out_dir: Path) -> tuple[Config, Path, tuple[str, str], list[LeftOut]]:
    """The live demo city for the command centre: the PETS09 camera and the ``city.yaml`` cameras found in
    VIGIL_DATA, replayed in real time (looped); its config file (which the camera admin page edits), a demo
    account (a supervisor on every camera; a new password each run) and the cameras left out, with why."""
    config = demo_config(out_dir, locate_vtest(), realtime=True, loop=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    city, left_out = city_cameras(out_dir.resolve() / "sources")
    config.cameras += city
    path = out_dir / "vigil.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    password = secrets.token_urlsafe(12)
    services = open_services(config)
    try:
        users = services.governance.users
        if users.find(DEMO_USER) is None:
            users.create(DEMO_USER, password, "supervisor", "vigil-demo", cameras=["*"], display_name="Demo")
        else:
            users.update(DEMO_USER, "vigil-demo", password=password)
    finally:
        services.store.close()
    return load_config(path), path, (DEMO_USER, password), left_out


def _expected_frames(video: Path, fps: float) -> int | None:
    capture = cv2.VideoCapture(str(video))
    frames, rate = capture.get(cv2.CAP_PROP_FRAME_COUNT), capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    return int(frames / rate * fps) if frames and rate else None
