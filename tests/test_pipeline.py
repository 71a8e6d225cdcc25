"""The whole frame path on real video: readers → detector → tracker → rules → store, bus and files."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from vigil.assembly import open_services
from vigil.bench.mot import read_video_frames
from vigil.config import CameraConfig, DetectorConfig, TrackerConfig, load_config
from vigil.demo.run import DEMO_CONFIG, DEMO_START, demo_config
from vigil.errors import ConfigError
from vigil.runtime import CameraPipeline, Node
from vigil.types import Frame
from vigil.vision.detector import create_detector


@pytest.fixture(scope="module")
def vtest_clip(data_dir, tmp_path_factory) -> Path:
    """The first 30 s of vtest.avi (300 frames), stream-copied."""
    clip = tmp_path_factory.mktemp("clip") / "vtest30.avi"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(data_dir / "video/vtest.avi"), "-frames:v", "300",
                    "-c", "copy", str(clip)], check=True)
    return clip


@pytest.fixture(scope="module")
def pipeline_run(vtest_clip, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    config = demo_config(out, vtest_clip)
    services = open_services(config, start_time=DEMO_START).start(jsonl=out / "events.jsonl")
    node = Node(config, create_detector(config.detector), start_time=DEMO_START, packet_hooks=services.packet_hooks())
    services.attach(node)
    node.start().run(until_end=True)
    services.close()
    return out, node, services


def test_events_tracks_and_counts_are_stored(pipeline_run):
    out, node, _ = pipeline_run
    db = sqlite3.connect(out / "vigil.db")
    kinds = dict(db.execute("select kind, count(*) from events group by kind").fetchall())
    assert kinds.get("zone_enter", 0) >= 5 and kinds.get("line_cross", 0) >= 5, kinds
    assert kinds.get("zone_exit") == kinds.get("zone_enter")  # every entry is closed at the end of the stream
    assert db.execute("select count(*) from tracks where label = 'person'").fetchone()[0] >= 8
    per_second = db.execute("select count(distinct at) from counts where zone is null").fetchone()[0]
    assert 25 <= per_second <= 31  # one sample per second of the 30 s clip
    assert node.pipelines["campus-junction"].stats.frames == 150  # 300 frames at 10 fps, analysed at 5 fps


def test_snapshots_exist_for_events(pipeline_run):
    out, _, _ = pipeline_run
    db = sqlite3.connect(out / "vigil.db")
    snapshots = [row[0] for row in db.execute("select snapshot from events where kind = 'line_cross'")]
    assert snapshots and all(s and (out / s).stat().st_size > 1000 for s in snapshots)


def test_outbox_published_everything_to_the_bus(pipeline_run):
    out, _, services = pipeline_run
    db = sqlite3.connect(out / "vigil.db")
    stored = db.execute("select count(*) from events").fetchone()[0]
    unpublished = db.execute("select count(*) from outbox where published_at is null").fetchone()[0]
    assert unpublished == 0
    logged = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert len(logged) == stored == services.relay.published


def test_privacy_mask_is_black_in_snapshots(pipeline_run):
    import cv2

    out, _, _ = pipeline_run
    db = sqlite3.connect(out / "vigil.db")
    path = db.execute("select snapshot from events where snapshot is not null limit 1").fetchone()[0]
    image = cv2.imread(str(out / path))
    # the demo masks the building's windows: x 306-600, y 0-100 (JPEG keeps it near zero)
    assert image[5:95, 310:595].max() < 20


def test_bad_config_names_the_yaml_path(tmp_path):
    data = yaml.safe_load(DEMO_CONFIG.read_text())
    data["cameras"][0]["zones"][1]["polgon"] = data["cameras"][0]["zones"][1].pop("polygon")
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"bad\.yaml: cameras\[0\]\.zones\[1\]\.polygon: Field required"):
        load_config(path)
    proc = subprocess.run([sys.executable, "-m", "vigil", "run", "-c", str(path)], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "cameras[0].zones[1]" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_vigil_run_stops_cleanly_on_sigterm_losing_nothing(vtest_clip, tmp_path):
    data = yaml.safe_load(DEMO_CONFIG.read_text())
    data["data_dir"] = str(tmp_path / "data")
    data["cameras"][0].update(url=str(vtest_clip), loop=True, realtime=True)
    config = tmp_path / "vigil.yaml"
    config.write_text(yaml.safe_dump(data))
    proc = subprocess.Popen([sys.executable, "-m", "vigil", "run", "-c", str(config)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    db_path = tmp_path / "data" / "vigil.db"
    deadline = time.monotonic() + 90
    events = 0
    while time.monotonic() < deadline and events < 5:
        time.sleep(1)
        if db_path.exists():
            try:
                events = sqlite3.connect(db_path).execute("select count(*) from events").fetchone()[0]
            except sqlite3.OperationalError:
                events = 0  # migrations still running
    assert events >= 5, "no events within 90 s"
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    db = sqlite3.connect(db_path)
    assert db.execute("select count(*) from outbox where published_at is null").fetchone()[0] == 0
    # tracks alive at shutdown were ended and stored, their zone exits written
    enters = db.execute("select count(*) from events where kind = 'zone_enter'").fetchone()[0]
    exits = db.execute("select count(*) from events where kind = 'zone_exit'").fetchone()[0]
    assert enters == exits


def test_detector_interval_detects_one_frame_in_two_while_tracks_coast(data_dir):
    """``detector.interval: 1``: once people are tracked, every other frame skips the detector; on those
    frames the same tracks carry on (none ends) and time-based rules still see them."""
    camera = CameraConfig(id="cam", url="vtest.avi", fps=5.0)
    pipeline = CameraPipeline(camera, TrackerConfig(), motion_gate=False, interval=1)
    detector = create_detector(DetectorConfig(classes=["person"]))
    detected, coasted = [], []
    for index, image in enumerate(read_video_frames(data_dir / "video/vtest.avi", 60)):
        if index % 2:
            continue
        frame = Frame("cam", DEMO_START + timedelta(seconds=index / 10), index // 2, image)
        wanted = pipeline.needs_detection(frame)
        before = {t.track_id for t in pipeline.live}
        result = pipeline.process(frame, detector.detect([image])[0] if wanted else None)
        detected.append(wanted)
        if not wanted and before:
            coasted.append(before == {t.track_id for t in result.update.active} and not result.update.ended)
    assert detected[:4] == [True, False, True, False]
    assert sum(detected) == len(detected) // 2
    assert coasted and all(coasted)
    assert pipeline.stats.frames == len(detected) and pipeline.stats.detected == sum(detected)
