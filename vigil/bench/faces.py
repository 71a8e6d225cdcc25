"""Face benchmark: recognition on the face set, and face detection at a distance on composites with ground truth.

Recognition on ``faces/<person>/*`` (identity = folder) and ``faces/_multi`` group photos, with the pipeline's face
detector (``create_face_detector()``). Protocol: the first photo of each person (sorted by name) is enrolled; the
other photos and the named faces of group photos are probes (rank-1). Verification rates come from all pairs of
faces. False matches: each identity in turn is left out of the gallery and its photos are probed against the
others, together with the unnamed extra faces of group photos, at the default threshold.

Detection (:func:`run_detection_bench`): every detector variant on the composites of ``face_composites`` (real
faces pasted into people-free CCTV backgrounds at 8–80 px between the eyes, and frames with no face). Recall per
eye-distance bucket; recall and precision over faces of ≥ 12 px between the eyes (a detection matched to a
smaller face counts for neither); false detections per face-free frame; ``min_eye_px``, the lower edge of the
smallest bucket from which recall stays ≥ 0.9 in every bigger bucket; ms per frame.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from vigil.bench import face_composites as composites_
from vigil.errors import DataError
from vigil.paths import data_file
from vigil.vision.face_detect import Face, FaceDetector, FaceFinder
from vigil.vision.face_embed import FaceEmbedder
from vigil.vision.faces import DEFAULT_FACE_DETECTOR, FACE_DETECTORS, FaceIndex, create_face_detector, enrol
from vigil.vision.imageio import load_image
from vigil.vision.models import model_path

Progress = Callable[[int, int], None]
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
SIZE_EDGES = (8, 10, 12, 14, 16, 20, 24, 32, 48)  # eye-distance buckets (px); the last one is 48 and more
COUNTED_FROM = 12.0  # recall and precision over faces with at least this many pixels between the eyes
#: the detectors measured: each kind with the pipeline's settings, the redaction detector, and single passes
VARIANTS: dict[str, Callable[[], FaceFinder]] = {
    "blazeface": lambda: create_face_detector("blazeface"),
    "centerface": lambda: create_face_detector("centerface"),
    "redaction": lambda: create_face_detector(purpose="redaction"),
    "blazeface_one_pass": lambda: create_face_detector("blazeface", upscale=1.0),
    "centerface_one_pass": lambda: create_face_detector("centerface", upscale=1.0),
}
SHEET_COLOURS = {"truth": (0, 220, 0), "blazeface": (255, 160, 0), "centerface": (0, 0, 255),
                 "redaction": (255, 0, 255)}


@dataclass(slots=True)
class Probe:
    path: Path
    face: Face
    vector: np.ndarray
    identity: str | None  # None: a face nobody enrolled is known to be


def group_names(path: Path, people: set[str]) -> list[str]:
    """People named by a group photo's file name: ``anything__a+b.jpg``, or ``a_and_b.jpg`` of known people."""
    stem = path.stem
    if "__" in stem:
        return [name for name in stem.split("__", 1)[1].split("+") if name]
    names = stem.split("_and_")
    return names if len(names) > 1 and all(name in people for name in names) else []


def verification_rates(vectors: np.ndarray, identities: list[str], fars: tuple[float, ...]) -> dict:
    """TAR at the given FARs over all pairs, from the impostor-distance quantiles."""
    distances = np.linalg.norm(vectors[:, None] - vectors[None], axis=2)
    upper = np.triu_indices(len(identities), 1)
    same = np.array([identities[i] == identities[j] for i, j in zip(*upper, strict=True)])
    pair_d = distances[upper]
    genuine, impostor = np.sort(pair_d[same]), np.sort(pair_d[~same])
    out: dict = {"genuine_pairs": len(genuine), "impostor_pairs": len(impostor),
                 "genuine_max": round(float(genuine.max()), 4) if len(genuine) else None,
                 "impostor_min": round(float(impostor.min()), 4) if len(impostor) else None}
    for far in fars:
        allowed = int(np.floor(far * len(impostor)))  # impostor pairs that may be accepted
        threshold = float(impostor[allowed]) if len(impostor) else 0.0
        key = f"{far:.0e}".replace("e-0", "e-")
        out[f"tar_at_far_{key}"] = round(float((genuine < threshold).mean()), 4) if len(genuine) else None
        out[f"threshold_at_far_{key}"] = round(threshold, 4)
    return out


