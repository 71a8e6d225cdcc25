"""Crowd counting: per-second samples, threshold with cooldown, surge and dispersal within the window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from vigil.analytics.crowd import CrowdMonitor
from vigil.analytics.engine import RuleEngine
from vigil.analytics.ground_truth import replay_tracks, scripted_walk
from vigil.config import CameraConfig, CrowdRule
from vigil.types import CountSample

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def feed(monitor: CrowdMonitor, counts: list[int], fps: float = 1.0, zone: str | None = None):
    """Per-frame people counts → [(seconds since T0, kind, count)] of the events raised."""
    out = []
    for i, count in enumerate(counts):
        at = T0 + timedelta(seconds=i / fps)
        out += [(i / fps, e.kind, e.payload["count"]) for e in monitor.update({zone: count}, at)]
    return out


def test_threshold_fires_then_respects_cooldown():
    monitor = CrowdMonitor("cam1", CrowdRule(threshold=5, surge_delta=100, dispersal_delta=100, cooldown_s=10))
    counts = [3, 4, 5, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 4, 6]
    assert feed(monitor, counts) == [(2.0, "crowd_threshold", 5), (12.0, "crowd_threshold", 6)]


def test_surge_within_window_only():
    rule = CrowdRule(threshold=1000, surge_delta=5, dispersal_delta=100, window_s=5, cooldown_s=0)
    slow = [0, 1, 2, 3, 4, 5, 6, 7, 8]  # one frame every 2 s, +1 each: at most +2 within 5 s
    assert feed(CrowdMonitor("cam1", rule), slow, fps=0.5) == []
    fast = [2, 2, 2, 2, 2, 2, 3, 5, 8, 9, 9, 9]
    events = feed(CrowdMonitor("cam1", rule), fast)
    assert events == [(8.0, "crowd_surge", 8)]  # 8 − 2 = 6 ≥ 5; baseline restarts, no repeat


def test_no_surge_while_a_camera_starts():
    """Tracks confirmed in the first seconds of a stream are people already there, not a surge."""
    rule = CrowdRule(threshold=1000, surge_delta=4, dispersal_delta=100, window_s=5, cooldown_s=0)
    assert feed(CrowdMonitor("cam1", rule), [0, 3, 6, 6, 6, 6, 6, 6]) == []


def test_dispersal_and_cooldown_between_dispersals():
    rule = CrowdRule(threshold=1000, surge_delta=100, dispersal_delta=4, window_s=3, cooldown_s=5)
    counts = [10] * 4 + [10, 10, 9, 5, 5, 9, 9, 4, 4, 4, 4, 4, 4, 4]  # 4 s of steady crowd: past the warm-up
    events = feed(CrowdMonitor("cam1", rule), counts)
    # t=7: 10→5 fires; the 9→4 fall at t=11 is inside the 5 s cooldown, and is reported when the cooldown
    # ends at t=12 because the 9 is still inside the 3 s window; then the baseline restarts: no repeats.
    assert events == [(7.0, "crowd_dispersal", 5), (12.0, "crowd_dispersal", 4)]


def crowd_camera(**crowd) -> CameraConfig:
    return CameraConfig.model_validate({
        "id": "cam1", "url": "f.mp4",
        "zones": [{"name": "plaza", "polygon": [[0, 0], [400, 0], [400, 400], [0, 400]]},
                  {"name": "road", "polygon": [[400, 0], [800, 0], [800, 400], [400, 400]], "classes": ["car"]}],
        "rules": {"crowd": {"threshold": 4, "cooldown_s": 60} | crowd},
    })


def test_engine_counts_people_per_zone_and_camera_and_samples_each_second():
    rows = []
    for i in range(5):  # five people arrive in the plaza one every 0.5 s, and stay
        rows += scripted_walk(i + 1, [(50 + 60 * i, 200)] * (40 - 5 * i), first_frame=1 + 5 * i)
    rows += scripted_walk(99, [(600, 200)] * 40, label="car")
    engine = RuleEngine(crowd_camera())
    samples: list[CountSample] = []
    events = []
    for frame in replay_tracks(rows, "cam1", 10.0, T0):
        out = engine.update(frame.active, frame.ended, frame.at)
        samples += out.counts
        events += out.events
    times = sorted({s.at for s in samples})
    assert times == [T0 + timedelta(seconds=s) for s in range(5)]  # 41 frames at 10 fps: seconds 0..4
    at_3s = {(s.zone, s.label): s.count for s in samples if s.at == T0 + timedelta(seconds=3)}
    assert at_3s == {(None, "car"): 1, (None, "person"): 5, ("plaza", "person"): 5, ("road", "car"): 1}
    at_4s = {(s.zone, s.label): s.count for s in samples if s.at == T0 + timedelta(seconds=4)}
    assert at_4s == {(None, "car"): 0, (None, "person"): 0, ("plaza", "person"): 0, ("road", "car"): 0}
    crowd = [(e.kind, e.zone, e.at) for e in events if e.kind.startswith("crowd")]
    # the 4th person arrives at t=1.5 s, in the plaza and on the camera (threshold 4)
    assert crowd == [("crowd_threshold", None, T0 + timedelta(seconds=1.5)),
                     ("crowd_threshold", "plaza", T0 + timedelta(seconds=1.5))]
