"""``vigil bench city``: the command centre at city scale (issue 12 §5), on the real NATS JetStream, the real
PostgreSQL (a throw-away database) and a real ``vigil api`` process.

``--nodes`` simulated camera workers (``emitter``: each its own process and node) emit what ``--cameras`` busy
cameras would, at the demo scene's measured rates (``scene``), through the real outbox, store and live paths.
Three signed-in SSE clients (``clients``: a supervisor on every camera, a district operator on a tenth, an
operator on ten cameras; each its own process) receive the live events while a probe times the map's and the
alert queue's API calls. After ``--seconds`` the workers drain their outbox, the clients are given time to
receive the rest, and the books are closed against the database (``report``).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DRAIN_IDLE_S = 8.0  # the clients are done when nothing new arrived for this long ...
DRAIN_MAX_S = 90.0  # ... or after this, whatever they still miss is lost
PG_SERVER = os.environ.get("VIGIL_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
NATS_URL = os.environ.get("VIGIL_BENCH_NATS", "nats://127.0.0.1:4222")

Progress = Callable[[str, float, float], None]  # (phase, done, total)


def run_city_bench(cameras: int = 1000, nodes: int = 4, seconds: float = 60.0, progress: Progress | None = None,
                   server: str = PG_SERVER, nats_url: str = NATS_URL, seed: int = 12) -> dict[str, Any]:
    """Run the city once and return its figures (the JSON of ``vigil bench city --json``)."""
    from vigil.bench.city.city import check_nats
    from vigil.store.db import temporary_database

    if cameras < nodes or nodes < 1:
        raise ValueError(f"need at least one camera per node ({cameras} cameras, {nodes} nodes)")
    check_nats(nats_url)
    say = progress or (lambda *_: None)
    with tempfile.TemporaryDirectory(prefix="vigil-city-") as folder, \
            temporary_database(server, prefix="vigil_city") as database:
        return _run(Path(folder), database, nats_url, cameras, nodes, seconds, seed, say)


def _run(folder: Path, database: str, nats_url: str, cameras: int, nodes: int, seconds: float, seed: int,
         say: Progress) -> dict[str, Any]:
    from vigil.bench.city.city import (
        CommandCentre,
        bench_accounts,
        camera_ids,
        create_accounts,
        stream_messages_and_drop,
        write_config,
    )
    from vigil.bench.city.clients import ApiProbe, ClientPlan, login, run_sse_client
    from vigil.bench.city.emitter import WorkerPlan, run_worker
    from vigil.bench.city.proc import MachineCpu, cpu_of_named, cpu_seconds, peak_rss_mb
    from vigil.bench.city.scene import demo_rates
    from vigil.bench.city.summary import summarise
    from vigil.errors import VigilError

    started_utc = datetime.now(UTC).isoformat(timespec="seconds")
    load_before = os.getloadavg()
    say("setting up the city", 0, 1)
    config_path, stream = write_config(folder, database, nats_url, cameras)
    ids = camera_ids(cameras)
    accounts = bench_accounts(ids)
    create_accounts(database, folder / "api", accounts)
    ctx = multiprocessing.get_context("spawn")
    status: Any = ctx.Queue()
    go, start_at = ctx.Event(), ctx.Value("d", 0.0)
    per_node = -(-cameras // nodes)
    plans = [WorkerPlan(str(config_path), str(folder / f"node-{n}"), f"sim-node-{n}",
                        tuple(ids[n * per_node:(n + 1) * per_node]), seconds, seed + n,
                        str(folder / f"node-{n}.json"), str(folder / f"node-{n}.log")) for n in range(nodes)]
    api = CommandCentre(folder, config_path)
    workers = [ctx.Process(target=run_worker, args=(p, status, go, start_at), name=p.node_id) for p in plans]
    client_stop = ctx.Event()
    client_procs: list[tuple[ClientPlan, Any, Any]] = []
    in_stream = None
    try:
        for process in workers:
            process.start()
        api.wait_healthy()
        for account in accounts:
            plan = ClientPlan(account.username, api.url, login(api.url, account.username, account.password),
                              account.cameras, str(folder / f"{account.username}.json"))
            connected, received = ctx.Event(), ctx.Value("q", 0)
            process = ctx.Process(target=run_sse_client, args=(plan, connected, client_stop, received),
                                  name=plan.name)
            process.start()
            client_procs.append((plan, process, (connected, received)))
        for plan, _, (connected, _) in client_procs:
            if not connected.wait(60):
                raise VigilError(f"SSE client {plan.name} did not connect within 60 s: {api.tail()}")
        _wait_for(status, "ready", [p.node_id for p in plans], 180, say, folder)
        say("load", 0, seconds)
        cpu_before = _cpu(api.pid, workers, [p for _, p, _ in client_procs], cpu_seconds, cpu_of_named)
        machine_before = MachineCpu.now()
        start = time.time() + 0.5
        start_at.value = start
        go.set()
        probe = ApiProbe(api.url, login(api.url, accounts[0].username, accounts[0].password), cameras).start()
        while (now := time.time()) < start + seconds:
            say("load", min(seconds, now - start), seconds)
            time.sleep(min(1.0, start + seconds - now))
        probe.stop()
        cpu_load = _delta(_cpu(api.pid, workers, [p for _, p, _ in client_procs], cpu_seconds, cpu_of_named),
                          cpu_before)
        machine_after = MachineCpu.now()
        machine_busy = machine_after.busy_percent_since(machine_before)
        others = round(machine_after.busy - machine_before.busy - sum(cpu_load.values()), 1)
        load_end = time.time()
        say("draining the outbox", 0, 1)
        _wait_for(status, "done", [p.node_id for p in plans], 900, say, folder)
        for process in workers:
            process.join(30)
        results = [_read_json(Path(p.result_path)) for p in plans]
        stored, tables = _stored(database)
        say("draining the SSE clients", 0, 1)
        drain_s = _drain_clients(client_procs, stored, load_end, say)
        api_rss, api_cpu = peak_rss_mb(api.pid), cpu_seconds(api.pid)
        client_stop.set()
        for _, process, _ in client_procs:
            process.join(30)
        books = [_read_json(Path(plan.result_path)) | {"plan": plan} for plan, _, _ in client_procs]
    finally:
        go.set()
        client_stop.set()
        api.stop()
        for process in workers + [p for _, p, _ in client_procs]:
            process.join(10)
            if process.is_alive():
                process.kill()
        with contextlib.suppress(Exception):  # the run's own stream: never left behind
            in_stream = stream_messages_and_drop(nats_url, stream)
    return summarise(cameras=cameras, nodes=nodes, seconds=seconds, rates=demo_rates(), workers=results,
                     clients=books, stored=stored, tables=tables, probe=probe, start=start, load_end=load_end,
                     drain_s=drain_s, in_stream=in_stream,
                     rss={"api": api_rss, "driver": peak_rss_mb()},
                     cpu={**cpu_load, "api_total": api_cpu},
                     conditions={"started_utc": started_utc, "cores": os.cpu_count(),
                                 "load_1m_before": round(load_before[0], 2),
                                 "load_1m_after": round(os.getloadavg()[0], 2),
                                 "cpu_busy_percent_during_load": machine_busy,
                                 "cpu_s_other_processes_during_load": others})


def _cpu(api_pid: int, workers: list[Any], clients: list[Any], cpu_seconds: Callable[..., float | None],
         cpu_of_named: Callable[[tuple[str, ...]], float]) -> dict[str, float]:
    return {"api": cpu_seconds(api_pid) or 0.0,
            "workers": sum(cpu_seconds(p.pid) or 0.0 for p in workers),
            "clients": sum(cpu_seconds(p.pid) or 0.0 for p in clients),
            "driver": cpu_seconds() or 0.0,
            "postgres": cpu_of_named(("postgres", "postmaster")),
            "nats": cpu_of_named(("nats-server",))}


def _delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {key: round(after[key] - before[key], 1) for key in after}


def _wait_for(status: Any, what: str, nodes: list[str], timeout_s: float, say: Progress, folder: Path) -> None:
    """Wait until every node has said ``what``; a node's error is raised with its log's last line."""
    from vigil.errors import VigilError

    waiting = set(nodes)
    deadline = time.monotonic() + timeout_s
    while waiting:
        try:
            kind, node, message = status.get(timeout=max(0.1, min(1.0, deadline - time.monotonic())))
        except queue.Empty:
            if time.monotonic() > deadline:
                raise VigilError(f"simulated workers {', '.join(sorted(waiting))} not {what} within "
                                 f"{timeout_s:.0f} s") from None
            continue
        if kind == "error":
            log = folder / f"{node.removeprefix('sim-')}.log"
            tail = log.read_text(errors="replace")[-800:] if log.is_file() else ""
            raise VigilError(f"simulated worker {node} failed: {message}\n{tail}")
        if kind == what:
            waiting.discard(node)
            say(f"workers {what}", len(nodes) - len(waiting), len(nodes))


def _stored(database: str) -> tuple[dict[str, str], dict[str, int]]:
    """The events table (id → camera) and the other tables' row counts, read after the workers drained."""
    from sqlalchemy import func, select

    from vigil.store.db import open_store
    from vigil.store.recognition_schema import SightingRow
    from vigil.store.schema import CountRow, EventRow, OutboxRow, TrackRow

    store = open_store(database, migrate=False)
    try:
        with store.session() as session:
            events = {i: c for i, c in session.execute(select(EventRow.id, EventRow.camera_id))}
            tables = {name: int(session.scalar(select(func.count()).select_from(row)) or 0)
                      for name, row in (("tracks", TrackRow), ("count_rows", CountRow), ("sightings", SightingRow))}
            tables["outbox_unpublished"] = int(session.scalar(
                select(func.count()).where(OutboxRow.published_at.is_(None))) or 0)
    finally:
        store.close()
    return events, tables


