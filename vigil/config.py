"""The configuration: one pydantic model tree, loaded from YAML.

Every model forbids unknown fields, so a typo is an error. Errors name the YAML path at fault,
for example ``config.yaml: cameras[0].zones[1].polygon: Field required``.
"""

from __future__ import annotations

import ipaddress
import re
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Annotated, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from vigil.errors import ConfigError

#: COCO class names the detector may report, and the default filter.
DETECTABLE_CLASSES = ("person", "bicycle", "car", "motorcycle", "bus", "truck")
# names in vigil/vision/models.json, the default first
DetectorModel = Literal["nanodet-int8-384x288", "nanodet-384x288", "nanodet-int8", "nanodet"]
DETECTOR_MODELS: tuple[str, ...] = get_args(DetectorModel)
VEHICLE_CLASSES = ("bicycle", "car", "motorcycle", "bus", "truck")

Point = tuple[float, float]
#: how a crowd rule counts people: tracks, the density map, or the better of the two (analytics/crowd_count.py)
CrowdMethod = Literal["detections", "density", "auto"]


class Strict(BaseModel):
    """Base for every config model: unknown fields are errors."""

    model_config = ConfigDict(extra="forbid", frozen=False)


Polygon = Annotated[list[Point], Field(min_length=3)]


class DetectorConfig(Strict):
    # int8 is twice as fast on CPU for ~0.001 AP50, and a 384×288 input (4:3; 416×416 stretched such
    # pictures) costs 0.6× the 416×416 model at the same AP50 on PETS09 (docs/BENCHMARKS.md).
    # CenterNet uses a TF.js-only op tf2onnx cannot convert.
    model: DetectorModel = "nanodet-int8-384x288"
    #: intra-op threads of each inference session, and sessions run side by side on parts of a batch:
    #: on CPU, one single-threaded session per core costs the least CPU per frame (docs/BENCHMARKS.md)
    threads: int = Field(1, ge=1, le=64)
    sessions: int = Field(2, ge=1, le=16)
    score_threshold: float = Field(0.35, gt=0, lt=1)
    nms_threshold: float = Field(0.45, gt=0, le=1)
    classes: list[str] = Field(default_factory=lambda: list(DETECTABLE_CLASSES))
    max_batch: int = Field(8, ge=1, le=64)
    #: analysed frames skipped between two detections on a camera (DeepStream's ``interval``): 0 detects
    #: every frame; 1 every other one, while tracks hold their last box and time-based rules still run
    interval: int = Field(0, ge=0, le=10)

    @field_validator("classes")
    @classmethod
    def _known_classes(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(DETECTABLE_CLASSES))
        if unknown:
            raise ValueError(f"unknown class {unknown[0]!r}; choose from {', '.join(DETECTABLE_CLASSES)}")
        return value


class TrackerConfig(Strict):
    kind: Literal["bytetrack", "ocsort", "sort"] = "bytetrack"
    confirm_hits: int = Field(3, ge=1)  # detections before a track is confirmed
    lost_after_s: float = Field(0.5, gt=0)  # unseen this long: lost
    # unseen this long: ended. Long, so a person hidden behind another is re-found and keeps their dwell
    end_after_s: float = Field(10.0, gt=0)
    history: int = Field(100, ge=2)  # recent boxes and trajectory points kept
    high_threshold: float = Field(0.6, gt=0, lt=1)  # ByteTrack's first-association score; new tracks need +0.1
    match_threshold: float = Field(0.1, gt=0, lt=1)  # minimum IoU (of boxes grown by 30%) to associate


class ZoneConfig(Strict):
    name: str
    polygon: Polygon
    classes: list[str] = Field(default_factory=list)  # empty: every class
    crowd_method: CrowdMethod | None = None  # None: the camera's ``rules.crowd.method``


class LineConfig(Strict):
    name: str
    start: Point
    end: Point
    classes: list[str] = Field(default_factory=list)
    #: which crossing direction is allowed ("in" or "out"); the other is wrong-way. None: both.
    allowed_direction: Literal["in", "out"] | None = None


class LoiteringRule(Strict):
    seconds: float = Field(30.0, gt=0)
    zones: list[str] = Field(default_factory=list)  # empty: every zone
    classes: list[str] = Field(default_factory=lambda: ["person"])


