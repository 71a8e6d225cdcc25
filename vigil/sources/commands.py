"""``vigil cameras …``: find IP cameras and print their config entries (a thin Typer layer over ``vigil.sources``).

Mounted by ``vigil.cli``: ``app.add_typer(cameras_app, name="cameras")``. Errors are one line each on stderr,
naming the device at fault; the command then exits 2.
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape

from vigil.errors import VigilError

if TYPE_CHECKING:
    from vigil.sources.onvif import Device

cameras_app = typer.Typer(help="IP cameras: find them on the network, print their config entries.",
                          no_args_is_help=True)
console = Console(stderr=True)


class CommandError(VigilError):
    """A bad command-line value; the message names the option."""


@cameras_app.command("discover")
def cameras_discover(
    timeout: float = typer.Option(3.0, "--timeout", min=0.1, max=120,
                                  help="Seconds to wait for answers to the WS-Discovery probe."),
    address: list[str] = typer.Option([], "--address", help="Probe this HOST[:PORT] by unicast (port default 3702) "
                                      "instead of multicasting; repeat for several devices."),
    interface: str | None = typer.Option(None, "--interface", help="Local IPv4 address to multicast the probe "
                                         "from (default: the system's route for 239.255.255.250)."),
    user: str | None = typer.Option(None, "--user", help="ONVIF user: read each device's profiles and RTSP URIs."),
    password_stdin: bool = typer.Option(False, "--password-stdin",
                                        help="Read that user's password from stdin (else it is prompted for)."),
    as_json: bool = typer.Option(False, "--json", help="Print the devices and profiles as JSON."),
) -> None:
    """Find ONVIF cameras by WS-Discovery; with --user, print `cameras:` entries with their RTSP URIs (YAML)."""
    from vigil.sources.onvif import discover, read_device
    from vigil.sources.onvif_config import to_json, to_yaml

    if password_stdin and not user:
        raise CommandError("--password-stdin needs --user")
    password = ""
    if user:
        password = sys.stdin.readline().rstrip("\r\n") if password_stdin else typer.prompt(
            f"ONVIF password of {user}", hide_input=True, default="", show_default=False)
    devices = discover(address or None, timeout=timeout, interface=interface)
    found = [d for d in devices if d.error is None]
    if user and found:
        def read(device: Device) -> None:
            try:
                read_device(device, user, password, timeout=max(timeout, 5.0))
            except VigilError as exc:
                device.error = str(exc)

        with ThreadPoolExecutor(max_workers=min(8, len(found))) as pool:
            list(pool.map(read, found))
    sys.stdout.write(to_json(devices, user or "") if as_json else to_yaml(devices, user or ""))
    errors = [d.error for d in devices if d.error]
    for message in errors:
        console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    if not devices:
        console.print(f"no ONVIF device answered within {timeout:g} s", highlight=False)
    if errors:
        raise typer.Exit(2)
