"""The store sink: persists what the pipeline produced.

Events get a JPEG snapshot and go through the outbox (persisted first, then published); per-second
counts and the summaries of ended tracks (with the zones they visited and a thumbnail) are stored.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import TYPE_CHECKING

from vigil.events.outbox import EventWriter
from vigil.sources.recorder import Recorder
from vigil.store.events import EventStore, summarise_track
from vigil.store.snapshots import SnapshotStore
from vigil.types import Event, TrackState

if TYPE_CHECKING:  # the runtime imports this module
    from vigil.runtime import FrameResult


class StoreSink:
    """A ``Node.on_result`` hook writing events, counts and track summaries to the store."""

    def __init__(self, events: EventStore, writer: EventWriter, snapshots: SnapshotStore | None,
                 confirm_hits: int = 3, recorders: Mapping[str, Recorder] | None = None) -> None:
        self.events = events
        self.recorders = recorders or {}
        self.writer = writer
        self.snapshots = snapshots
        self.confirm_hits = confirm_hits
        self._visited: dict[tuple[str, int], set[str]] = defaultdict(set)
        self.tracks_saved = 0

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
        if result.output.events:
            self.writer.write_many(result.output.events)
        if result.output.counts:
            self.events.add_counts(result.output.counts)
        for track in result.update.ended:
            zones = self._visited.pop((camera_id, track.track_id), set())
            if track.hits < self.confirm_hits and track.state is not TrackState.CONFIRMED:
                continue  # never confirmed: a flicker, not an object
            thumbnail = None
            if self.snapshots is not None and track.best_snapshot is not None:
                thumbnail = self.snapshots.save_thumbnail(camera_id, track.track_id, track.last_seen,
                                                          track.best_snapshot)
            self.events.save_track(summarise_track(track, zones, thumbnail))
            self.tracks_saved += 1

    def camera_event(self, event: Event) -> None:
        """Camera online/offline/error events from the readers."""
        self.writer.write(event)