class CrowdRule(Strict):
    threshold: int = Field(20, ge=1)  # people in a zone (or the camera) that raise crowd_threshold
    surge_delta: int = Field(8, ge=1)  # rise within window_s that raises crowd_surge
    dispersal_delta: int = Field(8, ge=1)  # fall within window_s that raises crowd_dispersal
    window_s: float = Field(5.0, gt=0)
    cooldown_s: float = Field(30.0, ge=0)
    method: CrowdMethod = "detections"
    interval_s: float = Field(10.0, ge=0.5, le=3600)  # between two density maps of the camera
    max_side: int = Field(1024, ge=64, le=4096)  # frames are scaled down to this for the density map


class RunningRule(Strict):
    metres_per_second: float = Field(3.5, gt=0)  # with a homography
    heights_per_second: float = Field(1.8, gt=0)  # without: box heights per second
    min_duration_s: float = Field(1.0, ge=0)
    classes: list[str] = Field(default_factory=lambda: ["person"])


class StoppedRule(Strict):
    seconds: float = Field(60.0, gt=0)
    classes: list[str] = Field(default_factory=lambda: ["car", "bus", "truck", "motorcycle"])
    max_motion_px: float = Field(10.0, gt=0)
    zones: list[str] = Field(default_factory=list)


class ForbiddenClassRule(Strict):
    """``forbidden_class``: a track of ``classes`` in one of ``zones`` (empty: any zone) for ``min_duration_s``."""

    classes: list[str] = Field(default_factory=lambda: list(VEHICLE_CLASSES), min_length=1)
    zones: list[str] = Field(default_factory=list)
    min_duration_s: float = Field(1.0, ge=0)
    cooldown_s: float = Field(10.0, ge=0)  # per zone: another track there this soon is taken for the same object


class RulesConfig(Strict):
    zone_events: bool = True  # zone_enter / zone_exit
    line_events: bool = True  # line_cross
    loitering: LoiteringRule | None = None
    crowd: CrowdRule | None = None
    running: RunningRule | None = None
    stopped: StoppedRule | None = None
    forbidden_class: ForbiddenClassRule | None = None


class RecordingConfig(Strict):
    mode: Literal["off", "continuous", "events"] = "off"
    segment_seconds: float = Field(10.0, gt=0)
    pre_roll_s: float = Field(5.0, ge=0)
    post_roll_s: float = Field(10.0, ge=0)
    max_age_hours: float | None = Field(None, gt=0)
    max_size_gb: float | None = Field(None, gt=0)


