"""Line crossings: direction convention, counts per class and direction, wrong way, jitter, lost gaps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import islice

import numpy as np
import supervision as sv

from vigil.analytics.engine import RuleEngine
from vigil.analytics.geometry import segments_intersect, side_of_line
from vigil.analytics.ground_truth import BoxRow, replay_tracks, scripted_walk
from vigil.config import CameraConfig
from vigil.types import Event

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
# A horizontal line drawn left to right at y=300, from x=100 to x=500: "in" means moving up the picture.
LINE = {"name": "door", "start": [100, 300], "end": [500, 300]}


def engine_for(**line) -> RuleEngine:
    cam = CameraConfig.model_validate({"id": "cam1", "url": "f.mp4", "lines": [LINE | line]})
    return RuleEngine(cam)


def run(engine: RuleEngine, rows: list[BoxRow], frames: int | None = None) -> list[Event]:
    events = []
    for frame in islice(replay_tracks(rows, "cam1", 10.0, T0), frames):
        events += engine.update(frame.active, frame.ended, frame.at).events
    return events


def vertical(track_id: int, x: float, ys, label: str = "person", first_frame: int = 1) -> list[BoxRow]:
    return scripted_walk(track_id, [(x, y) for y in ys], label=label, first_frame=first_frame)


UP = list(range(400, 199, -20))  # y from 400 to 200
DOWN = UP[::-1]


def test_direction_convention_matches_supervision():
    # supervision's LineZone counts the same move as "in"
    zone = sv.LineZone(sv.Point(100, 300), sv.Point(500, 300), triggering_anchors=[sv.Position.BOTTOM_CENTER])
    for y in (400, 200):
        zone.trigger(sv.Detections(xyxy=np.array([[290, y - 80, 310, y]], float), tracker_id=np.array([1])))
    assert (zone.in_count, zone.out_count) == (1, 0)
    events = run(engine_for(), vertical(1, 300, [400, 200]))
    assert [(e.kind, e.payload["direction"]) for e in events] == [("line_cross", "in")]


def test_crossing_each_direction_with_counts_per_class():
    engine = engine_for()
    rows = vertical(1, 200, UP) + vertical(2, 300, DOWN) + vertical(3, 400, UP, label="car")
    rows += vertical(4, 450, DOWN, first_frame=20)
    events = run(engine, rows)
    crossings = sorted((e.track_id, e.payload["direction"], e.label) for e in events if e.kind == "line_cross")
    assert crossings == [(1, "in", "person"), (2, "out", "person"), (3, "in", "car"), (4, "out", "person")]
    assert engine.line_counts() == {"door": {"in": {"car": 1, "person": 1}, "out": {"person": 2}}}
    last = max((e for e in events if e.kind == "line_cross"), key=lambda e: e.at)
    assert last.track_id == 4 and last.payload["counts"] == engine.line_counts()["door"]
    crossing_time = next(e.at for e in events if e.track_id == 1)
    assert crossing_time == T0 + timedelta(seconds=0.6)  # y=280 is frame 7, the first point past the line


def test_class_filter_and_disabled_line_events_keep_counting():
    engine = engine_for(classes=["car"])
    run(engine, vertical(1, 200, UP) + vertical(2, 300, UP, label="car"))
    assert engine.line_counts() == {"door": {"in": {"car": 1}, "out": {}}}
    cam = CameraConfig.model_validate({"id": "cam1", "url": "f.mp4", "lines": [LINE],
                                       "rules": {"line_events": False}})
    quiet = RuleEngine(cam)
    assert run(quiet, vertical(1, 200, UP)) == []
    assert quiet.line_counts()["door"]["in"] == {"person": 1}


def test_wrong_way_only_against_allowed_direction():
    engine = engine_for(allowed_direction="in")
    events = run(engine, vertical(1, 200, UP) + vertical(2, 300, DOWN))
    wrong = [e for e in events if e.kind == "wrong_way"]
    assert [(e.track_id, e.payload["direction"], e.severity, e.zone) for e in wrong] == [(2, "out", "warning", "door")]


def test_going_round_the_end_is_not_a_crossing():
    path = [(600, 400), (600, 200)]  # beyond the end of the segment at x=500
    events = run(engine_for(), scripted_walk(1, path))
    assert events == []


def test_jitter_on_the_line_counts_once():
    ys = [340, 320, 302, 298, 301, 299, 302, 298, 280, 260]  # wobbles within ±2 px of the line
    events = run(engine_for(), vertical(1, 300, ys))
    assert [e.payload["direction"] for e in events] == ["in"]


def test_crossing_during_a_lost_gap_is_counted_on_return():
    rows = vertical(1, 300, [400, 380, 360]) + vertical(1, 300, [240, 220], first_frame=15)  # unseen 1.1 s
    engine = engine_for()
    events = run(engine, rows)
    assert [(e.payload["direction"], e.at) for e in events] == [("in", T0 + timedelta(seconds=1.4))]


def test_segment_geometry():
    assert segments_intersect((0, 0), (2, 2), (0, 2), (2, 0))
    assert not segments_intersect((0, 0), (1, 1), (2, 0), (3, 0))
    assert segments_intersect((0, 0), (2, 0), (1, 0), (3, 0))  # collinear overlap
    assert not segments_intersect((0, 0), (1, 0), (2, 0), (3, 0))  # collinear apart
    assert side_of_line((0, -1), (0, 0), (1, 0)) < 0  # above a left→right line: left-hand side
