"""Zone membership, enter/exit events, class filters, occupancy (vigil.analytics.zones via the engine)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import islice

from vigil.analytics.engine import RuleEngine
from vigil.analytics.ground_truth import BoxRow, box_on_ground, replay_tracks, scripted_walk
from vigil.config import CameraConfig
from vigil.types import Track, TrackState

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SQUARE = [[100, 100], [300, 100], [300, 300], [100, 300]]


def camera(**rules) -> CameraConfig:
    return CameraConfig.model_validate({
        "id": "cam1", "url": "file.mp4",
        "zones": [{"name": "square", "polygon": SQUARE},
                  {"name": "cars_only", "polygon": SQUARE, "classes": ["car"]}],
        "rules": rules,
    })


def walk_rows(track_id: int, xs: list[float], y: float = 200, label: str = "person") -> list[BoxRow]:
    return scripted_walk(track_id, [(x, y) for x in xs], label=label)


def run(engine: RuleEngine, rows: list[BoxRow], fps: float = 10.0, frames: int | None = None):
    """Feed a scripted scene to the engine frame by frame (all of it, or its first ``frames``)."""
    events = []
    for frame in islice(replay_tracks(rows, "cam1", fps, T0), frames):
        events += engine.update(frame.active, frame.ended, frame.at).events
    return events


def test_enter_and_exit_with_times_and_dwell():
    xs = [float(x) for x in range(20, 400, 20)]  # crosses the square from x=100 to x=300
    events = run(RuleEngine(camera()), walk_rows(7, xs))
    zone_events = [(e.kind, e.zone, e.track_id) for e in events]
    assert zone_events == [("zone_enter", "square", 7), ("zone_exit", "square", 7)]
    enter, leave = events
    # the 8 px dead band (0.1 × an 80 px box): x=100 on the border is not yet in, x=120 (frame 6) is
    assert enter.at == T0 + timedelta(seconds=0.5)
    assert leave.at == T0 + timedelta(seconds=1.5)  # x=320 is frame 16, 20 px outside
    assert leave.payload["dwell_s"] == 1.0 and leave.payload["reason"] == "left"
    assert enter.payload["occupancy"] == 1 and leave.payload["occupancy"] == 0


def test_jitter_along_the_border_enters_once():
    """Detection noise of ±5 px around the border must not make a burst of enter/exit pairs."""
    xs = [float(x) for x in range(20, 120, 20)] + [100 + (5 if i % 2 else -5) for i in range(20)] + [160, 200]
    events = [e for e in run(RuleEngine(camera()), walk_rows(3, xs)) if e.zone == "square"]
    assert [e.kind for e in events] == ["zone_enter", "zone_exit"]
    assert events[1].payload["reason"] == "track_ended"


def test_class_filter_only_cars_in_cars_only_zone():
    rows = walk_rows(1, [50, 200, 200, 200]) + walk_rows(2, [50, 200, 200, 200], label="car")
    engine = RuleEngine(camera())
    events = run(engine, rows, frames=4)  # stop before the end so they are still inside
    entered = sorted((e.zone, e.label) for e in events if e.kind == "zone_enter")
    assert entered == [("cars_only", "car"), ("square", "car"), ("square", "person")]
    assert engine.zones.occupancy() == {"square": {"car": 1, "person": 1}, "cars_only": {"car": 1}}


def test_disabled_zone_events_still_count_occupancy():
    engine = RuleEngine(camera(zone_events=False))
    rows = walk_rows(1, [200, 200, 200, 200, 200])
    assert run(engine, rows, frames=3) == []
    assert engine.current_counts()["square"] == {"person": 1}


def make_track(track_id: int, point: tuple[float, float], state: TrackState, at: datetime) -> Track:
    return Track("cam1", track_id, "person", at, at, state=state, boxes=[box_on_ground(*point)], box_times=[at],
                 trajectory=[point])


def test_new_tracks_ignored_lost_tracks_keep_position_ended_track_exits():
    engine = RuleEngine(camera())
    track = make_track(3, (200, 200), TrackState.NEW, T0)
    assert engine.update([track], [], T0).events == []  # NEW: flicker, ignored
    track.state = TrackState.CONFIRMED
    events = engine.update([track], [], T0 + timedelta(seconds=0.1)).events
    assert [e.kind for e in events] == ["zone_enter"]
    track.state = TrackState.LOST
    assert engine.update([track], [], T0 + timedelta(seconds=1)).events == []
    assert engine.current_counts()["square"] == {"person": 1}  # still inside while lost
    track.state = TrackState.ENDED
    events = engine.update([], [track], T0 + timedelta(seconds=4)).events
    assert [(e.kind, e.payload["reason"]) for e in events] == [("zone_exit", "track_ended")]
    assert events[0].payload["dwell_s"] == 3.9
    assert engine.tracked_ids() == set()


def test_lost_track_never_confirmed_is_ignored():
    engine = RuleEngine(camera())
    track = make_track(4, (200, 200), TrackState.LOST, T0)
    assert engine.update([track], [], T0).events == []
    assert engine.tracked_ids() == set()


def test_track_vanishing_without_ended_report_is_dropped():
    engine = RuleEngine(camera())
    track = make_track(5, (200, 200), TrackState.CONFIRMED, T0)
    engine.update([track], [], T0)
    events = engine.update([], [], T0 + timedelta(seconds=1)).events
    assert [e.kind for e in events] == ["zone_exit"]
    assert engine.tracked_ids() == set()
