"""``vigil bench faults`` db_outage and bus_outage, small: a real node through 5 s outages of a private PostgreSQL,
then of a private NATS JetStream and a private Mosquitto, losing no event."""

from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path

import pytest
from rich.console import Console
from rich.progress import Progress

from vigil.bench.faults import FaultOptions, run_faults_bench, services
from vigil.bench.faults.harness import VIDEO
from vigil.bench.faults.services import NATS_SERVER, POSTGRES_BINARIES
from vigil.config import DetectorConfig
from vigil.errors import VigilError
from vigil.paths import data_root
from vigil.vision import models

pytestmark = pytest.mark.integration
OUTAGE_S = 5.0


def needs(*binaries: str) -> None:
    """Skip, saying why, when the data, the detector model or a service binary is missing here."""
    if not (data_root() / VIDEO).exists():
        pytest.skip(f"test video {VIDEO} not found in {data_root()} (set VIGIL_DATA)")
    spec = models.load_manifest().get(DetectorConfig().model)
    if models.status(spec) != "ok":
        pytest.skip(f"detector model {spec.name} not in the model cache (vigil models fetch)")
    found = {"initdb": bool(glob.glob(f"{POSTGRES_BINARIES}/initdb")),
             "nats-server": os.access(NATS_SERVER, os.X_OK) or shutil.which("nats-server") is not None,
             "mosquitto": shutil.which("mosquitto") is not None or os.access("/usr/sbin/mosquitto", os.X_OK)}
    for binary in binaries:
        if not found[binary]:
            pytest.skip(f"{binary} not installed (the scenario runs a private one)")


def run_scenario(name: str, tmp_path: Path, **extra: float) -> dict:
    options = FaultOptions(db_outage_s=OUTAGE_S, bus_outage_s=OUTAGE_S, work_dir=tmp_path, extra=extra)
    with Progress(console=Console(quiet=True)) as progress:
        result = run_faults_bench([name], options, progress)[name]
    assert "error" not in result, result
    return result


def test_db_outage_loses_no_event(tmp_path: Path) -> None:
    needs("initdb")
    result = run_scenario("db_outage", tmp_path, warmup_s=4, after_s=2)
    assert result["events_during_outage"] > 0 and result["buffered_peak"] > 0  # events did wait in memory
    assert result["lost"] == 0 and result["dropped"] == 0, result
    assert result["kept_analysing"] and result["frames"]["during"] >= 3 * OUTAGE_S, result["frames"]  # ~5 fps
    assert result["drain_s"] is not None and result["drain_s"] < 5.0, result  # the writer's next try, ~1 s


def test_bus_outage_loses_no_event_on_jetstream_mqtt_nor_webhook(tmp_path: Path) -> None:
    needs("nats-server", "mosquitto")
    result = run_scenario("bus_outage", tmp_path, warmup_s=4, gap_s=2, after_s=2)
    assert result["events"] > 0 and result["outbox_peak"] > 0  # events did wait in the outbox
    assert result["lost"] == 0 and result["stream_messages"] == result["events"], result
    assert result["drain_s"] is not None and result["drain_s"] < 5.0, result
    mqtt = result["mqtt"]
    assert mqtt["lost"] == 0 and mqtt["sink_dropped"] == 0, mqtt
    # the sink's NATS consumer was recreated after the server's restart (two missed 2 s heartbeats)
    assert mqtt["resumed_after_nats_s"] is not None and mqtt["resumed_after_nats_s"] < 15, mqtt
    assert mqtt["drain_s"] is not None and mqtt["drain_s"] < 15, mqtt  # paho reconnects within its 10 s backoff
    webhook = result["webhook"]  # down with Mosquitto: signed, retried, nothing lost
    assert webhook["lost"] == 0 and webhook["sink_dropped"] == 0 and webhook["bad_signatures"] == 0, webhook
    assert webhook["backlog_peak"] > 0 and webhook["drain_s"] is not None, webhook
    assert result["kept_analysing"], result
    assert result["frames_during_outage"] >= 3 * OUTAGE_S and mqtt["frames_during_outage"] >= 3 * OUTAGE_S, result


def test_a_missing_service_binary_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(services, "NATS_SERVER", str(tmp_path / "nats-server"))
    monkeypatch.setattr(services, "POSTGRES_BINARIES", str(tmp_path / "postgresql/*/bin"))
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(VigilError, match=r"^nats-server not found \(.*nats-server\)") as nats_error:
        services.PrivateNats(root=tmp_path)
    with pytest.raises(VigilError, match=r"^initdb not found in .*postgresql"):
        services.PrivatePostgres(root=tmp_path)
    assert "\n" not in str(nats_error.value)
    with Progress(console=Console(quiet=True)) as progress:  # the bench reports it and goes on
        result = run_faults_bench(["bus_outage"], FaultOptions(work_dir=tmp_path), progress)
    assert result["bus_outage"]["error"].startswith("nats-server not found")
