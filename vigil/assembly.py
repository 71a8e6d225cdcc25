"""Assembling one node's backends from the config: store, outbox, bus, sinks, and their event loop.

The frame path is threaded (readers, inference worker); the bus, the outbox relay and the sinks
are asyncio, on one loop in a background thread. ``Services.close`` flushes the outbox first, so a
clean shutdown loses nothing that was persisted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import socket
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from vigil.config import Config
from vigil.events.bus import Bus, InProcessBus
from vigil.events.integrations import SinkRoute, configured_sinks, connect_bus
from vigil.events.mqtt import MqttSink
from vigil.events.nats_bus import NatsBus
from vigil.events.outbox import EventWriter, OutboxRelay, is_outage
from vigil.events.sinks import JsonLinesSink, Sink, run_sink
from vigil.events.store_sink import StoreSink
from vigil.governance.gate import AuthorisationGate
from vigil.governance.service import Governance, open_governance
from vigil.sources.masks import PrivacyMasker
from vigil.sources.opening import is_live
from vigil.sources.recorder import Recorder
from vigil.sources.stream_space import in_stream
from vigil.store.db import Store, open_store
from vigil.store.events import EventStore
from vigil.store.lists import ListStore
from vigil.store.recordings import RecordingIndex
from vigil.store.recovery import RecoveryReport, recover_segments
from vigil.store.retention import Retention, RetentionPolicy
from vigil.store.sightings import SightingStore
from vigil.store.snapshots import SnapshotStore
from vigil.vision.enrichers import RecognitionEnrichers, recognition_enrichers

if TYPE_CHECKING:
    from vigil.runtime import Node

log = logging.getLogger(__name__)

#: on a clean shutdown, how long the sinks may take to deliver their backlogs (failing ones are not waited for)
SINK_DRAIN_S = 5.0


Role = Literal["all", "worker", "api"]

#: What each role runs. ``all`` is one box (``vigil run``, the demo). A camera worker records, relays its outbox
#: and applies retention to its own disk (segments are indexed with their node); the command centre delivers to
#: MQTT and webhooks.
ROLE_PARTS: dict[str, frozenset[str]] = {
    "all": frozenset({"recorders", "retention", "sinks"}),
    "worker": frozenset({"recorders", "retention"}),
    "api": frozenset({"sinks"}),
}


def storage_node(config: Config) -> str:
    """The name a worker's segments are indexed under: ``cluster.node_id``, else the host name (its disk)."""
    return config.cluster.node_id or socket.gethostname()