def run_face_bench(progress: Progress | None = None, annotate_to: Path | None = None,
                   detector_kind: str = DEFAULT_FACE_DETECTOR, sheet_to: Path | None = None,
                   detection: bool = True) -> dict:
    """Recognition (detection + dlib embedding + FAISS identification) on the face set with ``detector_kind``,
    then, with ``detection``, face detection at a distance (:func:`run_detection_bench`); see the module doc."""
    root = data_file("faces")
    people = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("_"))
    photos = {name: sorted(f for f in (root / name).iterdir() if f.suffix.lower() in IMAGE_SUFFIXES) for name in people}
    groups = sorted(f for f in (root / "_multi").glob("*") if f.suffix.lower() in IMAGE_SUFFIXES) \
        if (root / "_multi").is_dir() else []
    if not people:
        raise DataError(f"no identity folders in {root}")
    detector = create_face_detector(detector_kind)
    embedder = FaceEmbedder(model_path("dlib-face-embedding"), model_path("dlib-landmarks-5"))
    total_steps = sum(len(v) for v in photos.values()) + len(groups)
    step = 0
    faces_timed, elapsed = 0, 0.0

    def tick() -> None:
        nonlocal step
        step += 1
        if progress:
            progress(step, total_steps)

    def faces_in(path: Path) -> tuple[np.ndarray, list[Face], np.ndarray]:
        nonlocal faces_timed, elapsed
        image = load_image(path)
        start = time.perf_counter()
        faces = detector.detect(image)
        vectors = embedder.embed(image, faces)
        elapsed += time.perf_counter() - start
        faces_timed += len(faces)
        return image, faces, vectors

    gallery = {}
    probes: list[Probe] = []
    for name in people:
        gallery[name] = enrol(photos[name][:1], detector, embedder)
        tick()
        for path in photos[name][1:]:
            _, faces, vectors = faces_in(path)
            if faces:  # the most confident face is the subject
                probes.append(Probe(path, faces[0], vectors[0], name))
            tick()
    index = FaceIndex(threshold=embedder.threshold)
    index.add(list(gallery), np.asarray(list(gallery.values())))
    group_detail = []
    annotated_source = None
    for path in groups:
        image, faces, vectors = faces_in(path)
        names = [n for n in group_names(path, set(people)) if n in gallery]
        group_detail.append({"file": path.name, "faces": len(faces), "named": names})
        if names and faces:
            # assign the named people to the detected faces (least total distance); the rest are unknown
            cost = np.array([[np.linalg.norm(v - gallery[n]) for n in names] for v in vectors])
            rows, cols = linear_sum_assignment(cost)
            assigned = dict(zip(rows.tolist(), cols.tolist(), strict=True))
            for i, (face, vector) in enumerate(zip(faces, vectors, strict=True)):
                probes.append(Probe(path, face, vector, names[assigned[i]] if i in assigned else None))
            if annotated_source is None or len(faces) > len(annotated_source[1]):
                annotated_source = (image, faces, vectors)
        tick()
    known = [p for p in probes if p.identity is not None]
    top = index.search(np.asarray([p.vector for p in known]), 1)
    rank1 = sum(row[0].label == p.identity for row, p in zip(top, known, strict=True)) / max(len(known), 1)
    accepted = sum(row[0].label == p.identity and row[0].distance < index.threshold
                   for row, p in zip(top, known, strict=True)) / max(len(known), 1)
    # false matches: every identity left out in turn, plus the unknown faces
    impostor_probes = false_matches = 0
    for left_out in people:
        others = [n for n in people if n != left_out]
        held_out_index = FaceIndex(threshold=embedder.threshold)
        held_out_index.add(others, np.asarray([gallery[n] for n in others]))
        outsiders = [p for p in probes if p.identity == left_out] + ([p for p in probes if p.identity is None]
                                                                    if left_out == people[0] else [])
        outsiders_vectors = [p.vector for p in outsiders] + ([gallery[left_out]])
        false_matches += sum(m is not None for m in held_out_index.identify(np.asarray(outsiders_vectors)))
        impostor_probes += len(outsiders_vectors)
    all_vectors = np.asarray([*gallery.values(), *(p.vector for p in known)])
    all_ids = [*gallery, *(p.identity for p in known)]
    report = {
        "detector": detector_kind, "identities": len(people), "enrolled_photos": len(gallery), "probes": len(known),
        "unknown_faces": sum(p.identity is None for p in probes), "groups": group_detail,
        "threshold": index.threshold,
        "rank1": round(rank1, 4),
        "accepted_at_threshold": round(accepted, 4),
        **verification_rates(all_vectors, all_ids, (1e-2, 1e-3)),
        "impostor_probes": impostor_probes,
        "false_match_rate": round(false_matches / max(impostor_probes, 1), 4),
        "ms_per_face": round(1000 * elapsed / max(faces_timed, 1), 1),
    }
    if annotate_to is not None and annotated_source is not None:
        cv2.imwrite(str(annotate_to), annotate(*annotated_source, index))
        report["annotated"] = str(annotate_to)
    if detection:
        report["detection"] = run_detection_bench(progress, sheet_to)
    return report


