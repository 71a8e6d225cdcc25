"""The ``forbidden_class`` rule on scripted tracks, the AUC helper, and ``vigil bench anomaly`` on UCSD Ped2 clips."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from itertools import product
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from vigil.analytics.engine import RuleEngine
from vigil.analytics.ground_truth import BoxRow, replay_tracks, scripted_walk
from vigil.bench.anomaly import Clip, load_set, roc_auc, run_clip, scene_config
from vigil.cli import app
from vigil.config import VEHICLE_CLASSES, CameraConfig, ForbiddenClassRule
from vigil.errors import ConfigError, DataError
from vigil.paths import data_root
from vigil.types import Event
from vigil.vision.detector import create_detector

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
FPS = 10.0
WALKWAY = [[0, 200], [600, 200], [600, 400], [0, 400]]
LAWN = [[0, 0], [600, 0], [600, 120], [0, 120]]


def engine_for(camera_zones: tuple = ("walkway", "lawn"), **rule) -> RuleEngine:
    polygons = {"walkway": WALKWAY, "lawn": LAWN}
    cam = CameraConfig.model_validate({
        "id": "cam1", "url": "f.mp4",
        "zones": [{"name": z, "polygon": polygons[z], "classes": ["person"]} for z in camera_zones],
        "rules": {"zone_events": False, "forbidden_class": rule},
    })
    return RuleEngine(cam)


def run(engine: RuleEngine, rows: list[BoxRow]) -> list[Event]:
    events = []
    for frame in replay_tracks(rows, "cam1", FPS, T0):
        events += [e for e in engine.update(frame.active, frame.ended, frame.at).events if e.kind == "forbidden_class"]
    return events


def ride(track_id: int, frames: int, y: float = 300, first_frame: int = 1, label: str = "bicycle",
         x0: float = 20, step: float = 4) -> list[BoxRow]:
    """Rides right along ``y`` at ``step`` px per frame for ``frames`` frames."""
    return scripted_walk(track_id, [(x0 + step * i, y) for i in range(frames)], first_frame=first_frame,
                         label=label, height=40)


# ---------------------------------------------------------------- the forbidden_class rule


def test_a_bicycle_on_the_walkway_fires_once_after_min_duration():
    rows = ride(1, 40) + ride(2, 40, label="person", y=320)
    events = run(engine_for(zones=["walkway"]), rows)
    assert [(e.track_id, e.label, e.zone) for e in events] == [(1, "bicycle", "walkway")]
    assert events[0].at == T0 + timedelta(seconds=1.0)  # in the zone from frame 1, 1.0 s of observations
    assert events[0].severity == "warning" and events[0].payload["duration_s"] == 1.0


def test_zone_and_class_filters():
    rows = ride(1, 40, y=60, label="car") + ride(2, 40, label="bus", y=330) + ride(3, 40, label="car", y=360)
    events = run(engine_for(zones=["walkway"], classes=["car"], cooldown_s=0), rows)
    assert [e.track_id for e in events] == [3]  # 1 is on the lawn, 2 is not a watched class


def test_empty_zones_watch_every_zone_and_no_zones_the_whole_view():
    rows = ride(1, 20, y=60) + ride(2, 20, y=300, first_frame=30)
    assert [e.zone for e in run(engine_for(cooldown_s=0), rows)] == ["lawn", "walkway"]
    assert [e.zone for e in run(engine_for(camera_zones=(), cooldown_s=0), ride(1, 20, y=150))] == [None]


def test_min_duration_a_short_stay_does_not_fire():
    # 10 frames: 0.9 s from first to last observation, then the track ends
    assert run(engine_for(zones=["walkway"], min_duration_s=1.0), ride(1, 10)) == []
    assert len(run(engine_for(zones=["walkway"], min_duration_s=1.0), ride(1, 11))) == 1
    assert len(run(engine_for(zones=["walkway"], min_duration_s=0), ride(1, 1))) == 1


def test_cooldown_suppresses_a_second_track_in_the_same_zone():
    fragments = ride(1, 30) + ride(2, 30, first_frame=5, y=330)  # one cyclist split into two tracks
    later = ride(3, 20, first_frame=141, y=350)  # 14 s: after the 10 s cooldown
    events = run(engine_for(zones=["walkway"], cooldown_s=10), fragments + later)
    assert [(e.track_id, e.at) for e in events] == [(1, T0 + timedelta(seconds=1.0)),
                                                   (3, T0 + timedelta(seconds=15.0))]
    assert [e.track_id for e in run(engine_for(zones=["walkway"], cooldown_s=0), fragments)] == [1, 2]


def test_leaving_and_coming_back_is_a_new_stay():
    path = [(20 + 4 * i, 300) for i in range(15)] + [(80, 160)] * 10 + [(80, 300)] * 15  # walkway, off, walkway
    rows = scripted_walk(1, path, label="motorcycle", height=40)
    assert len(run(engine_for(zones=["walkway"], cooldown_s=0), rows)) == 2
    assert len(run(engine_for(zones=["walkway"], cooldown_s=10), rows)) == 1


def test_rule_state_is_dropped_with_the_track_and_zones_are_checked():
    engine = engine_for(zones=["walkway"])
    run(engine, ride(1, 20))
    assert engine.forbidden is not None and engine.forbidden.tracked_ids() == set()
    with pytest.raises(ConfigError, match=r"rules\.forbidden_class\.zones: no zone named 'road'"):
        engine_for(zones=["road"])
    assert ForbiddenClassRule().classes == list(VEHICLE_CLASSES)
    with pytest.raises(ValueError):
        ForbiddenClassRule(classes=[])


# ---------------------------------------------------------------- the AUC helper and the set layout


def test_roc_auc_known_cases():
    assert roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert roc_auc([1, 2, 3, 4], [0, 0, 1, 1]) == 1.0
    assert roc_auc([4, 3, 2, 1], [0, 0, 1, 1]) == 0.0
    assert roc_auc([5, 5, 5, 5], [0, 1, 0, 1]) == 0.5  # ties count half
    assert roc_auc([1, 2, 3], [1, 1, 1]) is None


def test_roc_auc_matches_pairwise_counting_with_ties():
    rng = np.random.default_rng(7)
    scores, labels = rng.integers(0, 6, 300).astype(float), rng.random(300) < 0.4
    pos, neg = scores[labels], scores[~labels]
    pairs = [(p > n) + 0.5 * (p == n) for p, n in product(pos, neg)]
    assert roc_auc(scores, labels) == pytest.approx(float(np.mean(pairs)))


def test_load_set_reads_ranges_and_skips_clips_without_frames(tmp_path):
    for clip in ("01", "02"):
        (tmp_path / "frames" / clip).mkdir(parents=True)
        for i in range(3):
            cv2.imwrite(str(tmp_path / "frames" / clip / f"{i:03d}.jpg"), np.zeros((24, 36, 3), np.uint8))
    (tmp_path / "labels.csv").write_text("clip,first_abnormal_frame,last_abnormal_frame,frames\n"
                                         "01,2,3,3\n02,,,3\n03,1,5,5\n")
    clips = load_set(tmp_path)
    assert [(c.name, len(c.frames), c.abnormal) for c in clips] == [("01", 3, (2, 3)), ("02", 3, None)]
    assert [clips[0].is_abnormal(n) for n in (1, 2, 3, 4)] == [False, True, True, False]
    (tmp_path / "labels.csv").write_text("clip,first,last\n01,2,3\n")
    with pytest.raises(DataError, match="expected clip,first_abnormal_frame"):
        load_set(tmp_path)


# ---------------------------------------------------------------- on UCSD Ped2 (real detector, tracker, rules)


@pytest.fixture(scope="module")
def ped2() -> Path:
    folder = data_root() / "anomaly" / "ucsd_ped2"
    if not (folder / "labels.csv").exists():
        pytest.skip(f"UCSD Ped2 not found in {folder.parent} (set VIGIL_DATA)")
    return folder


@pytest.fixture(scope="module")
def clip01_alerts(ped2: Path) -> list[tuple[int, Event]]:
    """Clip 01 (a cyclist from frame 61, pedestrians only before) through the shipped scene."""
    config = scene_config()
    clip = next(c for c in load_set(ped2) if c.name == "01")
    assert clip.abnormal == (61, 180)
    return run_clip(config, create_detector(config.detector), clip, picture=False).alerts


def test_pedestrians_only_raise_no_alert(clip01_alerts):
    assert [(n, e.kind) for n, e in clip01_alerts if n <= 60] == []


def test_the_cyclist_raises_the_forbidden_class_alert(clip01_alerts):
    cyclist = [(n, e) for n, e in clip01_alerts if e.kind == "forbidden_class"]
    assert cyclist and all(61 <= n <= 180 for n, _ in cyclist)
    assert cyclist[0][1].label in ("bicycle", "motorcycle") and cyclist[0][1].zone == "walkway"


def test_bench_end_to_end_on_a_subset(ped2, tmp_path, monkeypatch):
    """Clips 01 and 04 (the cart) linked into a set of their own, 60 frames each, through the CLI."""
    subset = tmp_path / "data" / "anomaly" / "subset"
    (subset / "frames").mkdir(parents=True)
    for clip in ("01", "04"):
        (subset / "frames" / clip).symlink_to(ped2 / "frames" / clip, target_is_directory=True)
    (subset / "labels.csv").write_text("clip,first_abnormal_frame,last_abnormal_frame,frames\n"
                                       "01,61,180,180\n04,31,180,180\n")
    monkeypatch.setenv("VIGIL_DATA", str(tmp_path / "data"))
    image = tmp_path / "anomaly.png"
    result = CliRunner().invoke(app, ["bench", "anomaly", "--set", "subset", "--json", "--frames", "60",
                                      "--image", str(image)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["frames"] == 120 and report["abnormal_frames"] == 30  # clip 04 frames 31–60
    assert 0.5 < report["auc"] <= 1.0
    assert report["alerts"]["clips_labelled"] == 1  # clip 01's range starts after the 60 frames
    assert report["clips"]["01"]["alert_count"] == 0
    cart = report["clips"]["04"]
    assert report["alerts"]["precision"] == 1.0 and report["alerts"]["recall"] == 1.0
    assert cart["inside"] >= 1 and cart["first_alert_frame"] >= 31
    assert cart["alerts"][0]["kind"] == "forbidden_class" and cart["alerts"][0]["label"] in ("car", "truck")
    assert report["ms_per_frame"] > 0
    picture = cv2.imread(str(image))
    assert picture is not None and picture.shape[0] > 400


def test_clip_without_frames_is_an_error(tmp_path):
    (tmp_path / "labels.csv").write_text("clip,first_abnormal_frame,last_abnormal_frame,frames\n01,1,2,2\n")
    with pytest.raises(DataError, match="no clip"):
        load_set(tmp_path)
    assert Clip("x", [], None).is_abnormal(1) is False
