"""``vigil bench faults`` kill9 and disk_full, small: the real ``vigil run`` killed once while recording with events
in its outbox, and a node recording onto a tiny tmpfs that fills up and is freed again."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from rich.console import Console
from rich.progress import Progress

from vigil.bench.faults import FaultOptions, run_faults_bench
from vigil.bench.faults.harness import VIDEO
from vigil.bench.faults.services import NATS_SERVER
from vigil.config import DetectorConfig
from vigil.paths import data_root
from vigil.vision import models

pytestmark = pytest.mark.integration


def needs(*, nats: bool = False, mount: bool = False) -> None:
    """Skip, saying why, when what the scenario runs on is missing here."""
    if not (data_root() / VIDEO).exists():
        pytest.skip(f"test video {VIDEO} not found in {data_root()} (set VIGIL_DATA)")
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed")
    spec = models.load_manifest().get(DetectorConfig().model)
    if models.status(spec) != "ok":
        pytest.skip(f"detector model {spec.name} not in the model cache (vigil models fetch)")
    if nats and not (os.access(NATS_SERVER, os.X_OK) or shutil.which("nats-server")):
        pytest.skip("nats-server not installed (the scenario runs a private one)")
    if mount and os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")


def run_scenario(name: str, tmp_path: Path, **extra: float) -> dict:
    with Progress(console=Console(quiet=True)) as progress:
        result = run_faults_bench([name], FaultOptions(work_dir=tmp_path, extra=extra), progress)[name]
    if "error" in result and "cannot mount" in result["error"]:
        pytest.skip(result["error"])
    assert "error" not in result, result
    return result


def test_kill9_loses_nothing_and_reindexes_the_open_segment(tmp_path: Path) -> None:
    needs(nats=True)
    result = run_scenario("kill9", tmp_path, kills=1, run_s=4, segment_s=4)
    assert result["kills"] == 1 and result["clean_exit"]
    kill = result["kill_details"][0]
    assert kill["bus_down"] and kill["pending_at_kill"] > 0 and kill["recording"]  # killed with events in the outbox
    assert result["events"] > 0 and result["lost"] == 0 and result["pending_after_stop"] == 0
    assert result["on_bus_not_stored"] == 0 and result["duplicates"] == 0  # JetStream drops re-published ids
    assert result["segments"] >= 2 and result["unplayable_segments"] == 0, result["unplayable"]
    # the open segment (with a complete fragment) is re-indexed; a segment begun in the very instant of the kill
    # would hold its header only, and go
    assert result["reindexed_segments"] >= 1
    assert result["reindexed_segments"] + result["empty_removed"] == result["left_unindexed"]
    assert result["orphans_deleted"] == result["quarantined"] == result["unindexed_at_end"] == 0
    assert result["recovery_logged"] == 1 and result["tracebacks"] == 0


def test_disk_full_pauses_recording_keeps_events_and_recovers(tmp_path: Path) -> None:
    needs(mount=True)
    result = run_scenario("disk_full", tmp_path, disk_mb=8, headroom_mb=1.5, full_s=4)
    assert result["paused_seen"] and result["status_said"] == result["node_status_said"] == "paused (disk full)"
    assert result["camera_kept"] and result["segments_while_full"] == 0
    assert 1 <= result["pauses"] <= 3  # a retry every 10 s, not a spin
    assert result["events_during_full"] > 0 and result["lost"] == 0
    assert result["recovered"] and result["resumed_s"] < 30
    assert not [line for line in subprocess.run(["mount"], capture_output=True, text=True).stdout.splitlines()
                if str(tmp_path) in line]  # unmounted
