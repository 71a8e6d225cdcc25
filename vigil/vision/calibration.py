"""Calibration images for int8 quantisation, from Debian's ``opencv-doc`` samples.

Static quantisation needs a few dozen typical inputs to fix each activation's range. They come
from a registry package like the models (``opencv-doc``, installed by ``make setup``): frames of
two videos with people, trees and cars, plus street, sports and indoor stills. ``vtest.avi``, the
benchmark sequence, is deliberately left out so that the detection figures stay honest.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from vigil.errors import ModelError
from vigil.vision.detector import NANODET_SIZE, nanodet_input

SAMPLES = Path("/usr/share/doc/opencv-doc/examples/data")
VIDEOS = ("Megamind.avi", "tree.avi")
VIDEO_STEP = 15  # every 15th frame
STILLS = ("basketball1.png", "basketball2.png", "messi5.jpg", "building.jpg", "home.jpg",
          "licenseplate_motion.jpg", "aero1.jpg", "stuff.jpg", "fruits.jpg", "baboon.jpg")


def calibration_images(samples: Path = SAMPLES) -> list[np.ndarray]:
    """The BGR calibration images, in a fixed order; a missing sample names the package."""
    images: list[np.ndarray] = []
    for name in VIDEOS:
        capture = cv2.VideoCapture(str(_sample(samples, name)))
        index = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if index % VIDEO_STEP == 0:
                images.append(frame)
            index += 1
        capture.release()
    for name in STILLS:
        image = cv2.imread(str(_sample(samples, name)))
        if image is None:
            raise ModelError(f"calibration image {samples / name} cannot be read; reinstall opencv-doc")
        images.append(image)
    return images


def _sample(samples: Path, name: str) -> Path:
    path = samples / name
    if not path.exists():
        raise ModelError(f"calibration sample {path} is missing: apt-get install opencv-doc (or run `make setup`)")
    return path


def save_calibration(path: Path, size: tuple[int, int] | None = None) -> Path:
    """Write the calibration images as one NanoDet input tensor (``.npy``) of ``size`` (w, h; the
    shipped 416×416 by default); returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, nanodet_input(calibration_images(), size or NANODET_SIZE))
    return path
