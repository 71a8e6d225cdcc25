"""What the outage scenarios share: a real node on the demo scene, counting what it emits, and timed phases.

``BenchNode`` is the production assembly (``open_services`` + ``Node`` + ``Services.attach``) on the demo scene
(``video/vtest_h264.mp4`` replayed in real time and looped) with the config's ``store``/``bus``/``mqtt`` set by
the scenario. It records every event the node emits (the pipeline's events from ``on_result``, the readers'
camera events from ``on_camera_event``: both are stored and published) and when each frame was analysed.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Self

from rich.progress import Progress
from sqlalchemy import select

from vigil.assembly import Services, open_services
from vigil.bench.latency import bench_config
from vigil.config import Config
from vigil.events.store_sink import StoreSink
from vigil.paths import data_file
from vigil.runtime import FrameResult, Node
from vigil.store.db import open_store
from vigil.store.schema import EventRow
from vigil.types import Event
from vigil.vision.detector import create_detector

VIDEO = "video/vtest_h264.mp4"


@contextlib.contextmanager
def work_folder(root: Path | None, prefix: str) -> Iterator[Path]:
    """A new folder under ``root`` (default: the temporary folder), removed afterwards."""
    if root is not None:
        root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
    folder.chmod(0o711)  # traversable (not listable) by the postgres user of a private cluster inside
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class BenchNode:
    """A real node and its services; ``emitted`` maps each event id it emitted to its kind, in order."""

    def __init__(self, folder: Path, cameras: int = 1, configure: Callable[[Config], None] | None = None) -> None:
        """``configure`` edits the config (database, bus, sinks) before anything is opened. Recording is off
        unless ``configure`` turns it on (the outages are about events)."""
        self.config = bench_config(folder, data_file(VIDEO), cameras)
        for camera in self.config.cameras:
            camera.recording.mode = "off"
        if configure is not None:
            configure(self.config)
        self.emitted: dict[str, str] = {}
        self.repeated = 0  # ids emitted twice (none expected)
        self.frame_times: list[float] = []  # monotonic time of each analysed frame
        self._lock = threading.Lock()
        self.services: Services | None = None
        self.sink: StoreSink | None = None  # the services' store sink (kept after ``stop``)
        self.node: Node | None = None
        self._worker: threading.Thread | None = None

    def start(self) -> Self:
        """Open the services, build the node (the real detector) and run it on its own thread."""
        self.services = services = open_services(self.config).start()
        self.sink = services.sink
        try:
            node = Node(self.config, create_detector(self.config.detector), packet_hooks=services.packet_hooks(),
                        enrichers=services.enrichers())
        except BaseException:
            services.close()
            self.services = None
            raise
        node.on_result.append(self._on_result)
        node.on_camera_event.append(self._on_event)
        self.node = services.attach(node)
        self._worker = threading.Thread(target=node.start().run, name="vigil-node", daemon=True)
        self._worker.start()
        return self

    def _on_result(self, result: FrameResult) -> None:
        if result.frame is not None:
            self.frame_times.append(time.monotonic())
        for event in result.output.events:
            self._on_event(event)

    def _on_event(self, event: Event) -> None:
        with self._lock:
            if event.id in self.emitted:
                self.repeated += 1
            self.emitted[event.id] = event.kind

    @property
    def events(self) -> int:
        return len(self.emitted)

    def frames_between(self, start: float, end: float) -> int:
        """Frames analysed between two ``time.monotonic()`` readings."""
        return sum(start <= t < end for t in self.frame_times)

    def stop(self) -> None:
        """Stop the node (its tracks are closed: their events are emitted) and close the services, which
        write what is buffered and publish the whole outbox."""
        if self.node is not None:
            self.node.stop()
        if self._worker is not None:
            self._worker.join(30)
            self._worker = None
        if self.services is not None:
            self.services.close()
            self.services = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def stored_ids(database: str, ids: Iterable[str]) -> set[str]:
    """Which of ``ids`` are in the events table of ``database`` (a new connection)."""
    wanted = list(ids)
    found: set[str] = set()
    with open_store(database, migrate=False) as store, store.session() as session:
        for i in range(0, len(wanted), 500):
            found.update(session.scalars(select(EventRow.id).where(EventRow.id.in_(wanted[i:i + 500]))))
    return found


def phase(progress: Progress, description: str, seconds: float, tick: Callable[[], object] | None = None,
          until: Callable[[], bool] | None = None, every_s: float = 0.1) -> float:
    """A progress task for a timed phase: wait ``seconds`` (or until ``until()`` is true), calling ``tick()``
    every ``every_s``; returns the seconds waited."""
    task = progress.add_task(description, total=round(seconds))
    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < seconds:
        if tick is not None:
            tick()
        if until is not None and until():
            break
        progress.update(task, completed=int(elapsed))
        time.sleep(every_s)
    progress.update(task, completed=round(seconds))
    return time.monotonic() - start


def step(progress: Progress, description: str) -> Callable[[], None]:
    """A progress task for an untimed step; call the result when it is done."""
    task = progress.add_task(description, total=1)
    return lambda: progress.update(task, completed=1)
