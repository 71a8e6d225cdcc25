"""``vigil bench …``: benchmarks and evaluations on real data, each printing a table or JSON (``--json``)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.progress import Progress, TaskID
from rich.table import Table

from vigil.bench.faults import SCENARIOS as FAULT_SCENARIOS
from vigil.console import out, progress_bar

bench_app = typer.Typer(help="Benchmarks and evaluations on real data (machine-readable with --json).",
                        no_args_is_help=True)

def _emit(result: dict, as_json: bool, title: str) -> None:
    if as_json:
        print(json.dumps(result, indent=2))
        return
    table = Table("metric", "value", title=title)
    for key, value in _flatten(result).items():
        table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    out.print(table)


def _flatten(data: dict, prefix: str = "") -> dict:
    flat: dict = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


@bench_app.command("detection")
def bench_detection(
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    frames: int = typer.Option(0, help="Limit to the first N frames (0: all 795)."),
    image: Path = typer.Option(Path("out/bench-detection.png"), help="Annotated frame to write."),
) -> None:
    """Person detection on PETS09-S2L1 against its ground truth: AP50, P/R/F1, ms per frame."""
    from vigil.bench.detection import run_detection_bench

    with progress_bar() as bar:
        result = run_detection_bench(max_frames=frames or None, image_path=image, progress=bar)
    _emit(result, as_json, "detection on PETS09-S2L1")


@bench_app.command("tracking")
def bench_tracking(
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    frames: int = typer.Option(0, help="Limit to the first N frames (0: all 795)."),
    image: Path = typer.Option(Path("out/bench-tracking.png"), help="Annotated frame to write."),
) -> None:
    """HOTA, MOTA, IDF1 and ID switches of our tracker and of SORT, on the same detections."""
    from vigil.bench.tracking import run_tracking_bench

    with progress_bar() as bar:
        result = run_tracking_bench(max_frames=frames or None, image_path=image, progress=bar)
    _emit(result, as_json, "tracking on PETS09-S2L1")


@bench_app.command("events")
def bench_events(
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    frames: int = typer.Option(0, help="Limit to the first N frames (0: all 795)."),
    image: Path = typer.Option(Path("out/bench-events.png"), help="Annotated frame to write."),
    interval: int | None = typer.Option(None, min=0, max=10, help="Analysed frames between two detections "
                                        "(default: the demo config's detector.interval, 0)."),
) -> None:
    """The demo's rules on our tracks vs on ground-truth tracks: precision/recall per rule, line-count error."""
    from vigil.bench.events import run_events_bench

    with progress_bar() as bar:
        result = run_events_bench(max_frames=frames or None, image_path=image, progress=bar, interval=interval)
    _emit(result, as_json, "rules on PETS09-S2L1: ours vs ground truth")


def _bar_callback(bar: Progress, description: str):
    """A ``(done, total)`` progress callback drawing on ``bar``."""
    task = bar.add_task(description, total=None)
    return lambda done, total: bar.update(task, completed=done, total=total)


