"""The live demo city (vigil/demo/city.yaml): its cameras, built from VIGIL_DATA, and what they raise."""

from __future__ import annotations

import itertools
import json
import math
import sqlite3
import subprocess
from pathlib import Path

import av
import pytest

from vigil.analytics.engine import RuleEngine
from vigil.assembly import open_services
from vigil.config import CameraConfig, Config, load_config
from vigil.demo.city import city_cameras
from vigil.demo.run import DEBIAN_VTEST, DEMO_START, live_config
from vigil.runtime import Node
from vigil.sources.reader import StreamReader
from vigil.vision.detector import create_detector

CITY = ("muehleholz-mall", "rheindamm-walkway", "zollstrasse-car-park", "schaan-post-lobby", "schaan-shop-aisle")
FILES = ("video/mall.mp4", "anomaly/ucsd_ped2/frames/01/000.jpg", "video/intel_car-detection.mp4",
         "video/intel_one-by-one-person-detection.mp4", "video/intel_store-aisle-detection.gif")
VADUZ_SCHAAN = ((47.12, 47.18), (9.49, 9.54))  # lat, lon of the two towns on the demo basemap


@pytest.fixture(scope="module")
def city_data(data_dir: Path) -> Path:
    missing = [f for f in FILES if not (data_dir / f).exists()]
    if missing:
        pytest.skip(f"demo city data not found in {data_dir}: {', '.join(missing)}")
    return data_dir


@pytest.fixture(scope="module")
def city(city_data: Path, tmp_path_factory: pytest.TempPathFactory) -> list[CameraConfig]:
    cameras, left_out = city_cameras(tmp_path_factory.mktemp("sources"))
    assert left_out == []
    return cameras


def first_frame_size(camera: CameraConfig) -> tuple[int, int]:
    """(width, height) of the first frame the real reader delivers."""
    reader = StreamReader(camera.model_copy(update={"realtime": False, "loop": False})).start()
    try:
        frame = reader.get(timeout=10)
    finally:
        reader.stop()
    assert frame is not None, f"{camera.id}: no frame from {camera.url} ({reader.last_error})"
    height, width = frame.image.shape[:2]
    return width, height


def test_city_cameras_have_scenes_that_fit_their_frames(city: list[CameraConfig]) -> None:
    assert [c.id for c in city] == list(CITY)
    for camera in city:
        assert camera.name and camera.purpose and camera.realtime and camera.loop
        assert camera.zones, camera.id
        assert 2 <= camera.fps <= 5, camera.id  # a sustainable load on a 2-core box
        (lat_lo, lat_hi), (lon_lo, lon_hi) = VADUZ_SCHAAN
        assert lat_lo < camera.lat < lat_hi and lon_lo < camera.lon < lon_hi, camera.id
        width, height = first_frame_size(camera)
        points = [p for z in camera.zones for p in z.polygon] + [p for ln in camera.lines for p in (ln.start, ln.end)]
        outside = [p for p in points if not (0 <= p[0] <= width and 0 <= p[1] <= height)]
        assert not outside, f"{camera.id} ({width}×{height}): points outside the frame {outside}"
        RuleEngine(camera)  # the rules name zones that exist
    rules = {c.id: c.rules for c in city}
    assert rules["muehleholz-mall"].crowd is not None and rules["muehleholz-mall"].loitering is not None
    assert rules["rheindamm-walkway"].running is not None and "bicycle" in rules["rheindamm-walkway"].running.classes
    assert rules["schaan-post-lobby"].loitering is not None
    car_park = next(c for c in city if c.id == "zollstrasse-car-park")
    assert car_park.lines and set(car_park.lines[0].classes) <= {"car", "truck", "bus", "motorcycle"}
    assert len({(c.lat, c.lon) for c in city}) == len(city)


def test_cameras_stand_on_streets_of_the_basemap(city: list[CameraConfig], city_data: Path, tmp_path: Path) -> None:
    from vigil.api.routes.map import build_basemap
    from vigil.errors import DataError

    extract = city_data / "map" / "liechtenstein-2013-08-03.osm.pbf"
    if not extract.exists():
        pytest.skip(f"OSM extract not found: {extract}")
    target = tmp_path / "roads.geojson"
    try:
        build_basemap(extract, target)
    except DataError as exc:
        pytest.skip(str(exc))
    roads = [f["geometry"]["coordinates"] for f in json.loads(target.read_text())["features"]]
    for camera in city:
        metres = min(_distance_m(camera.lat, camera.lon, road) for road in roads)
        assert metres < 30, f"{camera.id} is {metres:.0f} m from the nearest road"
    for i, a in enumerate(city):  # far enough apart for the map's first view to show each camera
        for b in city[i + 1:]:
            metres = _distance_m(a.lat, a.lon, [[b.lon, b.lat], [b.lon, b.lat]])
            assert metres > 600, f"{a.id} and {b.id} are {metres:.0f} m apart"


def test_image_sequence_is_encoded_once_into_an_mp4(city: list[CameraConfig]) -> None:
    walkway = next(c for c in city if c.id == "rheindamm-walkway")
    path = Path(walkway.url)
    assert path.suffix == ".mp4" and path.name == "rheindamm-walkway.mp4"
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.width, stream.height) == ("h264", 360, 240)
        assert stream.frames == 1020 and stream.average_rate == 10  # clips 01–06 of UCSD Ped2 at its 10 fps
    modified = path.stat().st_mtime_ns
    again, _ = city_cameras(path.parent)
    assert next(c.url for c in again if c.id == walkway.id) == str(path) and path.stat().st_mtime_ns == modified


