"""PP-OCR recognition of plate crops with our own greedy CTC decoding (rapidocr's model, character list and
resizing), which also reports the likeliest *leading* character from a given set: a Chinese plate begins with
a province character that PP-OCR often reads weakly, misreads (as a Latin letter or another Chinese
character) or drops, while the rest of the plate is read well.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from rapidocr import RapidOCR


@dataclass(frozen=True, slots=True)
class Recognised:
    """A crop's greedy read (``text``, mean character ``confidence``) and, when leading characters were asked
    for, the likeliest of them over the first character's time steps (``lead``, ``lead_confidence``)."""

    text: str
    confidence: float
    lead: str = ""
    lead_confidence: float = 0.0

    def with_lead(self, replace_first: bool) -> tuple[str, float]:
        """The text with ``lead`` put in front (or in place of the first character) and its confidence."""
        rest = self.text[1:] if replace_first else self.text
        count = max(len(rest), 1)
        return self.lead + rest, (self.confidence * count + self.lead_confidence) / (count + 1)


class PlateRecogniser:
    """``recogniser(crops, leading="") -> list[Recognised]``, in the order of ``crops`` (BGR images)."""

    def __init__(self, ocr: RapidOCR, batch: int = 8):
        model = ocr._load_rec_model()  # rapidocr's lazily built recogniser: its session, characters and resizing
        self.session = model.session
        self.characters: list[str] = list(model.postprocess_op.character)
        self.resize = model.resize_norm_img
        self.input_height, self.input_width = model.rec_image_shape[1:3]
        self.batch = batch
        self._index = {ch: i for i, ch in enumerate(self.characters)}

    def probabilities(self, crops: list[np.ndarray]) -> list[np.ndarray]:
        """Per crop, the (time steps, characters) probabilities; crops are batched by similar width."""
        ratios = [crop.shape[1] / max(crop.shape[0], 1) for crop in crops]
        order = np.argsort(ratios)
        out: list[np.ndarray | None] = [None] * len(crops)
        for start in range(0, len(crops), self.batch):
            chosen = order[start:start + self.batch]
            widest = max([self.input_width / self.input_height] + [ratios[i] for i in chosen])
            batch = np.stack([self.resize(crops[i], widest) for i in chosen]).astype(np.float32)
            probs = self.session(batch)
            for row, i in enumerate(chosen):
                steps = max(1, round(probs.shape[1] * ratios[i] / widest) + 1)  # drop the padding's steps
                out[i] = probs[row, :steps]
        return out  # type: ignore[return-value]

    def _greedy(self, probs: np.ndarray) -> tuple[str, float, np.ndarray]:
        """Greedy CTC decoding (blank 0, repeats merged): text, mean character confidence, the kept steps."""
        best = probs.argmax(1)
        keep = np.ones(len(best), bool)
        keep[1:] = best[1:] != best[:-1]
        keep &= best != 0
        steps = np.flatnonzero(keep)
        text = "".join(self.characters[i] for i in best[steps]).strip()
        return text, float(probs[steps, best[steps]].mean()) if len(steps) else 0.0, steps

    def lead_scores(self, probs: np.ndarray, leading: str) -> np.ndarray:
        """For each character of ``leading``, its highest probability over the steps before the second decoded
        character (where a first character is read, or dropped)."""
        columns = [self._index.get(ch, 0) for ch in leading]
        steps = self._greedy(probs)[2]
        window = probs[: steps[1] if len(steps) > 1 else len(probs)][:, columns]
        return window.max(0) if window.size else np.zeros(len(leading))

    def decode(self, probs: np.ndarray, leading: str = "") -> Recognised:
        """The greedy read; with ``leading``, also the likeliest of those characters (``lead_scores``)."""
        text, confidence, _ = self._greedy(probs)
        if not leading:
            return Recognised(text, confidence)
        scores = self.lead_scores(probs, leading)
        return Recognised(text, confidence, leading[int(scores.argmax())], float(scores.max()))

    def __call__(self, crops: list[np.ndarray], leading: str = "") -> list[Recognised]:
        if not crops:
            return []
        return [self.decode(probs, leading) for probs in self.probabilities(crops)]

    def read_both_polarities(self, crops: list[np.ndarray], leading: str) -> list[tuple[Recognised, Recognised]]:
        """Each crop read as it is and as inverted grey (dark text on light: white-on-blue Chinese plates read
        better so), with the leading character chosen from both reads' evidence together."""
        if not crops:
            return []
        inverted = [cv2.cvtColor(255 - cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR) for crop in crops]
        probs = self.probabilities(crops + inverted)
        out = []
        for plain, flipped in zip(probs[:len(crops)], probs[len(crops):], strict=True):
            scores = (self.lead_scores(plain, leading) + self.lead_scores(flipped, leading)) / 2
            lead, lead_confidence = leading[int(scores.argmax())], float(scores.max())
            out.append(tuple(Recognised(*self._greedy(p)[:2], lead, lead_confidence) for p in (plain, flipped)))
        return out  # type: ignore[return-value]
