"""Running a node in the foreground: cameras, services, the command centre, and a live status table.

Used by ``vigil run`` (production) and by ``vigil demo`` once its analysis pass is done. SIGINT and
SIGTERM stop it cleanly: the worker finishes its frame, tracks are ended, recordings closed and the
outbox published before the process exits.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table

from vigil.assembly import Services, open_services
from vigil.config import Config
from vigil.runtime import Node
from vigil.vision.detector import create_detector


def status_table(rows: list[dict[str, object]], url: str | None = None, title: str = "vigil run") -> Table:
    """The live per-camera status: state, analysed fps, lag, drops, tracks, events, recording."""
    title += f" — command centre at {url}" if url else ""
    table = Table("camera", "state", "fps", "lag s", "drops", "tracks", "events", "GOP s", "decoding", "recording",
                  "last error", title=title)
    for row in rows:
        colour = {"online": "green", "connecting": "yellow"}.get(str(row["state"]), "red")
        recording = str(row.get("recording", "off"))
        recording = f"[red]{recording}[/]" if recording.startswith("paused") else recording
        if row.get("record_stream") not in (None, "online", "connecting"):
            recording += f" [red](main stream {row['record_stream']})[/]"
        table.add_row(str(row["camera"]), f"[{colour}]{row['state']}[/]", str(row["fps"]), str(row["lag_s"] or "-"),
                      str(row["drops"]), str(row["tracks"]), str(row["events"]), str(row.get("gop_s") or "-"),
                      str(row.get("decoding", "")), recording, str(row["error"] or ""))
    return table


def run_node(config: Config, console: Console, *, config_path: Path | None = None, serve: bool = True,
             host: str = "127.0.0.1", port: int = 8080,
             on_ready: Callable[[Services, str | None], None] | None = None) -> Services:
    """Run every camera of ``config`` (and the command centre, with ``serve``) until SIGINT/SIGTERM."""
    services = open_services(config).start()
    node = Node(config, create_detector(config.detector), packet_hooks=services.packet_hooks(),
                enrichers=services.enrichers())
    services.attach(node)  # the store, and MQTT's live counts
    server = worker = None
    try:
        if serve:
            from vigil.api.app import create_app
            from vigil.api.server import serve_in_thread

            server = serve_in_thread(create_app(config, services, node, config_path=config_path), host, port)
        if on_ready:
            on_ready(services, server.url if server else None)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: node.stop())
        worker = threading.Thread(target=node.start().run, name="vigil-inference")
        worker.start()
        url = server.url if server else None
        with Live(status_table(node.status(), url), console=console, refresh_per_second=1) as live:
            while worker.is_alive():
                worker.join(1.0)
                live.update(status_table(node.status(), url))
    finally:
        node.stop()
        if worker is not None:
            worker.join()
        if server is not None:
            server.stop()
        services.close()
    console.print(f"stopped; {services.relay.published} events published, outbox empty")
    return services
