"""Private, killable service instances for the fault scenarios: PostgreSQL, NATS JetStream and Mosquitto.

Each runs on a free port of 127.0.0.1 with its files in a folder of its own, so a scenario can stop, kill and
restart it without touching the machine's shared services. The API is the same for the three::

    with PrivateNats() as nats:         # start() on entry; stop() and the folder removed on exit
        connect(nats.url)
        nats.stop()                     # a clean shutdown (SIGTERM / pg_ctl stop -m fast)
        nats.start()                    # the same port and data: the outage is over
        nats.kill()                     # SIGKILL (a crash); start() again recovers from the data

``start()`` returns once the service accepts connections; ``running`` tells whether it is up. A missing
binary raises a one-line ``VigilError`` naming it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Self

from vigil.errors import VigilError

NATS_SERVER = "/usr/sbin/nats-server"
POSTGRES_BINARIES = "/usr/lib/postgresql/*/bin"


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def accepting(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        socket.create_connection((host, port), timeout=0.5).close()
        return True
    except OSError:
        return False


def _binary(name: str, *candidates: str) -> str:
    for candidate in (*candidates, shutil.which(name)):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise VigilError(f"{name} not found ({', '.join(candidates) or 'PATH'}): install it to run this fault scenario")


class PrivateService:
    """Base of the private services: a port, a folder, start/stop/kill and a context manager."""

    name = "service"

    def __init__(self, port: int | None = None, root: Path | None = None, start_timeout_s: float = 30.0) -> None:
        """``port``: default a free one (kept across restarts); ``root``: where the folder is made (default
        the system's temporary folder)."""
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix=f"vigil-{self.name}-", dir=root))
        self.start_timeout_s = start_timeout_s
        self.starts = 0  # how many times it was started

    @property
    def url(self) -> str:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        raise NotImplementedError

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def kill(self) -> None:
        raise NotImplementedError

    def restart(self, down_s: float = 0.0) -> None:
        """Stop, stay down ``down_s`` seconds, start again."""
        self.stop()
        time.sleep(down_s)
        self.start()

    def close(self) -> None:
        """Stop (killing if need be) and delete the folder."""
        try:
            self.stop()
        except Exception:
            with contextlib.suppress(Exception):
                self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _wait_accepting(self, alive: Callable[[], bool]) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while not accepting(self.port):
            if not alive():
                raise VigilError(f"{self.name} on port {self.port} exited at start (see {self.log_path})")
            if time.monotonic() > deadline:
                raise VigilError(f"{self.name} did not accept connections on port {self.port} within "
                                 f"{self.start_timeout_s:.0f} s (see {self.log_path})")
            time.sleep(0.05)

    @property
    def log_path(self) -> Path:
        return self.dir / f"{self.name}.log"


