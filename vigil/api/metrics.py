"""Prometheus metrics for ``GET /metrics``, read from the live state (``LiveState``) at scrape time.

- ``VigilCollector`` turns what the workers already track into metric families: per camera (label ``camera``)
  from each ``CameraStatus``; the detector-call histogram from each ``DetectorStats`` (the detector is
  shared by a node's cameras, so its label is ``model``, not ``camera``); the outbox and bus figures from the
  services' ``OutboxRelay`` and ``EventWriter``. No prometheus_client metric objects live on the frame path;
  the node only keeps its own figures (``CameraPipeline.analysed_fps``, ``Node.inference_counts``).
- ``app_metrics(app)``: one ``CollectorRegistry`` per app (never the process-wide default registry, so
  several apps in one process do not collide), with the process, platform and GC collectors.
- ``scrape_allowed(settings, authorization, client)``: the scrape token (compared in constant time) or a client
  address in ``metrics.allow_from``. ``address_allowed`` accepts only real IP addresses: Starlette's
  ``TestClient`` reports the client as ``"testclient"``, which no network contains.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from vigil.api.live_state import CameraStatus, DetectorStats
from vigil.config import MetricsConfig
from vigil.events.outbox import is_outage
from vigil.sources.reader import ReaderState

if TYPE_CHECKING:
    from fastapi import FastAPI

    from vigil.api.deps import ApiState

log = logging.getLogger(__name__)

_registry_lock = threading.Lock()


class VigilCollector(Collector):
    """The node's cameras, detector, outbox and bus, read when Prometheus scrapes. ``sees``: a camera filter
    (a signed-in user's grant); None keeps every camera."""

    def __init__(self, state: ApiState, sees: Callable[[str], bool] | None = None) -> None:
        self.state = state
        self.sees = sees

    def collect(self) -> Iterator[Metric]:
        yield from self._cameras(self.state.live.statuses())
        yield from (self._inference(detector) for detector in self.state.live.detectors())
        yield from self._events()

    def _cameras(self, statuses: dict[str, CameraStatus]) -> Iterator[Metric]:
        def family(kind: type[GaugeMetricFamily | CounterMetricFamily], name: str, doc: str) -> Metric:
            return kind(name, doc, labels=["camera"])

        fps = family(GaugeMetricFamily, "vigil_camera_analysed_fps", "Frames analysed per second (last 5 s).")
        online = family(GaugeMetricFamily, "vigil_camera_online", "1 while frames arrive from the camera, else 0.")
        lag = family(GaugeMetricFamily, "vigil_camera_lag_seconds",
                     "Seconds since the capture time of the newest frame read (absent before the first frame).")
        tracks = family(GaugeMetricFamily, "vigil_camera_live_tracks", "Tracks alive on the camera.")
        analysed = family(CounterMetricFamily, "vigil_camera_frames_analysed",
                          "Frames analysed (tracking and rules).")
        detected = family(CounterMetricFamily, "vigil_camera_frames_detected",
                          "Analysed frames the detector ran on (the others were motion-gated or skipped).")
        dropped = family(CounterMetricFamily, "vigil_camera_frames_dropped",
                         "Frames dropped before analysis because the inference worker was busy.")
        reconnects = family(CounterMetricFamily, "vigil_camera_reconnects",
                            "Times the stream came back after an outage.")
        events = family(CounterMetricFamily, "vigil_camera_events", "Events raised by the camera's rules.")
        for camera_id, status in statuses.items():
            if self.sees is not None and not self.sees(camera_id):
                continue
            labels = [camera_id]
            fps.add_metric(labels, status.analysed_fps)
            online.add_metric(labels, 1.0 if status.state == ReaderState.ONLINE.value else 0.0)
            if status.lag_s is not None:
                lag.add_metric(labels, status.lag_s)
            tracks.add_metric(labels, status.tracks)
            analysed.add_metric(labels, status.frames)
            detected.add_metric(labels, status.detected)
            dropped.add_metric(labels, status.drops)
            reconnects.add_metric(labels, status.reconnects)
            events.add_metric(labels, status.events)
        yield from (fps, online, lag, tracks, analysed, detected, dropped, reconnects, events)

    @staticmethod
    def _inference(detector: DetectorStats) -> Metric:
        histogram = HistogramMetricFamily(
            "vigil_detector_inference_seconds",
            "Time of one batched detector call; the detector is shared by every camera of the node.",
            labels=["model"])
        total, buckets = 0, []
        for bound, count in zip((*detector.buckets_s, float("inf")), detector.counts, strict=True):
            total += count
            buckets.append((floatToGoString(bound), total))
        histogram.add_metric([detector.model], buckets, sum_value=detector.total_s)
        return histogram

    def _events(self) -> Iterator[Metric]:
        services = self.state.services
        relay, writer = services.relay, services.writer
        up = 1.0
        try:
            pending, oldest = relay.pending(), relay.oldest_pending_age_s()
        except Exception as exc:
            if not is_outage(exc):
                raise
            up, pending, oldest = 0.0, None, None  # the writer logs the outage; the scrape still answers
        yield GaugeMetricFamily("vigil_database_up", "1 when the metadata database answered this scrape.", up)
        if pending is not None:
            yield GaugeMetricFamily("vigil_outbox_pending", "Events persisted but not yet published (outbox depth).",
                                    pending)
            yield GaugeMetricFamily("vigil_outbox_oldest_pending_age_seconds",
                                    "Age of the oldest unpublished event in the outbox (0 when it is empty).",
                                    oldest or 0.0)
        yield CounterMetricFamily("vigil_events_published", "Events the bus accepted from the outbox.", relay.published)
        yield CounterMetricFamily("vigil_bus_errors", "Times the bus refused an event (it stays in the outbox).",
                                  relay.failures)
        yield GaugeMetricFamily("vigil_event_buffer_events",
                                "Events held in memory because the database is unreachable.", writer.buffered)
        yield CounterMetricFamily("vigil_events_dropped",
                                  "Events lost because the in-memory buffer overflowed during a database outage.",
                                  writer.dropped)


def build_registry(state: ApiState, sees: Callable[[str], bool] | None = None) -> CollectorRegistry:
    """A registry with the node's collector and the process, platform and GC collectors."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(VigilCollector(state, sees))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


class RefusalLog:
    """One log line per client and reason every ``every_s``: a misconfigured scraper retries on every interval."""

    def __init__(self, every_s: float = 300.0) -> None:
        self.every_s = every_s
        self._last: dict[tuple[str | None, str], float] = {}
        self._lock = threading.Lock()

    def refused(self, client: str | None, detail: str) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last.get((client, detail), -self.every_s) < self.every_s:
                return
            if len(self._last) > 1000:
                self._last.clear()
            self._last[(client, detail)] = now
        log.warning("GET /metrics from %s refused: %s", client or "an unknown client", detail)


@dataclass
class AppMetrics:
    """What ``GET /metrics`` keeps per app (on ``app.state``)."""

    registry: CollectorRegistry
    refusals: RefusalLog = field(default_factory=RefusalLog)


def app_metrics(app: FastAPI) -> AppMetrics:
    """The app's registry and refusal log, made on the first scrape."""
    with _registry_lock:
        found = getattr(app.state, "metrics", None)
        if found is None:
            found = app.state.metrics = AppMetrics(build_registry(app.state.vigil))
        return found


# ---------------------------------------------------------------------- who may scrape

def bearer(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header."""
    if authorization and authorization[:7].lower() == "bearer " and authorization[7:].strip():
        return authorization[7:].strip()
    return None


def token_matches(settings: MetricsConfig, token: str | None) -> bool:
    """True when ``token`` is the scrape token (constant time; digests, so the length does not leak either)."""
    if settings.token is None or token is None:
        return False
    expected = hashlib.sha256(settings.token.get_secret_value().encode()).digest()
    return hmac.compare_digest(hashlib.sha256(token.encode()).digest(), expected)


def address_allowed(networks: Iterable[IPv4Network | IPv6Network], host: str | None) -> bool:
    """True when ``host`` is an IP address inside one of ``networks`` (an IPv4-mapped IPv6 address counts as
    its IPv4 address; a name such as ``testclient`` is never inside)."""
    networks = list(networks)
    if not networks or not host:
        return False
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


def scrape_allowed(settings: MetricsConfig, authorization: str | None, client: str | None) -> bool:
    """A scrape with the token, or from an allowed address."""
    return token_matches(settings, bearer(authorization)) or address_allowed(settings.allow_from, client)


def refusal(settings: MetricsConfig, authorization: str | None, client: str | None) -> tuple[int, str]:
    """Status and one-line detail for a scrape that is not allowed and carries no usable session."""
    where = f"client address {client or 'unknown'} is not in metrics.allow_from"
    if settings.token is not None:
        if bearer(authorization) is not None:
            return 401, "wrong token: the bearer token is neither metrics.token nor a live session"
        extra = f" ({where})" if settings.allow_from else ""
        return 401, f"metrics need the scrape token: Authorization: Bearer <metrics.token>{extra}"
    if settings.allow_from:
        return 403, where
    return 403, ("metrics are not enabled: set metrics.token or metrics.allow_from in the config, "
                 "or sign in as an administrator")
