"""The rule engine end to end: bounded state, config errors, and real PETS09-S2L1 ground-truth tracks."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import cv2
import numpy as np
import pytest
import supervision as sv

from vigil.analytics.engine import RuleEngine
from vigil.analytics.ground_truth import (
    mot_ground_homography,
    mot_ground_truth_tracks,
    read_mot,
    replay_tracks,
    scripted_walk,
)
from vigil.analytics.heatmap import DensityHeatmap
from vigil.config import CameraConfig
from vigil.errors import ConfigError, DataError
from vigil.paths import data_root

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
GT = "mot/PETS09-S2L1/gt/gt.txt"
EVERY_RULE = {"loitering": {"seconds": 5}, "crowd": {"threshold": 3}, "running": {},
              "stopped": {"seconds": 5, "classes": ["person"]}}


def gt_path():
    path = data_root() / GT
    if not path.exists():
        pytest.skip(f"PETS09-S2L1 ground truth not found at {path} (set VIGIL_DATA)")
    return path


def camera(homography=None, **rules) -> CameraConfig:
    return CameraConfig.model_validate({
        "id": "pets", "url": "vtest.avi", "homography": homography,
        "zones": [{"name": "left", "polygon": [[0, 0], [384, 0], [384, 576], [0, 576]]}],
        # drawn top to bottom and a little past the 576-px picture, where feet of boxes cut by the edge are
        "lines": [{"name": "middle", "start": [384, 0], "end": [384, 600], "allowed_direction": "in"}],
        "rules": rules,
    })


def test_unknown_rule_zone_is_a_config_error():
    with pytest.raises(ConfigError, match=r"camera 'pets': rules.loitering.zones: no zone named 'bench'"):
        RuleEngine(camera(loitering={"zones": ["bench"]}))
    with pytest.raises(ConfigError, match="camera 'pets': homography must be an invertible"):
        RuleEngine(camera(homography=[[0, 0, 0], [0, 0, 0], [0, 0, 1]]))


def test_state_is_dropped_when_tracks_end():
    rows = []
    for i in range(30):  # 30 people cross the scene one after another, each for 2 s
        rows += scripted_walk(i, [(300 + 20 * k, 300) for k in range(20)], first_frame=1 + 10 * i)
    engine = RuleEngine(camera(**EVERY_RULE))
    for frame in replay_tracks(rows, "pets", 10.0, T0):
        engine.update(frame.active, frame.ended, frame.at)
        assert engine.tracked_ids() <= {t.track_id for t in frame.active}  # only live tracks hold state
    assert engine.tracked_ids() == set()
    # walking right across a line drawn top to bottom is "in"
    assert engine.line_counts() == {"middle": {"in": {"person": 30}, "out": {}}}


def test_mot_reader_names_bad_line(tmp_path):
    bad = tmp_path / "gt.txt"
    bad.write_text("1,1,10,10,5,5,1,-1,-1,-1\n2,x,10,10,5,5\n")
    with pytest.raises(DataError, match=r"gt.txt:2: not a MOT row"):
        read_mot(bad)
    with pytest.raises(DataError, match="cannot read MOT file"):
        read_mot(tmp_path / "missing.txt")


def test_pets_ground_truth_walkers_never_run_but_do_when_replayed_three_times_faster():
    path = gt_path()
    homography = mot_ground_homography(path)
    for h in (homography, None):
        engine = RuleEngine(camera(h, running={}))
        kinds = Counter(e.kind for f in mot_ground_truth_tracks(path, "pets", fps=10.0)
                        for e in engine.update(f.active, f.ended, f.at).events)
        assert kinds["running"] == 0, f"walkers ran (homography={h is not None})"
    engine = RuleEngine(camera(homography, running={}))
    runners = {e.track_id for f in mot_ground_truth_tracks(path, "pets", fps=30.0)
               for e in engine.update(f.active, f.ended, f.at).events if e.kind == "running"}
    assert len(runners) >= 15  # of the 19 pedestrians (all 19 here): 3× walking pace is running pace


def test_pets_ground_homography_maps_feet_to_world_metres():
    path = gt_path()
    rows = [r for r in read_mot(path) if r.world is not None]
    feet = np.array([((r.box[0] + r.box[2]) / 2, r.box[3]) for r in rows]).reshape(-1, 1, 2)
    world = cv2.perspectiveTransform(feet, np.array(mot_ground_homography(path))).reshape(-1, 2)
    errors = np.linalg.norm(world - np.array([r.world for r in rows]), axis=1)
    assert np.median(errors) < 0.1  # metres


def test_pets_line_counts_agree_with_supervision_line_zone():
    path = gt_path()
    engine = RuleEngine(camera())
    zone = sv.LineZone(sv.Point(384, 0), sv.Point(384, 600), triggering_anchors=[sv.Position.BOTTOM_CENTER])
    heatmap = DensityHeatmap(768, 576, cell_px=16)
    engine.heatmap = heatmap
    events, theirs = [], []
    for frame in mot_ground_truth_tracks(path, "pets", fps=10.0):
        events += engine.update(frame.active, frame.ended, frame.at).events
        seen = [t for t in frame.active if t.box_times and t.box_times[-1] == frame.at]
        if seen:
            crossed_in, crossed_out = zone.trigger(sv.Detections(xyxy=np.array([t.box for t in seen]),
                                                                 tracker_id=np.array([t.track_id for t in seen])))
            theirs += [(t.track_id, "in" if i else "out") for t, i, o in zip(seen, crossed_in, crossed_out,
                                                                           strict=True) if i or o]
    counts = engine.line_counts()["middle"]
    assert (counts["in"]["person"], counts["out"]["person"]) == (zone.in_count, zone.out_count) == (14, 18)
    # the same crossings by the same people (ours may come a frame later: dead band)
    ours = [(e.track_id, e.payload["direction"]) for e in events if e.kind == "line_cross"]
    assert sorted(ours) == sorted(theirs)
    wrong = [e for e in events if e.kind == "wrong_way"]
    assert len(wrong) == zone.out_count and all(e.payload["direction"] == "out" for e in wrong)
    enters = sum(e.kind == "zone_enter" for e in events)
    assert enters == sum(e.kind == "zone_exit" for e in events) > 0
    # the heat lies where people walked: every ground-truth foot point's cell is warm, the sky is cold
    feet = [((r.box[0] + r.box[2]) / 2, r.box[3]) for r in read_mot(path)]
    assert all(heatmap.grid[int(y) // 16, int(x) // 16] > 0 for x, y in feet if 0 <= x < 768 and 0 <= y < 576)
    assert heatmap.grid[:5].sum() == 0  # top 80 px of the picture: buildings, nobody stands there
    png = heatmap.to_png(np.zeros((576, 768, 3), np.uint8))
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (576, 768, 3)


def test_heatmap_shape_and_heat_where_people_walked():
    heatmap = DensityHeatmap(640, 480, cell_px=10)
    engine = RuleEngine(camera(), heatmap=heatmap)
    rows = scripted_walk(1, [(100 + 10 * k, 400) for k in range(30)])
    rows += scripted_walk(2, [(300, 200)] * 30, label="car")  # not a person: no heat
    for frame in replay_tracks(rows, "pets", 10.0, T0):
        engine.update(frame.active, frame.ended, frame.at)
    assert heatmap.grid.shape == (48, 64)
    assert heatmap.grid[40, 10:39].min() > 0 and heatmap.grid.sum() == heatmap.grid[40].sum() == 30
    assert heatmap.grid[20, 30] == 0
    frame = np.full((480, 640, 3), 90, np.uint8)
    overlay = heatmap.render(frame)
    assert overlay.shape == (480, 640, 3)
    assert np.abs(overlay.astype(int) - frame).sum(axis=2)[400, 250] > 30  # coloured on the path
    assert (overlay[100, 600] == frame[100, 600]).all()  # untouched far from it
    png = heatmap.to_png(frame)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_count_samples_are_once_per_second_of_capture_time():
    engine = RuleEngine(camera())
    rows = scripted_walk(1, [(100, 300)] * 25)
    seconds = []
    for frame in replay_tracks(rows, "pets", 10.0, T0 + timedelta(milliseconds=950)):
        seconds += sorted({s.at for s in engine.update(frame.active, frame.ended, frame.at).counts})
    assert seconds == [T0 + timedelta(milliseconds=ms) for ms in (950, 1050, 2050, 3050)]
