"""One node: camera readers, one inference worker batching across cameras, tracking and rules per camera.

Frames never leave this process (DESIGN §1). Decode threads (``StreamReader``) feed small bounded
queues; the worker takes the oldest frame of every camera that has one, skips the detector for
frames without motion and without live tracks, runs one batched detection for the rest, then
tracking and rules per camera. What a frame produced goes to ``on_result`` hooks (persistence,
the demo's annotated video, live view).
"""

from __future__ import annotations

import bisect
import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import supervision as sv

from vigil.analytics import DensityHeatmap, RuleEngine, RuleOutput
from vigil.config import CameraConfig, Config, TrackerConfig
from vigil.sources.motion import MotionGate
from vigil.sources.opening import is_live
from vigil.sources.reader import ReaderState, StreamReader
from vigil.sources.record_reader import RecordStreamReader
from vigil.sources.stream_space import in_stream
from vigil.types import Event, Frame, Track
from vigil.vision.density import DensityCounter, DensityWorker
from vigil.vision.detector import Detector
from vigil.vision.tracker import TrackUpdate, create_tracker

log = logging.getLogger(__name__)

#: upper bounds (s) of the detector-call time histogram (``Node.inference_counts``), Prometheus ``le`` buckets
INFERENCE_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
#: nothing moved and nothing was tracked for this long (capture time): the camera is quiet
QUIET_AFTER_S = 1.0


@dataclass(slots=True)
class FrameResult:
    """What one analysed frame produced."""

    camera: CameraConfig
    frame: Frame | None  # None for the final flush, when tracks end without a new frame
    update: TrackUpdate
    output: RuleOutput
    detected: bool  # False when the motion gate let the detector skip this frame


@dataclass(slots=True)
class PipelineStats:
    frames: int = 0
    detected: int = 0
    events: int = 0
    live_tracks: int = 0
    last_at: datetime | None = None
    busy_s: float = 0.0  # worker time spent on this camera's frames (tracking + rules + hooks)


class CameraPipeline:
    """Everything that runs per camera after decoding: motion gate, tracker, rules, heatmap."""

    def __init__(self, camera: CameraConfig, tracker: TrackerConfig, motion_gate: bool = True,
                 enrichers: list[Enricher] | None = None, interval: int = 0) -> None:
        """``interval``: analysed frames between two detections (``detector.interval``)."""
        self.camera = camera
        self.enrichers = enrichers or []
        self.gate = MotionGate() if motion_gate else None
        self.interval = interval
        self._skipped = interval  # the first frame with anything to detect is detected
        self.tracker = create_tracker(tracker, camera.id, fps=camera.fps / (interval + 1))
        self.heatmap: DensityHeatmap | None = None
        self.rules = RuleEngine(camera)
        self.live: list[Track] = []
        self.stats = PipelineStats()
        self._analysed: deque[float] = deque(maxlen=50)  # monotonic times of the last analysed frames
        self._analysed_lock = threading.Lock()
        wanted = camera.keyframes_when_quiet
        self.keyframes_when_quiet = is_live(camera.url) if wanted is None else wanted
        self.quiet = False  # no motion and no live track for QUIET_AFTER_S: its reader may decode keyframes only
        self._quiet_since: datetime | None = None

    def analysed_fps(self, window_s: float = 5.0) -> float:
        """Frames analysed per second over the last ``window_s`` (0 when fewer than two)."""
        now = time.monotonic()
        with self._analysed_lock:
            recent = [t for t in self._analysed if now - t <= window_s]
        return (len(recent) - 1) / (now - recent[0]) if len(recent) >= 2 else 0.0

    def needs_detection(self, frame: Frame) -> bool:
        """Detect when something moves, or while tracks are alive (a still person must stay tracked),
        on one analysed frame in ``interval + 1``."""
        wanted = self.gate is None or self.gate.update(frame.image) or bool(self.live)
        self._note_quiet(frame.captured_at, wanted)
        if not wanted:
            return False
        if self._skipped < self.interval:
            self._skipped += 1
            return False
        self._skipped = 0
        return True

    def _note_quiet(self, at: datetime, busy: bool) -> None:
        if busy:
            self._quiet_since, self.quiet = None, False
            return
        self._quiet_since = self._quiet_since or at
        self.quiet = self.keyframes_when_quiet and (at - self._quiet_since).total_seconds() >= QUIET_AFTER_S

    def process(self, frame: Frame, detections: sv.Detections | None) -> FrameResult:
        if self.heatmap is None:
            height, width = frame.image.shape[:2]
            self.heatmap = DensityHeatmap(width, height)
        if detections is None and self._skipped and self.live:  # between two detections: tracks coast
            update = TrackUpdate(sv.Detections.empty(), self.live, [])
        else:
            update = self.tracker.update(detections if detections is not None else sv.Detections.empty(),
                                         frame.captured_at, frame.image)
        self.live = update.active
        output = self.rules.update(update.active, update.ended, frame.captured_at)
        for enricher in self.enrichers:
            output.events += enricher.process(frame, update)
            if update.ended:
                output.events += enricher.finish(update.ended, frame.captured_at)
        self.heatmap.add_tracks([t for t in update.active if t.state.value == "confirmed"])
        self.stats.frames += 1
        self.stats.detected += detections is not None
        self.stats.events += len(output.events)
        self.stats.live_tracks = len(update.active)
        self.stats.last_at = frame.captured_at
        with self._analysed_lock:
            self._analysed.append(time.monotonic())
        return FrameResult(self.camera, frame, update, output, detections is not None)

    def finish(self, at: datetime) -> FrameResult | None:
        """End every track (end of stream or shutdown) and let the rules close them."""
        ended = self.tracker.flush(at)
        if not ended and not self.live:
            return None
        output = self.rules.update([], ended, at)
        for enricher in self.enrichers:
            output.events += enricher.finish(ended, at)
        self.live = []
        return FrameResult(self.camera, None, TrackUpdate(sv.Detections.empty(), [], ended), output, False)


