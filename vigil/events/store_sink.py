"""The store sink: persists what the pipeline produced.

Events get a JPEG snapshot and go through the outbox (persisted first, then published); per-second
counts and the summaries of ended tracks (with the zones they visited and a thumbnail) are stored.
While the database is unreachable events wait in the writer's buffer; counts and track summaries are not
kept: they are counted (``counts_lost``, ``tracks_lost``) and logged once per outage, not once per frame.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from vigil.events.outbox import EventWriter, is_outage
from vigil.sources.recorder import Recorder
from vigil.store.events import EventStore, summarise_track
from vigil.store.snapshots import SnapshotStore
from vigil.types import CountSample, Event, TrackState

if TYPE_CHECKING:  # the runtime imports this module
    from vigil.runtime import FrameResult

log = logging.getLogger(__name__)


class StoreSink:
    """A ``Node.on_result`` hook writing events, counts and track summaries to the store.

    With ``batching`` (``Services.attach`` sets it, and adds ``flush`` to ``Node.on_step_end``), the events and
    counts of every camera of one inference step are written in one transaction each at the step's end, rather
    than two transactions per camera and frame: a worker of many cameras then writes a few transactions per
    step (at city scale the per-frame transactions were the workers' main cost)."""

    def __init__(self, events: EventStore, writer: EventWriter, snapshots: SnapshotStore | None,
                 confirm_hits: int = 3, recorders: Mapping[str, Recorder] | None = None) -> None:
        self.events = events
        self.recorders = recorders or {}
        self.writer = writer
        self.snapshots = snapshots
        self.confirm_hits = confirm_hits
        self._visited: dict[tuple[str, int], set[str]] = defaultdict(set)
        self.tracks_saved = 0
        self.counts_lost = 0  # count samples not stored because the database was unreachable
        self.tracks_lost = 0  # track summaries likewise
        self._outage = False
        self._retry_at = 0.0
        self.batching = False
        self._pending_events: list[Event] = []
        self._pending_counts: list[CountSample] = []
        self._lock = threading.Lock()

    def __call__(self, result: FrameResult) -> None:
        camera_id = result.camera.id
        boxes = {t.track_id: t for t in result.update.active}
        recorder = self.recorders.get(camera_id)
        for event in result.output.events:
            if recorder is not None:
                event.clip = str(recorder.mark_event(event.at))  # a reference to segments, nothing copied
            if event.kind == "zone_enter" and event.track_id is not None and event.zone:
                self._visited[(camera_id, event.track_id)].add(event.zone)
            if self.snapshots is not None and result.frame is not None:
                track = boxes.get(event.track_id) if event.track_id is not None else None
                event.snapshot = self.snapshots.save_event(
                    camera_id, event.id, event.at, result.frame.image,
                    track.box if track else None, f"#{track.track_id} {track.label}" if track else None)
        if self.batching:
            with self._lock:
                self._pending_events += result.output.events
                self._pending_counts += result.output.counts
        else:
            self._write(result.output.events, result.output.counts)
        for track in result.update.ended:
            zones = self._visited.pop((camera_id, track.track_id), set())
            if track.hits < self.confirm_hits and track.state is not TrackState.CONFIRMED:
                continue  # never confirmed: a flicker, not an object
            thumbnail = None
            if self.snapshots is not None and track.best_snapshot is not None:
                thumbnail = self.snapshots.save_thumbnail(camera_id, track.track_id, track.last_seen,
                                                          track.best_snapshot)
            if self._stored(self.events.save_track, summarise_track(track, zones, thumbnail)):
                self.tracks_saved += 1
            else:
                self.tracks_lost += 1

    def flush(self) -> None:
        """Write the events and counts gathered since the last flush (``batching``)."""
        with self._lock:
            events, counts = self._pending_events, self._pending_counts
            self._pending_events, self._pending_counts = [], []
        self._write(events, counts)

    def _write(self, events: list[Event], counts: list[CountSample]) -> None:
        if events:
            self.writer.write_many(events)
        if counts and not self._stored(self.events.add_counts, counts):
            self.counts_lost += len(counts)

    def _stored(self, save: Callable[[Any], object], what: object) -> bool:
        """``save(what)``; False (logged once per outage) when the database is unreachable. During an outage
        it is tried again once per ``writer.retry_interval_s`` (so the frame path does not wait on every frame)."""
        if self._outage and time.monotonic() < self._retry_at:
            return False
        try:
            save(what)
        except Exception as exc:
            if not is_outage(exc):
                raise
            self._retry_at = time.monotonic() + self.writer.retry_interval_s
            if not self._outage:
                self._outage = True
                log.error("database %s unreachable: live counts and track summaries are not stored until it is "
                          "back (events are kept)", self.events.store.url)
            return False
        if self._outage:
            self._outage = False
            log.warning("database %s is back: storing counts and track summaries again (%d count samples, "
                        "%d track summaries lost)", self.events.store.url, self.counts_lost, self.tracks_lost)
        return True

    def camera_event(self, event: Event) -> None:
        """Camera online/offline/error events from the readers."""
        self.writer.write(event)
