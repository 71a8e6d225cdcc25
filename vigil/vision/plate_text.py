"""Plate text: normalisation with region formats, confusable-aware distance, hotlist matching, track voting."""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from dataclasses import dataclass, field

CONFUSABLES: tuple[tuple[str, str], ...] = (("O", "0"), ("I", "1"), ("B", "8"), ("S", "5"), ("Z", "2"), ("G", "6"))

# Region → plate formats (regexes over upper-case alphanumerics, no separators). "generic" has no format:
# text is only upper-cased and stripped. Pass your own mapping to PlateNormaliser for other regions.
REGION_FORMATS: dict[str, tuple[str, ...]] = {
    "generic": (),
    "eu": (
        r"[A-Z]{2}\d{3}[A-Z]{2}",  # SK, IT, FR (AA123AA)
        r"\d[A-Z][A-Z0-9]\d{4}",  # CZ (1AB 2345)
        r"[A-Z]{2}\d{5}",  # PL (WA 12345)
        r"[A-Z]{3}\d{4,5}",  # PL, SK older
        r"\d{4}[A-Z]{3}",  # ES (1234 ABC)
        r"[A-Z]{2}\d{2}[A-Z]{3}",  # UK (AB12 CDE)
    ),
    "us": (r"[A-Z0-9]{2,8}",),
    "uk": (r"[A-Z]{2}\d{2}[A-Z]{3}",),
}

STRAY_READS = frozenset("O08QD")  # what emblems and stickers between character groups are read as
_TO_DIGIT = dict(CONFUSABLES)
_TO_LETTER = {digit: letter for letter, digit in CONFUSABLES}
_NON_ALNUM = re.compile(r"[^A-Z0-9]")


def clean(text: str) -> str:
    """Upper case, alphanumerics only."""
    return _NON_ALNUM.sub("", text.upper())


@dataclass(frozen=True, slots=True)
class Normalised:
    """A normalised read: ``text``, how many confusables were swapped, how many stray characters dropped
    from the ends, and whether a region format matched."""

    text: str
    substitutions: int = 0
    dropped: int = 0
    formatted: bool = False


class PlateNormaliser:
    """Cleans OCR text and resolves confusables (O/0, I/1, B/8, S/5, Z/2, G/6) so that it fits one of the
    region's formats, with the fewest swaps; stray characters at the ends (country codes, frame marks)
    are dropped when the remaining text fits a format."""

    def __init__(self, formats: tuple[str, ...] | list[str] = (), max_drop_left: int = 3, max_drop_right: int = 2,
                 drop_inside: bool = True, max_substitutions: int = 3):
        self.patterns = [re.compile(pattern) for pattern in formats]
        self.max_drop_left = max_drop_left
        self.max_drop_right = max_drop_right
        self.drop_inside = drop_inside
        self.max_substitutions = max_substitutions

    @classmethod
    def for_region(cls, region: str, formats: dict[str, tuple[str, ...]] | None = None) -> PlateNormaliser:
        table = formats or REGION_FORMATS
        if region not in table:
            raise KeyError(f"unknown plate region {region!r}; known: {', '.join(table)}")
        return cls(table[region])

    def _fit(self, text: str) -> tuple[str, int] | None:
        """The variant of ``text`` matching a format with the fewest confusable swaps (earlier formats win ties)."""
        options = [(ch, _TO_DIGIT.get(ch) or _TO_LETTER.get(ch)) for ch in text]
        swappable = [i for i, (_, alt) in enumerate(options) if alt]
        for count in range(min(len(swappable), self.max_substitutions) + 1):
            variants = []
            for chosen in itertools.combinations(swappable, count):
                chars = list(text)
                for i in chosen:
                    chars[i] = options[i][1]  # type: ignore[assignment]
                variants.append("".join(chars))
            for pattern in self.patterns:
                for variant in variants:
                    if pattern.fullmatch(variant):
                        return variant, count
        return None

    def _parts(self, text: str) -> list[tuple[str, int, float]]:
        """Sub-strings to try: (text, characters dropped, cost). Country codes sit on the left; one stray
        character between groups (an emblem or sticker read as O, 8 or a dot) may be dropped inside."""
        parts = []
        for left in range(min(self.max_drop_left, len(text)) + 1):
            for right in range(min(self.max_drop_right, len(text) - left) + 1):
                part = text[left:len(text) - right]
                if len(part) >= (4 if left + right == 0 else 5):
                    parts.append((part, left + right, left + 1.5 * right))
                if self.drop_inside and left + right == 0 and len(part) > 5:
                    parts += [(part[:i] + part[i + 1:], 1, 0.9 + 0.01 * abs(i - (len(part) - 1) / 2))
                              for i in range(1, len(part) - 1) if part[i] in STRAY_READS]
        return sorted(parts, key=lambda p: p[2])

    def normalise(self, raw: str) -> Normalised:
        text = clean(raw)
        if not self.patterns or not text:
            return Normalised(text)
        best: Normalised | None = None
        best_rank: tuple[float, int, int] = (float("inf"), 0, 0)
        for part, dropped, drop_cost in self._parts(text):
            if drop_cost > best_rank[0]:
                continue
            fitted = self._fit(part)
            if fitted is None:
                continue
            candidate = Normalised(fitted[0], fitted[1], dropped, True)
            rank = (candidate.substitutions + drop_cost, candidate.substitutions, -len(candidate.text))
            if rank < best_rank:
                best, best_rank = candidate, rank
        return best or Normalised(text)


