"""The camera worker role (``vigil worker``, and the body of each Ray actor of ``vigil cluster up``).

It runs the whole frame path for a group of cameras (readers, the inference worker, tracking, rules,
enrichers, the recorder), persists through the outbox into the shared database and publishes on NATS, and
serves its live picture on the bus (``LivePublisher``). A camera is analysed only while this worker holds its
lease (``CameraLeases``): the lease keeper acquires the group's cameras as their leases come free, renews
them every third of the TTL, and suspends a camera the moment its lease is lost or can no longer be
confirmed; the event writer is fenced with the same leases.

Failover does not wait for Ray to notice a lost node: a worker may also be given *standby* cameras (the
next group's cameras, ``ray_cluster``), and takes any of them whose lease has lapsed. The box then runs more
than its share until ``release_standby`` hands them back to their own worker, restarted by Ray.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence

from vigil.api.live import LiveFrames
from vigil.api.live_state import NodeLiveState, default_node_id
from vigil.api.server import RunningServer
from vigil.assembly import Services, open_services
from vigil.cluster.leases import CameraLeases
from vigil.cluster.live_publisher import LivePublisher
from vigil.config import Config
from vigil.errors import ConfigError
from vigil.events.nats_bus import NatsBus
from vigil.events.outbox import is_outage
from vigil.runtime import Node
from vigil.vision.detector import create_detector

log = logging.getLogger(__name__)


def worker_config(config: Config, cameras: Sequence[str] | None) -> Config:
    """The config restricted to the worker's cameras (default: every enabled camera)."""
    known = {c.id for c in config.cameras}
    for camera_id in cameras or ():
        if camera_id not in known:
            raise ConfigError(f"worker: no camera with id {camera_id!r} in the config")
    wanted = set(cameras) if cameras else {c.id for c in config.cameras if c.enabled}
    return config.model_copy(update={"cameras": [c for c in config.cameras if c.id in wanted and c.enabled]})


def fence_writes(services: Services, leases: CameraLeases) -> None:
    """A worker's event writes fenced by its leases, and its outbox rows marked as its own, for its relay."""
    services.writer.fence = leases.fence
    services.writer.origin = services.relay.origin = leases.holder


