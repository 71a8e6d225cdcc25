"""Dominant colour of a track's best snapshot: HSV binning into eleven named colours.

People are judged by the torso (clothing), vehicles by the middle of the box (body panels, not the road
or the windows). ``ColourEnricher`` writes the name into ``track.attributes["colour"]`` when a track ends,
before the store sink saves the track summary.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import cv2
import numpy as np

from vigil.types import Event, Frame, Track

if TYPE_CHECKING:
    from vigil.vision.tracker import TrackUpdate

COLOURS = ("black", "white", "grey", "red", "orange", "yellow", "green", "blue", "purple", "pink", "brown")
#: (low hue, high hue, name) on OpenCV's 0–179 hue scale, for saturated pixels
HUES = ((0, 8, "red"), (8, 20, "orange"), (20, 34, "yellow"), (34, 86, "green"), (86, 130, "blue"),
        (130, 150, "purple"), (150, 171, "pink"), (171, 180, "red"))


def colour_region(crop: np.ndarray, label: str) -> np.ndarray:
    """The part of a crop whose colour names the object: the torso of a person, the body of a vehicle."""
    height, width = crop.shape[:2]
    if label == "person":
        y1, y2, x1, x2 = 0.18, 0.55, 0.25, 0.75
    else:
        y1, y2, x1, x2 = 0.30, 0.80, 0.15, 0.85
    region = crop[int(height * y1):max(int(height * y2), int(height * y1) + 1),
                  int(width * x1):max(int(width * x2), int(width * x1) + 1)]
    return region if region.size else crop


def colour_histogram(image_bgr: np.ndarray) -> dict[str, float]:
    """Fraction of pixels of each named colour."""
    small = cv2.resize(image_bgr, (32, 32), interpolation=cv2.INTER_AREA) if image_bgr.size > 3 * 32 * 32 else image_bgr
    hsv = cv2.cvtColor(small, cv2.COLOR_BGR2HSV).reshape(-1, 3).astype(np.int32)
    hue, sat, val = hsv[:, 0], hsv[:, 1], hsv[:, 2]
    names = np.full(len(hsv), "", dtype=object)
    dark = val < 50
    achromatic = ~dark & ((sat < 45) | ((sat < 70) & (val > 200)))
    names[dark] = "black"
    names[achromatic & (val >= 190)] = "white"
    names[achromatic & (val < 190)] = "grey"
    chromatic = ~dark & ~achromatic
    for low, high, name in HUES:
        names[chromatic & (hue >= low) & (hue < high)] = name
    brown = chromatic & (hue >= 5) & (hue < 25) & (val < 150)  # dark orange is brown
    names[brown] = "brown"
    counts = {name: float(np.count_nonzero(names == name)) / len(names) for name in COLOURS}
    return {name: share for name, share in counts.items() if share > 0}


def dominant_colour(crop: np.ndarray, label: str = "person", chroma_boost: float = 1.5) -> str | None:
    """The colour name covering most of the object's region; chromatic colours get ``chroma_boost`` weight, as
    shadows and highlights make every object partly black, grey or white. None for an empty crop."""
    if crop is None or crop.size == 0:
        return None
    shares = colour_histogram(colour_region(crop, label))
    if not shares:
        return None
    weighted = {name: share * (1.0 if name in ("black", "white", "grey") else chroma_boost)
                for name, share in shares.items()}
    return max(weighted, key=lambda name: weighted[name])


class ColourEnricher:
    """Sets ``track.attributes["colour"]`` from the best snapshot when a track ends (raises no events)."""

    def process(self, frame: Frame, update: TrackUpdate) -> list[Event]:
        return []

    def finish(self, ended: list[Track], at: datetime) -> list[Event]:
        for track in ended:
            if track.best_snapshot is not None and "colour" not in track.attributes:
                colour = dominant_colour(track.best_snapshot, track.label)
                if colour is not None:
                    track.attributes["colour"] = colour
        return []
