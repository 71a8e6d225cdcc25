"""Face recognition benchmark on ``faces/<person>/*`` (identity = folder) and ``faces/_multi`` group photos.

Protocol: the first photo of each person (sorted by name) is enrolled; the other photos and the named faces
of group photos are probes (rank-1). Verification rates come from all pairs of faces. False matches:
each identity in turn is left out of the gallery and its photos are probed against the others, together
with the unnamed extra faces of group photos, at the default threshold.
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

from vigil.errors import DataError
from vigil.paths import data_file
from vigil.vision.face_detect import Face, FaceDetector
from vigil.vision.face_embed import FaceEmbedder
from vigil.vision.faces import FaceIndex, enrol
from vigil.vision.imageio import load_image
from vigil.vision.models import model_path

Progress = Callable[[int, int], None]
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


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


def run_face_bench(progress: Progress | None = None, annotate_to: Path | None = None) -> dict:
    """Measure detection + dlib embedding + FAISS identification on the face set; see the module doc."""
    root = data_file("faces")
    people = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("_"))
    photos = {name: sorted(f for f in (root / name).iterdir() if f.suffix.lower() in IMAGE_SUFFIXES) for name in people}
    groups = sorted(f for f in (root / "_multi").glob("*") if f.suffix.lower() in IMAGE_SUFFIXES) \
        if (root / "_multi").is_dir() else []
    if not people:
        raise DataError(f"no identity folders in {root}")
    detector = FaceDetector(model_path("blazeface"))
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
        "identities": len(people), "enrolled_photos": len(gallery), "probes": len(known),
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
