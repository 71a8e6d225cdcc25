"""What a person looks at after a run: an annotated MP4, a heatmap PNG and a counts chart PNG."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from pathlib import Path

import av
import cv2
import matplotlib
import numpy as np
import supervision as sv

from vigil.config import CameraConfig
from vigil.types import CountSample, Event, Track

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ZONE_COLOUR = (0, 200, 255)
LINE_COLOUR = (255, 0, 255)
ALERT_KINDS = {"loitering", "running", "wrong_way", "crowd_threshold", "crowd_surge", "crowd_dispersal",
               "stopped_object", "forbidden_class"}


def draw_scene(image: np.ndarray, camera: CameraConfig) -> np.ndarray:
    """Zones (filled, translucent) and lines (with their names) drawn on a copy of ``image``."""
    canvas = image.copy()
    overlay = image.copy()
    for zone in camera.zones:
        points = np.array(zone.polygon, np.int32)
        cv2.fillPoly(overlay, [points], ZONE_COLOUR)
        cv2.polylines(canvas, [points], True, ZONE_COLOUR, 2)
        cv2.putText(canvas, zone.name, tuple(points[0]), cv2.FONT_HERSHEY_SIMPLEX, 0.5, ZONE_COLOUR, 1)
    canvas = cv2.addWeighted(overlay, 0.15, canvas, 0.85, 0)
    for line in camera.lines:
        start, end = tuple(map(int, line.start)), tuple(map(int, line.end))
        cv2.line(canvas, start, end, LINE_COLOUR, 2)
        cv2.putText(canvas, line.name, (start[0] + 4, start[1] + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.5, LINE_COLOUR, 1)
    return canvas


class AnnotatedVideo:
    """Writes analysed frames with zones, lines, tracked boxes, ids, trails and recent alerts (H.264)."""

    def __init__(self, path: Path, camera: CameraConfig, fps: float) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.camera = camera
        self.container = av.open(str(path), "w")
        self.stream = self.container.add_stream("libx264", rate=round(fps))
        self.stream.pix_fmt = "yuv420p"
        self.stream.options = {"preset": "veryfast", "crf": "26"}
        self.boxes = sv.BoxAnnotator(thickness=2, color_lookup=sv.ColorLookup.TRACK)
        self.labels = sv.LabelAnnotator(text_scale=0.4, text_padding=2, color_lookup=sv.ColorLookup.TRACK)
        self.banner: list[tuple[datetime, str]] = []
        self.frames = 0

    def write(self, image: np.ndarray, at: datetime, tracks: list[Track], events: list[Event],
              line_counts: dict[str, dict[str, dict[str, int]]]) -> None:
        if self.frames == 0:
            self.stream.width, self.stream.height = image.shape[1] // 2 * 2, image.shape[0] // 2 * 2
        canvas = draw_scene(image, self.camera)
        shown = [t for t in tracks if t.state.value in ("confirmed", "lost")]
        for track in shown:
            points = np.array(track.trajectory[-30:], np.int32)
            if len(points) > 1:
                cv2.polylines(canvas, [points], False, (255, 255, 255), 1)
        if shown:
            detections = sv.Detections(xyxy=np.array([t.box for t in shown], np.float32),
                                       tracker_id=np.array([t.track_id for t in shown]))
            canvas = self.boxes.annotate(canvas, detections)
            canvas = self.labels.annotate(canvas, detections, [f"#{t.track_id} {t.label}" for t in shown])
        for event in events:
            if event.kind in ALERT_KINDS:
                self.banner.append((at, f"{event.kind} {event.zone or ''} #{event.track_id or ''}".strip()))
        self.banner = [(t, text) for t, text in self.banner if (at - t).total_seconds() < 4][-4:]
        y = 20
        cv2.putText(canvas, at.strftime("%H:%M:%S.%f")[:-5], (10, y), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1)
        for name, per_direction in line_counts.items():
            y += 18
            totals = {d: sum(c.values()) for d, c in per_direction.items()}
            text = f"{name}: in {totals.get('in', 0)}  out {totals.get('out', 0)}"
            cv2.putText(canvas, text, (10, y), cv2.FONT_HERSHEY_SIMPLEX, 0.5, LINE_COLOUR, 1)
        for _, text in self.banner:
            y += 20
            cv2.putText(canvas, text, (10, y), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 255), 2)
        frame = av.VideoFrame.from_ndarray(canvas[: self.stream.height, : self.stream.width], format="bgr24")
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()


def counts_chart(samples: list[CountSample], path: Path, title: str) -> Path:
    """People per zone (and in the whole view) over time, as a PNG line chart."""
    series: dict[str, list[tuple[datetime, int]]] = defaultdict(list)
    for sample in samples:
        if sample.label == "person":
            series[sample.zone or "whole view"].append((sample.at, sample.count))
    fig, ax = plt.subplots(figsize=(9, 3.8), dpi=100)
    for name, points in sorted(series.items()):
        ax.step([p[0] for p in points], [p[1] for p in points], where="post", label=name)
    ax.set_title(title)
    ax.set_ylabel("people")
    ax.set_xlabel("capture time (UTC)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    fig.autofmt_xdate()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
