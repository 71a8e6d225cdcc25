"""Plate text: normalisation to region formats (data: ``plate_formats.yaml``), confusable-aware distance,
hotlist matching, track voting."""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field

from vigil.vision.plate_formats import (
    PlateFormat,
    check_regions,
    extra_characters,
    known_regions,
    leading_characters,
    plate_characters,
    region_formats,
)

CONFUSABLES: tuple[tuple[str, str], ...] = (("O", "0"), ("I", "1"), ("B", "8"), ("S", "5"), ("Z", "2"), ("G", "6"))

STRAY_READS = frozenset("O08QD")  # what emblems and stickers between character groups are read as
_TO_DIGIT = dict(CONFUSABLES)
_TO_LETTER = {digit: letter for letter, digit in CONFUSABLES}
#: Cyrillic letters that look like Latin ones (Serbian, Bulgarian, Russian plates; OCR may return either), and
#: Latin letters with marks (Serbian Č, Ć, Š, Ž, Đ; read plainly on plates and in hotlists)
LOOKALIKES = str.maketrans("АВЕКМНОРСТУХЅІЈЁ", "ABEKMHOPCTYXSIJE") | {ord("Đ"): "D", ord("Ð"): "D"}
PLATE_CJK = plate_characters()  # Chinese characters that occur on plates (province, special suffixes)
#: region → its format regexes, from the data file (kept for callers of the former hard-coded table)
REGION_FORMATS: dict[str, tuple[str, ...]] = {
    region: tuple(f.regex.pattern for f in region_formats(region)) for region in known_regions()}


def clean(text: str, keep: str = PLATE_CJK) -> str:
    """Upper case; lookalike Cyrillic to Latin, marks dropped; then only A-Z, 0-9 and the characters of ``keep``
    (by default the Chinese plate characters; ``""`` for Latin alphanumerics alone)."""
    folded = unicodedata.normalize("NFKD", text.upper().translate(LOOKALIKES))
    return "".join(ch for ch in folded if "A" <= ch <= "Z" or "0" <= ch <= "9" or ch in keep)


@dataclass(frozen=True, slots=True)
class Normalised:
    """A normalised read: ``text``, how many confusables were swapped, how many stray characters dropped
    from the ends, whether a region format matched, which region's, and that format's extra cost."""

    text: str
    substitutions: int = 0
    dropped: int = 0
    formatted: bool = False
    region: str = ""
    cost: float = 0.0  # the matched format's extra cost: above 0 for a loose catch-all


FormatLike = PlateFormat | str


class PlateNormaliser:
    """Cleans OCR text and resolves confusables (O/0, I/1, B/8, S/5, Z/2, G/6) so that it fits one of the
    formats, with the fewest swaps (plus the cost of a loose format; earlier formats win ties); stray characters
    at the ends (country codes, frame marks) are dropped when the remaining text fits a format.

    ``formats`` are ``PlateFormat``s (``for_regions``) or plain regexes over cleaned text."""

    def __init__(self, formats: tuple[FormatLike, ...] | list[FormatLike] = (), max_drop_left: int = 3,
                 max_drop_right: int = 2, drop_inside: bool = True, max_substitutions: int = 3,
                 regions: tuple[str, ...] = ()):
        self.formats = [f if isinstance(f, PlateFormat) else PlateFormat(f, re.compile(f)) for f in formats]
        self.patterns = [f.regex for f in self.formats]
        self.keep = extra_characters(self.formats)  # e.g. the province characters for cn
        self.provinces = leading_characters(self.formats)  # characters a format begins with (cn provinces)
        self.regions = regions
        self.max_drop_left = max_drop_left
        self.max_drop_right = max_drop_right
        self.drop_inside = drop_inside
        self.max_substitutions = max_substitutions

    @classmethod
    def for_regions(cls, regions: str | list[str] | tuple[str, ...]) -> PlateNormaliser:
        """The normaliser of one region or several (``"rs"``, ``["rs", "eu"]``, ``"rs,eu"``); names as in
        ``plate_formats.yaml``. ``KeyError`` for an unknown one."""
        try:
            names = tuple(check_regions(regions))
        except ValueError as exc:
            raise KeyError(str(exc)) from None
        return cls(region_formats(names), regions=names)

    @classmethod
    def for_region(cls, region: str | list[str], formats: dict[str, tuple[str, ...]] | None = None) -> PlateNormaliser:
        """``for_regions``, or the region of a custom ``{region: (regex, ...)}`` table when ``formats`` is given."""
        if formats is None:
            return cls.for_regions(region)
        if region not in formats:
            raise KeyError(f"unknown plate region {region!r}; known: {', '.join(formats)}")
        return cls(formats[region], regions=(str(region),))

    def _fit(self, text: str) -> tuple[str, int, PlateFormat] | None:
        """The variant of ``text`` matching a format at the lowest cost (swaps + the format's cost; earlier
        formats win ties)."""
        options = [(ch, _TO_DIGIT.get(ch) or _TO_LETTER.get(ch)) for ch in text]
        swappable = [i for i, (_, alt) in enumerate(options) if alt]
        best: tuple[str, int, PlateFormat] | None = None
        best_rank = (float("inf"), 0)
        for count in range(min(len(swappable), self.max_substitutions) + 1):
            if count > best_rank[0]:
                break
            variants = []
            for chosen in itertools.combinations(swappable, count):
                chars = list(text)
                for i in chosen:
                    chars[i] = options[i][1]  # type: ignore[assignment]
                variants.append("".join(chars))
            for order, fmt in enumerate(self.formats):
                rank = (count + fmt.cost, order)
                if rank >= best_rank:
                    continue
                hit = next((v for v in variants if fmt.regex.fullmatch(v)), None)
                if hit is not None:
                    best, best_rank = (hit, count, fmt), rank
        return best

    def _parts(self, text: str) -> list[tuple[str, int, float]]:
        """Sub-strings to try: (text, characters dropped, cost). Country codes sit on the left; one stray
        character between groups (an emblem or sticker read as O, 8 or a dot) may be dropped inside, at a little
        less than dropping an end character."""
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
        text = clean(raw, self.keep)
        if not self.formats or not text:
            return Normalised(text)
        best: Normalised | None = None
        best_rank: tuple[float, int, int, int] = (float("inf"), 0, 0, 0)
        for part, dropped, drop_cost in self._parts(text):
            if drop_cost > best_rank[0]:
                continue
            fitted = self._fit(part)
            if fitted is None:
                continue
            variant, swaps, fmt = fitted
            candidate = Normalised(variant, swaps, dropped, True, fmt.region, fmt.cost)
            rank = (swaps + fmt.cost + drop_cost, dropped, swaps, -len(variant))  # at a tie, keep characters
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
