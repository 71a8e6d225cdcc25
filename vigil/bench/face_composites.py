"""Faces at a distance with ground truth: real face photos pasted into real, people-free CCTV backgrounds.

Sprites: every face of ``faces/<person>/*`` and ``faces/_multi/*`` (BlazeFace on the original high-resolution
photo; eye centres from dlib's 5-point landmarks, the means of each eye's two corners; faces whose truth box
leaves the photo are skipped), cut out with a soft-edged ellipse around the face and never enlarged by more
than 1.25×. Backgrounds: the per-pixel median of people-free clips (PETS09
``vtest.avi``, the Mall, two Intel sample clips; the median removes the people who walk through), computed
once and cached as PNG under ``~/.cache/vigil/bench/backgrounds``. Each frame is a random crop (70–100 % of
each side, resized back) and flip of one background. Faces are pasted at random places without overlap at
log-uniform sizes between ``min_eye`` and ``max_eye`` pixels between the eyes, darkened a little, then the
whole frame is blurred (σ 0.4–1.0 px), given sensor noise and JPEG-compressed (quality 40–85) like a camera's.
Some frames get no face (false detections). Everything follows one seed.

Truth per face: the eye centres (exact: the sprite's eyes moved by the paste's scale and shift) and a box
2.2 × 2.6 eye distances, centred 0.5 eye distances below the eye midpoint (brow to chin). A detection
matches a truth face when its centre lies inside the truth box and its area is within 1/4–4× the box's;
each truth face takes at most one detection (highest score first), a second one is a false detection.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import dlib
import numpy as np

from vigil.errors import DataError
from vigil.paths import data_file, data_root, models_dir
from vigil.vision.face_detect import Face, FaceDetector
from vigil.vision.imageio import load_image

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
DEBIAN_VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
#: people-free after the median (checked by eye; the store aisle, the face-demographics and the one-by-one clips
#: are not: people stand still in them for too long)
BACKGROUND_CLIPS = ("vtest.avi", "mall.mp4", "intel_people-detection.gif", "intel_person-bicycle-car-detection.gif",
                    "intel_car-detection.mp4")
MEDIAN_FRAMES = 120
BOX_W, BOX_H, BOX_DOWN = 2.2, 2.6, 0.5  # truth box in eye distances: width, height, centre below the eye midpoint
ELLIPSE_A, ELLIPSE_B, CUT = 1.3, 1.75, 2.1  # sprite ellipse semi-axes and crop half-side, in eye distances


@dataclass(frozen=True, slots=True)
class Sprite:
    """A face cut out of a photo: BGR float crop, soft mask in [0, 1], eye centres in crop pixels."""

    image: np.ndarray
    mask: np.ndarray
    eyes: np.ndarray  # (2, 2), image-left eye first
    source: str

    @property
    def eye_px(self) -> float:
        return float(np.linalg.norm(self.eyes[1] - self.eyes[0]))


@dataclass(frozen=True, slots=True)
class TruthFace:
    box: tuple[float, float, float, float]
    eyes: tuple[tuple[float, float], tuple[float, float]]
    eye_px: float
    source: str


@dataclass(slots=True)
class Composite:
    image: np.ndarray
    background: str
    faces: list[TruthFace] = field(default_factory=list)


def truth_box(eyes: np.ndarray) -> tuple[float, float, float, float]:
    """The truth box of a face from its two eye centres (see the module doc)."""
    left, right = eyes[0], eyes[1]
    d = float(np.linalg.norm(right - left))
    along = (right - left) / max(d, 1e-9)
    centre = (left + right) / 2 + BOX_DOWN * d * np.array([-along[1], along[0]])
    half = np.array([BOX_W, BOX_H]) * d / 2
    return (*(centre - half).tolist(), *(centre + half).tolist())  # type: ignore[return-value]


# ------------------------------------------------------------------ backgrounds


def background_cache() -> Path:
    return models_dir().parent / "bench" / "backgrounds"


def _clip_path(name: str) -> Path | None:
    for candidate in (data_root() / "video" / name, *([DEBIAN_VTEST] if name == "vtest.avi" else [])):
        if candidate.exists():
            return candidate
    return None


def median_background(video: Path, cache_dir: Path, frames: int = MEDIAN_FRAMES) -> np.ndarray:
    """The per-pixel median of ``frames`` frames spread over ``video``; cached as PNG by the file's name and size."""
    key = hashlib.sha256(f"{video.name}:{video.stat().st_size}:{frames}".encode()).hexdigest()[:10]
    cached = cache_dir / f"{video.stem}-median-{key}.png"
    if cached.exists():
        return cv2.imread(str(cached))
    capture = cv2.VideoCapture(str(video))
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or frames
    step = max(1, total // frames)
    kept, index = [], 0
    while True:
        ok, image = capture.read()
        if not ok:
            break
        if index % step == 0:
            kept.append(image)
        index += 1
    capture.release()
    if len(kept) < 10:
        raise DataError(f"{video}: only {len(kept)} frames decoded; cannot make a background")
    median = np.median(np.asarray(kept), axis=0).astype(np.uint8)
    cache_dir.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(cached), median)
    return median