class _ProcessService(PrivateService):
    """A service that is one foreground process (nats-server, mosquitto)."""

    def __init__(self, port: int | None = None, root: Path | None = None, start_timeout_s: float = 30.0) -> None:
        super().__init__(port, root, start_timeout_s)
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> Self:
        if self.running:
            return self
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(self.command(), stdout=self._log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, cwd=self.dir)
        process = self.process
        self._wait_accepting(lambda: process.poll() is None)
        self.starts += 1
        return self

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM (a clean shutdown, stores saved) and wait; SIGKILL after ``timeout_s``."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout_s)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(5)
            self._done()

    def kill(self) -> None:
        """SIGKILL: a crash, nothing saved on the way out."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(5)
            self._done()

    def _done(self) -> None:
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None


class PrivateNats(_ProcessService):
    """``nats-server -js`` with its JetStream file store in the folder (kept across restarts)."""

    name = "nats-server"

    def __init__(self, port: int | None = None, root: Path | None = None, start_timeout_s: float = 30.0) -> None:
        self.binary = _binary("nats-server", NATS_SERVER)
        super().__init__(port, root, start_timeout_s)
        self.store_dir = self.dir / "jetstream"

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [self.binary, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store_dir)]


class PrivateMosquitto(_ProcessService):
    """``mosquitto`` with persistence in the folder, so QoS 1 messages queued for a persistent session (a
    subscriber with ``clean_start=False``) survive a clean restart. ``autosave_s`` also saves them every so many
    seconds (for survival of ``kill()``); default: only on shutdown."""

    name = "mosquitto"

    def __init__(self, port: int | None = None, root: Path | None = None, start_timeout_s: float = 30.0,
                 autosave_s: int | None = None) -> None:
        self.binary = _binary("mosquitto", "/usr/sbin/mosquitto")
        super().__init__(port, root, start_timeout_s)
        self.config_path = self.dir / "mosquitto.conf"
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous true", "persistence true",
                 f"persistence_location {self.dir}/"]
        if autosave_s is not None:
            lines.append(f"autosave_interval {autosave_s}")
        if os.geteuid() == 0:  # as root it would switch to the mosquitto user, who cannot write this folder
            lines.append("user root")
        self.config_path.write_text("\n".join(lines) + "\n")

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def command(self) -> list[str]:
        return [self.binary, "-c", str(self.config_path)]


class PrivatePostgres(PrivateService):
    """A throw-away PostgreSQL cluster (initdb, trust authentication, fsync off), run with ``pg_ctl``.

    As root, the cluster belongs to the ``postgres`` OS user and every command runs through ``runuser``; when
    that user cannot reach a folder in ``root`` (a parent is private), the system's temporary folder is used.
    ``url`` is the ``postgres`` database as the ``postgres`` superuser.
    """

    name = "postgres"

    def __init__(self, port: int | None = None, root: Path | None = None, start_timeout_s: float = 30.0) -> None:
        found = sorted(glob.glob(f"{POSTGRES_BINARIES}/initdb"), key=_version_key)
        if not found:
            raise VigilError(f"initdb not found in {POSTGRES_BINARIES}: install postgresql to run this fault scenario")
        self.bin = Path(found[-1]).parent
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            self._as_user = [_binary("runuser", "/usr/sbin/runuser", "/sbin/runuser"), "-u", "postgres", "--"]
        super().__init__(port, root, start_timeout_s)
        if self._as_user and not self._own_folder() and root is not None:  # root is out of the user's reach
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = Path(tempfile.mkdtemp(prefix=f"vigil-{self.name}-"))
            if not self._own_folder():
                shutil.rmtree(self.dir, ignore_errors=True)
                raise VigilError(f"the postgres user cannot write {self.dir}: PostgreSQL cannot run there")
        self.data_dir = self.dir / "data"
        self.socket_dir = self.dir / "sock"
        self.socket_dir.mkdir()
        if self._as_user:
            shutil.chown(self.socket_dir, "postgres", "postgres")
        self._initialised = False

    def _own_folder(self) -> bool:
        """Give the folder to the postgres user; whether it can write there (the folders above must let it by)."""
        shutil.chown(self.dir, "postgres", "postgres")
        return self._run("test", "-w", str(self.dir), check=False).returncode == 0

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def running(self) -> bool:
        return self._postmaster_pid() is not None

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([*self._as_user, *args], cwd=self.dir, capture_output=True, text=True, check=False)
        if check and result.returncode != 0:
            message = (result.stderr or result.stdout).strip().splitlines()
            raise VigilError(f"{Path(args[0]).name} failed: {message[-1] if message else result.returncode} "
                             f"(see {self.log_path})")
        return result

    def start(self) -> Self:
        if self.running:
            return self
        if not self._initialised:
            self._run(str(self.bin / "initdb"), "-D", str(self.data_dir), "-U", "postgres", "-A", "trust",
                      "-E", "UTF8", "--no-sync")
            self._initialised = True
        options = f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_path), "-w",
                  "-t", str(round(self.start_timeout_s)), "-o", options, "start")
        self._wait_accepting(lambda: self._postmaster_pid() is not None)
        self.starts += 1
        return self

    def stop(self) -> None:
        """``pg_ctl stop -m fast``: sessions are disconnected, the cluster shuts down cleanly."""
        if self.running:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop")

    def kill(self) -> None:
        """SIGKILL the postmaster and its backends (a crash); ``start()`` then runs crash recovery."""
        pid = self._postmaster_pid()
        if pid is None:
            return
        victims = [pid, *_children(pid)]
        for victim in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        # a new postmaster refuses to start while the old pid exists, even as a zombie not yet reaped
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{v}").exists() for v in victims) and time.monotonic() < deadline:
            time.sleep(0.05)
        if Path(f"/proc/{pid}").exists():  # never reaped: the lock file is stale all the same
            (self.data_dir / "postmaster.pid").unlink(missing_ok=True)

    def ready(self) -> bool:
        """True when the server accepts sessions (``pg_isready``)."""
        return self._run(str(self.bin / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port),
                         check=False).returncode == 0

    def _postmaster_pid(self) -> int | None:
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None


def _version_key(path: str) -> tuple[int, ...]:
    version = Path(path).parent.parent.name
    return tuple(int(p) for p in version.split(".") if p.isdigit())


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _children(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(stat.parent.name))
    return children
