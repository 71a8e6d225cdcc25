"""``db_outage``: a real node on a private PostgreSQL that is stopped for ``db_outage_s`` and started again.

Phases: warm-up, PostgreSQL down (``pg_ctl stop -m fast``; the node keeps analysing, its events wait in the
writer's in-memory buffer), PostgreSQL up again on the same port and data, the drain (until the writer's buffer
and the outbox are both empty), a while more of normal running, then a clean stop. Every event the node emitted
is then looked up in the events table.

Result: ``events`` (emitted), ``lost`` (emitted, not in the table; 0 expected), ``drain_s`` (from PostgreSQL
accepting connections again until buffer and outbox are empty), ``buffered_peak``, frames analysed before,
during and after the outage, ``kept_analysing`` (frames analysed during the outage > 0), the writer's
``dropped`` (buffer overflows), and the live count samples and track summaries not stored meanwhile
(``counts_lost``, ``tracks_lost``: only events are buffered through an outage).

``options.extra``: ``warmup_s`` (default 10), ``after_s`` (10), ``cameras`` (1), ``drain_timeout_s`` (120).
"""

from __future__ import annotations

import time
from typing import Any

from rich.progress import Progress
from sqlalchemy.exc import DBAPIError

from vigil.bench.faults import FaultOptions
from vigil.bench.faults.harness import BenchNode, phase, step, stored_ids, work_folder
from vigil.bench.faults.services import PrivatePostgres
from vigil.config import Config


def run(options: FaultOptions, progress: Progress) -> dict[str, Any]:
    warmup_s = float(options.extra.get("warmup_s", 10.0))
    after_s = float(options.extra.get("after_s", 10.0))
    drain_timeout_s = float(options.extra.get("drain_timeout_s", 120.0))
    cameras = int(options.extra.get("cameras", 1))
    done = step(progress, "db_outage: private PostgreSQL and node")
    with work_folder(options.work_dir, "vigil-db-outage-") as folder, PrivatePostgres(root=folder) as pg:

        def configure(config: Config) -> None:
            config.store.database = pg.url

        bench = BenchNode(folder / "node", cameras, configure).start()
        try:
            done()
            writer = bench.services.writer
            relay = bench.services.relay
            phase(progress, "db_outage: warm-up", warmup_s)
            events_before = bench.events
            peak = 0

            def sample() -> None:
                nonlocal peak
                peak = max(peak, writer.buffered)

            down_at = time.monotonic()
            pg.stop()
            phase(progress, f"db_outage: PostgreSQL down {options.db_outage_s:.0f} s", options.db_outage_s, sample)
            events_during = bench.events - events_before
            pg.start()
            up_at = time.monotonic()

            def drained() -> bool:
                sample()
                if writer.buffered:
                    return False
                try:
                    return relay.pending() == 0
                except DBAPIError:
                    return False

            waited = phase(progress, "db_outage: draining buffer and outbox", drain_timeout_s, until=drained,
                           every_s=0.05)
            drain_s = round(waited, 2) if drained() else None
            phase(progress, "db_outage: running after the outage", after_s)
            stopped = step(progress, "db_outage: stopping the node, counting")
        finally:
            bench.stop()
        emitted = list(bench.emitted)
        stored = stored_ids(pg.url, emitted)
        stopped()
    return {
        "outage_s": options.db_outage_s,
        "events": len(emitted),
        "events_during_outage": events_during,
        "lost": len([i for i in emitted if i not in stored]),
        "drain_s": drain_s,
        "buffered_peak": peak,
        "dropped": writer.dropped,
        "counts_lost": bench.sink.counts_lost,  # live count samples not stored during the outage (not events)
        "tracks_lost": bench.sink.tracks_lost,  # track summaries likewise
        "frames": {"before": bench.frames_between(0, down_at), "during": bench.frames_between(down_at, up_at),
                   "after": bench.frames_between(up_at, float("inf"))},
        "kept_analysing": bench.frames_between(down_at, up_at) > 0,
    }