def _substitution_cost(a: str, b: str, confusable_weight: float) -> float:
    if a == b:
        return 0.0
    return confusable_weight if _TO_DIGIT.get(a) == b or _TO_DIGIT.get(b) == a else 1.0


def plate_distance(a: str, b: str, confusable_weight: float = 0.3) -> float:
    """Edit distance between two plate texts (cleaned first) where confusable swaps cost ``confusable_weight``."""
    a, b = clean(a), clean(b)
    previous = [float(j) for j in range(len(b) + 1)]
    for i, ca in enumerate(a, 1):
        current = [float(i)]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + _substitution_cost(ca, cb, confusable_weight)))
        previous = current
    return previous[-1]


@dataclass(frozen=True, slots=True)
class HotlistMatch:
    entry: str
    distance: float


def match_hotlist(text: str, entries: list[str] | tuple[str, ...] | set[str],
                  max_distance: float = 1.0) -> list[HotlistMatch]:
    """Hotlist entries within ``max_distance`` of ``text``, closest first."""
    matches = [HotlistMatch(entry, plate_distance(text, entry)) for entry in entries]
    return sorted((m for m in matches if m.distance <= max_distance), key=lambda m: (m.distance, m.entry))


@dataclass(slots=True)
class PlateVoter:
    """Votes the reads of one track: reads of the most common (weighted) length are aligned by position
    and each position takes the character with the highest summed confidence."""

    reads: list[tuple[str, float]] = field(default_factory=list)

    def add(self, text: str, confidence: float) -> None:
        text = clean(text)
        if text:
            self.reads.append((text, float(confidence)))

    def result(self) -> tuple[str, float]:
        """(text, confidence in [0, 1]); ``("", 0.0)`` when nothing was read."""
        if not self.reads:
            return "", 0.0
        by_length: dict[int, float] = defaultdict(float)
        for text, conf in self.reads:
            by_length[len(text)] += conf
        length = max(by_length, key=lambda n: (by_length[n], n))
        same = [(t, c) for t, c in self.reads if len(t) == length]
        chars, confidences = [], []
        for position in range(length):
            votes: dict[str, float] = defaultdict(float)
            for text, conf in same:
                votes[text[position]] += conf
            winner = max(votes, key=lambda ch: votes[ch])
            chars.append(winner)
            confidences.append(votes[winner] / sum(c for _, c in self.reads))
        return "".join(chars), round(min(confidences), 4)
