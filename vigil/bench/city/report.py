"""The books of a city run: what was sent, stored and pushed to whom, and the figures made from them.

An event is *lost* when a worker emitted it and it is not in the database, or when it is in the database and a
client entitled to its camera (all of them were connected before the first event) never received it. A
restricted client receiving an event of a camera outside its grant is a *violation*, counted apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

ALERTS = frozenset({"warning", "critical"})


@dataclass(frozen=True)
class ClientBooks:
    """One SSE client's grant (None: every camera) and what it received, in arrival order."""

    name: str
    grant: frozenset[str] | None
    records: Sequence[Sequence[Any]]  # (id, camera, severity, emitted_at, arrived_at)
    errors: Sequence[str] = ()


def percentiles_ms(values: Iterable[float], digits: int = 1) -> dict[str, float | None]:
    data = np.asarray(list(values), dtype=float)
    if data.size == 0:
        return {"p50_ms": None, "p95_ms": None, "n": 0}
    p50, p95 = np.percentile(data, [50, 95])
    return {"p50_ms": round(float(p50), digits), "p95_ms": round(float(p95), digits), "n": int(data.size)}


def account(sent: dict[str, tuple[str, str, float]], stored: dict[str, str],
            clients: Sequence[ClientBooks]) -> dict[str, Any]:
    """Losses, violations and per-client delivery. ``sent``: id → (camera, severity, emitted_at); ``stored``: the
    events table's id → camera."""
    not_stored = [i for i in sent if i not in stored]
    per_client: dict[str, Any] = {}
    not_pushed = violations = 0
    for client in clients:
        expected = {i for i, camera in stored.items() if client.grant is None or camera in client.grant}
        ids = [r[0] for r in client.records]
        got = set(ids)
        outside = sum(1 for r in client.records if client.grant is not None and r[1] not in client.grant)
        missed = len(expected - got)
        not_pushed += missed
        violations += outside
        per_client[client.name] = {
            "cameras": "all" if client.grant is None else len(client.grant),
            "expected": len(expected), "received": len(got), "missed": missed,
            "duplicates": len(ids) - len(got), "violations": outside,
            "unknown": len(got - set(stored)), "errors": list(client.errors),
            "latency": percentiles_ms(latencies(client.records)),
        }
    return {"lost": len(not_stored) + not_pushed,
            "lost_detail": {"not_stored": len(not_stored), "not_pushed": not_pushed,
                            "not_stored_examples": not_stored[:5]},
            "restricted_violations": violations, "clients": per_client}


def latencies(records: Iterable[Sequence[Any]], severities: frozenset[str] | None = None) -> list[float]:
    """Emission → arrival, in ms, of the records with an emission time (and of ``severities``, if given)."""
    return [(r[4] - r[3]) * 1000 for r in records
            if r[3] is not None and (severities is None or r[2] in severities)]


def sustained_rate(records: Iterable[Sequence[Any]], start: float, end: float) -> float:
    """Events per second that arrived between ``start`` and ``end``."""
    arrived = sum(1 for r in records if start <= r[4] < end)
    return round(arrived / (end - start), 1) if end > start else 0.0
