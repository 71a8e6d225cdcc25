"""Running (with and without a ground homography) and stopped objects, on synthetic jittery trajectories."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from vigil.analytics.behaviour import track_speed
from vigil.analytics.engine import RuleEngine
from vigil.analytics.geometry import GroundMapper
from vigil.analytics.ground_truth import BoxRow, replay_tracks, scripted_walk
from vigil.config import CameraConfig
from vigil.types import Event

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
FPS = 10.0
# A perspective homography: 1 px ≈ 2 cm near y=400, more further up the picture.
HOMOGRAPHY = [[0.02, 0.0, 0.0], [0.0, 0.02, 0.0], [0.0, 0.0004, 0.84]]


def engine_for(homography=None, **rules) -> RuleEngine:
    cam = CameraConfig.model_validate({
        "id": "cam1", "url": "f.mp4", "homography": homography,
        "zones": [{"name": "kerb", "polygon": [[0, 300], [800, 300], [800, 500], [0, 500]]}],
        "rules": rules,
    })
    return RuleEngine(cam)


def run(engine: RuleEngine, rows: list[BoxRow], kind: str) -> list[Event]:
    events = []
    for frame in replay_tracks(rows, "cam1", FPS, T0):
        events += [e for e in engine.update(frame.active, frame.ended, frame.at).events if e.kind == kind]
    return events


def mover(track_id: int, speeds_px: list[float], y: float = 400, seed: int = 0, jitter: float = 2.0,
          label: str = "person", height: float = 80.0) -> list[BoxRow]:
    """Moves right along y at the given pixels-per-frame speeds, with seeded box jitter."""
    rng = np.random.default_rng(seed)
    xs = 20 + np.cumsum([0.0, *speeds_px])
    noise = rng.uniform(-jitter, jitter, size=(len(xs), 2))
    return scripted_walk(track_id, [(x + dx, y + dy) for x, (dx, dy) in zip(xs, noise, strict=True)],
                         label=label, height=height)


def metres_per_frame_to_px(metres_per_s: float, y: float = 400) -> float:
    mapper = GroundMapper(HOMOGRAPHY)
    a, b = mapper.to_ground([(100, y), (101, y)])
    return metres_per_s / FPS / float(np.hypot(*(b - a)))


def test_running_with_homography_runner_fires_walker_does_not():
    walk, sprint = metres_per_frame_to_px(1.5), metres_per_frame_to_px(5.0)
    rows = mover(1, [walk] * 60, seed=1) + mover(2, [sprint] * 25, seed=2)
    events = run(engine_for(HOMOGRAPHY, running={}), rows, "running")
    assert [e.track_id for e in events] == [2]
    event = events[0]
    assert event.payload["unit"] == "m/s" and 4.5 < event.payload["speed"] < 5.5
    # first estimate after 0.3 s of track (0.6 s window half-full), sustained 1.0 s more
    assert event.at == T0 + timedelta(seconds=1.3)


def test_running_without_homography_in_box_heights():
    height = 80.0
    walk, sprint = 0.8 * height / FPS, 2.6 * height / FPS  # 0.8 and 2.6 box heights per second
    rows = mover(1, [walk] * 60, seed=3) + mover(2, [sprint] * 25, seed=4, y=450)
    events = run(engine_for(running={}), rows, "running")
    assert [e.track_id for e in events] == [2]
    assert events[0].payload["unit"] == "heights/s" and 2.3 < events[0].payload["speed"] < 2.9


def test_short_sprint_and_vehicles_do_not_count_as_running():
    height = 80.0
    burst = [0.8 * height / FPS] * 20 + [2.6 * height / FPS] * 8 + [0.8 * height / FPS] * 20  # 0.8 s burst
    rows = mover(1, burst, seed=5) + mover(2, [3 * height / FPS] * 30, label="car", seed=6)
    assert run(engine_for(running={}), rows, "running") == []


def test_running_fires_once_per_spell():
    fast, slow = 2.6 * 80 / FPS, 0.5 * 80 / FPS
    rows = mover(1, [fast] * 20 + [slow] * 20 + [fast] * 20, seed=7)
    events = run(engine_for(running={}), rows, "running")
    assert len(events) == 2


def test_speed_estimate_of_a_steady_walker():
    rows = mover(1, [metres_per_frame_to_px(1.4)] * 10, jitter=0.0)
    frames = list(replay_tracks(rows, "cam1", FPS, T0))
    track = frames[-1].ended[0]
    speed, unit = track_speed(track, GroundMapper(HOMOGRAPHY))
    assert unit == "m/s" and abs(speed - 1.4) < 0.1


def stopped_rule(**extra) -> dict:
    return {"stopped": {"seconds": 10, "max_motion_px": 10} | extra}


def test_stopped_vehicle_fires_once_after_seconds():
    arrive = [(20 + 30 * i, 400) for i in range(10)]  # drives in for 1 s
    rng = np.random.default_rng(8)
    parked = [(290 + dx, 400 + dy) for dx, dy in rng.uniform(-3, 3, size=(200, 2))]  # 20 s with jitter
    rows = scripted_walk(1, arrive + parked, label="car", height=120)
    rows += scripted_walk(2, [(500, 420)] * 200, label="person")  # people are not in the rule's classes
    events = run(engine_for(**stopped_rule()), rows, "stopped_object")
    assert [(e.track_id, e.zone) for e in events] == [(1, "kerb")]
    # it arrived at frame 10 (t=0.9 s); the first parked point is within 10 px of it
    assert events[0].at == T0 + timedelta(seconds=10.9)


def test_creeping_vehicle_and_zone_filter():
    creep = [(20 + 1.5 * i, 400) for i in range(200)]  # 15 px/s: leaves each 10 px stay within a second
    still_outside = [(500, 200)] * 200  # outside the kerb zone
    rows = scripted_walk(1, creep, label="car") + scripted_walk(2, still_outside, label="truck")
    assert run(engine_for(**stopped_rule(zones=["kerb"])), rows, "stopped_object") == []
    events = run(engine_for(**stopped_rule()), rows, "stopped_object")
    assert [(e.track_id, e.zone) for e in events] == [(2, None)]
