"""Running the app with uvicorn next to a node: in a background thread (``vigil demo``, tests, benchmarks)."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

from vigil.errors import VigilError


@dataclass
class RunningServer:
    """A uvicorn server in a daemon thread; ``url`` is where it listens, ``stop()`` ends it."""

    server: uvicorn.Server
    thread: threading.Thread
    url: str

    def stop(self, timeout: float = 5.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)


def serve_in_thread(app: FastAPI, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning",
                    timeout: float = 10.0) -> RunningServer:
    """Start ``app`` on ``host:port`` (0: a free port) in its own thread and event loop; returns once it listens."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise VigilError(f"cannot listen on {host}:{port} ({exc.strerror})") from None
    bound = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level=log_level, lifespan="off", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="vigil-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise VigilError(f"the web server did not start on {host}:{bound}")
        time.sleep(0.02)
    return RunningServer(server, thread, f"http://{host}:{bound}")