@dataclass
class Services:
    config: Config
    store: Store
    events: EventStore
    writer: EventWriter
    snapshots: SnapshotStore
    bus: Bus
    relay: OutboxRelay
    sink: StoreSink
    recordings: RecordingIndex
    retention: Retention
    governance: Governance
    lists: ListStore
    sightings: SightingStore
    recorders: dict[str, Recorder] = field(default_factory=dict)
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    _thread: threading.Thread | None = None
    _stop: asyncio.Event | None = None
    sinks: list[Sink] = field(default_factory=list)  # started by ``start``, each with ``backlog()`` and ``dropped``
    mqtt: MqttSink | None = None  # the configured MQTT sink, once started
    recovery: RecoveryReport | None = None  # what ``start`` did with segments an unclean stop left unindexed
    parts: frozenset[str] = ROLE_PARTS["all"]  # what ``start`` ran, by role

    @property
    def stopping(self) -> asyncio.Event:
        """Set (on the loop) when the services close: long-running tasks end on it."""
        assert self._stop is not None, "Services.start() first"
        return self._stop

    def run_loop(self) -> None:
        """Start the event loop thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self.loop.run_forever, name="vigil-events", daemon=True)
            self._thread.start()

    def start(self, jsonl: Path | None = None, role: Role = "all") -> Services:
        """Start what the role runs on the event loop thread (ROLE_PARTS):

        - ``recorders`` (the camera side): re-index the segments an unclean stop left unindexed (before
          retention could take them for orphans and before any recorder writes), and run the outbox relay;
        - ``retention``: apply it every ``retention.interval_s`` (one box only, see ROLE_PARTS);
        - ``sinks`` (the command-centre side): the configured MQTT and webhook sinks and, when asked, a
          JSON-lines sink."""
        parts = self.parts = ROLE_PARTS[role]
        if "recorders" in parts:
            self.recovery = recover_segments(self.recordings, {c.id: c.recording for c in self.config.cameras})
        self.run_loop()
        self._stop = self.call(_new_event())
        if "recorders" in parts:
            self.spawn(self.relay.run(self._stop))
        if "retention" in parts:
            self.spawn(self._retention_loop())
        if "sinks" not in parts:
            return self
        routes = configured_sinks(self.config)
        for route in routes:
            self.sinks.append(route.sink)
            if isinstance(route.sink, MqttSink):
                self.mqtt = route.sink
            self.spawn(run_sink(self.bus, route.sink, route.kinds, route.cameras, group=self._sink_group(route)))
        if jsonl is not None:
            self.sinks.append(sink := JsonLinesSink(jsonl))
            self.spawn(run_sink(self.bus, sink))
        return self

    def _sink_group(self, route: SinkRoute) -> str | None:
        """On NATS, a consumer name shared by every command centre's copy of this sink (same config, same name),
        so that two of them behind a load balancer deliver each event once."""
        stats = route.sink.stats()
        return "sink-" + hashlib.sha256(f"{stats['name']}|{route.kinds}|{route.cameras}".encode()).hexdigest()[:16]

    def attach(self, node: Node) -> Node:
        """Feed the node's results and camera events to the store, and its live counts to MQTT (if any); let its
        status report each camera's recording state."""
        node.on_result.append(self.sink)
        self.sink.batching = True  # one transaction per step for all cameras' events and counts
        node.on_step_end.append(self.sink.flush)
        node.recording_status.update({camera_id: r.status for camera_id, r in self.recorders.items()})
        node.on_camera_event.append(self.sink.camera_event)
        if self.mqtt is not None:
            node.on_result.append(self.mqtt.on_result)
        return node

    def sink_stats(self) -> list[dict[str, object]]:
        """Per sink: name, backlog, delivered, dropped, rejected, failing (for status and metrics)."""
        return [sink.stats() for sink in self.sinks]

    async def _drain_sinks(self, timeout_s: float) -> None:
        """Wait (up to ``timeout_s``) for the sinks that are delivering to empty their backlogs."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while any(s.backlog() and not s.failing for s in self.sinks):
            if asyncio.get_running_loop().time() > deadline:
                return
            await asyncio.sleep(0.02)

    def enrichers(self) -> RecognitionEnrichers:
        """Each camera's recognition enrichers for ``Node(enrichers=...)``; live face matching is on only
        inside an approved ``live_face_match`` authorisation's window (DESIGN §6), and so is plate hotlist
        matching (``plate_hotlist``) when ``governance.require_authorisation_for`` lists it."""
        authorisations = self.governance.authorisations
        gated = "plate_hotlist" in self.config.governance.require_authorisation_for
        plate_allowed = AuthorisationGate(authorisations, "plate_hotlist") if gated else None
        return recognition_enrichers(self.config, self.lists, self.sightings,
                                     self.snapshots if self.config.store.snapshots else None,
                                     face_allowed=AuthorisationGate(authorisations),
                                     plate_allowed=plate_allowed)

    def apply_retention(self) -> None:
        """One retention pass: recordings, snapshots and events by age and size, then expired plate reads."""
        self.retention.run()
        self.sightings.purge_expired_plate_reads()

    async def _retention_loop(self) -> None:
        """Apply retention every ``retention.interval_s`` (first run at start), off the event loop. A pass that
        fails because the database is unreachable is logged and tried again at the next interval."""
        while not self._stop.is_set():
            try:
                await asyncio.to_thread(self.apply_retention)
            except Exception as exc:
                if not is_outage(exc):
                    raise
                log.error("retention: database %s unreachable, pass skipped until the next interval", self.store.url)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.config.retention.interval_s)

    def packet_hooks(self) -> dict[str, Callable]:
        """Camera id → the recorder's packet hook, for ``Node(packet_hooks=...)``."""
        return {camera_id: recorder.on_packet for camera_id, recorder in self.recorders.items()}

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Future:
        """Run a coroutine on the services' loop (from any thread)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def call(self, coroutine: Coroutine[Any, Any, Any], timeout: float = 30.0) -> Any:
        """Run a coroutine on the loop and wait for its result."""
        return self.spawn(coroutine).result(timeout)

    def close(self) -> None:
        """Close recordings, write what is buffered, publish the outbox (the roles that relay it), then stop the
        loop and database."""
        for recorder in self.recorders.values():
            recorder.close()
        self.writer.flush()
        if self._thread is not None:
            if "recorders" in self.parts:  # a command centre relays nothing: the workers' rows are theirs
                with contextlib.suppress(Exception):
                    self.call(self.relay.publish_pending(), timeout=30)
            with contextlib.suppress(Exception):
                self.call(asyncio.sleep(0.2))  # let subscribers drain what was just published
            with contextlib.suppress(Exception):
                self.call(self._drain_sinks(SINK_DRAIN_S), timeout=SINK_DRAIN_S + 5)
            if self._stop is not None:
                self.loop.call_soon_threadsafe(self._stop.set)
            with contextlib.suppress(Exception):
                self.call(_cancel_all(), timeout=5)
            with contextlib.suppress(Exception):
                self.call(self.bus.close(), timeout=5)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
        self.store.close()


async def _cancel_all() -> None:
    """Cancel every other task on this loop and wait for them to finish."""
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _new_event() -> asyncio.Event:
    return asyncio.Event()


def open_services(config: Config, start_time: datetime | None = None, role: Role = "all") -> Services:
    """A node's backends: the configured database and bus (``bus:``; NATS is connected here, on the services'
    event loop), snapshots, recordings, governance and lists.

    ``start_time``: the capture time of files' first frame, when the node is given one (as the reader).
    """
    config.data_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(config.store.database, data_dir=config.data_dir)
    events = EventStore(store)
    loop = asyncio.new_event_loop()
    thread = None
    if config.bus.kind == "inprocess":
        bus: Bus = InProcessBus()
    else:  # a network bus connects on the services' loop, which therefore starts here
        thread = threading.Thread(target=loop.run_forever, name="vigil-events", daemon=True)
        thread.start()
        try:
            bus = asyncio.run_coroutine_threadsafe(connect_bus(config.bus), loop).result(30)
        except BaseException:
            loop.call_soon_threadsafe(loop.stop)
            store.close()
            raise
    relay = OutboxRelay(store, bus)
    if isinstance(bus, NatsBus):
        bus.on_reconnected.append(relay.bus_reconnected)
    writer = EventWriter(events, on_written=relay.notify)
    relay.writer = writer
    snapshots = SnapshotStore(config.data_dir)
    recordings = RecordingIndex(store, config.data_dir, node=storage_node(config) if role == "worker" else None)
    policy = RetentionPolicy.from_cameras(config.cameras, class_ages_hours=config.retention.class_ages_hours())
    retention = Retention(recordings, policy)
    min_free = int(config.retention.min_free_gb * 1e9)
    recorders = {
        camera.id: Recorder(camera.id, recordings, camera.recording,
                            start_time=None if is_live(camera.recorded_url) else start_time,
                            free_space=lambda: retention.free_space(min_free),
                            masker=PrivacyMasker(in_stream(camera, "record").privacy_masks))
        for camera in config.cameras
        if camera.enabled and camera.recording.mode != "off" and "recorders" in ROLE_PARTS[role]
    }
    sink = StoreSink(events, writer, snapshots if config.store.snapshots else None, config.tracker.confirm_hits,
                     recorders)
    governance = open_governance(store, config.data_dir, checkpoint_every=config.governance.checkpoint_every,
                                 session_ttl=timedelta(hours=config.governance.session_hours))
    lists = ListStore(store, config.data_dir)
    sightings = SightingStore(store, config.recognition.plates.read_retention_hours, config.data_dir,
                              lists.hotlist_texts, face_threshold=config.recognition.faces.threshold)
    return Services(config, store, events, writer, snapshots, bus, relay, sink, recordings, retention, governance,
                    lists, sightings, recorders, loop, thread)