def _plate_regions(value: object) -> str | list[str]:
    """A plate region name or a list of them (``rs``, ``[rs, eu]``), checked against ``plate_formats.yaml``."""
    from vigil.vision.plate_formats import check_regions

    if not isinstance(value, str | list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError("a plate region name or a list of them, e.g. eu or [rs, eu]")
    names = check_regions(value)
    return names[0] if isinstance(value, str) and len(names) == 1 else names


class CameraRecognition(Strict):
    faces: bool = False  # match faces on person tracks against the watchlists
    plates: bool = False  # read plates on vehicle tracks and match the hotlists
    #: this camera's plate regions instead of recognition.plates.region (e.g. [rs, hu] at a border crossing)
    plate_regions: str | list[str] | None = None

    @field_validator("plate_regions", mode="before")
    @classmethod
    def _known_plate_regions(cls, value: object) -> str | list[str] | None:
        return None if value is None else _plate_regions(value)


class FaceRecognitionConfig(Strict):
    threshold: float = Field(0.6, gt=0, lt=2)  # Euclidean distance on dlib 128-d (calibrated: vigil bench faces)
    min_quality: float = Field(0.3, ge=0, le=1)
    max_shots_per_track: int = Field(3, ge=1, le=20)
    store_sightings: bool = False  # keep embeddings of unmatched faces for retrospective search
    #: face detector of the live enricher, enrolment and probes (measured: `vigil bench faces`); redaction always
    #: uses the stronger one (CenterFace at its redaction settings) whatever is chosen here
    detector: Literal["centerface", "blazeface"] = "centerface"
    #: a second pass on the image enlarged so (1 = off) finds faces too small for one pass; its long side ≤ max_side
    detector_upscale: float = Field(2.0, ge=1, le=4)
    detector_max_side: int = Field(1536, ge=256, le=8192)


class PlateRecognitionConfig(Strict):
    #: plate region(s) whose formats resolve confusable characters: a name or a list (vigil/vision/plate_formats.yaml:
    #: eu, de, fr, …, rs, uk, us, us-ca, …, br, cn, generic); a camera may override it (recognition.plate_regions)
    region: str | list[str] = "generic"
    max_distance: float = Field(1.0, ge=0)  # hotlist match: edit distance, confusables cheaper
    confusable_weight: float = Field(0.3, ge=0, le=1)
    read_retention_hours: float = Field(72.0, gt=0)  # plate reads not on a hotlist

    @field_validator("region", mode="before")
    @classmethod
    def _known_regions(cls, value: object) -> str | list[str]:
        return _plate_regions(value)

    def regions_for(self, camera: CameraConfig) -> str | list[str]:
        """The plate region(s) of ``camera``: its own ``recognition.plate_regions``, or this site-wide one."""
        return camera.recognition.plate_regions or self.region


class RecognitionConfig(Strict):
    faces: FaceRecognitionConfig = Field(default_factory=FaceRecognitionConfig)
    plates: PlateRecognitionConfig = Field(default_factory=PlateRecognitionConfig)


#: what a camera's stream is for: ``detect`` is decoded for analysis, ``record`` is copied to disk undecoded
StreamRole = Literal["detect", "record"]
Size = tuple[Annotated[int, Field(gt=0)], Annotated[int, Field(gt=0)]]


class CameraInput(Strict):
    """One stream of a camera in the ``inputs:`` form (as in Frigate and NVRs)."""

    url: str
    roles: list[StreamRole] = Field(min_length=1)
    size: Size | None = None


def _inputs_to_fields(camera: dict) -> dict:
    """The ``inputs:`` form as the canonical fields ``url``/``size`` (detect) and ``record_url``/``record_size``; a
    stream with both roles is the single-URL form."""
    if "url" in camera or "record_url" in camera:
        raise ValueError("give either url (and record_url) or inputs, not both")
    try:
        inputs = TypeAdapter(list[CameraInput]).validate_python(camera["inputs"])
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ValueError(f"{_yaml_path(('inputs', *err['loc']))}: {err['msg']}") from None
    by_role: dict[str, CameraInput] = {}
    for i, stream in enumerate(inputs):
        for role in stream.roles:
            if role in by_role:
                raise ValueError(f"inputs[{i}].roles: {role} is given to two inputs")
            by_role[role] = stream
    missing = sorted(set(get_args(StreamRole)) - set(by_role))
    if missing:
        raise ValueError(f"inputs: no input has the {missing[0]} role")
    detect, record = by_role["detect"], by_role["record"]
    out = {k: v for k, v in camera.items() if k != "inputs"} | {"url": detect.url, "size": detect.size}
    if record is not detect:
        out |= {"record_url": record.url, "record_size": record.size}
    return out


class CameraConfig(Strict):
    """One camera. A single ``url`` is analysed and recorded; with a substream, ``url`` is the substream that is
    analysed and ``record_url`` the main stream that is recorded (or give both as ``inputs:`` with roles)."""

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    url: str  # the stream analysed (the ``detect`` role); also recorded unless record_url is given
    #: the analysed stream's picture size; frames of another size are scaled to it (zones stay where drawn)
    size: Size | None = None
    record_url: str | None = None  # the main stream, recorded without decoding (the ``record`` role)
    record_size: Size | None = None
    #: which stream's pixels zones, lines, privacy masks and the homography are given in
    coordinates: StreamRole = "detect"
    #: decode only keyframes while nothing moves and nothing is tracked (every frame again as soon as something
    #: does; the first detection waits up to one keyframe interval). None: on for live streams
    keyframes_when_quiet: bool | None = None
    name: str = ""
    enabled: bool = True
    loop: bool = False  # for files: start again at the end
    fps: float = Field(5.0, gt=0, le=60)  # analysed frames per second
    realtime: bool = True  # for files: pace frames at their timestamps
    #: live frames waiting for analysis; 1 = always the freshest frame (lowest alert latency), more rides out
    #: bursts at the cost of latency. Unpaced files never drop: their reader waits instead.
    queue: int = Field(1, ge=1, le=64)
    #: longest wait (s) between two attempts to reconnect a lost live stream (the first is after 1 s, doubling);
    #: short, as in mature VMSs, so a camera is seen again within seconds of coming back, however long it was away
    reconnect_max_s: float = Field(5.0, ge=1, le=300)
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)
    purpose: str = ""
    privacy_masks: list[Polygon] = Field(default_factory=list)
    zones: list[ZoneConfig] = Field(default_factory=list)
    lines: list[LineConfig] = Field(default_factory=list)
    rules: RulesConfig = Field(default_factory=RulesConfig)
    #: 3x3 image→ground-plane (metres) homography, row-major
    homography: list[list[float]] | None = None
    recording: RecordingConfig = Field(default_factory=RecordingConfig)
    recognition: CameraRecognition = Field(default_factory=CameraRecognition)

    @field_validator("homography")
    @classmethod
    def _is_3x3(cls, value: list[list[float]] | None) -> list[list[float]] | None:
        if value is not None and (len(value) != 3 or any(len(row) != 3 for row in value)):
            raise ValueError("homography must be a 3x3 matrix")
        return value

    @model_validator(mode="before")
    @classmethod
    def _inputs_form(cls, data: object) -> object:
        return _inputs_to_fields(data) if isinstance(data, dict) and "inputs" in data else data

    @model_validator(mode="after")
    def _sizes_known(self) -> CameraConfig:
        if self.record_url is not None and self.record_url != self.url and (self.size is None or
                                                                           self.record_size is None):
            raise ValueError("a camera with separate detect and record streams needs the size of both "
                             "(size and record_size, or size: [width, height] on each input), so that zones, "
                             "lines and masks map from one to the other")
        if self.coordinates == "record" and self.record_url is None:
            raise ValueError("coordinates: record needs a record stream (record_url, or an input with the record role)")
        return self

    @property
    def recorded_url(self) -> str:
        """The stream the recorder copies: the main stream if there is one, else the analysed one."""
        return self.record_url or self.url

    @property
    def has_substream(self) -> bool:
        return self.record_url is not None and self.record_url != self.url

    @model_validator(mode="after")
    def _names_unique(self) -> CameraConfig:
        names = [z.name for z in self.zones] + [ln.name for ln in self.lines]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"zone/line name {dupes[0]!r} is used twice")
        return self


