"""The cluster's roles in the foreground: ``vigil worker`` and ``vigil api`` (``vigil run`` is both in one process).

Each role's wiring is here, in one short function: what it opens (``open_services(role=...)``), what it runs,
and how it stops. SIGINT and SIGTERM stop either cleanly.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console
from rich.live import Live

from vigil.assembly import open_services
from vigil.config import Config
from vigil.errors import ConfigError
from vigil.serve import status_table


def _on_signals(stop: Callable[[], None]) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop())


def run_worker(config: Config, console: Console, cameras: Sequence[str] | None = None,
               node_id: str | None = None, standby: Sequence[str] = ()) -> None:
    """Analyse ``cameras`` (default: all of the config) under leases until SIGINT/SIGTERM, with a status table of
    the cameras this worker holds."""
    from vigil.cluster.worker import CameraWorker

    worker = CameraWorker(config, cameras, node_id, standby)
    _on_signals(worker.stop)
    thread = threading.Thread(target=worker.run, name="vigil-worker")
    thread.start()
    title = f"worker {worker.node_id}"

    def rows() -> list[dict[str, object]]:
        node = worker.node
        held = set(worker.analysing())
        return [r for r in node.status() if r["camera"] in held] if node is not None else []

    with Live(status_table(rows(), title=title), console=console, refresh_per_second=1) as live:
        while thread.is_alive():
            thread.join(1.0)
            live.update(status_table(rows(), title=title))
    console.print(f"worker {worker.node_id} stopped; leases released")


def run_api(config: Config, console: Console, *, config_path: Path | None = None, host: str = "127.0.0.1",
            port: int = 8080, on_ready: Callable[[str], None] | None = None) -> None:
    """Serve the command centre without cameras: the shared database, and live state from the workers over NATS."""
    from vigil.api.app import create_app
    from vigil.api.server import serve_in_thread
    from vigil.cluster.remote_live import BusLiveState
    from vigil.cluster.segments import NodeSegments

    if config.bus.kind != "nats":
        raise ConfigError("api: a command centre on its own needs the NATS bus (bus: kind: nats) to see the "
                          "workers' events and live state")
    services = open_services(config, role="api").start(role="api")
    stop = threading.Event()
    server = None
    try:
        live = BusLiveState(services, lost_after_s=config.cluster.node_lost_s).start()
        token = config.cluster.media_token
        services.recordings.remote = NodeSegments(live.nodes, token.get_secret_value() if token else None,
                                                  config.data_dir)  # other nodes' recordings, fetched from them
        server = serve_in_thread(create_app(config, services, config_path=config_path, live_state=live), host, port)
        console.print(f"[bold green]command centre:[/] {server.url}")
        if on_ready:
            on_ready(server.url)
        _on_signals(stop.set)
        while not stop.wait(1.0) and server.thread.is_alive():
            pass
    finally:
        if server is not None:
            server.stop()
        services.close()