def _drain_clients(clients: list[tuple[Any, Any, Any]], stored: dict[str, str], load_end: float,
                   say: Progress) -> float:
    """Wait until every client has as many events as it is entitled to, or nothing arrives for a while."""
    grants = {plan.name: None if plan.cameras is None else set(plan.cameras) for plan, _, _ in clients}
    expected = {name: sum(1 for c in stored.values() if grant is None or c in grant) for name, grant in grants.items()}
    last_change, seen = time.monotonic(), -1
    deadline = time.monotonic() + DRAIN_MAX_S
    while time.monotonic() < deadline:
        counts = {plan.name: received.value for plan, _, (_, received) in clients}
        total = sum(counts.values())
        say("draining the SSE clients", min(total, sum(expected.values())), sum(expected.values()))
        if all(counts[name] >= expected[name] for name in expected):
            break
        if total != seen:
            seen, last_change = total, time.monotonic()
        elif time.monotonic() - last_change > DRAIN_IDLE_S:
            break
        time.sleep(0.2)
    return round(time.time() - load_end, 1)


def _read_json(path: Path) -> dict[str, Any]:
    import json

    from vigil.errors import VigilError

    if not path.is_file():
        raise VigilError(f"{path.name}: no results written (see the logs beside it)")
    return dict(json.loads(path.read_text()))
