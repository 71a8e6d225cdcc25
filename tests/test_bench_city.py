"""``vigil bench city`` end to end, small: 40 simulated cameras on 2 worker processes for 8 s against the real NATS,
PostgreSQL and ``vigil api`` process. Nothing is lost, every event reaches the supervisor, and the restricted
operator receives events of its own cameras only."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.test_bus_nats import NATS_URL, requires_nats
from vigil.bench.city.city import bench_accounts, camera_ids
from vigil.store.db import StoreError, temporary_database

pytestmark = [pytest.mark.integration, requires_nats]
PG_SERVER = os.environ.get("VIGIL_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def postgres() -> str:
    try:
        with temporary_database(PG_SERVER, prefix="vigil_probe"):
            return PG_SERVER
    except StoreError as exc:
        pytest.skip(f"PostgreSQL not reachable ({exc})")


def test_small_city_loses_nothing_and_keeps_operators_to_their_cameras(postgres: str) -> None:
    done = subprocess.run([sys.executable, "-m", "vigil", "bench", "city", "--cameras", "40", "--nodes", "2",
                           "--seconds", "8", "--json"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "VIGIL_BENCH_POSTGRES": postgres, "VIGIL_BENCH_NATS": NATS_URL})
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)  # --json: nothing else on stdout

    for key in ("cameras", "nodes", "seconds", "rates", "events_sent", "events_received", "lost",
                "restricted_violations", "alert_latency", "events_per_s", "api_p95_ms", "peak_rss_mb", "conditions"):
        assert key in result, key
    assert set(result["alert_latency"]) >= {"p50_ms", "p95_ms"}
    assert set(result["api_p95_ms"]) == {"map", "cameras", "alerts"}
    assert set(result["peak_rss_mb"]) >= {"api", "workers", "driver"} and len(result["peak_rss_mb"]["workers"]) == 2
    assert (result["cameras"], result["nodes"], result["seconds"]) == (40, 2, 8.0)
    assert result["rates"]["events_per_s"] > 1 and 0 < result["rates"]["alert_share"] < 0.2

    assert result["events_sent"] > 200, result["events_sent"]  # ≈ 1.68 events per camera-second
    assert result["lost"] == 0, result["lost_detail"]
    assert result["restricted_violations"] == 0
    assert result["events_received"] == result["events_sent"] == result["events_stored"]
    assert result["alert_latency"]["n"] > 0 and result["alert_latency"]["p95_ms"] is not None
    assert all(result["api_requests"][name] > 0 for name in ("map", "cameras", "alerts")), result["api_errors"]
    assert result["cameras_online_on_map"]["last"] == 40  # the heartbeats reached the command centre
    assert result["writes"]["tracks"]["sent"] == result["writes"]["tracks"]["stored"] > 0
    assert result["writes"]["count_rows"]["sent"] == result["writes"]["count_rows"]["stored"] > 0

    grant = set(next(a for a in bench_accounts(camera_ids(40)) if a.username == "city-operator").cameras or ())
    seen = set(result["restricted_cameras_seen"]["city-operator"])
    assert len(grant) == 10 and seen and seen <= grant
    operator = result["clients"]["city-operator"]
    assert operator["received"] == operator["expected"] > 0 and operator["violations"] == 0