def load_backgrounds(cache_dir: Path | None = None) -> dict[str, np.ndarray]:
    """People-free backgrounds by clip name (the clips that are present)."""
    found = {name: path for name in BACKGROUND_CLIPS if (path := _clip_path(name)) is not None}
    if not found:
        raise DataError(f"no background clip ({', '.join(BACKGROUND_CLIPS)}) in {data_root() / 'video'}")
    return {name: median_background(path, cache_dir or background_cache()) for name, path in found.items()}


# ------------------------------------------------------------------ sprites


def eye_centres(predictor: dlib.shape_predictor, image: np.ndarray, face: Face) -> np.ndarray:
    """Both eye centres (image-left first) from dlib's 5-point landmarks on the detector's box."""
    x1, y1, x2, y2 = (int(v) for v in face.box)
    rgb = np.ascontiguousarray(image[:, :, ::-1])
    shape = predictor(rgb, dlib.rectangle(max(0, x1), max(0, y1), min(image.shape[1] - 1, x2),
                                          min(image.shape[0] - 1, y2)))
    points = np.array([[shape.part(i).x, shape.part(i).y] for i in range(4)], np.float32)
    eyes = np.stack([points[0:2].mean(0), points[2:4].mean(0)])
    return eyes[np.argsort(eyes[:, 0])]


def cut_sprite(image: np.ndarray, eyes: np.ndarray, source: str) -> Sprite:
    """A square crop around the face (``CUT`` eye distances each side) with a soft elliptical mask."""
    d = float(np.linalg.norm(eyes[1] - eyes[0]))
    x1, y1, x2, y2 = truth_box(eyes)
    centre = np.array([(x1 + x2) / 2, (y1 + y2) / 2])
    half = int(np.ceil(CUT * d))
    ox, oy = round(float(centre[0])) - half, round(float(centre[1])) - half
    crop = cv2.copyMakeBorder(image, half, half, half, half, cv2.BORDER_REPLICATE)[
        oy + half:oy + 3 * half, ox + half:ox + 3 * half].astype(np.float32)
    angle = float(np.degrees(np.arctan2(*(eyes[1] - eyes[0])[::-1])))
    mask = np.zeros(crop.shape[:2], np.float32)
    cv2.ellipse(mask, (round(centre[0]) - ox, round(centre[1]) - oy), (round(ELLIPSE_A * d), round(ELLIPSE_B * d)),
                angle, 0, 360, 1.0, -1, cv2.LINE_AA)
    mask = cv2.GaussianBlur(mask, (0, 0), 0.15 * d)
    return Sprite(crop, mask, eyes - [ox, oy], source)


def face_sprites(detector: FaceDetector, predictor: dlib.shape_predictor) -> list[Sprite]:
    """Every face of the face set's photos (identity folders and group photos), as sprites."""
    root = data_file("faces")
    sprites = []
    for path in sorted(p for p in root.glob("*/*") if p.suffix.lower() in IMAGE_SUFFIXES):
        image = load_image(path)
        height, width = image.shape[:2]
        for face in detector.detect(image):
            eyes = eye_centres(predictor, image, face)
            x1, y1, x2, y2 = truth_box(eyes)
            if np.linalg.norm(eyes[1] - eyes[0]) >= 30 and x1 >= 0 and y1 >= 0 and x2 <= width and y2 <= height:
                sprites.append(cut_sprite(image, eyes, f"{path.parent.name}/{path.name}"))
    if not sprites:
        raise DataError(f"no face found in the photos of {root}")
    return sprites


# ------------------------------------------------------------------ composites


def paste(canvas: np.ndarray, sprite: Sprite, eye_px: float, at: tuple[float, float], gain: float) -> TruthFace:
    """Paste ``sprite`` scaled to ``eye_px`` between the eyes with its crop centre at ``at`` (float canvas)."""
    scale = eye_px / sprite.eye_px
    side = max(3, round(sprite.image.shape[0] * scale))
    scale = side / sprite.image.shape[0]
    method = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    image = cv2.resize(sprite.image, (side, side), interpolation=method) * gain
    mask = cv2.resize(sprite.mask, (side, side), interpolation=method)[:, :, None]
    x0, y0 = round(at[0] - side / 2), round(at[1] - side / 2)
    region = canvas[y0:y0 + side, x0:x0 + side]
    region[:] = region * (1 - mask) + image * mask
    eyes = sprite.eyes * scale + [x0, y0]
    return TruthFace(box=truth_box(eyes), eyes=(tuple(eyes[0].tolist()), tuple(eyes[1].tolist())),  # type: ignore[arg-type]
                     eye_px=float(np.linalg.norm(eyes[1] - eyes[0])), source=sprite.source)


