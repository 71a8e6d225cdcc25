"""``vigil bench faults`` camera_restarts, small: a real node on a real RTSP camera killed and restarted 3 times."""

from __future__ import annotations

import pytest
from rich.console import Console
from rich.progress import Progress

from vigil.bench.faults import FaultOptions, run_faults_bench
from vigil.bench.rtsp_camera import RtspCamera
from vigil.paths import data_root

pytestmark = pytest.mark.integration


def test_camera_restarts_all_reconnect_without_a_crash() -> None:
    why_not = RtspCamera.available()
    if why_not:
        pytest.skip(why_not)
    video = data_root() / "video" / "vtest_h264.mp4"
    if not video.exists():
        pytest.skip(f"test video {video} not found (set VIGIL_DATA)")
    options = FaultOptions(restarts=3, max_gap_s=1.5, down_s=1.0, seed=3)
    with Progress(console=Console(quiet=True)) as progress:
        result = run_faults_bench(["camera_restarts"], options, progress)["camera_restarts"]
        assert progress.tasks[0].completed == 3
    assert "error" not in result, result
    assert result["count"] == 3 and result["reconnected"] == 3
    assert result["crashes"] == 0, result["crash_details"]
    assert result["paired"] is True and result["offline_events"] == result["online_events"] == 3
    assert result["reader_reconnects"] == 3
    resumed = [result[k] for k in ("resumed_p50_s", "resumed_p95_s", "resumed_max_s")]
    assert all(isinstance(v, float) and v > 0 for v in resumed)
    assert resumed == sorted(resumed)
    assert result["resumed_max_s"] < 10.0  # 1 s down: the reader's second attempt, 2 s later, gets it back