class StoreConfig(Strict):
    #: SQLAlchemy URL; a relative sqlite path is resolved against data_dir
    database: str = "sqlite:///vigil.db"
    snapshots: bool = True


class RetentionConfig(Strict):
    """Maximum ages per data class (hours; None: no age limit) and the disk-full threshold."""

    continuous_hours: float | None = Field(None, gt=0)
    event_clips_hours: float | None = Field(None, gt=0)
    snapshots_hours: float | None = Field(None, gt=0)
    events_hours: float | None = Field(None, gt=0)
    sightings_hours: float | None = Field(None, gt=0)
    min_free_gb: float = Field(2.0, ge=0)
    interval_s: float = Field(300.0, gt=0)

    def class_ages_hours(self) -> dict[str, float]:
        return {name.removesuffix("_hours"): value for name, value in self.model_dump().items()
                if name.endswith("_hours") and value}


class GovernanceConfig(Strict):
    """Uses that need an active authorisation besides the biometric ones (which always do)."""

    #: any of: plate_hotlist (live hotlist matching), evidence_hold, export
    require_authorisation_for: list[Literal["plate_hotlist", "evidence_hold", "export"]] = Field(default_factory=list)
    checkpoint_every: int = Field(100, ge=1)  # audit entries between signed checkpoints
    #: a login session ends this long after sign-in (an admin can end it sooner: ``vigil users revoke-sessions``)
    session_hours: float = Field(8.0, gt=0, le=720)