def camera_effects(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Optics blur, sensor noise and JPEG compression; uint8 BGR out."""
    blurred = cv2.GaussianBlur(image, (0, 0), float(rng.uniform(0.4, 1.0)))
    noisy = blurred + rng.normal(0, float(rng.uniform(1.5, 4.0)), image.shape)
    quality = int(rng.integers(40, 86))
    ok, data = cv2.imencode(".jpg", np.clip(noisy, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(data, cv2.IMREAD_COLOR)


def background_frame(background: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random crop (70–100 % of each side) of ``background`` resized back to its size, maybe mirrored."""
    height, width = background.shape[:2]
    ch, cw = int(height * rng.uniform(0.7, 1.0)), int(width * rng.uniform(0.7, 1.0))
    y, x = int(rng.integers(0, height - ch + 1)), int(rng.integers(0, width - cw + 1))
    frame = cv2.resize(background[y:y + ch, x:x + cw], (width, height), interpolation=cv2.INTER_LINEAR)
    return frame[:, ::-1].copy() if rng.random() < 0.5 else frame


def make_composites(sprites: Sequence[Sprite], backgrounds: dict[str, np.ndarray], faces: int = 320,
                    frames: int = 40, empty: int = 12, seed: int = 13, min_eye: float = 8.0,
                    max_eye: float = 80.0) -> list[Composite]:
    """``frames`` frames holding ``faces`` faces between them, then ``empty`` frames without a face."""
    rng = np.random.default_rng(seed)
    names = sorted(backgrounds)
    # log-uniform sizes, stratified so every size range is covered, dealt round-robin (each frame gets all sizes)
    sizes = sorted(min_eye * (max_eye / min_eye) ** ((np.arange(faces) + rng.random(faces)) / faces), reverse=True)
    def sprite_for(eye_px: float) -> Sprite:  # one big enough not to be enlarged by more than 1.25×
        fitting = [s for s in sprites if s.eye_px >= 0.8 * eye_px] or list(sprites)
        return fitting[int(rng.integers(len(fitting)))]

    dealt = [[(float(s), sprite_for(s)) for s in sizes[k::frames]] for k in range(frames)]
    out: list[Composite] = []
    carried: list[tuple[float, Sprite]] = []  # faces that did not fit go to the next frame
    for index in range(frames + empty):
        name = names[index % len(names)]
        canvas = background_frame(backgrounds[name], rng).astype(np.float32)
        composite = Composite(canvas, name)
        if index < frames:
            placed: list[tuple[float, float, float, float]] = []
            todo, carried = sorted(carried + dealt[index], key=lambda item: -item[0]), []
            for eye_px, sprite in todo:
                eye_px = min(eye_px, canvas.shape[0] / (2 * CUT + 0.5))
                half = CUT * eye_px + 2
                for _ in range(60):
                    cx = float(rng.uniform(half, canvas.shape[1] - half))
                    cy = float(rng.uniform(half, canvas.shape[0] - half))
                    area = (cx - half, cy - half, cx + half, cy + half)
                    if all(area[2] < p[0] or p[2] < area[0] or area[3] < p[1] or p[3] < area[1] for p in placed):
                        placed.append(area)
                        composite.faces.append(paste(canvas, sprite, eye_px, (cx, cy), float(rng.uniform(0.7, 1.05))))
                        break
                else:
                    carried.append((eye_px, sprite))
        composite.image = camera_effects(canvas, rng)
        out.append(composite)
    return out


def match(truth: Sequence[TruthFace], faces: Sequence[Face]) -> tuple[list[int | None], int]:
    """For each truth face the index of the detection matched to it (or None), and the false detections."""
    matched: list[int | None] = [None] * len(truth)
    false = 0
    for i in sorted(range(len(faces)), key=lambda k: -faces[k].score):
        box = faces[i].box
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        area = (box[2] - box[0]) * (box[3] - box[1])
        hit = None
        for t, face in enumerate(truth):
            x1, y1, x2, y2 = face.box
            if matched[t] is None and x1 <= cx <= x2 and y1 <= cy <= y2 and \
                    0.25 <= area / ((x2 - x1) * (y2 - y1)) <= 4.0:
                hit = t
                break
        if hit is None:
            false += 1
        else:
            matched[hit] = i
    return matched, false
