"""Loitering: fires at the dwell threshold, not before, once per track and zone; classes and zones filter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from vigil.analytics.engine import RuleEngine
from vigil.analytics.ground_truth import BoxRow, replay_tracks, scripted_walk
from vigil.config import CameraConfig
from vigil.types import Event

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
BENCH = [[100, 100], [300, 100], [300, 300], [100, 300]]
GATE = [[400, 100], [600, 100], [600, 300], [400, 300]]


def engine_for(camera_zones=(("bench", BENCH), ("gate", GATE)), **loitering) -> RuleEngine:
    cam = CameraConfig.model_validate({
        "id": "cam1", "url": "f.mp4",
        "zones": [{"name": name, "polygon": polygon} for name, polygon in camera_zones],
        "rules": {"loitering": {"seconds": 10} | loitering},
    })
    return RuleEngine(cam)


def run(engine: RuleEngine, rows: list[BoxRow], fps: float = 2.0) -> list[Event]:
    events = []
    for frame in replay_tracks(rows, "cam1", fps, T0):
        events += [e for e in engine.update(frame.active, frame.ended, frame.at).events if e.kind == "loitering"]
    return events


def stay(track_id: int, point, seconds: float, fps: float = 2.0, label: str = "person", first_frame: int = 1):
    return scripted_walk(track_id, [point] * int(seconds * fps), label=label, first_frame=first_frame)


def test_fires_at_threshold_not_before_and_once():
    # Outside for 2 s, then 30 s on the bench: enters at frame 5 (t=2.0 s), loiters from t=12.0 s.
    rows = stay(1, (50, 200), 2) + stay(1, (200, 200), 30, first_frame=5)
    events = run(engine_for(), rows)
    assert len(events) == 1
    event = events[0]
    assert (event.zone, event.track_id, event.at) == ("bench", 1, T0 + timedelta(seconds=12))
    assert event.payload["dwell_s"] == 10.0 and event.severity == "warning"


def test_short_stay_does_not_fire():
    assert run(engine_for(), stay(1, (200, 200), 9.5)) == []


def test_leaving_resets_dwell_and_each_zone_fires_once():
    # 8 s on the bench, 1 s outside, 12 s on the bench, 12 s at the gate
    rows = stay(1, (200, 200), 8) + stay(1, (350, 200), 1, first_frame=17)
    rows += stay(1, (200, 200), 12, first_frame=19) + stay(1, (500, 200), 12, first_frame=43)
    events = run(engine_for(), rows)
    assert [(e.zone, e.at) for e in events] == [
        ("bench", T0 + timedelta(seconds=19)),  # re-entered at t=9 s
        ("gate", T0 + timedelta(seconds=31)),  # entered at t=21 s
    ]


def test_rule_classes_and_zones_filter():
    rows = stay(1, (200, 200), 12, label="car") + stay(2, (500, 200), 12) + stay(3, (200, 200), 12)
    events = run(engine_for(zones=["bench"]), rows)
    assert [(e.track_id, e.zone) for e in events] == [(3, "bench")]


def test_without_zones_the_whole_view_counts():
    events = run(engine_for(camera_zones=()), stay(1, (200, 200), 12))
    assert [(e.zone, e.at) for e in events] == [(None, T0 + timedelta(seconds=10))]


def test_a_hidden_person_keeps_dwelling_but_stops_counting():
    """Lost (occluded) on the bench after 4 s: still loiters at 10 s, but leaves the people count after 3 s lost."""
    rows = stay(1, (200, 200), 4) + stay(2, (700, 500), 20)  # person 2, off the zones, keeps frames coming
    engine = engine_for()
    loitering, bench_count = [], {}
    for frame in replay_tracks(rows, "cam1", 2.0, T0, end_after_s=10.0):
        loitering += [e for e in engine.update(frame.active, frame.ended, frame.at).events if e.kind == "loitering"]
        bench_count[(frame.at - T0).total_seconds()] = engine.current_counts()["bench"].get("person", 0)
    assert [(e.track_id, e.at) for e in loitering] == [(1, T0 + timedelta(seconds=10))]
    # last seen at 3.5 s: counted while lost up to 6.5 s, not after
    assert bench_count[3.5] == bench_count[6.5] == 1
    assert bench_count[7.0] == bench_count[9.0] == 0
