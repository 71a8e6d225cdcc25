"""Substreams and quiet cameras: a camera analysed on its substream and recorded from its main stream, its
geometry mapped between the two, and keyframe-only decoding while nothing moves."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from tests.test_recording import make_h264, open_index
from vigil.bench.throughput_city import first_detection
from vigil.config import CameraConfig, CameraRecognition, Config, RecordingConfig, parse_config
from vigil.errors import ConfigError
from vigil.runtime import Node
from vigil.sources.reader import StreamReader
from vigil.sources.recorder import Recorder
from vigil.sources.stream_space import in_stream, scale
from vigil.vision.detector import create_detector

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
ZONE = [[300, 300], [900, 300], [900, 700], [300, 700]]


def substream_camera(**extra: object) -> dict:
    return {"id": "gate", "inputs": [
        {"url": "rtsp://user:pw@cam/sub", "roles": ["detect"], "size": [640, 360]},
        {"url": "rtsp://user:pw@cam/main", "roles": ["record"], "size": [1920, 1080]}], **extra}


def test_inputs_with_roles_become_the_detect_and_record_streams():
    camera = parse_config({"cameras": [substream_camera()]}).cameras[0]
    assert (camera.url, camera.size) == ("rtsp://user:pw@cam/sub", (640, 360))
    assert (camera.record_url, camera.record_size, camera.recorded_url) == (
        "rtsp://user:pw@cam/main", (1920, 1080), "rtsp://user:pw@cam/main")
    assert camera.has_substream
    # one input with both roles is the single-URL form
    single = parse_config({"cameras": [{"id": "a", "inputs": [{"url": "a.mp4", "roles": ["detect", "record"]}]}]})
    assert (single.cameras[0].url, single.cameras[0].record_url, single.cameras[0].has_substream) == ("a.mp4", None,
                                                                                                      False)
    # a cluster ships the config as JSON: the canonical fields validate again
    config = parse_config({"cameras": [substream_camera()]})
    assert Config.model_validate_json(config.model_dump_json()).cameras[0] == camera


@pytest.mark.parametrize(("inputs", "message"), [
    ([{"url": "a", "roles": ["detect"]}], "no input has the record role"),
    ([{"url": "a", "roles": ["detect"]}, {"url": "b", "roles": ["detect", "record"]}], "inputs[1].roles: detect is"),
    ([{"url": "a", "roles": ["detect", "watch"]}], "inputs[0].roles[1]: Input should be 'detect' or 'record'"),
    ([{"url": "a", "roles": ["detect"]}, {"url": "b", "roles": ["record"]}], "needs the size of both"),
])
def test_bad_inputs_name_the_camera_and_the_fault(inputs, message):
    with pytest.raises(ConfigError) as caught:
        parse_config({"cameras": [{"id": "gate", "inputs": inputs}]}, source="city.yaml")
    text = str(caught.value)
    assert text.startswith("city.yaml: cameras[0]") and message in text and "\n" not in text


def test_geometry_drawn_on_the_main_stream_maps_onto_the_substream():
    camera = parse_config({"cameras": [substream_camera(
        coordinates="record",
        zones=[{"name": "door", "polygon": ZONE}],
        lines=[{"name": "gate", "start": [0, 540], "end": [1920, 540]}],
        privacy_masks=[[[0, 0], [300, 0], [300, 300]]],
        homography=[[0.01, 0, 0], [0, 0.02, 0], [0, 0, 1]])]}).cameras[0]
    detect = in_stream(camera, "detect")
    assert np.allclose(detect.zones[0].polygon, [(100, 100), (300, 100), (300, 700 / 3), (100, 700 / 3)])
    assert (detect.lines[0].start, detect.lines[0].end) == ((0, 180), (640, 180))
    assert detect.privacy_masks[0] == [(0, 0), (100, 0), (100, 100)]
    # the same scene point on either stream lands on the same ground point
    ground = np.asarray(camera.homography) @ [960, 540, 1]
    assert np.allclose(np.asarray(detect.homography) @ [320, 180, 1], ground)
    assert in_stream(camera, "record") is camera
    assert scale(camera, "record", "detect") == (3.0, 3.0)
    # drawn on the substream (the default): analysis takes them as they are, recordings scale up
    plain = parse_config({"cameras": [substream_camera(zones=[{"name": "door", "polygon": ZONE}])]}).cameras[0]
    assert in_stream(plain, "detect") is plain
    assert in_stream(plain, "record").zones[0].polygon[0] == (900, 900)


def test_quiet_reader_decodes_keyframes_only_and_every_frame_again_when_told(tmp_path):
    video = make_h264(tmp_path / "gop.mp4", 6, gop=25)  # keyframes every second
    camera = CameraConfig(id="q", url=str(video), fps=25, realtime=False)
    reader = StreamReader(camera, start_time=T0, queue_size=1).start()
    reader.keyframes_only = True
    times, images = [], {}
    while (frame := reader.get(timeout=5)) is not None:
        times.append(round(frame.pts, 2))
        images[times[-1]] = frame.image
        if frame.pts >= 2.0:
            reader.keyframes_only = False  # motion seen on the keyframe at 2 s: decode every frame again
        if reader.stats().state.value == "ended" and not len(reader.queue):
            break
    reader.stop()
    resumed = next(i for i, t in enumerate(times) if t % 1)  # the first frame that is not a keyframe
    assert times[:resumed] in ([0.0, 1.0, 2.0], [0.0, 1.0, 2.0, 3.0])  # keyframes only (the reader runs a frame
    # ahead, so it resumes right after the keyframe it had in hand, or at the next one)
    # then every frame to the end, from the packet after the switch (the few between the keyframe and the switch
    # are decoded to rebuild the references, not delivered)
    assert times[resumed] - times[resumed - 1] < 1.0 and np.allclose(np.diff(times[resumed:]), 0.04)
    assert times[-1] == 5.96
    with av.open(str(video)) as container:  # the resumed frames are whole pictures, not built on skipped ones
        reference = {round(f.time, 2): cv2.cvtColor(f.to_ndarray(format="yuv420p"), cv2.COLOR_YUV2BGR_I420)
                     for f in container.decode(video=0)}  # as the reader converts yuv420p
    for t in times[resumed:resumed + 3]:
        assert np.array_equal(images[t], reference[t])
    assert reader.stats().gop_s == 1.0


@pytest.fixture(scope="module")
def one_by_one(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 14 s of a real clip whose scene is empty until a person walks in at about 6 s, as H.264 with a
    keyframe every 2 s, like a city camera."""
    out = tmp_path_factory.mktemp("quiet") / "one_by_one.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(data_dir / "video/intel_one-by-one-person-detection.mp4"),
                    "-t", "14", "-c:v", "libx264", "-preset", "ultrafast", "-g", "20", "-bf", "0", str(out)],
                   check=True)
    return out


