"""The tracker on real PETS09-S2L1 boxes and on constructed scenes; the trackeval wrapper; the bench."""

from __future__ import annotations

import json
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import supervision as sv

from vigil.bench.mot import evaluate_tracking, load_mot_ground_truth, read_video_frames
from vigil.config import DetectorConfig, TrackerConfig
from vigil.errors import DataError, ModelError
from vigil.types import TrackState
from vigil.vision.tracker import create_tracker

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
FPS = 10.0
FRAMES = 150  # the first 15 s of PETS09-S2L1


def at(index: int) -> datetime:
    return T0 + timedelta(seconds=index / FPS)


def boxes(xyxy: list[tuple[float, float, float, float]], names: list[str], confidence: float = 0.9) -> sv.Detections:
    """Constructed detections with class names (and COCO ids, as the detector gives)."""
    coco = {"person": 0, "car": 2, "truck": 7}
    return sv.Detections(
        xyxy=np.array(xyxy, dtype=np.float32).reshape(-1, 4),
        confidence=np.full(len(xyxy), confidence, dtype=np.float32),
        class_id=np.array([coco[n] for n in names], dtype=int),
        data={"class_name": np.array(names)},
    )


@pytest.fixture(scope="module")
def pets(data_dir: Path) -> tuple[list[sv.Detections], list[np.ndarray]]:
    truth = load_mot_ground_truth(data_dir / "mot/PETS09-S2L1/gt/gt.txt", num_frames=FRAMES)
    for frame in truth:  # carry the true identity through the tracker as data
        frame.data["gt_id"] = frame.tracker_id.copy()
        frame.tracker_id = None
    images = list(read_video_frames(data_dir / "video/vtest.avi", FRAMES))
    return truth, images


def longest_visible(truth: list[sv.Detections]) -> tuple[int, int, int]:
    """(gt id, first frame, last frame) of the longest unbroken appearance."""
    best = (0, 0, -1)
    runs: dict[int, tuple[int, int]] = {}
    for index, frame in enumerate(truth):
        for gt_id in frame.data["gt_id"].tolist():
            start, last = runs.get(gt_id, (index, index - 1))
            runs[gt_id] = (start, index) if last == index - 1 else (index, index)
            start, last = runs[gt_id]
            if last - start > best[2] - best[1]:
                best = (gt_id, start, last)
    return best


