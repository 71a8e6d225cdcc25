"""The live picture on the bus (core NATS, never stored in JetStream): subjects and message bodies.

Under ``<prefix>_live`` (outside the event stream's ``<prefix>.>``):

- ``node.<node>``: a worker's heartbeat every ``cluster.heartbeat_s``, JSON: its ``NodeStatus``, its cameras'
  ``CameraStatus`` rows, their line counts and its detector timing;
- ``preview.<camera>``: the annotated JPEG every ``cluster.preview_s`` (live grid, map pop-ups);
- ``frame.<camera>``: every analysed frame's JPEG, only while a command centre watches (``watch.<camera>``,
  repeated every ``WATCH_EVERY_S`` by each watcher; a worker stops after ``WATCH_TTL_S`` without one);
- ``heatmap.<camera>``, ``density.<camera>``, ``background.<camera>``: request/reply, answered by the camera's
  worker (PNG / PNG / JPEG, an empty reply when it has none).

Frame messages carry ``Vigil-Camera``, ``Vigil-Seq``, ``Vigil-At``, ``Vigil-Width`` and ``Vigil-Height``
headers, so the JPEG is never decoded on the command centre.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from typing import Any

from vigil.api.live import LiveFrame
from vigil.api.live_state import CameraStatus, DetectorStats, NodeStatus
from vigil.events.codec import subject_token

WATCH_EVERY_S = 2.0
WATCH_TTL_S = 6.0
#: a request to a camera's worker (heatmap, background) waits this long for its answer
REQUEST_TIMEOUT_S = 3.0


class LiveSubjects:
    def __init__(self, prefix: str) -> None:
        self.root = f"{prefix}_live"

    def node(self, node_id: str) -> str:
        return f"{self.root}.node.{subject_token(node_id)}"

    def camera(self, kind: str, camera_id: str) -> str:
        """``kind``: preview, frame, watch, heatmap, density or background."""
        return f"{self.root}.{kind}.{subject_token(camera_id)}"

    def every(self, kind: str) -> str:
        return f"{self.root}.{kind}.*"


def heartbeat_body(node: NodeStatus, cameras: list[CameraStatus], line_counts: dict[str, Any],
                   detectors: list[DetectorStats]) -> bytes:
    return json.dumps({"node": asdict(node), "cameras": [asdict(c) for c in cameras], "line_counts": line_counts,
                       "detectors": [asdict(d) for d in detectors]}, separators=(",", ":")).encode()


def parse_heartbeat(data: bytes) -> tuple[NodeStatus, list[CameraStatus], dict[str, Any], list[DetectorStats]]:
    body = json.loads(data)
    node = body["node"]
    node["cameras"] = tuple(node["cameras"])
    detectors = [DetectorStats(d["model"], tuple(d["buckets_s"]), tuple(d["counts"]), d["total_s"])
                 for d in body["detectors"]]
    return (NodeStatus(**node), [CameraStatus(**c) for c in body["cameras"]], body["line_counts"], detectors)


def frame_headers(camera_id: str, frame: LiveFrame) -> dict[str, str]:
    width, height = frame.size
    return {"Vigil-Camera": camera_id, "Vigil-Seq": str(frame.seq), "Vigil-At": frame.captured_at.isoformat(),
            "Vigil-Width": str(width), "Vigil-Height": str(height)}


def parse_frame(headers: dict[str, str], jpeg: bytes) -> tuple[str, LiveFrame]:
    """(camera id, frame) of a preview or frame message."""
    frame = LiveFrame(int(headers["Vigil-Seq"]), datetime.fromisoformat(headers["Vigil-At"]), None, [], jpeg,
                      int(headers["Vigil-Width"]), int(headers["Vigil-Height"]))
    return headers["Vigil-Camera"], frame