def test_a_quiet_camera_sees_someone_walk_in_within_one_keyframe_interval(one_by_one):
    detector = create_detector(Config().detector)
    reference = first_detection(one_by_one, False, detector)
    first = first_detection(one_by_one, True, detector)
    assert reference is not None and 5.0 < reference < 8.0
    assert first is not None and reference <= first <= reference + 2.0 + 0.2  # GOP + one analysed frame
    config = Config(cameras=[CameraConfig(id="door", url=str(one_by_one), fps=5, realtime=False,
                                          keyframes_when_quiet=True)])
    node = Node(config, detector, start_time=T0, queue_size=1)
    seen: list[float] = []
    node.on_result.append(lambda r: r.frame is not None and seen.append(r.frame.pts))
    node.start().run(until_end=True)
    quiet = [t for t in seen if 2.5 < t < reference - 2.0]
    assert quiet and all(t % 2.0 == 0 for t in quiet)  # keyframes only while the scene was empty
    assert node.status()[0]["gop_s"] == 2.0


def width(video: Path) -> int:
    with av.open(str(video)) as container:
        return container.streams.video[0].codec_context.width


def test_a_substream_camera_is_analysed_small_and_recorded_large(tmp_path):
    sub = make_h264(tmp_path / "sub.mp4", 4, size="320x180")
    main = make_h264(tmp_path / "main.mp4", 4, size="1280x720")
    store, index = open_index(tmp_path)
    config = Config(cameras=[CameraConfig(id="gate", url=str(sub), size=(320, 180), record_url=str(main),
                                          record_size=(1280, 720), fps=5, realtime=False)])
    recorder = Recorder("gate", index, RecordingConfig(mode="continuous", segment_seconds=2), start_time=T0)
    node = Node(config, create_detector(config.detector), start_time=T0, packet_hooks={"gate": recorder.on_packet})
    shapes = set()
    node.on_result.append(lambda r: r.frame is not None and shapes.add((r.frame.image.shape, r.frame.main_picture)))
    events: list[str] = []
    node.on_camera_event.append(lambda e: events.append(e.kind))
    node.start().run(until_end=True)
    while node.record_readers["gate"].running:  # the main stream's reader ends on its own
        node.record_readers["gate"].stop(timeout=5)
    recorder.close()
    assert shapes == {((180, 320, 3), None)}  # nothing reads faces or plates here: no main-stream pictures kept
    segments = index.segments("gate", T0, T0.replace(minute=1))
    assert segments and {width(tmp_path / s.path) for s in segments} == {1280}
    assert sum(s.duration_s for s in segments) == pytest.approx(4.0, abs=0.2)
    assert "record_stream_online" in events and "camera_online" in events
    assert node.status()[0]["record_stream"] in ("online", "ended", "stopped")
    store.close()


def test_face_and_plate_crops_come_from_the_main_stream_picture_of_the_same_moment(tmp_path):
    """The main stream is not decoded for analysis, but an enricher asking for the picture of a frame's moment
    gets the 1280×720 picture decoded from the buffered GOP, within a frame of the substream's time."""
    main = make_h264(tmp_path / "main.mp4", 4, size="1280x720")
    sub = tmp_path / "sub.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(main), "-vf", "scale=320:180", "-c:v", "libx264",
                    "-preset", "ultrafast", "-g", "25", "-bf", "0", str(sub)], check=True)
    with av.open(str(main)) as container:
        reference = {round(f.time, 2): f.to_ndarray(format="bgr24") for f in container.decode(video=0)}
    config = Config(cameras=[CameraConfig(id="gate", url=str(sub), size=(320, 180), record_url=str(main),
                                          record_size=(1280, 720), fps=5, realtime=True,
                                          recognition=CameraRecognition(plates=True))])
    node = Node(config, create_detector(config.detector), packet_hooks={"gate": lambda _packet: None})
    offsets: list[float] = []

    def which_main_frame(result) -> None:
        if result.frame is None or result.frame.index % 3:
            return
        picture = result.frame.main_picture()
        assert picture is not None and picture.shape == (720, 1280, 3)
        assert result.frame.main_picture() is picture  # decoded once per frame, however many tracks ask
        t = min(reference, key=lambda k: np.abs(reference[k].astype(np.int16) - picture).mean())
        offsets.append(abs(t - result.frame.pts))

    node.on_result.append(which_main_frame)
    node.start().run(until_end=True)
    assert len(offsets) >= 5
    assert sorted(offsets)[len(offsets) // 2] <= 0.08 and max(offsets) <= 0.5

