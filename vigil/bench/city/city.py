"""The city under test: its config (N cameras on the shared NATS and a throw-away PostgreSQL database), its users,
the real command-centre process (``vigil api``), and the services' reachability."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import httpx
import nats
import yaml
from argon2 import PasswordHasher
from nats.js.errors import NotFoundError

from vigil.errors import VigilError
from vigil.governance.service import open_governance
from vigil.store.db import open_store

CITY_BOX = (48.80, 2.25, 48.91, 2.42)  # lat/lon box of a capital's centre
DISTRICTS = ("Centre", "Gare", "Marché", "Parc", "Port", "Université", "Hôpital", "Stade")
#: test-speed hashing for the bench's own accounts (argon2 keeps the parameters in the hash)
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)


def camera_ids(count: int) -> list[str]:
    return [f"cam-{i:04d}" for i in range(count)]


def write_config(folder: Path, database: str, nats_url: str, cameras: int) -> tuple[Path, str]:
    """The city's YAML (cameras on a grid over ``CITY_BOX``, never connected to) and its NATS stream's name."""
    tag = secrets.token_hex(3)
    side = int(cameras ** 0.5) + 1
    lat0, lon0, lat1, lon1 = CITY_BOX
    entries = []
    for i, camera_id in enumerate(camera_ids(cameras)):
        row, col = divmod(i, side)
        entries.append({"id": camera_id, "name": f"{DISTRICTS[i % len(DISTRICTS)]} {i}",
                        "url": f"rtsp://192.0.2.{1 + i % 250}/stream{i}", "fps": 5.0,
                        "lat": round(lat0 + (lat1 - lat0) * (row + 0.5) / side, 6),
                        "lon": round(lon0 + (lon1 - lon0) * (col + 0.5) / side, 6)})
    stream = f"VIGIL_CITY{tag.upper()}"
    config = {"data_dir": str(folder / "api"), "store": {"database": database, "snapshots": False},
              "bus": {"kind": "nats", "url": nats_url, "stream": stream, "subject_prefix": f"city{tag}",
                      "max_age_hours": 1.0},
              "cameras": entries}
    path = folder / "city.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    return path, stream


@dataclass(frozen=True)
class Account:
    username: str
    role: str
    cameras: tuple[str, ...] | None  # None: every camera
    password: str


def bench_accounts(cameras: list[str]) -> list[Account]:
    """A supervisor on every camera, a district operator on a tenth of them and an operator on ten, spread over
    the workers (every n-th camera)."""
    district = tuple(cameras[3::10]) or tuple(cameras[:1])
    step = max(1, len(cameras) // 10)
    operator = tuple(cameras[7 % step::step][:10]) if len(cameras) > 10 else tuple(cameras[:1])

    def password() -> str:
        return "City-" + secrets.token_urlsafe(15)

    return [Account("city-supervisor", "supervisor", None, password()),
            Account("city-district", "operator", district, password()),
            Account("city-operator", "operator", operator, password())]


def create_accounts(database: str, data_dir: Path, accounts: list[Account]) -> None:
    """Migrate the database and add the accounts through the governance layer (audited, as an admin would)."""
    store = open_store(database)
    try:
        governance = open_governance(store, data_dir, hasher=FAST_HASHER)
        for account in accounts:
            governance.users.create(account.username, account.password, account.role, "city-bench",
                                    cameras=list(account.cameras) if account.cameras else ["*"])
    finally:
        store.close()


def check_nats(url: str) -> None:
    """``VigilError`` naming the server when nothing listens there."""
    parsed = urlparse(url.split(",")[0])
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 4222), timeout=3):
            pass
    except OSError as exc:
        where = f"{parsed.hostname}:{parsed.port or 4222}"
        raise VigilError(f"NATS {where} not reachable ({exc.strerror or exc})") from None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class CommandCentre:
    """``vigil api -c city.yaml --port P`` in its own process, its output in ``api.log``."""

    def __init__(self, folder: Path, config_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / "api.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "vigil", "api", "-c", str(config_path),
                                             "--port", str(self.port)], stdout=out, stderr=subprocess.STDOUT,
                                            env={**os.environ, "COLUMNS": "160"})

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_healthy(self, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise VigilError(f"vigil api exited ({self.process.returncode}): {self.tail()}")
            try:
                if httpx.get(self.url + "/api/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise VigilError(f"vigil api did not answer within {timeout_s:.0f} s: {self.tail()}")

    def tail(self, chars: int = 600) -> str:
        return self.log.read_text(errors="replace")[-chars:].strip().replace("\n", " | ")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def stream_messages_and_drop(url: str, stream: str) -> int | None:
    """How many messages the run's JetStream stream holds; then delete the stream (it was the run's own)."""

    async def go() -> int | None:
        client = await nats.connect(url.split(","), connect_timeout=3, max_reconnect_attempts=0)
        try:
            js = client.jetstream()
            try:
                messages = int((await js.stream_info(stream)).state.messages)
            except NotFoundError:
                return None
            await js.delete_stream(stream)
            return messages
        finally:
            await client.close()

    return asyncio.run(go())