def annotate(image: np.ndarray, faces: list[Face], vectors: np.ndarray, index: FaceIndex) -> np.ndarray:
    """Face boxes with the matched name and distance (green), or "unknown" (red)."""
    out = image.copy()
    thickness = max(2, round(max(image.shape[:2]) / 500))
    for face, match in zip(faces, index.identify(vectors), strict=True):
        x1, y1, x2, y2 = (int(v) for v in face.box)
        colour = (0, 200, 0) if match else (0, 0, 230)
        label = f"{match.label} {match.distance:.2f}" if match else "unknown"
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thickness)
        for point in face.landmarks[:4]:
            cv2.circle(out, (int(point[0]), int(point[1])), thickness, colour, -1)
        text = re.sub(r"_", " ", label)
        scale = thickness * 0.45
        (text_w, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        origin = (max(0, min(x1, image.shape[1] - text_w)), max(20, y1 - 10))
        cv2.putText(out, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness, cv2.LINE_AA)
    return out


# ------------------------------------------------------------------ detection at a distance


def _bucket(eye_px: float) -> str:
    lower = max((e for e in SIZE_EDGES if e <= eye_px), default=SIZE_EDGES[0])
    index = SIZE_EDGES.index(lower)
    return f"{lower}-{SIZE_EDGES[index + 1]}" if index + 1 < len(SIZE_EDGES) else f"{lower}+"


def score_detections(composites: list[composites_.Composite], found: list[list[Face]]) -> dict:
    """Recall by size, recall and precision from ``COUNTED_FROM`` px, false detections, ``min_eye_px``."""
    hits, sizes, false, false_empty = [], [], 0, 0
    for composite, faces in zip(composites, found, strict=True):
        matched, wrong = composites_.match(composite.faces, faces)
        false += wrong
        false_empty += wrong if not composite.faces else 0
        hits += [m is not None for m in matched]
        sizes += [t.eye_px for t in composite.faces]
    hit, size = np.array(hits, bool), np.array(sizes)
    counted = size >= COUNTED_FROM
    true_pos = int(hit[counted].sum())
    buckets = {}
    for edge in SIZE_EDGES:
        label = _bucket(edge)
        inside = np.array([_bucket(v) == label for v in size], bool)
        buckets[label] = round(float(hit[inside].mean()), 4) if inside.any() else None
    min_eye = None
    for label in reversed(list(buckets)):
        if buckets[label] is None or buckets[label] < 0.9:
            break
        min_eye = float(label.split("-")[0].rstrip("+"))
    empty = sum(not c.faces for c in composites)
    return {"recall": round(true_pos / max(int(counted.sum()), 1), 4),
            "precision": round(true_pos / max(true_pos + false, 1), 4), "min_eye_px": min_eye,
            "recall_by_size": buckets, "false_detections": false,
            "false_per_empty_frame": round(false_empty / max(empty, 1), 4)}


def run_detection_bench(progress: Progress | None = None, sheet_to: Path | None = None, seed: int = 13,
                        variants: dict[str, Callable[[], FaceFinder]] | None = None) -> dict:
    """Every detector variant on the composites (see the module doc); ``sheet_to``: a contact sheet PNG."""
    import dlib

    variants = variants or VARIANTS
    sprites = composites_.face_sprites(FaceDetector(model_path("blazeface")),
                                       dlib.shape_predictor(str(model_path("dlib-landmarks-5"))))
    frames = composites_.make_composites(sprites, composites_.load_backgrounds(), seed=seed)
    faces = [f for c in frames for f in c.faces]
    report: dict = {"frames": len(frames), "empty_frames": sum(not c.faces for c in frames), "faces": len(faces),
                    "faces_counted": sum(f.eye_px >= COUNTED_FROM for f in faces), "sprites": len(sprites),
                    "backgrounds": sorted({c.background for c in frames}), "seed": seed,
                    "match": "detection centre inside the truth box, area 1/4-4x the box's; one detection per face"}
    report["faces_by_size"] = {label: sum(_bucket(f.eye_px) == label for f in faces)
                               for label in (_bucket(e) for e in SIZE_EDGES)}
    found_by: dict[str, list[list[Face]]] = {}
    total, step = len(variants) * len(frames), 0
    for name, make in variants.items():
        detector = make()
        detector.detect(frames[0].image)  # warm-up
        found, elapsed = [], 0.0
        for composite in frames:
            start = time.perf_counter()
            found.append(detector.detect(composite.image))
            elapsed += time.perf_counter() - start
            step += 1
            if progress:
                progress(step, total)
        found_by[name] = found
        report[name] = {**score_detections(frames, found), "ms_per_frame": round(1000 * elapsed / len(frames), 1)}
    report["by_size"] = {label: {"faces": report["faces_by_size"][label],
                                 **{n: report[n]["recall_by_size"][label] for n in variants}}
                         for label in report["faces_by_size"]}
    measured = [n for n in FACE_DETECTORS if n in report]
    good = [n for n in measured if report[n]["precision"] >= 0.95] or measured
    report["better"] = max(good, key=lambda n: (report[n]["recall"], report[n]["precision"])) if good else None
    report["chosen"] = DEFAULT_FACE_DETECTOR
    if sheet_to is not None:
        cv2.imwrite(str(sheet_to), contact_sheet(frames, found_by))
        report["sheet"] = str(sheet_to)
    return report


def contact_sheet(frames: list[composites_.Composite], found_by: dict[str, list[list[Face]]],
                  count: int = 4, zoom: int = 27) -> np.ndarray:
    """The first ``count`` composites with the truth boxes and each detector's boxes, then ``zoom`` faces of
    8–24 px between the eyes (spread over that range, from all frames) enlarged, with the same boxes."""
    names = [n for n in SHEET_COLOURS if n in found_by]
    drawn = []
    for i, frame in enumerate(frames):
        image = frame.image.copy()
        for truth in frame.faces:
            _draw(image, truth.box, SHEET_COLOURS["truth"])
        for offset, name in enumerate(names, 1):
            for face in found_by[name][i]:
                _draw(image, tuple(face.box + np.array([-offset, -offset, offset, offset])), SHEET_COLOURS[name])
        drawn.append(image)
    width, side = 768, 2 * 768 // 9
    tiles = [cv2.resize(drawn[i], (width, round(drawn[i].shape[0] * width / drawn[i].shape[1])),
                        interpolation=cv2.INTER_AREA) for i in [i for i, c in enumerate(frames) if c.faces][:count]]
    rows = []
    for k in range(0, len(tiles), 2):
        pair = tiles[k:k + 2] + ([np.zeros_like(tiles[k])] if k + 1 == len(tiles) else [])
        height = max(t.shape[0] for t in pair)
        rows.append(np.hstack([cv2.copyMakeBorder(t, 0, height - t.shape[0], 0, 0, cv2.BORDER_CONSTANT)
                               for t in pair]))
    small = sorted(((t.eye_px, i, t) for i, c in enumerate(frames) for t in c.faces if t.eye_px < 24),
                   key=lambda item: item[0])
    crops = []
    for eye_px, i, truth in [small[k] for k in np.linspace(0, len(small) - 1, min(zoom, len(small))).astype(int)]:
        cx, cy = (truth.box[0] + truth.box[2]) / 2, (truth.box[1] + truth.box[3]) / 2
        half = max(20, round(2.2 * eye_px))
        canvas = cv2.copyMakeBorder(drawn[i], half, half, half, half, cv2.BORDER_CONSTANT)
        crop = canvas[round(cy):round(cy) + 2 * half, round(cx):round(cx) + 2 * half]
        crop = cv2.resize(crop, (side, side), interpolation=cv2.INTER_NEAREST)
        cv2.putText(crop, f"{eye_px:.0f}px", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1)
        crops.append(crop)
    per_row = 2 * width // side
    while crops and len(crops) % per_row:
        crops.append(np.zeros_like(crops[0]))
    rows += [np.hstack(crops[k:k + per_row]) for k in range(0, len(crops), per_row)]
    legend = np.zeros((28, 2 * width, 3), np.uint8)
    text_x = 8
    for name in ["truth", *names]:
        cv2.putText(legend, name, (text_x, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, SHEET_COLOURS[name], 2)
        text_x += 24 + 12 * len(name)
    return np.vstack([legend, *[cv2.copyMakeBorder(r, 0, 0, 0, 2 * width - r.shape[1], cv2.BORDER_CONSTANT)
                                for r in rows]])


def _draw(image: np.ndarray, box: tuple, colour: tuple[int, int, int]) -> None:
    x1, y1, x2, y2 = (round(float(v)) for v in box)
    cv2.rectangle(image, (x1, y1), (x2, y2), colour, 1)