class BusConfig(Strict):
    """Where events are published: the in-process bus (one box) or NATS JetStream (a cluster)."""

    kind: Literal["inprocess", "nats"] = "inprocess"
    #: NATS servers, comma-separated; a ``user:password@`` in them is hidden in logs
    url: str = "nats://127.0.0.1:4222"
    stream: str = Field("VIGIL", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    subject_prefix: str = Field("vigil", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    user: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None
    max_age_hours: float = Field(168.0, gt=0)  # how long JetStream keeps events


class MqttConfig(Strict):
    """An MQTT broker (Home Assistant, Node-RED, ...): events, retained live counts and camera status,
    availability with a last will, and Home Assistant discovery (topics: README, vigil/events/mqtt.py)."""

    host: str
    port: int = Field(1883, ge=1, le=65535)
    tls: bool = False
    ca_file: Path | None = None  # with ``tls``: the broker's CA; default: the system's
    username: str | None = None
    password: SecretStr | None = None
    topic_prefix: str = Field("vigil", pattern=r"^[^#+\s]{1,100}$")
    qos: Literal[0, 1, 2] = 1  # of events (counts, status and discovery are always QoS 1)
    client_id: str = ""  # set one for a persistent session that keeps queued messages across restarts
    #: publish each event to ``<prefix>/events/<camera>/<kind>`` too (earlier versions' topic), not just to
    #: ``<prefix>/events``
    event_subtopics: bool = False
    discovery: bool = True  # Home Assistant MQTT discovery of count sensors and camera binary sensors
    discovery_prefix: str = Field("homeassistant", pattern=r"^[^#+\s]{1,100}$")
    #: the Home Assistant "alert" binary sensor of a camera turns off this long after its last warning/critical event
    alert_off_delay_s: int = Field(60, ge=1, le=86400)
    #: events waiting for the broker (inside the client, and as many again before it); beyond, the oldest are dropped
    max_backlog: int = Field(10_000, ge=10, le=1_000_000)


class WebhookConfig(Strict):
    """An HTTP endpoint that receives matching events as signed JSON POSTs."""

    url: str = Field(pattern=r"^https?://")
    kinds: list[str] = Field(default_factory=list)  # empty: every kind
    cameras: list[str] = Field(default_factory=list)  # empty: every camera
    #: HMAC-SHA256 key; the signature of the body goes in ``X-Vigil-Signature: sha256=<hex>``
    secret: SecretStr | None = None
    timeout_s: float = Field(5.0, gt=0, le=60)
    #: retries of one event before it is given up (and counted as dropped); None: until delivered
    retries: int | None = Field(None, ge=0, le=1000)
    backoff_s: float = Field(0.5, gt=0, le=60)  # first retry delay, doubled on each failure up to max_backoff_s
    max_backoff_s: float = Field(30.0, gt=0, le=3600)
    #: events waiting while the endpoint is down or slow; beyond, the oldest are dropped (counted, logged)
    max_backlog: int = Field(1000, ge=1, le=1_000_000)


class ClusterConfig(Strict):
    """A city on several machines (docs/DEPLOY.md): camera workers placed by Ray, each holding a lease on the
    cameras it analyses, reporting live state over the bus. Ignored by ``vigil run`` on one box."""

    #: this process's name in the cluster (status, the nodes page, the lease holder); default: host name and pid
    node_id: str | None = Field(None, pattern=r"^[A-Za-z0-9_.:-]{1,100}$")
    #: Ray's address for ``vigil cluster up`` ("auto": the cluster this machine belongs to; "local": start one)
    ray_address: str = "auto"
    #: a camera lease lasts this long unless renewed; a lost worker's cameras move after at most this
    lease_ttl_s: float = Field(6.0, ge=1.0, le=300.0)
    #: seconds between two live-status heartbeats of a worker
    heartbeat_s: float = Field(1.0, gt=0, le=60)
    #: seconds between two low-rate preview JPEGs of a camera (live grid, map pop-ups)
    preview_s: float = Field(2.0, gt=0, le=60)
    #: cameras given to one worker actor, and the CPUs Ray reserves for it
    cameras_per_worker: int = Field(16, ge=1, le=1000)
    worker_cpus: float = Field(2.0, gt=0)
    #: a heartbeat older than this marks a node lost on the nodes page
    node_lost_s: float = Field(5.0, gt=0)
    #: the shared secret with which command centres fetch recording segments from the node that holds them
    #: (recordings stay on the node that wrote them); without it, another node's recordings cannot be played
    media_token: SecretStr | None = None
    #: where each worker serves its segments (port 0: any free port), and the host others reach it by
    media_host: str = "127.0.0.1"
    media_port: int = Field(0, ge=0, le=65535)
    media_advertise: str | None = None  # default: media_host, or the host name when that is 0.0.0.0 / ::


class ApiConfig(Strict):
    """The command centre's web server."""

    #: other origins the pages may be served from (a reverse proxy's ``https://vigil.example.org``): writes that
    #: carry the session cookie from any other origin are refused
    allowed_origins: list[str] = Field(default_factory=list)

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            if not re.fullmatch(r"https?://[^/\s]+", origin.rstrip("/")):
                raise ValueError(f"{origin!r} is not an origin like https://vigil.example.org")
        return [o.rstrip("/") for o in origins]


class MetricsConfig(Strict):
    """``GET /metrics`` for Prometheus. A scrape is let in by the bearer ``token``, or from a client address in
    ``allow_from`` (CIDR networks); with neither, only a signed-in administrator's session may read it."""

    token: SecretStr | None = None
    allow_from: list[IPv4Network | IPv6Network] = Field(default_factory=list)

    @field_validator("token")
    @classmethod
    def _strong_token(cls, token: SecretStr | None) -> SecretStr | None:
        if token is not None:
            value = token.get_secret_value()
            if len(value) < 16 or any(c.isspace() for c in value):  # the message never repeats the token
                raise ValueError("must be at least 16 characters without spaces (for example the output of "
                                 "python -c 'import secrets; print(secrets.token_urlsafe(32))')")
        return token

    @field_validator("allow_from", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        if not isinstance(value, list):
            return value
        networks = []
        for item in value:
            try:
                networks.append(ipaddress.ip_network(str(item).strip()))
            except ValueError as exc:
                raise ValueError(f"{item!r} is not a network like 10.0.0.0/8 or 127.0.0.1/32 ({exc})") from None
        return networks


class Config(Strict):
    data_dir: Path = Path("vigil-data")
    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    tracker: TrackerConfig = Field(default_factory=TrackerConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    recognition: RecognitionConfig = Field(default_factory=RecognitionConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    governance: GovernanceConfig = Field(default_factory=GovernanceConfig)
    bus: BusConfig = Field(default_factory=BusConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    mqtt: MqttConfig | None = None
    webhooks: list[WebhookConfig] = Field(default_factory=list)
    api: ApiConfig = Field(default_factory=ApiConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    cameras: list[CameraConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _camera_ids_unique(self) -> Config:
        ids = [c.id for c in self.cameras]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"camera id {dupes[0]!r} is used twice")
        for hook in self.webhooks:
            unknown = sorted(set(hook.cameras) - set(ids))
            if unknown:
                raise ValueError(f"webhook {redact_url(hook.url)}: no camera with id {unknown[0]!r}")
        return self

    def camera(self, camera_id: str) -> CameraConfig:
        for cam in self.cameras:
            if cam.id == camera_id:
                return cam
        raise ConfigError(f"no camera with id {camera_id!r} in the config")


def _yaml_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


_SECRET_IN_URL = re.compile(r"(?<=://)([^:/@\s]+):([^@/\s]+)@")


def redact_url(url: str) -> str:
    """Hide the password of a URL such as ``rtsp://user:pass@host`` so it can be logged."""
    return _SECRET_IN_URL.sub(r"\1:***@", url)


def parse_config(data: object, source: str = "config") -> Config:
    """Validate a parsed YAML/JSON document; raise ``ConfigError`` naming the first bad path."""
    try:
        return Config.model_validate(data if data is not None else {})
    except ValidationError as exc:
        err = exc.errors()[0]
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        msg = err["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{source}: {_yaml_path(err['loc'])}: {msg}{more}") from None


def load_config(path: str | Path) -> Config:
    """Load and validate a YAML config file. Relative paths inside are taken from its folder."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    config = parse_config(data, source=str(path))
    if not config.data_dir.is_absolute():
        config.data_dir = (path.parent / config.data_dir).resolve()
    if config.mqtt is not None and config.mqtt.ca_file is not None and not config.mqtt.ca_file.is_absolute():
        config.mqtt.ca_file = (path.parent / config.mqtt.ca_file).resolve()
    for cam in config.cameras:
        if "://" not in cam.url and not Path(cam.url).is_absolute():
            cam.url = str((path.parent / cam.url).resolve())
        if cam.record_url and "://" not in cam.record_url and not Path(cam.record_url).is_absolute():
            cam.record_url = str((path.parent / cam.record_url).resolve())
    return config