def test_identity_survives_a_short_occlusion_on_real_boxes(pets):
    truth, images = pets
    target, first, last = longest_visible(truth)
    assert last - first >= 60
    hidden = range((first + last) // 2, (first + last) // 2 + 6)  # 0.6 s without the target
    tracker = create_tracker(TrackerConfig(), "pets09", fps=FPS)
    ids_of_target: set[int] = set()
    seen_while_hidden = False
    for index in range(first, last + 1):
        frame = truth[index]
        if index in hidden:
            frame = frame[frame.data["gt_id"] != target]
        update = tracker.update(frame, at(index), images[index])
        mine = update.detections[update.detections.data["gt_id"] == target]
        if index in hidden:
            seen_while_hidden |= len(mine) > 0
            state = {t.track_id: t.state for t in update.active}
            assert all(state.get(i) in (TrackState.CONFIRMED, TrackState.LOST) for i in ids_of_target), state
        elif index > first + 1:
            assert len(mine) == 1
            ids_of_target.add(int(mine.tracker_id[0]))
    assert not seen_while_hidden
    assert len(ids_of_target) == 1, f"pedestrian {target} changed identity: {sorted(ids_of_target)}"
    track = next(t for t in update.active if t.track_id in ids_of_target)
    assert track.state is TrackState.CONFIRMED
    assert track.label == "person"
    assert track.hits == (last - first + 1) - len(hidden) - 1  # the library gives an id from the 2nd box on


def test_best_snapshot_is_the_largest_most_confident_view(pets):
    truth, images = pets
    tracker = create_tracker(TrackerConfig(), "pets09", fps=FPS)
    for index in range(60):
        tracker.update(truth[index], at(index), images[index])
    update = tracker.update(truth[60], at(60), images[60])
    for track in update.active:
        x1, y1, x2, y2 = max(track.boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
        assert track.best_score == pytest.approx((x2 - x1) * (y2 - y1), rel=1e-3)  # confidence 1 in ground truth
        assert track.best_snapshot is not None and track.best_snapshot.ndim == 3
        height, width = track.best_snapshot.shape[:2]
        assert abs(width - (x2 - x1)) <= 2 and abs(height - (y2 - y1)) <= 2
        assert track.best_snapshot.base is None  # a copy, not a view that keeps the whole frame alive


def test_lifecycle_new_confirmed_lost_ended_once():
    config = TrackerConfig(confirm_hits=3, lost_after_s=0.5, end_after_s=2.0, history=4)
    tracker = create_tracker(config, "cam-1", fps=FPS)
    states = []
    for index in range(8):  # a person walking right, 10 px per frame
        x = 100 + 10 * index
        update = tracker.update(boxes([(x, 200, x + 40, 300)], ["person"]), at(index))
        states.append(update.active[0].state if update.active else None)
    assert states[:4] == [None, TrackState.NEW, TrackState.NEW, TrackState.CONFIRMED]
    assert states[4:] == [TrackState.CONFIRMED] * 4
    track = update.active[0]
    assert track.hits == 7 and len(track.boxes) == len(track.box_times) == len(track.trajectory) == 4
    assert track.ground_point == pytest.approx((100 + 70 + 20, 300))
    assert track.box_times[-1] == at(7) and track.first_seen == at(1)

    ended_reports = []
    for index in range(8, 40):  # gone: lost after 0.5 s, ended after 2 s, reported once
        update = tracker.update(boxes([], []), at(index))
        unseen = (at(index) - at(7)).total_seconds()
        if update.ended:
            ended_reports.append((unseen, update.ended))
        elif unseen >= 2.0:
            assert update.active == []
        elif unseen >= 0.5:
            assert [t.state for t in update.active] == [TrackState.LOST]
        else:
            assert [t.state for t in update.active] == [TrackState.CONFIRMED]
    assert len(ended_reports) == 1
    unseen, ended = ended_reports[0]
    assert unseen == pytest.approx(2.0) and ended == [track] and track.state is TrackState.ENDED
    assert update.active == [] and tracker.flush(at(40)) == []


def test_a_track_lost_at_the_picture_edge_ends_at_once_one_lost_inside_waits():
    """Lost touching the edge, a person walked out: ended once lost. Lost mid-picture, maybe hidden: kept."""
    config = TrackerConfig(confirm_hits=3, lost_after_s=0.5, end_after_s=10.0)
    tracker = create_tracker(config, "cam-1", fps=FPS)
    picture = np.zeros((576, 768, 3), np.uint8)
    for index in range(10):  # one walks right to the edge, one stands mid-picture; then both vanish
        x = 680 + 9 * index
        tracker.update(boxes([(x, 200, min(x + 40, 768), 300), (300, 200, 340, 300)], ["person"] * 2), at(index),
                       picture)
    ended_at = {}
    for index in range(10, 150):
        update = tracker.update(boxes([], []), at(index), picture)
        for track in update.ended:
            ended_at[track.trajectory[-1][0] > 700] = (at(index) - at(9)).total_seconds()
    assert ended_at[True] == pytest.approx(0.5)  # at the edge: ended as soon as lost
    assert ended_at[False] == pytest.approx(10.0)  # inside: kept end_after_s for an occlusion to pass


def test_flush_ends_every_track_once():
    tracker = create_tracker(TrackerConfig(), "cam-1", fps=FPS)
    for index in range(3):
        tracker.update(boxes([(10, 10, 50, 100), (300, 10, 340, 100)], ["person", "person"]), at(index))
    ended = tracker.flush(at(3))
    assert len(ended) == 2 and all(t.state is TrackState.ENDED for t in ended)
    assert tracker.flush(at(4)) == []


def test_people_and_vehicles_never_share_an_identity():
    """A car drives in front of a walking person, hiding them; the car's box lands where the person was."""
    tracker = create_tracker(TrackerConfig(), "cam-1", fps=FPS)
    ids: dict[str, set[int]] = {"person": set(), "car": set()}
    for index in range(25):
        person_x = 300 + 2 * index
        xyxy, names = [], []
        if index >= 10:
            car_x = 290 + 25 * (index - 10)
            xyxy.append((car_x, 200, car_x + 140, 300))
            names.append("car")
        if not 10 <= index < 15:
            xyxy.append((person_x, 180, person_x + 40, 300))
            names.append("person")
        update = tracker.update(boxes(xyxy, names), at(index))
        for name, track_id in zip(update.detections.data["class_name"], update.detections.tracker_id, strict=True):
            ids[str(name)].add(int(track_id))
    assert len(ids["person"]) == 1 and len(ids["car"]) == 1
    assert ids["person"].isdisjoint(ids["car"])
    labels = {t.track_id: t.label for t in update.active}
    assert labels == {next(iter(ids["person"])): "person", next(iter(ids["car"])): "car"}


def test_label_is_the_majority_class_within_a_vehicle_group():
    tracker = create_tracker(TrackerConfig(), "cam-1", fps=FPS)
    names = ["car", "truck", "car", "car", "truck", "car"]
    for index, name in enumerate(names):
        update = tracker.update(boxes([(100 + 5 * index, 100, 300 + 5 * index, 200)], [name]), at(index))
    (track,) = update.active
    assert track.label == "car" and track.hits == len(names) - 1


def test_repeated_and_backwards_times_do_not_warn_or_break():
    tracker = create_tracker(TrackerConfig(), "cam-1", fps=FPS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for when in (at(0), at(1), at(1), at(0), at(2)):
            update = tracker.update(boxes([(10, 10, 50, 100)], ["person"]), when)
    assert [t.hits for t in update.active] == [4]
    assert update.active[0].last_seen == at(2)


def test_trackeval_wrapper_scores_ground_truth_perfectly_and_sees_a_swap(data_dir):
    truth = load_mot_ground_truth(data_dir / "mot/PETS09-S2L1/gt/gt.txt", num_frames=FRAMES)
    perfect = evaluate_tracking(truth, truth)
    assert (perfect.hota, perfect.mota, perfect.idf1, perfect.idsw) == (1.0, 1.0, 1.0, 0)

    swapped = []
    for index, frame in enumerate(truth):  # from frame 75 on, every id is shifted to another person
        frame = frame[:]
        if index >= 75:
            frame.tracker_id = frame.tracker_id + 1000
        swapped.append(frame)
    scores = evaluate_tracking(truth, swapped)
    assert scores.mota < 1.0 and scores.idsw > 0 and scores.hota < 1.0 and scores.mota > 0.9


def test_mot_loader_names_a_bad_file(tmp_path):
    bad = tmp_path / "gt.txt"
    bad.write_text("1,2,3\n")
    with pytest.raises(DataError, match=r"gt\.txt"):
        load_mot_ground_truth(bad)


def test_tracking_bench_on_a_few_real_frames(data_dir, tmp_path):
    from vigil.bench.tracking import run_tracking_bench

    image = tmp_path / "tracking.png"
    try:
        result = run_tracking_bench(max_frames=24, image_path=image)
    except ModelError as exc:
        pytest.skip(f"model cache not built: {exc}")
    json.dumps(result)
    assert result["frames"] == 24 and result["detector"] == DetectorConfig().model
    assert set(result["ours"]) == set(result["reference"]) == {"name", "hota", "mota", "idf1", "idsw"}
    assert result["reference"]["name"] == "sort"
    assert 0.0 < result["ours"]["hota"] <= 1.0 and isinstance(result["ours"]["idsw"], int)
    assert image.stat().st_size > 10_000