def test_live_config_runs_the_junction_and_the_city(city_data: Path, tmp_path: Path) -> None:
    config, path, (user, password), left_out = live_config(tmp_path / "out")
    assert left_out == []
    assert [c.id for c in config.cameras] == ["campus-junction", *CITY]
    assert all(c.realtime and c.loop for c in config.cameras)
    assert [c.id for c in load_config(path).cameras] == [c.id for c in config.cameras]  # the file admin edits
    assert user == "demo" and len(password) >= 12


def test_missing_files_leave_cameras_out_with_a_reason(data_dir: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "data"
    (root / "video").mkdir(parents=True)
    (root / "video" / "vtest.avi").symlink_to(data_dir / "video" / "vtest.avi")
    monkeypatch.setenv("VIGIL_DATA", str(root))
    config, _, _, left_out = live_config(tmp_path / "out")
    assert [c.id for c in config.cameras] == ["campus-junction"]
    assert config.cameras[0].url == str(root / "video" / "vtest.avi")
    assert [item.camera_id for item in left_out] == list(CITY)
    messages = [str(item) for item in left_out]
    assert all("\n" not in m and str(root) in m for m in messages)
    assert "video/mall.mp4 not found" in messages[0] and "no frames anomaly/ucsd_ped2" in messages[1]


def test_without_vigil_data_the_demo_runs_debians_vtest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not DEBIAN_VTEST.exists():
        pytest.skip(f"{DEBIAN_VTEST} not installed (apt-get install opencv-doc)")
    monkeypatch.setenv("VIGIL_DATA", str(tmp_path / "nothing"))
    config, _, _, left_out = live_config(tmp_path / "out")
    assert [(c.id, c.url) for c in config.cameras] == [("campus-junction", str(DEBIAN_VTEST))]
    assert len(left_out) == len(CITY)


# ---------------------------------------------------------------- the city's cameras through the real pipeline

#: seconds of each source analysed: enough for the first alert each rule raises on it
CLIP_SECONDS = {"muehleholz-mall": 20, "rheindamm-walkway": 40, "zollstrasse-car-park": 10, "schaan-post-lobby": 40,
                "schaan-shop-aisle": 5}


@pytest.fixture(scope="module")
def city_run(city: list[CameraConfig], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Node]:
    """The first seconds of every city camera (stream-copied clips), analysed unpaced into a store."""
    clips = tmp_path_factory.mktemp("clips")
    cameras = []
    for camera in city:
        clip = clips / f"{camera.id}{Path(camera.url).suffix}"
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", camera.url, "-t", str(CLIP_SECONDS[camera.id]),
                        "-c", "copy", str(clip)], check=True)
        cameras.append(camera.model_copy(update={"url": str(clip), "realtime": False, "loop": False,
                                                  "recording": camera.recording.model_copy(update={"mode": "off"})}))
    out = tmp_path_factory.mktemp("run")
    config = Config(data_dir=out, cameras=cameras)
    services = open_services(config, start_time=DEMO_START).start()
    node = Node(config, create_detector(config.detector), start_time=DEMO_START)
    services.attach(node)
    try:
        node.start().run(until_end=True)
    finally:
        services.close()
    return out, node


def test_city_cameras_raise_their_alerts(city_run: tuple[Path, Node]) -> None:
    out, node = city_run
    db = sqlite3.connect(out / "vigil.db")
    kinds = {(cam, kind): n for cam, kind, n in
             db.execute("select camera_id, kind, count(*) from events group by camera_id, kind")}
    assert kinds.get(("muehleholz-mall", "crowd_threshold"), 0) >= 1, kinds  # 13+ people in the arcade
    assert kinds.get(("muehleholz-mall", "line_cross"), 0) >= 5, kinds
    assert kinds.get(("rheindamm-walkway", "running"), 0) >= 1, kinds  # the cyclist of clip 02
    assert kinds.get(("schaan-post-lobby", "loitering"), 0) >= 1, kinds  # a visitor at the desk
    assert kinds.get(("schaan-post-lobby", "line_cross"), 0) >= 1, kinds
    running = db.execute("select label from events where kind = 'running'").fetchall()
    assert {label for (label,) in running} <= {"person", "bicycle", "motorcycle"}
    for camera_id in CLIP_SECONDS:  # every camera was analysed, the car park too (it sees few cars from above)
        assert node.pipelines[camera_id].stats.frames >= 10, camera_id


def test_city_counts_are_stored_per_zone(city_run: tuple[Path, Node]) -> None:
    out, _ = city_run
    db = sqlite3.connect(out / "vigil.db")
    peak = dict(db.execute("select coalesce(zone, '*'), max(count) from counts where camera_id = 'muehleholz-mall' "
                           "and label = 'person' group by zone"))
    assert peak["*"] >= 13 and "planter" in peak and "far-concourse" in peak, peak
    aisle = db.execute("select max(count) from counts where camera_id = 'schaan-shop-aisle' and zone = 'aisle'")
    assert aisle.fetchone()[0] >= 1


def _distance_m(lat: float, lon: float, road: list[list[float]]) -> float:
    """Metres from (lat, lon) to a polyline of [lon, lat] points (flat-earth; fine over a town)."""
    ky, kx = 111_320.0, 111_320.0 * math.cos(math.radians(lat))
    best = math.inf
    for (x1, y1), (x2, y2) in itertools.pairwise(road):
        ax, ay, bx, by = (x1 - lon) * kx, (y1 - lat) * ky, (x2 - lon) * kx, (y2 - lat) * ky
        dx, dy = bx - ax, by - ay
        t = max(0.0, min(1.0, -(ax * dx + ay * dy) / (dx * dx + dy * dy))) if dx or dy else 0.0
        best = min(best, math.hypot(ax + t * dx, ay + t * dy))
    return best

