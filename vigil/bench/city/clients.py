"""The command centre's users during the load: SSE clients (each in its own process) and API probes.

- ``run_sse_client``: a signed-in user's ``/api/events/stream`` (``vigil.api.sse_client``), recording for every
  event its id, camera, severity, emission time (``payload.emitted_at``) and arrival time.
- ``ApiProbe``: the requests the map and alert pages make, timed one after the other while the load runs.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from vigil.api.sse_client import event_stream
from vigil.bench.city.proc import peak_rss_mb

#: what the pages call: the map's markers (every camera, refreshed every 5 s), the map's paged camera list,
#: and the alert queue (open warning and critical events, newest first)
ROUTES = {
    "map": "/api/cameras",
    "cameras": "/api/cameras?limit=50&offset={offset}",
    "alerts": "/api/events?status=open&severity=warning&severity=critical&limit=50",
}


@dataclass(frozen=True)
class ClientPlan:
    """One SSE client (picklable)."""

    name: str
    base_url: str
    token: str
    cameras: tuple[str, ...] | None  # None: every camera
    result_path: str


def login(base_url: str, username: str, password: str) -> str:
    """A bearer token from ``POST /api/auth/login``."""
    response = httpx.post(base_url + "/api/auth/login", json={"username": username, "password": password},
                          timeout=30)
    response.raise_for_status()
    return str(response.json()["token"])


def run_sse_client(plan: ClientPlan, connected: Any, stop: Any, received: Any) -> None:
    """The client process: stream until ``stop`` is set, counting into ``received``; then write the results file."""
    records: list[tuple[str, str, str, float | None, float]] = []
    errors: list[str] = []

    def listen() -> None:
        try:
            for body in event_stream(plan.base_url, {"Authorization": f"Bearer {plan.token}"}):
                if body is None:
                    connected.set()
                    continue
                arrived = time.time()
                emitted = (body.get("payload") or {}).get("emitted_at")
                records.append((body["id"], body["camera_id"], body["severity"], emitted, arrived))
                with received.get_lock():
                    received.value += 1
        except Exception as exc:  # the stream ended: what was received so far counts
            errors.append(f"{type(exc).__name__}: {exc}")

    threading.Thread(target=listen, name=f"sse-{plan.name}", daemon=True).start()
    stop.wait()
    times = os.times()
    Path(plan.result_path).write_text(json.dumps({
        "name": plan.name, "records": list(records), "errors": errors, "peak_rss_mb": peak_rss_mb(),
        "cpu_s": round(times.user + times.system, 2)}))


@dataclass
class ApiProbe:
    """Times the pages' API calls in turn (``pause_s`` between two) until ``stop``; also notes how many cameras
    the map showed online (heartbeats reaching the command centre)."""

    base_url: str
    token: str
    cameras: int
    pause_s: float = 0.2
    timings: dict[str, list[float]] = field(default_factory=lambda: {name: [] for name in ROUTES})
    errors: dict[str, int] = field(default_factory=lambda: {name: 0 for name in ROUTES})
    online: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> ApiProbe:
        self._thread = threading.Thread(target=self._run, name="api-probe", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def _run(self) -> None:
        pages = max(1, -(-self.cameras // 50))
        turn = 0
        with httpx.Client(base_url=self.base_url, headers={"Authorization": f"Bearer {self.token}"},
                          timeout=30) as client:
            while not self._stop.is_set():
                for name, path in ROUTES.items():
                    started = time.perf_counter()
                    try:
                        response = client.get(path.format(offset=50 * (turn % pages)))
                        elapsed = time.perf_counter() - started
                    except httpx.HTTPError:
                        self.errors[name] += 1
                        continue
                    if response.status_code != 200:
                        self.errors[name] += 1
                        continue
                    self.timings[name].append(elapsed * 1000)
                    if name == "map":
                        self.online.append(sum(c.get("state") == "online" for c in response.json()))
                    if self._stop.wait(self.pause_s):
                        return
                turn += 1