class CameraWorker:
    """A group of cameras analysed in this process under leases, and standby cameras it may take over. ``run``
    blocks until ``stop``."""

    def __init__(self, config: Config, cameras: Sequence[str] | None = None, node_id: str | None = None,
                 standby: Sequence[str] = ()) -> None:
        if config.bus.kind != "nats":
            raise ConfigError("worker: a camera worker needs the NATS bus (bus: kind: nats), so that the command "
                              "centre sees its events and live state")
        own = worker_config(config, cameras)
        self.cameras = [c.id for c in own.cameras]  # its own group, taken first
        extra = [c for c in worker_config(config, standby).cameras if c.id not in self.cameras] if standby else []
        self.config = own.model_copy(update={"cameras": own.cameras + extra})
        self.standby_ids = [c.id for c in extra]
        self.node_id = node_id or config.cluster.node_id or default_node_id()
        self._stop = threading.Event()
        self._standby_from = 0.0
        self._handed_back: dict[str, float] = {}  # standby camera → monotonic time before which it is not retaken
        self.services: Services | None = None
        self.node: Node | None = None
        self.leases: CameraLeases | None = None
        self.media_server: RunningServer | None = None
        self.error: str | None = None

    def stop(self) -> None:
        self._stop.set()

    def run(self, on_ready: Callable[[CameraWorker], None] | None = None) -> None:
        """Run until ``stop``; an error that ends it is kept in ``error`` (shown by ``vigil cluster status``)."""
        try:
            self._run(on_ready)
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            log.error("worker %s stopped: %s", self.node_id, self.error)
            raise

    def _run(self, on_ready: Callable[[CameraWorker], None] | None) -> None:
        services = self.services = open_services(self.config, role="worker")
        inference = None
        try:
            leases = self.leases = CameraLeases(services.store, self.node_id, self.config.cluster.lease_ttl_s)
            fence_writes(services, leases)  # before the relay starts: it publishes only this worker's rows
            services.start(role="worker")
            node = self.node = Node(self.config, create_detector(self.config.detector),
                                    packet_hooks=services.packet_hooks(), enrichers=services.enrichers())
            services.attach(node)
            live = NodeLiveState(node, LiveFrames(), self.node_id)
            assert isinstance(services.bus, NatsBus)
            cluster = self.config.cluster
            media = self._serve_segments(services)
            publisher = LivePublisher(services.bus.client, self.config.bus.subject_prefix, live,
                                      cluster.heartbeat_s, cluster.preview_s, may_serve=leases.valid,
                                      storage=services.recordings.node, media_url=media)
            services.spawn(publisher.run(services.stopping))
            node.start(cameras=[])  # each camera starts once its lease is held
            # standby cameras wait two TTLs at start, for their own workers (starting too) to take them
            self._standby_from = time.monotonic() + 2 * cluster.lease_ttl_s
            inference = threading.Thread(target=node.run, name="vigil-inference", daemon=True)
            inference.start()
            if on_ready:
                on_ready(self)
            while not self._stop.is_set():
                self.keep_leases()
                self._stop.wait(cluster.lease_ttl_s / 3)
        finally:
            if self.media_server is not None:
                self.media_server.stop()
            if self.node is not None:
                self.node.stop()
            if inference is not None:
                inference.join(10)
            if self.leases is not None:
                try:
                    self.leases.release()
                except Exception as exc:
                    if not is_outage(exc):
                        raise
            services.close()

    def _serve_segments(self, services: Services) -> str | None:
        """Serve this node's segments to command centres (``cluster.media_token``); returns their URL."""
        from vigil.api.server import serve_in_thread
        from vigil.cluster.segments import segment_server

        cluster = self.config.cluster
        if cluster.media_token is None:
            log.warning("worker %s: no cluster.media_token, so command centres cannot play its recordings",
                        self.node_id)
            return None
        app = segment_server(services.recordings, cluster.media_token.get_secret_value())
        self.media_server = serve_in_thread(app, cluster.media_host, cluster.media_port)
        port = self.media_server.url.rsplit(":", 1)[1]
        host = cluster.media_advertise or (socket.gethostname() if cluster.media_host in ("0.0.0.0", "::")
                                           else cluster.media_host)
        return f"http://{host}:{port}"

    def keep_leases(self) -> None:
        """Renew the held leases, suspend what is no longer safely held, take and start what came free."""
        assert self.leases is not None and self.node is not None
        leases, node = self.leases, self.node
        try:
            leases.renew()
            reachable = True
        except Exception as exc:
            if not is_outage(exc):
                raise
            reachable = False
            log.error("worker %s: database unreachable, leases not renewed", self.node_id)
        for camera_id in node.analysing:
            if not leases.valid(camera_id):
                log.warning("worker %s: camera %s suspended (lease lost)", self.node_id, camera_id)
                node.suspend(camera_id)
        if not reachable:
            return
        for camera_id in self.cameras + self.standby_ids:
            if camera_id in node.analysing:
                continue
            if camera_id in self.standby_ids and time.monotonic() < max(self._standby_from,
                                                                        self._handed_back.get(camera_id, 0.0)):
                continue
            if leases.acquire(camera_id) is not None:
                kind = "standby camera" if camera_id in self.standby_ids else "camera"
                log.info("worker %s: %s %s started", self.node_id, kind, camera_id)
                node.resume(camera_id)

    def release_standby(self, cameras: Sequence[str] | None = None) -> list[str]:
        """Stop the standby cameras taken over (or those of ``cameras``) and free their leases at once, for
        their own worker to take; returns them."""
        assert self.leases is not None and self.node is not None
        chosen = [c for c in (cameras or self.standby_ids) if c in self.standby_ids and c in self.node.analysing]
        for camera_id in chosen:
            self.node.suspend(camera_id)
        self.leases.release(chosen)
        for camera_id in chosen:  # left to its own worker for a while: not taken straight back
            self._handed_back[camera_id] = time.monotonic() + 3 * self.config.cluster.lease_ttl_s
        return chosen

    def analysing(self) -> list[str]:
        return sorted(self.node.analysing) if self.node is not None else []
