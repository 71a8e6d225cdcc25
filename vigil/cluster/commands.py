"""``vigil cluster up`` and ``vigil cluster status`` (docs/DEPLOY.md)."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

cluster_app = typer.Typer(help="A city on a Ray cluster: camera workers placed, supervised and moved.",
                          no_args_is_help=True)
console = Console(stderr=True)
out = Console()

CONFIG = typer.Option(..., "-c", "--config", help="YAML config file (the cluster's).")
ADDRESS = typer.Option("", "--address", help="Ray's address (default: cluster.ray_address, 'auto').")


def _connect(config_path: Path, address: str):  # type: ignore[no-untyped-def]
    from vigil.cluster.ray_cluster import connect_ray
    from vigil.config import load_config

    config = load_config(config_path)
    connect_ray(address or config.cluster.ray_address)
    return config


@cluster_app.command("up")
def up(config_path: Path = CONFIG, address: str = ADDRESS) -> None:
    """Place the config's camera workers on the Ray cluster and keep them running until SIGINT/SIGTERM."""
    from vigil.cluster.ray_cluster import CityCluster, GroupState

    config = _connect(config_path, address)
    city = CityCluster(config).up()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    console.print(f"{len(city.groups)} camera workers for {sum(len(g.cameras) for g in city.groups)} cameras")

    def table(groups: list[GroupState]) -> Table:
        view = Table("worker", "node", "cameras", "analysing", "fps", "drops", "cpu %", title="vigil cluster")
        for g in groups:
            s = g.status
            load = (s or {}).get("load", {})
            view.add_row(str(g.group), s["node_id"] if s else "[red]down / restarting[/]", str(len(g.cameras)),
                         ", ".join(s["analysing"]) if s else "-", str(load.get("analysed_fps", "-")),
                         str(load.get("drops", "-")), str(load.get("cpu_percent", "-")))
        return view

    try:
        with Live(table(city.groups), console=console, refresh_per_second=1) as live:
            city.run(stop, on_poll=lambda groups: live.update(table(groups)))
    finally:
        city.down()
    console.print("cluster down; leases released")


@cluster_app.command("status")
def status(config_path: Path = CONFIG, address: str = ADDRESS,
           as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Ray's nodes, each camera worker's cameras and load, and who holds each camera's lease."""
    from vigil.cluster.ray_cluster import cluster_status

    report = cluster_status(_connect(config_path, address))
    if as_json:
        out.print_json(json.dumps(report))
        return
    nodes = Table("ray node", "address", "alive", "cpus", title="nodes")
    for n in report["nodes"]:
        nodes.add_row(n["ray_node"][:12], n["address"], "yes" if n["alive"] else "[red]no[/]", str(n["cpus"]))
    workers = Table("worker", "ray node", "cameras", "analysing", "fps", "drops", "load 1m", title="workers")
    for w in report["workers"]:
        load = w.get("load", {})
        workers.add_row(w["node_id"], str(w.get("ray_node", "-"))[:12], ", ".join(w.get("cameras", [])),
                        ", ".join(w.get("analysing", [])) or w.get("error", "-"), str(load.get("analysed_fps", "-")),
                        str(load.get("drops", "-")), str(load.get("load_1m", "-")))
    leases = Table("camera", "holder", "token", "expires in s", title="camera leases")
    for lease in report["leases"]:
        leases.add_row(lease["camera"], lease["holder"], str(lease["token"]), str(lease["left_s"]))
    for view in (nodes, workers, leases):
        out.print(view)
