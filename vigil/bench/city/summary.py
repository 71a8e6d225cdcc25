"""The JSON of ``vigil bench city``: the books of ``report`` and the run's measurements, under the issue's keys."""

from __future__ import annotations

from typing import Any

import numpy as np

from vigil.bench.city.clients import ApiProbe
from vigil.bench.city.report import ALERTS, ClientBooks, account, latencies, percentiles_ms, sustained_rate


def summarise(*, cameras: int, nodes: int, seconds: float, rates: dict[str, Any], workers: list[dict[str, Any]],
              clients: list[dict[str, Any]], stored: dict[str, str], tables: dict[str, int], probe: ApiProbe,
              start: float, load_end: float, drain_s: float, in_stream: int | None, rss: dict[str, float | None],
              cpu: dict[str, float | None], conditions: dict[str, Any]) -> dict[str, Any]:
    sent = {row[0]: (row[1], row[2], row[3]) for w in workers for row in w["sent"]}
    books = [ClientBooks(c["name"], None if c["plan"].cameras is None else frozenset(c["plan"].cameras),
                         c["records"], c["errors"]) for c in clients]
    books_by_name = {b.name: b for b in books}
    ledger = account(sent, stored, books)
    supervisor = next(b for b in books if b.grant is None)
    all_records = [r for b in books for r in b.records]
    sent_alerts = sum(1 for _, severity, _ in sent.values() if severity in ALERTS)
    published = sum(w["relay"]["published"] for w in workers)
    totals = {key: sum(w[key] for w in workers) for key in ("tracks", "count_rows", "sightings")}
    return {
        "cameras": cameras, "nodes": nodes, "seconds": seconds,
        "rates": rates,
        "events_sent": len(sent),
        "alerts_sent": sent_alerts,
        "events_stored": len(stored),
        "events_received": ledger["clients"][supervisor.name]["received"],
        "events_received_by_client": {name: c["received"] for name, c in ledger["clients"].items()},
        "lost": ledger["lost"],
        "lost_detail": ledger["lost_detail"],
        "restricted_violations": ledger["restricted_violations"],
        "restricted_cameras_seen": {b.name: sorted({r[1] for r in b.records})
                                    for b in books if b.grant is not None and len(b.grant) <= 10},
        "alert_latency": percentiles_ms(latencies(all_records, ALERTS)),
        "event_latency": percentiles_ms(latencies(all_records)),
        "events_per_s": sustained_rate(books_by_name[supervisor.name].records, start, load_end),
        "events_per_s_target": round(rates["events_per_s"] * cameras, 1),
        "events_per_s_sent": round(len(sent) / seconds, 1),
        "api_p95_ms": {name: _p(values, 95) for name, values in probe.timings.items()},
        "api_p50_ms": {name: _p(values, 50) for name, values in probe.timings.items()},
        "api_requests": {name: len(values) for name, values in probe.timings.items()},
        "api_errors": dict(probe.errors),
        "cameras_online_on_map": {"min": min(probe.online, default=0), "last": probe.online[-1] if probe.online
                                  else 0},
        "peak_rss_mb": {"api": rss["api"], "workers": [w["peak_rss_mb"] for w in workers], "driver": rss["driver"],
                        "clients": {c["name"]: c["peak_rss_mb"] for c in clients}},
        "clients": ledger["clients"],
        "writes": {key: {"sent": totals[key], "stored": tables[key]} for key in totals},
        "outbox": {"published_by_relays": published,
                   "publish_amplification": round(published / len(stored), 2) if stored else None,
                   "backlog_at_load_end": max((w["relay"]["pending_at_end"] for w in workers), default=0),
                   "in_stream": in_stream, "unpublished_after_drain": tables["outbox_unpublished"],
                   "drain_s": max((w["relay"]["drain_s"] for w in workers), default=0.0)},
        "workers": [{"node": w["node"], "cameras": w["cameras"], "frame_paths": w["frame_paths"],
                     "tick_lag_s": w["tick_lag_s"], "dropped_frames": w["dropped_frames"], "frames": w["frames"],
                     "passes": w["passes"],
                     "heartbeats": w["heartbeats"], "writer": w["writer"],
                     "sink": w["sink"], "leases_lost": w["leases_lost"],
                     "suspended_frames": w["suspended_frames"], "errors": w["errors"],
                     "relay_published": w["relay"]["published"], "cpu_s": w["cpu_s"]} for w in workers],
        "frame_paths": {"lag_p95_s": max((w["tick_lag_s"]["p95"] for w in workers), default=0.0),
                        "lag_max_s": max((w["tick_lag_s"]["max"] for w in workers), default=0.0),
                        "dropped_share": round(sum(w["dropped_frames"] for w in workers)
                                               / max(1, sum(w["frames"] for w in workers)), 4),
                        "leases_lost": sum(w["leases_lost"] for w in workers),
                        "suspended_frames": sum(w["suspended_frames"] for w in workers)},
        "drain_s": drain_s,
        "conditions": {**conditions, "cpu_s_during_load": cpu},
    }


def _p(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(np.array(values), q)), 1) if values else None
