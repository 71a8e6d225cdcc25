"""Dense-crowd counting: the CSRNet build, density counts on real images, ``auto``, zones, and the pipeline."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta

import cv2
import numpy as np
import pytest

from vigil.analytics.crowd_count import AUTO_DENSITY_FROM, NEAR_FIELD, CrowdCounter, choose
from vigil.api.live import LiveFrames
from vigil.api.live_state import NodeLiveState
from vigil.bench.crowd import head_points, load_set
from vigil.config import parse_config
from vigil.runtime import FrameResult, Node
from vigil.vision import models
from vigil.vision.density import DensityCounter, DensityMap, DensityWorker
from vigil.vision.detector import create_detector

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def counter() -> DensityCounter:
    if models.status(models.load_manifest().get("csrnet")) != "ok":
        pytest.skip("model cache not built (run `vigil models fetch`)")
    return DensityCounter(threads=2)


def _image(data_dir, set_name: str, name: str):
    item = next(i for i in load_set(set_name) if i.path.name == name)
    return cv2.imread(str(item.path)), item.truth


# ---------------------------------------------------------------- the model


def test_density_count_of_a_real_image_is_near_its_ground_truth(data_dir, counter):
    """A Mall frame (29 people by its head points) counts within 20%."""
    image, truth = _image(data_dir, "mall", "IMG_1.jpg")
    assert truth == 29
    found = counter.estimate(image)
    assert found.density.shape == (480 // 8, 640 // 8)
    assert abs(found.count - truth) <= 0.2 * truth, found.count


# ---------------------------------------------------------------- auto and zones


def test_auto_picks_detections_when_sparse_and_density_when_dense(data_dir, counter):
    detector = create_detector(parse_config({"detector": {"classes": ["person"], "sessions": 1}}).detector)
    results = {}
    for set_name, name in (("street_photos", "IMG_3.jpg"), ("shanghaitech_A", "IMG_1.jpg")):
        image, truth = _image(data_dir, set_name, name)
        found = detector.detect([image])[0]
        people = len(found)
        height = float(np.median(found.xyxy[:, 3] - found.xyxy[:, 1])) / image.shape[0] if people else None
        results[set_name] = (truth, people, choose(people, counter.estimate(image, 640).count, height))
    sparse_truth, _, sparse = results["street_photos"]
    dense_truth, dense_people, dense = results["shanghaitech_A"]
    assert sparse.method == "detections" and abs(sparse.count - sparse_truth) <= 2, results
    assert dense.method == "density" and dense.count > 3 * dense_people, results
    assert abs(dense.count - dense_truth) <= 0.4 * dense_truth, results


def test_choose_rule():
    assert choose(3, None).method == "detections"  # no map yet
    assert choose(3, AUTO_DENSITY_FROM - 1).method == "detections"
    assert choose(3, AUTO_DENSITY_FROM + 50) == choose(3, AUTO_DENSITY_FROM + 50.0)
    assert choose(AUTO_DENSITY_FROM + 60, AUTO_DENSITY_FROM + 50).method == "detections"  # tracks see more
    assert choose(3, AUTO_DENSITY_FROM + 50, NEAR_FIELD + 0.1).method == "detections"  # people seen close up
    assert choose(3, 31 * 3, NEAR_FIELD + 0.1).method == "density"  # tall people in front of a crowd
    assert choose(3, AUTO_DENSITY_FROM + 50, NEAR_FIELD - 0.1).method == "density"
    assert choose(0, AUTO_DENSITY_FROM + 50, None).method == "density"  # nobody detected: a crowd of specks


def test_zone_count_integrates_only_the_density_inside_its_polygon():
    density = np.zeros((10, 20), np.float32)  # a 160×80 frame, 8 px cells
    density[:, :10] = 0.5  # 50 people on the left half, none on the right
    found = DensityMap(density, 160, 80)
    assert found.count == pytest.approx(50)
    assert found.count_in([(0, 0), (80, 0), (80, 80), (0, 80)]) == pytest.approx(50, abs=1e-3)
    assert found.count_in([(80, 0), (160, 0), (160, 80), (80, 80)]) == pytest.approx(0, abs=1e-3)
    assert found.count_in([(0, 0), (40, 0), (40, 40), (0, 40)]) == pytest.approx(12.5, abs=1e-3)  # a quarter
    assert found.count_in([(0, 0), (4, 0), (4, 80), (0, 80)]) == pytest.approx(2.5, abs=0.05)  # half a column


def test_zone_counts_of_a_real_map_add_up(data_dir, counter):
    image, _truth = _image(data_dir, "mall", "IMG_1.jpg")
    found = counter.estimate(image)
    left = found.count_in([(0, 0), (320, 0), (320, 480), (0, 480)])
    right = found.count_in([(320, 0), (640, 0), (640, 480), (320, 480)])
    assert left > 1 and right > 1
    assert left + right == pytest.approx(found.count, rel=1e-3)


def test_crowd_counter_uses_each_scopes_method():
    camera = parse_config({"cameras": [{
        "id": "c", "url": "x.mp4",
        "zones": [{"name": "left", "polygon": [[0, 0], [80, 0], [80, 80], [0, 80]]},
                  {"name": "right", "polygon": [[80, 0], [160, 0], [160, 80], [80, 80]],
                   "crowd_method": "detections"}],
        "rules": {"crowd": {"method": "density"}}}]}).cameras[0]
    counter = CrowdCounter(camera)
    assert counter.uses_density
    before = counter.people({None: 4, "left": 3, "right": 1})
    assert all(c.method == "detections" for c in before.values())  # no map yet: tracks
    density = np.zeros((10, 20), np.float32)
    density[:, :10] = 0.5
    counter.set_density(DensityMap(density, 160, 80))
    after = counter.people({None: 4, "left": 3, "right": 1})
    assert after["left"].method == "density" and after["left"].count == pytest.approx(50, abs=1e-3)
    assert after[None].count == pytest.approx(50)
    assert after["right"].method == "detections" and after["right"].count == 1


def test_no_crowd_rule_means_no_density():
    camera = parse_config({"cameras": [{"id": "c", "url": "x.mp4", "zones": [
        {"name": "z", "polygon": [[0, 0], [8, 0], [8, 8]], "crowd_method": "density"}]}]}).cameras[0]
    assert not CrowdCounter(camera).uses_density


# ---------------------------------------------------------------- the pipeline


@pytest.fixture(scope="module")
def mall_clip(data_dir, tmp_path_factory):
    """The first 8 s (16 frames) of the Mall camera."""
    clip = tmp_path_factory.mktemp("mall") / "mall8.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(data_dir / "video" / "mall.mp4"), "-t", "8", "-c", "copy",
                    str(clip)], check=True)
    return clip


def _mall_config(clip, method: str):
    return parse_config({"cameras": [{
        "id": "mall", "url": str(clip), "fps": 2, "realtime": False,
        "zones": [{"name": "left", "polygon": [[0, 0], [320, 0], [320, 480], [0, 480]]}],
        "rules": {"zone_events": False,
                  "crowd": {"method": method, "interval_s": 4, "threshold": 20, "cooldown_s": 600}}}]})


def test_pipeline_counts_by_density_and_raises_crowd_events(mall_clip, counter):
    config = _mall_config(mall_clip, "density")
    node = Node(config, create_detector(config.detector), start_time=T0, density_inline=True)
    events, samples = [], []

    def record(result: FrameResult) -> None:
        events.extend(result.output.events)
        samples.extend(result.output.counts)

    frames = LiveFrames()
    node.on_result += [record, frames]
    node.start().run(until_end=True)
    live = NodeLiveState(node, frames)
    picture = cv2.imdecode(np.frombuffer(live.density_png("mall"), np.uint8), cv2.IMREAD_COLOR)
    assert picture.shape == (480, 640, 3)  # the latest map over the latest frame, for the dashboard
    assert live.heatmap_png("mall") is not None and live.density_png("nobody") is None
    assert node.density is not None and node.density.maps == 2  # at 0 and 4 s of the 8 s clip
    whole = [s.count for s in samples if s.zone is None and s.label == "person"]
    assert len(whole) >= 7 and all(20 <= n <= 50 for n in whole), whole  # its frames have 26–41 people
    left = [s.count for s in samples if s.zone == "left" and s.label == "person"]
    assert all(0 < n < w for n, w in zip(left, whole, strict=False)), (left, whole)
    crowd = [e for e in events if e.kind == "crowd_threshold"]
    assert crowd and crowd[0].zone is None and crowd[0].payload["method"] == "density"
    assert crowd[0].payload["count"] >= 20 and crowd[0].track_id is None


def test_density_worker_runs_in_the_background_one_map_at_a_time(counter):
    worker = DensityWorker(counter)
    image = np.full((240, 320, 3), 128, np.uint8)
    done: list[DensityMap] = []
    try:
        assert worker.offer(image, done.append)
        assert not worker.offer(image, done.append)  # busy: refused, not queued
        deadline = datetime.now() + timedelta(seconds=60)
        while not done and datetime.now() < deadline:
            worker._thread.join(0.1)
        assert len(done) == 1 and done[0].density.shape == (30, 40)
        assert worker.idle and worker.maps == 1
    finally:
        worker.stop()


def test_head_points_read_the_shanghaitech_layout(data_dir):
    items = load_set("shanghaitech_B", limit=3)
    assert len(items) == 3 and all(i.truth == len(head_points(
        i.path.parent.parent / "ground-truth" / f"GT_{i.path.stem}.mat")) for i in items)