@bench_app.command("plates")
def bench_plates(
    set_name: str = typer.Option("eu", "--set", help="Folder under plates/ in the openalpr layout (eu, us)."),
    crops: str = typer.Option("", "--crops", help="Instead: a folder of plate crops with a groundtruth.csv "
                              "(file,region,TEXT): a path, or a name under plates/ (ocr_crops_us, cn_crops)."),
    region: str = typer.Option("", "--region", help="Plate region(s), comma-separated (eu, us, rs,eu, cn, …; "
                               "default: eu for --set, each crop's own region for --crops)."),
    limit: int = typer.Option(0, "--limit", min=0, help="Use the first N images (0: all)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    image: Path = typer.Option(Path("out/bench-plates.png"), help="Annotated image to write."),
    misses: Path = typer.Option(Path("out/bench-plates-misses.png"), help="Contact sheet of the misses to write."),
    localiser: str = typer.Option("det", help="det (PP-OCR text boxes), haar or both."),
) -> None:
    """Plate reading: detection recall, exact, within one, exact given detected, ms; the plain-rapidocr baseline."""
    from vigil.bench.plates import run_crop_bench, run_plate_bench
    from vigil.vision.plate_formats import check_regions

    try:
        regions = check_regions(region) if region else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--region") from None
    name = crops or set_name
    with progress_bar() as bar:
        progress = _bar_callback(bar, f"plates/{name}")
        if crops:
            result = run_crop_bench(crops, progress=progress, limit=limit or None, region=regions, misses_to=misses)
        else:
            result = run_plate_bench(set_name, progress=progress, annotate_to=image, region=regions,
                                     localiser=localiser, limit=limit or None, misses_to=misses)
    if not as_json:
        result.pop("failures", None)
    _emit(result, as_json, f"plates on {name}")


@bench_app.command("crowd")
def bench_crowd(
    set_name: str = typer.Option("shanghaitech_B", "--set", help="Folder under crowd/ (ShanghaiTech layout)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    limit: int = typer.Option(0, min=0, help="Images to use, evenly spread over the set (0: all)."),
    max_side: int = typer.Option(1024, min=64, max=4096, help="Longest side the density map is computed at."),
    threads: int = typer.Option(2, min=1, max=64, help="onnxruntime threads for each model."),
    image: Path = typer.Option(Path("out/bench-crowd.png"), help="Densest image beside its density map."),
    rows: bool = typer.Option(False, "--rows", help="Keep the per-image (or per-second) counts in the output."),
    video: str = typer.Option("", help="Instead: run video/NAME.mp4 through the pipeline against "
                                       "crowd/NAME_video_counts.csv (e.g. mall)."),
    interval_s: float = typer.Option(5.0, min=0.5, help="With --video: seconds of video between density maps."),
) -> None:
    """Crowd counting on head-point ground truth: MAE and RMSE of detections, density and auto; ms per image."""
    from vigil.bench.crowd import run_crowd_bench
    from vigil.bench.crowd_video import run_crowd_video_check

    with progress_bar() as bar:
        if video:
            result = run_crowd_video_check(video, interval_s, progress=_bar_callback(bar, f"video/{video}.mp4"),
                                           image_path=image.with_name(f"bench-crowd-video-{video}.png"))
        else:
            result = run_crowd_bench(set_name, limit=limit or None, max_side=max_side, threads=threads,
                                     progress=_bar_callback(bar, f"crowd/{set_name}"), image_path=image)
    if not rows:
        result.pop("rows", None)
        result.pop("series", None)
    _emit(result, as_json, f"crowd counting on {video or set_name}")


@bench_app.command("faces")
def bench_faces(
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    image: Path = typer.Option(Path("out/bench-faces.png"), help="Annotated group photo to write."),
    sheet: Path = typer.Option(Path("out/bench-faces-distance.png"), help="Contact sheet of the composites."),
    detector: str = typer.Option("centerface", help="Face detector for identification: centerface | blazeface."),
    detection: bool = typer.Option(True, "--detection/--no-detection",
                                   help="Also measure face detection at a distance (a few minutes)."),
) -> None:
    """Face identification (rank-1, TAR at FAR, false matches, ms per face) and detection at a distance (recall
    and precision per detector on real faces pasted into CCTV backgrounds at 8-80 px between the eyes)."""
    from vigil.bench.faces import run_face_bench
    from vigil.vision.faces import FACE_DETECTORS

    if detector not in FACE_DETECTORS:
        raise typer.BadParameter(f"{detector!r} is not one of {', '.join(FACE_DETECTORS)}", param_hint="--detector")
    sheet.parent.mkdir(parents=True, exist_ok=True)
    with progress_bar() as bar:
        result = run_face_bench(progress=_bar_callback(bar, "faces"), annotate_to=image, detector_kind=detector,
                                sheet_to=sheet, detection=detection)
    _emit(result, as_json, "faces")


@bench_app.command("throughput")
def bench_throughput(
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    cameras: str = typer.Option("1,4,8,12,16,20,24", help="Camera counts to try, in order."),
    seconds: float = typer.Option(10.0, help="Measured seconds per trial (after a 3 s warm-up)."),
    interval: int = typer.Option(0, min=0, max=10, help="detector.interval: analysed frames between two detections."),
    profile: str = typer.Option("vtest", help="vtest: busy 768x576 cameras; city: 1080p25 main streams with "
                                "640x360 substreams, busy and quiet, every main stream recorded."),
    mixes: str = typer.Option("50,75,100,125", help="city: total cameras tried in the 20% busy / 80% quiet mix."),
    busy: str = typer.Option("20,30,40", help="city: all-busy camera counts tried."),
) -> None:
    """N cameras in real time: CPU per camera-second against decode-only, drops, max cameras, peak RSS."""
    if profile not in ("vtest", "city"):
        raise typer.BadParameter(f"--profile {profile!r}: choose vtest or city")
    counts, mix_counts, busy_counts = (_counts(text, option) for text, option in
                                       ((cameras, "--cameras"), (mixes, "--mixes"), (busy, "--busy")))
    with progress_bar() as bar:
        if profile == "city":
            from vigil.bench.throughput_city import run_city_bench

            task = bar.add_task("city profile", total=None)
            result = run_city_bench(mix_counts, busy_counts, seconds, interval=interval,
                                    step=lambda what: bar.update(task, description=what))
        else:
            from vigil.bench.throughput import run_throughput_bench

            result = run_throughput_bench(counts, seconds, progress=bar, interval=interval)
    _emit(result, as_json, "throughput, city profile" if profile == "city" else "throughput on vtest_h264.mp4")


def _counts(text: str, option: str) -> list[int]:
    try:
        return [int(n) for n in text.split(",")]
    except ValueError:
        raise typer.BadParameter(f"{option} must be a comma-separated list of integers") from None


@bench_app.command("search")
def bench_search(
    rows: int = typer.Option(1_000_000, "--rows", help="Object tracks to generate (plus events, plate reads, faces)."),
    dsn: str | None = typer.Option(None, "--dsn", help="PostgreSQL server URL: a temporary database is created in "
                                   "it and dropped after. Default: a temporary SQLite file."),
    faces: int | None = typer.Option(None, "--faces", help="Face sightings with 128-d vectors (default: 10% of "
                                     "rows, at most 1M)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Forensic search p50/p95 over N generated sightings: time+cameras, fuzzy plate, class+colour+zone, face top-10."""
    from vigil.bench.search import run_search_bench

    with progress_bar() as bar:
        tasks: dict[str, TaskID] = {}

        def on_progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        result = run_search_bench(rows, dsn=dsn, faces=faces, progress=on_progress)
    _emit(result, as_json, f"search over {rows:,} tracks ({result['backend']})")


@bench_app.command("latency")
def bench_latency(
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    cameras: str = typer.Option("1,8", help="Camera counts, one run each."),
    seconds: float = typer.Option(20.0, help="Seconds per run."),
    queue: int | None = typer.Option(None, min=1, help="Frames each camera may queue (default: the config's 1)."),
) -> None:
    """From a frame's capture to its event in a subscribed SSE client of the real app, at 1 and 8 cameras."""
    from vigil.bench.latency import run_latency_bench

    counts = [int(n) for n in cameras.split(",") if n.strip()]
    with progress_bar() as bar:
        bar.add_task(f"latency at {cameras} cameras, {seconds:.0f} s each", total=None)
        result = run_latency_bench(counts, seconds, queue_size=queue)
    _emit(result, as_json, "frame → SSE client latency")


@bench_app.command("faults")
def bench_faults(
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    only: str = typer.Option(",".join(FAULT_SCENARIOS), help="Scenarios to run, comma-separated."),
    restarts: int = typer.Option(100, min=1, help="camera_restarts: kills and restarts of the RTSP camera."),
    db_outage_s: float = typer.Option(60.0, min=1, help="db_outage: seconds PostgreSQL is stopped."),
    bus_outage_s: float = typer.Option(30.0, min=1, help="bus_outage: seconds NATS and Mosquitto are down."),
    seed: int = typer.Option(17, help="Seed of the random intervals."),
) -> None:
    """Faults survived and counted: camera restarts, database and bus outages, kill -9, a full disk."""
    from vigil.bench.faults import FaultOptions, run_faults_bench

    scenarios = [s.strip() for s in only.split(",") if s.strip()]
    options = FaultOptions(restarts=restarts, db_outage_s=db_outage_s, bus_outage_s=bus_outage_s, seed=seed)
    with progress_bar() as bar:
        try:
            result = run_faults_bench(scenarios, options, bar)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--only") from None
    _emit(result, as_json, "faults survived")


@bench_app.command("failover")
def bench_failover(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Six real cameras on three Ray nodes of this machine; one node killed with SIGKILL: seconds until its
    cameras analyse again elsewhere, events lost, cameras analysed twice, recordings before the kill."""
    from vigil.bench.failover import run_failover_bench

    with progress_bar() as bar:
        result = run_failover_bench(bar)
    _emit(result, as_json, "failover")


@bench_app.command("recording")
def bench_recording(
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    seconds: float = typer.Option(20.0, help="Seconds of generated H.264 per resolution."),
) -> None:
    """CPU per recorded camera at 720p and 1080p (remux vs decode, side by side) and write throughput."""
    from vigil.bench.recording import run_recording_bench

    with progress_bar() as bar:
        task = bar.add_task("recording", total=None)
        result = run_recording_bench(seconds, progress=lambda message: bar.update(task, description=message))
    _emit(result, as_json, "recording")


@bench_app.command("city")
def bench_city(
    cameras: int = typer.Option(1000, min=1, help="Simulated busy cameras (the demo scene's rates each)."),
    nodes: int = typer.Option(4, min=1, help="Simulated camera workers: one process and node each."),
    seconds: float = typer.Option(60.0, min=1, help="Seconds of load; then the outbox and the clients drain."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The command centre at city scale on NATS and PostgreSQL: loss, alert latency to SSE clients, API p95."""
    from vigil.bench.city import run_city_bench

    with progress_bar() as bar:
        tasks: dict[str, TaskID] = {}

        def on_progress(phase: str, done: float, total: float) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=total)
            bar.update(tasks[phase], completed=round(done, 1), total=total)

        try:
            result = run_city_bench(cameras, nodes, seconds, progress=on_progress)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--cameras/--nodes") from None
    _emit(result, as_json, f"city: {cameras} cameras on {nodes} nodes, {seconds:g} s")


@bench_app.command("anomaly")
def bench_anomaly(
    set_name: str = typer.Option("ucsd_ped2", "--set", help="Folder under anomaly/ (frames/NN/*.jpg, labels.csv)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    frames: int = typer.Option(0, min=0, help="Limit to the first N frames of each clip (0: all)."),
    image: Path = typer.Option(Path("out/bench-anomaly.png"), help="Score curves and annotated frames to write."),
) -> None:
    """Rules against labelled abnormal events: pooled frame-level AUC, alert precision/recall, ms per frame."""
    from vigil.bench.anomaly import run_anomaly_bench

    with progress_bar() as bar:
        result = run_anomaly_bench(set_name, image_path=image, progress=bar, max_frames=frames or None)
    if not as_json:
        for clip in result["clips"].values():
            clip.pop("alerts", None)
    _emit(result, as_json, f"abnormal events on {set_name}")
