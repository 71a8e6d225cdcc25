"""The failover benchmark's judge, on heartbeat timelines made by hand: which worker analyses a camera, and
whether two ever analysed one camera at the same time. (The benchmark itself runs ``vigil bench failover``;
the failover it measures is tested on a real Ray cluster in ``test_cluster_ray.py``.)"""

from __future__ import annotations

import time

from vigil.bench.failover import HeartbeatLog


def beats(log: HeartbeatLog, camera: str, node: str, frames: list[int], start: float, every: float = 1.0) -> None:
    for i, count in enumerate(frames):
        log.samples[camera].append((start + i * every, node, count))


def test_a_clean_handover_is_not_double_analysis() -> None:
    log = HeartbeatLog()
    t0 = time.monotonic() - 20
    beats(log, "cam", "a", [10, 20, 30, 30, 30], t0)  # a stops growing at t0+2 (killed; last beats stale)
    beats(log, "cam", "b", [0, 5, 15, 25], t0 + 8)  # b takes over six seconds later
    assert log.double_analysed(window_s=1.0) == []
    assert log.analysing("cam", since=t0 + 7) == {"b"}
    assert log.analysing("cam", since=t0) == {"a", "b"}


def test_two_workers_growing_the_same_camera_at_once_are_caught() -> None:
    log = HeartbeatLog()
    t0 = time.monotonic() - 20
    beats(log, "cam", "a", [10, 20, 30, 40], t0)
    beats(log, "cam", "b", [0, 5, 15], t0 + 1.2)  # overlaps a's growth
    beats(log, "other", "a", [1, 2, 3], t0)
    assert log.double_analysed(window_s=1.0) == ["cam"]
