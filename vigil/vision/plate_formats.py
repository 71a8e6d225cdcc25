"""Plate formats by region, loaded from the packaged ``plate_formats.yaml`` (the notation is described there).

``region_formats(["rs", "eu"])`` gives the compiled formats of several regions in order, duplicates removed;
``known_regions()`` the names; ``check_regions`` validates names (for the config).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

import yaml

FORMATS_FILE = "plate_formats.yaml"
_NOTATION = re.compile(r"@|#|%|<(\w+)>")


@dataclass(frozen=True, slots=True)
class PlateFormat:
    """One compiled format: ``pattern`` as written, ``regex`` over cleaned text, extra ``cost`` of a loose format."""

    pattern: str
    regex: re.Pattern[str]
    cost: float = 0.0
    region: str = ""


def compile_pattern(pattern: str, classes: dict[str, str]) -> re.Pattern[str]:
    """The regex of a notation pattern: ``@`` letter, ``#`` digit, ``%`` either, ``<name>`` a named class."""

    def expand(match: re.Match[str]) -> str:
        token = match.group(0)
        if match.group(1):
            if match.group(1) not in classes:
                raise ValueError(f"plate format {pattern!r}: unknown character class <{match.group(1)}>")
            return f"[{classes[match.group(1)]}]"
        return {"@": "[A-Z]", "#": "[0-9]", "%": "[A-Z0-9]"}[token]

    return re.compile(_NOTATION.sub(expand, pattern))


@cache
def _table() -> tuple[dict[str, dict], dict[str, str]]:
    text = resources.files("vigil.vision").joinpath(FORMATS_FILE).read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    return data["regions"], data.get("classes", {})


def known_regions() -> list[str]:
    """Every region name in the data file, in file order."""
    return list(_table()[0])


def region_name(region: str) -> str:
    """The human-readable name of a region."""
    return str(_table()[0][region].get("name", region))


def check_regions(regions: str | list[str] | tuple[str, ...]) -> list[str]:
    """Region names as a list (a string may list several, comma-separated), lower-cased; ``ValueError`` naming
    the known regions for an unknown one."""
    names = [r.strip().lower() for r in (regions.split(",") if isinstance(regions, str) else regions)]
    names = [n for n in names if n]
    if not names:
        raise ValueError("no plate region given")
    unknown = [n for n in names if n not in _table()[0]]
    if unknown:
        raise ValueError(f"unknown plate region {unknown[0]!r}; known: {', '.join(known_regions())}")
    return names


@cache
def _formats_of(region: str, seen: tuple[str, ...] = ()) -> tuple[PlateFormat, ...]:
    regions, classes = _table()
    if region in seen:
        raise ValueError(f"plate region {region!r} includes itself")
    entry = regions[region]
    out = []
    for item in entry.get("formats") or ():
        pattern, cost = (item["pattern"], float(item.get("cost", 0))) if isinstance(item, dict) else (item, 0.0)
        out.append(PlateFormat(pattern, compile_pattern(pattern, classes), cost, region))
    for included in entry.get("include") or ():
        name, extra = (included["region"], float(included.get("cost", 0))) if isinstance(included, dict) \
            else (included, 0.0)
        out += [PlateFormat(f.pattern, f.regex, f.cost + extra, f.region) for f in _formats_of(name, (*seen, region))]
    return tuple(out)


def region_formats(regions: str | list[str] | tuple[str, ...]) -> tuple[PlateFormat, ...]:
    """The formats of ``regions`` in order (each region's own, then its includes); a regex seen twice is kept
    once, at its first place and lowest cost."""
    best: dict[str, PlateFormat] = {}
    for region in check_regions(regions):
        for fmt in _formats_of(region):
            kept = best.get(fmt.regex.pattern)
            if kept is None:
                best[fmt.regex.pattern] = fmt
            elif fmt.cost < kept.cost:
                best[fmt.regex.pattern] = PlateFormat(kept.pattern, kept.regex, fmt.cost, kept.region)
    return tuple(best.values())


def extra_characters(formats: tuple[PlateFormat, ...] | list[PlateFormat]) -> str:
    """Non-ASCII characters the formats can match (e.g. Chinese province characters), for ``clean(keep=...)``."""
    classes = _table()[1]
    used = {name for fmt in formats for name in re.findall(r"<(\w+)>", fmt.pattern)}
    return "".join(sorted({ch for name in used for ch in classes[name] if not ch.isascii()}))


def leading_characters(formats: tuple[PlateFormat, ...] | list[PlateFormat]) -> str:
    """Non-ASCII characters of the classes that begin a format (Chinese province characters), or ``""``."""
    classes = _table()[1]
    used = {m.group(1) for fmt in formats if (m := re.match(r"<(\w+)>", fmt.pattern))}
    return "".join(sorted({ch for name in used for ch in classes[name] if not ch.isascii()}))


def plate_characters() -> str:
    """Every non-ASCII character of every class (what may appear on a plate beyond A-Z and 0-9)."""
    return "".join(sorted({ch for chars in _table()[1].values() for ch in chars if not ch.isascii()}))