class Enricher(Protocol):
    """Per-camera work on tracks after tracking (faces, plates, colour); returns the events it raises."""

    def process(self, frame: Frame, update: TrackUpdate) -> list[Event]: ...

    def finish(self, ended: list[Track], at: datetime) -> list[Event]: ...


EnricherFactory = Callable[[CameraConfig], list[Enricher]]
ResultHook = Callable[[FrameResult], None]
EventHook = Callable[[Event], None]


@dataclass
class Node:
    """The cameras of one node. ``run`` blocks until ``stop`` (or, with ``until_end``, all files end)."""

    config: Config
    detector: Detector
    on_result: list[ResultHook] = field(default_factory=list)
    on_camera_event: list[EventHook] = field(default_factory=list)
    #: called after each step's results went to ``on_result`` (and after the final flush): batched writes
    on_step_end: list[Callable[[], None]] = field(default_factory=list)
    motion_gate: bool = True
    enrichers: EnricherFactory | None = None  # builds each camera's enrichers (faces, plates)
    queue_size: int | None = None  # overrides every camera's ``queue`` (benchmarks)
    start_time: datetime | None = None  # capture time of files' first frame (deterministic runs)
    packet_hooks: dict[str, Callable] = field(default_factory=dict)  # camera id → recorder.on_packet
    #: camera id → its recorder's ``status()`` ("recording", "paused (disk full)"); cameras not in it: "off"
    recording_status: dict[str, Callable[[], str]] = field(default_factory=dict)
    #: compute due density maps inside the step instead of in the background (benchmarks replaying files
    #: faster than real time, so that every due map is made)
    density_inline: bool = False

    def __post_init__(self) -> None:
        self._wakeup = threading.Event()
        self._stop = threading.Event()
        cameras = [in_stream(c, "detect") for c in self.config.cameras if c.enabled]  # analysis: substream pixels
        make = self.enrichers or (lambda _camera: [])
        self.pipelines = {c.id: CameraPipeline(c, self.config.tracker, self.motion_gate, make(c),
                                               interval=self.config.detector.interval) for c in cameras}
        self.readers = {c.id: self._reader(c) for c in cameras}
        #: cameras with a separate main stream: its reader feeds the recorder
        self.record_readers = {c.id: r for c in cameras if (r := self._record_reader(c)) is not None}
        self._suspended: set[str] = set()  # cameras whose reader was stopped by ``suspend``
        self._to_finish: set[str] = set()  # suspended cameras whose tracks the worker has yet to end
        self.density = self._density_worker()
        self.inference_s = 0.0
        self.batches = 0
        #: detector calls per ``INFERENCE_BUCKETS_S`` bucket (not cumulative; the last one is above every bound)
        self.inference_counts = [0] * (len(INFERENCE_BUCKETS_S) + 1)

    # -- control -----------------------------------------------------------------------------------------

    def _reader(self, camera: CameraConfig) -> StreamReader:
        hook = None if camera.has_substream else self.packet_hooks.get(camera.id)
        return StreamReader(camera, on_event=self._camera_event, on_packet=hook,
                            queue_size=self.queue_size or camera.queue, wakeup=self._wakeup,
                            start_time=self.start_time)

    def _record_reader(self, camera: CameraConfig) -> RecordStreamReader | None:
        """The main stream's reader, for a camera with a substream that is recorded."""
        hook = self.packet_hooks.get(camera.id)
        if not camera.has_substream or hook is None:
            return None
        return RecordStreamReader(camera, on_packet=hook, on_event=self._camera_event, start_time=self.start_time)

    def _density_worker(self) -> DensityWorker | None:
        """The density-map thread, when a camera's crowd rule counts by density (``method: density | auto``)."""
        if not any(p.rules.counter.uses_density for p in self.pipelines.values()):
            return None
        return DensityWorker(DensityCounter(threads=1))

    def start(self, cameras: Iterable[str] | None = None) -> Node:
        """Start reading every camera, or only ``cameras`` (a cluster worker starts those it holds a lease on;
        ``resume`` starts the others later)."""
        chosen = set(self.readers if cameras is None else cameras)
        self._suspended = set(self.readers) - chosen
        for camera_id in chosen:
            self.readers[camera_id].start()
            if camera_id in self.record_readers:
                self.record_readers[camera_id].start()
        return self

    def suspend(self, camera_id: str) -> None:
        """Stop analysing one camera (its lease was lost): its reader stops, the worker ends its tracks."""
        if camera_id in self._suspended:
            return
        self._suspended.add(camera_id)
        self.readers[camera_id].stop(timeout=2.0)
        if camera_id in self.record_readers:
            self.record_readers[camera_id].stop(timeout=2.0)
        self._to_finish.add(camera_id)
        self._wakeup.set()

    def resume(self, camera_id: str) -> None:
        """Analyse a suspended (or never started) camera again, with a new reader."""
        if camera_id not in self._suspended:
            return
        camera = self.pipelines[camera_id].camera
        reader = self._reader(camera)
        self.readers = {**self.readers, camera_id: reader}  # replaced whole: other threads iterate the old dict
        if (recording := self._record_reader(camera)) is not None:
            self.record_readers = {**self.record_readers, camera_id: recording}
            recording.start()
        self._suspended.discard(camera_id)
        reader.start()

    @property
    def analysing(self) -> set[str]:
        """The cameras being read now (not suspended)."""
        return set(self.readers) - self._suspended

    def stop(self) -> None:
        """Ask ``run`` to return; it finishes the frame in hand and flushes every camera."""
        self._stop.set()
        self._wakeup.set()

    @property
    def sources_done(self) -> bool:
        return all(r.state in (ReaderState.ENDED, ReaderState.FAILED, ReaderState.STOPPED) and not len(r.queue)
                   for r in self.readers.values())

    def run(self, until_end: bool = False) -> None:
        """The inference worker loop; returns after ``stop()`` or, with ``until_end``, when every file ended."""
        try:
            while not self._stop.is_set():
                for camera_id in list(self._to_finish):
                    self._to_finish.discard(camera_id)
                    self._finish_camera(self.pipelines[camera_id])
                    self._step_end()
                batch = self._take_batch()
                if batch:
                    self.step(batch)
                elif until_end and self.sources_done:
                    break
                else:
                    self._wakeup.wait(0.2)
                    self._wakeup.clear()
        finally:
            for reader in [*self.readers.values(), *self.record_readers.values()]:
                reader.stop(timeout=2.0)
            if self.density is not None:
                self.density.stop()
            self._finish()

    # -- the frame path ----------------------------------------------------------------------------------

    def _take_batch(self) -> list[tuple[CameraPipeline, Frame]]:
        batch = []
        for camera_id, reader in self.readers.items():
            if camera_id in self._suspended:
                continue
            frame = reader.queue.get_nowait()
            if frame is not None:
                main = self.record_readers.get(camera_id)
                if main is not None and main.keeps_pictures:  # decoded once per frame, whatever asks for it
                    frame.main_picture = functools.cache(functools.partial(main.picture_at, frame.captured_at))
                batch.append((self.pipelines[camera_id], frame))
        return batch

    def step(self, batch: list[tuple[CameraPipeline, Frame]]) -> list[FrameResult]:
        """Detect (batched across cameras, motion-gated), then track and apply rules per camera. A due density map
        is offered first, so that it runs beside the detector (or, inline, counts this very frame)."""
        if self.density is not None:
            self._offer_density(batch)
        wanted = [i for i, (pipeline, frame) in enumerate(batch) if pipeline.needs_detection(frame)]
        for pipeline, _frame in batch:
            self.readers[pipeline.camera.id].keyframes_only = pipeline.quiet
        detections: dict[int, sv.Detections] = {}
        if wanted:
            started = time.perf_counter()
            found = self.detector.detect([batch[i][1].image for i in wanted])
            took = time.perf_counter() - started
            self.inference_s += took
            self.inference_counts[bisect.bisect_left(INFERENCE_BUCKETS_S, took)] += 1
            self.batches += 1
            detections = dict(zip(wanted, found, strict=True))
        results = []
        for i, (pipeline, frame) in enumerate(batch):
            started = time.perf_counter()
            result = pipeline.process(frame, detections.get(i))
            self._publish(result)
            pipeline.stats.busy_s += time.perf_counter() - started
            results.append(result)
        self._step_end()
        return results

    def _offer_density(self, batch: list[tuple[CameraPipeline, Frame]]) -> None:
        """Give the density thread the frame of the camera whose map is most overdue, if it is idle."""
        due = []
        for pipeline, frame in batch:
            counter, rule = pipeline.rules.counter, pipeline.camera.rules.crowd
            if rule is None or not counter.uses_density:
                continue
            last = counter.requested_at
            if last is None or (frame.captured_at - last).total_seconds() >= rule.interval_s:
                overdue = float("inf") if last is None else (frame.captured_at - last).total_seconds()
                due.append((overdue, pipeline, frame, rule.max_side))
        for _overdue, pipeline, frame, max_side in sorted(due, key=lambda d: -d[0]):
            counter = pipeline.rules.counter
            if self.density_inline:
                counter.set_density(self.density.estimate_now(frame.image, max_side))
            elif not self.density.offer(frame.image.copy(), counter.set_density, max_side):
                return
            counter.requested_at = frame.captured_at
            if not self.density_inline:
                return

    def _step_end(self) -> None:
        for hook in self.on_step_end:
            try:
                hook()
            except Exception:  # like a failing result hook: logged, the cameras go on
                log.exception("step hook %s failed", getattr(hook, "__name__", hook))

    def _publish(self, result: FrameResult) -> None:
        for hook in self.on_result:
            try:
                hook(result)
            except Exception:  # a failing sink must not stop the cameras
                log.exception("result hook %s failed on camera %s", getattr(hook, "__name__", hook),
                              result.camera.id)

    def _finish(self) -> None:
        for pipeline in self.pipelines.values():
            self._finish_camera(pipeline)
        self._step_end()

    def _finish_camera(self, pipeline: CameraPipeline) -> None:
        at = pipeline.stats.last_at
        if at is not None and (result := pipeline.finish(at)) is not None:
            self._publish(result)

    def _camera_event(self, event: Event) -> None:
        for hook in self.on_camera_event:
            hook(event)

    # -- status ------------------------------------------------------------------------------------------

    def status(self) -> list[dict[str, object]]:
        """One row per camera for the status table and the API."""
        rows = []
        for camera_id, reader in self.readers.items():
            stats = reader.stats()
            pipeline = self.pipelines[camera_id].stats
            rows.append({
                "camera": camera_id,
                "state": stats.state.value,
                "fps": round(stats.fps, 1),
                "analysed_fps": round(self.pipelines[camera_id].analysed_fps(), 2),
                "lag_s": None if stats.lag_s is None else round(stats.lag_s, 2),
                "drops": stats.drops,
                "frames": pipeline.frames,
                "detected": pipeline.detected,
                "tracks": pipeline.live_tracks,
                "events": pipeline.events,
                "reconnects": stats.reconnects,
                "gop_s": stats.gop_s,
                "decoding": "keyframes" if stats.keyframes_only else "all frames",
                "recording": status() if (status := self.recording_status.get(camera_id)) else "off",
                "record_stream": r.stats().state.value if (r := self.record_readers.get(camera_id)) else None,
                "error": stats.last_error,
            })
        return rows
