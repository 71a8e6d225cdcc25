"""The detector on real PETS09-S2L1 frames, checked against the MOT ground truth."""

from __future__ import annotations

import numpy as np
import pytest
import supervision as sv

from vigil.bench.mot import load_mot_ground_truth, read_video_frames
from vigil.config import DETECTOR_MODELS, DetectorConfig
from vigil.vision.detector import NanoDetDetector, ParallelSessions, create_detector, has_int8_dot_product

FRAMES = (0, 120, 400)


@pytest.fixture(scope="module")
def detector() -> NanoDetDetector:
    return create_detector(DetectorConfig(threads=2))


@pytest.fixture(scope="module")
def pets(data_dir):
    truth = load_mot_ground_truth(data_dir / "mot/PETS09-S2L1/gt/gt.txt", num_frames=795)
    video = read_video_frames(data_dir / "video/vtest.avi", max(FRAMES) + 1)
    frames = {i: f for i, f in enumerate(video) if i in FRAMES}
    return frames, truth


@pytest.mark.parametrize("model", DETECTOR_MODELS)
def test_finds_the_annotated_pedestrians(model, pets):
    detector = create_detector(DetectorConfig(model=model, threads=2))
    frames, truth = pets
    found = total = 0
    for index, image in frames.items():
        detections = detector.detect([image])[0]
        people = detections[detections.data["class_name"] == "person"]
        gt = truth[index]
        iou = sv.box_iou_batch(gt.xyxy, people.xyxy)
        found += int((iou.max(axis=1) >= 0.5).sum()) if len(people) else 0
        total += len(gt)
    assert total > 10
    assert found / total >= 0.8, f"found {found} of {total} annotated pedestrians"


def test_batched_equals_single(detector, pets):
    frames, _ = pets
    images = list(frames.values())
    batched = detector.detect(images)
    for image, together in zip(images, batched, strict=True):
        alone = detector.detect([image])[0]
        assert len(alone) == len(together)
        np.testing.assert_allclose(alone.xyxy, together.xyxy, atol=0.05)


def test_parallel_sessions_give_what_one_session_gives(pets):
    """A batch dealt out between two sessions comes back whole, in order, with the same boxes."""
    frames, _ = pets
    images = [frames[i] for i in (0, 120, 400, 120, 0)]
    parallel = create_detector(DetectorConfig(sessions=2, threads=1))
    assert isinstance(parallel, ParallelSessions) and len(parallel.detectors) == 2
    single = create_detector(DetectorConfig(sessions=1, threads=1))
    assert isinstance(single, NanoDetDetector)
    together, alone = parallel.detect(images), single.detect(images)
    assert len(together) == len(images)
    for a, b in zip(together, alone, strict=True):
        assert len(a) == len(b) > 0
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=0.05)
    assert len(together[0]) != len(together[1])  # different frames: the order is the batch's


def test_class_filter_and_thresholds(pets):
    frames, _ = pets
    image = frames[120]
    only_cars = create_detector(DetectorConfig(classes=["car"], threads=1)).detect([image])[0]
    assert set(only_cars.data["class_name"]) <= {"car"}
    strict = create_detector(DetectorConfig(score_threshold=0.8, threads=1)).detect([image])[0]
    loose = create_detector(DetectorConfig(score_threshold=0.2, threads=1)).detect([image])[0]
    assert len(strict) < len(loose)
    assert (strict.confidence >= 0.8).all()


def test_boxes_in_image_coordinates_for_any_size(detector, pets):
    frames, _ = pets
    image = frames[120]
    small = detector.detect([image[::2, ::2].copy()])[0]
    full = detector.detect([image])[0]
    assert len(small) > 0
    assert small.xyxy[:, [0, 2]].max() <= image.shape[1] / 2
    # the same people are found at half size, at half the coordinates
    iou = sv.box_iou_batch(full.xyxy[full.confidence > 0.6] / 2, small.xyxy)
    assert (iou.max(axis=1) > 0.5).mean() >= 0.7


def test_empty_scene_gives_no_people(detector):
    grey = np.full((576, 768, 3), 128, np.uint8)
    assert len(detector.detect([grey])[0]) == 0


@pytest.mark.parametrize(("int8", "base"), [("nanodet-int8-384x288", "nanodet-384x288"), ("nanodet-int8", "nanodet")])
def test_int8_model_agrees_with_the_float_model(int8, base, pets):
    """A quantised model finds the same people as its float model, in nearly the same boxes."""
    detector = create_detector(DetectorConfig(model=int8, threads=2))
    reference = create_detector(DetectorConfig(model=base, threads=2))
    frames, _ = pets
    matched = total = 0
    for image in frames.values():
        ours, theirs = detector.detect([image])[0], reference.detect([image])[0]
        total += len(theirs)
        if len(ours) and len(theirs):
            matched += int((sv.box_iou_batch(theirs.xyxy, ours.xyxy).max(axis=1) >= 0.7).sum())
    assert total > 10
    assert matched / total >= 0.85, f"{matched} of {total} float detections have an int8 twin"


def test_detection_bench_compares_every_model_on_a_few_frames(data_dir, tmp_path):
    from vigil.bench.detection import run_detection_bench

    result = run_detection_bench(max_frames=10, image_path=tmp_path / "detection.png")
    assert result["model"] == DetectorConfig().model and result["frames"] == 10
    assert set(result["models"]) == set(DETECTOR_MODELS)
    for scores in result["models"].values():
        assert 0.5 < scores["person_ap50"] <= 1.0
        assert set(scores["ms_per_frame"]) == {"threads_1", "threads_2", "threads_2_batch_8", "sessions_2_batch_8"}
    assert set(result["speedup_2_threads"]) == set(DETECTOR_MODELS) - {result["model"]}
    assert (tmp_path / "detection.png").stat().st_size > 10_000


def test_vnni_is_read_from_the_cpu_flags() -> None:
    avx2_only = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n"
    assert not has_int8_dot_product(avx2_only, "x86_64")
    assert has_int8_dot_product(avx2_only.replace("avx2", "avx2 avx512_vnni"), "x86_64")
    assert has_int8_dot_product(avx2_only.replace("avx2", "avx2 avx_vnni"), "x86_64")
    assert has_int8_dot_product("", "aarch64")  # other architectures: nothing to warn about


def test_an_int8_detector_on_a_cpu_without_vnni_is_warned_about(caplog, monkeypatch) -> None:
    import vigil.vision.detector as detector_module

    monkeypatch.setattr(detector_module, "has_int8_dot_product", lambda: False)
    detector_module._warn_int8_without_vnni.cache_clear()
    with caplog.at_level("WARNING", logger="vigil.vision.detector"):
        create_detector(DetectorConfig(model="nanodet-int8-384x288", sessions=1))
        create_detector(DetectorConfig(model="nanodet-int8-384x288", sessions=1))
        create_detector(DetectorConfig(model="nanodet-384x288", sessions=1))
    warnings = [r.getMessage() for r in caplog.records if "no VNNI" in r.getMessage()]
    assert len(warnings) == 1 and "nanodet-int8-384x288" in warnings[0]  # once, and not for the float model
