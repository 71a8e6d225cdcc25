"""Generated data for the search benchmark: N object tracks with events, plate reads and face sightings.

A seeded generator (1000 cameras, 30 days, diurnal traffic, 70 % people, 20 % cars, buses/trucks/bicycles/
motorcycles; dominant colours; zones; plate reads in EU/UK/US formats, Zipf-distributed so some cars are seen
hundreds of times, a few OCR misreads; 128-d face vectors of synthetic identities) and its bulk loader: ``COPY`` on
PostgreSQL, chunked Core ``insert()`` on SQLite, secondary indices dropped during the load and rebuilt after.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import Table, insert, text

from vigil.errors import VigilError
from vigil.store.db import Store
from vigil.store.recognition_schema import SightingRow
from vigil.store.schema import EventRow, TrackRow
from vigil.store.search import SearchHit
from vigil.store.sightings import canonical_plate
from vigil.vision.colour import COLOURS
from vigil.vision.plate_text import CONFUSABLES

Progress = Callable[[str, int, int], None]  # (stage, done, total)

CAMERAS, DAYS, CHUNK = 1000, 30, 200_000
T_START = np.datetime64("2025-05-01T00:00:00", "ms")  # fixed, so one seed always gives the same data
LABELS = ("person", "car", "bus", "truck", "bicycle", "motorcycle")
LABEL_P = (0.70, 0.20, 0.02, 0.03, 0.03, 0.02)
PLATED = (1, 2, 3, 5)  # label indices of vehicles with number plates
ZONES = ("entrance", "exit", "crossing", "bus_stop", "platform", "parking", "gate", "plaza", "sidewalk",
         "car_park", "loading_bay", "bike_lane")
_C = {name: i for i, name in enumerate(COLOURS)}
PERSON_COLOURS = {"black": .30, "blue": .15, "grey": .14, "white": .12, "red": .07, "green": .06, "brown": .06,
                  "purple": .03, "pink": .03, "yellow": .02, "orange": .02}
VEHICLE_COLOURS = {"white": .26, "black": .20, "grey": .22, "blue": .10, "red": .09, "green": .04, "brown": .03,
                   "yellow": .03, "orange": .02, "purple": .005, "pink": .005}
HOUR_WEIGHTS = np.array([2, 1, 1, 1, 1, 2, 4, 8, 10, 9, 8, 8, 9, 9, 8, 8, 9, 10, 10, 8, 6, 5, 4, 3], float)
PLATE_FORMATS = {"LLDDDLL": .25, "LLDDLLL": .25, "LLDDDDD": .10, "DDDDLLL": .10, "DLLLDDD": .15, "LLLDDDD": .15}
PLATE_LETTERS, DIGITS = "ABCDEFGHJKLMNPRSTUVWXYZ", "0123456789"  # no I, O, Q: like most real series
PLATE_READ_P, MISREAD_P, EVENT_P = 0.85, 0.04, 0.05
FACE_CAP, FACE_THRESHOLD, MIN_RECALL = 1_000_000, 0.6, 0.5
#: Synthetic dlib-like embeddings: a shared mean plus a per-person offset in a 32-d latent space plus noise, scaled
#: to what dlib gives on the faces of the test data (norm ≈ 1.4, same person ≈ 0.39 apart, others ≈ 0.85).
FACE_MEAN_NORM, FACE_PERSON_NORM, FACE_NOISE_NORM, FACE_LATENT = 1.26, 0.6, 0.28, 32
JSON_COLUMNS = frozenset({"zones", "path", "attributes", "payload"})
QUERIES = ("time_camera", "fuzzy_plate", "class_colour_zone", "face_top10")
MS = np.timedelta64(1, "ms")


class SearchBenchError(VigilError):
    """Bad bench arguments, or a search answer that contradicts the generated data."""


@dataclass(slots=True)
class Truth:
    """What was generated, kept in memory to check every timed answer."""

    cam_zones: np.ndarray
    plate_pool: np.ndarray
    face_mean: np.ndarray
    face_offsets: np.ndarray
    tracks: dict[str, list[np.ndarray]] = field(default_factory=dict)
    events: dict[str, list[np.ndarray]] = field(default_factory=dict)
    reads: list[str] = field(default_factory=list)  # a sample of stored plate texts (fuzzy query seeds)
    face_people: list[np.ndarray] = field(default_factory=list)
    face_vectors: list[np.ndarray] = field(default_factory=list)

    def add(self, target: dict[str, list[np.ndarray]], **columns: np.ndarray) -> None:
        for name, values in columns.items():
            target.setdefault(name, []).append(values)

    def freeze(self) -> None:
        for target in (self.tracks, self.events):
            for name, parts in target.items():
                target[name] = [np.concatenate(parts)] if parts else [np.empty(0)]


# ---------------------------------------------------------------------- generation

def _camera(i: np.ndarray) -> list[str]:
    return [f"cam-{c:04d}" for c in i.tolist()]


def _plates(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` distinct, shuffled plate texts in EU/UK/US formats."""
    parts = []
    for fmt, share in PLATE_FORMATS.items():
        count = int(n * share * 1.05) + 10
        chars = np.empty((count, len(fmt)), "<U1")
        for pos, kind in enumerate(fmt):
            chars[:, pos] = rng.choice(list(PLATE_LETTERS if kind == "L" else DIGITS), count)
        parts.append(np.ascontiguousarray(chars).view(f"<U{len(fmt)}").ravel())
    pool = np.unique(np.concatenate(parts))
    return pool[rng.permutation(len(pool))[:n]]


def _zipf_pick(rng: np.random.Generator, size: int, count: int, exponent: float = 0.6) -> np.ndarray:
    """Indices in [0, size) where index 0 is the most frequent (a few vehicles are seen very often)."""
    weights = np.cumsum(1.0 / np.arange(1, size + 1) ** exponent)
    return np.searchsorted(weights, rng.random(count) * weights[-1])


def _misread(text_: str, rng: np.random.Generator) -> str:
    """``text_`` with one character swapped for its confusable twin, or (half the time) for another one."""
    pairs = dict(CONFUSABLES) | {digit: letter for letter, digit in CONFUSABLES}
    swappable = [i for i, ch in enumerate(text_) if ch in pairs]
    pos = int(rng.integers(len(text_)))
    if swappable and rng.random() < 0.5:
        pos = swappable[int(rng.integers(len(swappable)))]
        return text_[:pos] + pairs[text_[pos]] + text_[pos + 1:]
    others = [ch for ch in PLATE_LETTERS + DIGITS if ch != text_[pos] and ch != pairs.get(text_[pos])]
    return text_[:pos] + others[int(rng.integers(len(others)))] + text_[pos + 1:]


class Generator:
    """Makes the bench data chunk by chunk, in time order, and hands each table's columns to ``write``."""

    def __init__(self, rows: int, faces: int, seed: int) -> None:
        self.rows, self.rng = rows, np.random.default_rng(seed)
        rng = self.rng
        self.cam_weights = np.cumsum(rng.lognormal(0.0, 0.6, CAMERAS))
        vehicles = int(rows * sum(LABEL_P[i] for i in PLATED) * PLATE_READ_P) // 5 + 200
        self.pools = {}  # label index → (offset, size) in the plate pool
        offset = 0
        for label in PLATED:
            size = int(vehicles * LABEL_P[label] / sum(LABEL_P[i] for i in PLATED)) + 50
            self.pools[label] = (offset, size)
            offset += size
        self.people = max(100, faces // 8)
        self.truth = Truth(cam_zones=np.argsort(rng.random((CAMERAS, len(ZONES))), axis=1)[:, :3],
                           plate_pool=_plates(rng, offset), **self._face_model(rng, self.people))
        self.canon = np.array([canonical_plate(p) for p in self.truth.plate_pool.tolist()])
        self.next_track = np.zeros(CAMERAS, np.int64)
        self.zone_json = [json.dumps([ZONES[z] for z in (a, b) if z >= 0])
                          for a in range(-1, len(ZONES)) for b in range(-1, len(ZONES))]
        self.path_json = [json.dumps(np.round(rng.random((4, 2)), 3).tolist()) for _ in range(256)]
        self.face_budget = faces

    @staticmethod
    def _face_model(rng: np.random.Generator, people: int) -> dict[str, np.ndarray]:
        mean = rng.standard_normal(128)
        latent = rng.standard_normal((people, FACE_LATENT)) @ rng.standard_normal((FACE_LATENT, 128))
        return {"face_mean": (mean * FACE_MEAN_NORM / np.linalg.norm(mean)).astype(np.float32),
                "face_offsets": (latent * FACE_PERSON_NORM / np.sqrt(FACE_LATENT * 128)).astype(np.float32)}

    def run(self, write: Callable[[Table, dict[str, Any]], None], progress: Progress | None = None) -> Truth:
        rng = self.rng
        seconds = (rng.integers(0, DAYS, self.rows) * 86400
                   + rng.choice(24, self.rows, p=HOUR_WEIGHTS / HOUR_WEIGHTS.sum()) * 3600
                   + rng.random(self.rows) * 3600)
        first = np.sort((seconds * 1000).astype(np.int64))
        for start in range(0, self.rows, CHUNK):
            chunk = first[start:start + CHUNK]
            faces = self.face_budget * len(chunk) // (self.rows - start)
            self.face_budget -= faces
            self._chunk(chunk, faces, write)
            if progress:
                progress("generate", start + len(chunk), self.rows)
        self.truth.freeze()
        return self.truth

    def _chunk(self, first: np.ndarray, faces: int, write: Callable[[Table, dict[str, Any]], None]) -> None:
        rng, n = self.rng, len(first)
        cam = np.searchsorted(self.cam_weights, rng.random(n) * self.cam_weights[-1]).astype(np.int64)
        order = np.argsort(cam, kind="stable")
        counts = np.bincount(cam, minlength=CAMERAS)
        rank = np.empty(n, np.int64)
        rank[order] = np.arange(n) - np.repeat(np.cumsum(counts) - counts, counts)
        track_id = self.next_track[cam] + rank + 1
        self.next_track += counts
        label = rng.choice(len(LABELS), n, p=LABEL_P)
        person = label == 0
        duration = np.where(person, rng.lognormal(np.log(25_000), 0.8, n), rng.lognormal(np.log(8_000), 0.7, n))
        last = first + np.clip(duration, 1_000, 7_200_000).astype(np.int64)
        colour = np.where(person, rng.choice(len(COLOURS), n, p=self._palette(PERSON_COLOURS)),
                          rng.choice(len(COLOURS), n, p=self._palette(VEHICLE_COLOURS)))
        colour[rng.random(n) < 0.03] = -1
        visited = rng.choice(3, n, p=(0.4, 0.4, 0.2))
        pick = rng.integers(0, 3, n)
        z1 = np.where(visited > 0, self.truth.cam_zones[cam, pick], -1)
        z2 = np.where(visited > 1, self.truth.cam_zones[cam, (pick + 1 + rng.integers(0, 2, n)) % 3], -1)
        cams, t_first, t_last = _camera(cam), T_START + first * MS, T_START + last * MS
        write(TrackRow.__table__, {
            "camera_id": cams, "track_id": track_id, "label": [LABELS[i] for i in label.tolist()],
            "first_seen": t_first, "last_seen": t_last,
            "colour": [COLOURS[c] if c >= 0 else None for c in colour.tolist()],
            "zones": [self.zone_json[i] for i in ((z1 + 1) * (len(ZONES) + 1) + z2 + 1).tolist()],
            "path": [self.path_json[i] for i in rng.integers(0, 256, n).tolist()],
            "thumbnail": [f"snapshots/{c}/{t}.jpg" for c, t in zip(cams, track_id.tolist(), strict=True)],
            "attributes": ["{}"] * n})
        self.truth.add(self.truth.tracks, cam=cam.astype(np.int16), first=first, last=last,
                       label=label.astype(np.int8), colour=colour.astype(np.int8), z1=z1.astype(np.int8),
                       z2=z2.astype(np.int8))
        self._events(np.flatnonzero(rng.random(n) < EVENT_P), cam, cams, track_id, label, first, last, z1, write)
        self._plate_reads(np.flatnonzero(np.isin(label, PLATED) & (rng.random(n) < PLATE_READ_P)),
                          cams, track_id, label, t_first, t_last, write)
        people = np.flatnonzero(person)
        if faces and len(people):
            chosen = np.sort(rng.choice(people, faces, replace=faces > len(people)))
            self._face_sightings(chosen, cams, track_id, t_first, t_last, write)

    @staticmethod
    def _palette(weights: dict[str, float]) -> np.ndarray:
        p = np.zeros(len(COLOURS))
        for name, weight in weights.items():
            p[_C[name]] = weight
        return p / p.sum()

    def _events(self, rows: np.ndarray, cam: np.ndarray, cams: list[str], track_id: np.ndarray, label: np.ndarray,
                first: np.ndarray, last: np.ndarray, z1: np.ndarray, write: Callable[..., None]) -> None:
        rng, n = self.rng, len(rows)
        at = first[rows] + (rng.random(n) * (last[rows] - first[rows])).astype(np.int64)
        zone = z1[rows]
        in_zone = (zone >= 0) & (rng.random(n) < 0.6)
        person = label[rows] == 0
        kind = np.where(person, rng.choice(["line_cross", "loitering", "running"], n, p=(.6, .3, .1)),
                        rng.choice(["line_cross", "wrong_way", "stopped_object"], n, p=(.7, .15, .15)))
        kind = np.where(in_zone, "zone_enter", kind)
        ids = [f"{a:012x}{b:010x}{c:010x}" for a, b, c in zip(
            ((T_START - np.datetime64(0, "ms")) // MS + at).tolist(),
            rng.integers(0, 1 << 40, n).tolist(), rng.integers(0, 1 << 40, n).tolist(), strict=True)]
        t_at = T_START + at * MS
        write(EventRow.__table__, {
            "id": ids, "kind": kind.tolist(), "camera_id": [cams[i] for i in rows.tolist()], "at": t_at,
            "severity": np.where(np.isin(kind, ["zone_enter", "line_cross"]), "info", "warning").tolist(),
            "track_id": track_id[rows], "label": [LABELS[i] for i in label[rows].tolist()],
            "zone": [ZONES[z] if ok else None for z, ok in zip(zone.tolist(), in_zone.tolist(), strict=True)],
            "payload": ["{}"] * n, "snapshot": [f"events/{i}.jpg" for i in ids],
            "status": rng.choice(["open", "acknowledged", "resolved"], n, p=(.5, .2, .3)).tolist(),
            "created_at": t_at})
        self.truth.add(self.truth.events, cam=cam[rows].astype(np.int16), at=at)

    def _plate_reads(self, rows: np.ndarray, cams: list[str], track_id: np.ndarray, label: np.ndarray,
                     t_first: np.ndarray, t_last: np.ndarray, write: Callable[..., None]) -> None:
        rng, n = self.rng, len(rows)
        plate = np.empty(n, np.int64)
        for value, (offset, size) in self.pools.items():
            mask = label[rows] == value
            plate[mask] = offset + _zipf_pick(rng, size, int(mask.sum()))
        texts = self.truth.plate_pool[plate].tolist()
        canon = self.canon[plate].tolist()
        for i in np.flatnonzero(rng.random(n) < MISREAD_P).tolist():
            texts[i] = _misread(texts[i], rng)
            canon[i] = canonical_plate(texts[i])
        self.truth.reads += [texts[i] for i in rng.integers(0, max(n, 1), min(n, 200)).tolist()] if n else []
        cam_rows = [cams[i] for i in rows.tolist()]
        write(SightingRow.__table__, {
            "kind": ["plate"] * n, "camera_id": cam_rows, "start": t_first[rows], "end": t_last[rows],
            "track_id": track_id[rows], "label": [LABELS[i] for i in label[rows].tolist()], "plate_text": texts,
            "plate_canon": canon, "plate_rev": [c[::-1] for c in canon],
            "plate_confidence": np.round(rng.uniform(0.55, 0.99, n), 3), "embedding": [None] * n,
            "on_list": rng.random(n) < 0.001,
            "thumbnail": [f"plates/{c}/{t}.jpg" for c, t in zip(cam_rows, track_id[rows].tolist(), strict=True)],
            "attributes": ["{}"] * n, "created_at": t_last[rows]})

    def _face_sightings(self, rows: np.ndarray, cams: list[str], track_id: np.ndarray, t_first: np.ndarray,
                        t_last: np.ndarray, write: Callable[..., None]) -> None:
        rng, n = self.rng, len(rows)
        first = sum(len(part) for part in self.truth.face_people)  # ordinal of this chunk's first face
        person = rng.integers(0, self.people, n)
        vectors = self.face_vectors(person)
        cam_rows = [cams[i] for i in rows.tolist()]
        write(SightingRow.__table__, {
            "kind": ["face"] * n, "camera_id": cam_rows, "start": t_first[rows], "end": t_last[rows],
            "track_id": track_id[rows], "label": ["person"] * n, "plate_text": [None] * n, "plate_canon": [None] * n,
            "plate_rev": [None] * n, "plate_confidence": [None] * n, "embedding": [v.tobytes() for v in vectors],
            "on_list": np.zeros(n, bool),
            "thumbnail": [f"faces/{c}/{t}.jpg" for c, t in zip(cam_rows, track_id[rows].tolist(), strict=True)],
            "attributes": [f'{{"bench_face": {k}, "bench_person": {p}}}' for k, p in enumerate(person.tolist(), first)],
            "created_at": t_last[rows]})
        self.truth.face_people.append(person)
        self.truth.face_vectors.append(vectors)

    def face_vectors(self, person: np.ndarray) -> np.ndarray:
        """A new sighting of each person (≈ 0.39 from their other sightings, ≈ 0.85 from other people's)."""
        noise = self.rng.standard_normal((len(person), 128), np.float32) * (FACE_NOISE_NORM / np.sqrt(128))
        return (self.truth.face_mean + self.truth.face_offsets[person] + noise).astype(np.float32)


# ---------------------------------------------------------------------- bulk load

def _pg_text(values: Any) -> list[str]:
    """One column as COPY text fields."""
    if isinstance(values, np.ndarray):
        if values.dtype.kind == "M":
            return [s + "+00" for s in np.datetime_as_string(values, "ms").tolist()]
        if values.dtype.kind == "b":
            return ["t" if v else "f" for v in values.tolist()]
        return [str(v) for v in values.tolist()]
    if values and isinstance(values[0], bytes):
        return ["\\\\x" + v.hex() for v in values]
    return ["\\N" if v is None else str(v) for v in values]


def _sqlite_values(name: str, values: Any) -> list[Any]:
    """One column as Python values for a Core ``insert()`` (JSON columns decoded once per distinct text)."""
    if isinstance(values, np.ndarray):
        return values.astype("datetime64[us]").astype(object).tolist() if values.dtype.kind == "M" else values.tolist()
    if name in JSON_COLUMNS:
        decoded = {v: json.loads(v) for v in set(values)}
        return [decoded[v] for v in values]
    return list(values)


def _writer(store: Store) -> Callable[[Table, dict[str, Any]], None]:
    """Bulk insert of one chunk of columns: ``COPY`` on PostgreSQL, chunked ``insert()`` on SQLite."""
    if store.dialect == "postgresql":
        def copy(table: Table, columns: dict[str, Any]) -> None:
            fields = [_pg_text(values) for values in columns.values()]
            names = ", ".join(f'"{name}"' for name in columns)
            raw = store.engine.raw_connection()
            try:
                with raw.cursor() as cursor, cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as pipe:
                    pipe.write("".join("\t".join(row) + "\n" for row in zip(*fields, strict=True)))
                raw.commit()
            finally:
                raw.close()
        return copy

    def insert_rows(table: Table, columns: dict[str, Any]) -> None:
        names = list(columns)
        values = [_sqlite_values(name, columns[name]) for name in names]
        with store.engine.begin() as conn:
            conn.execute(insert(table), [dict(zip(names, row, strict=True)) for row in zip(*values, strict=True)])
    return insert_rows


@contextmanager
def _indices_dropped(store: Store, tables: tuple[str, ...]):  # type: ignore[no-untyped-def]
    """Drop the secondary indices of ``tables`` for the bulk load; recreate them (exact DDL) and ANALYZE after."""
    if store.dialect == "postgresql":
        listing = text("SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x JOIN pg_class i ON i.oid = "
                       "x.indexrelid JOIN pg_class t ON t.oid = x.indrelid WHERE t.relname = :t AND NOT "
                       "EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)")
    else:
        listing = text("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = :t "
                       "AND sql IS NOT NULL")
    with store.engine.begin() as conn:
        ddl = [tuple(row) for table in tables for row in conn.execute(listing, {"t": table})]
        for name, _ in ddl:
            conn.execute(text(f'DROP INDEX "{name}"'))
    yield
    with store.engine.begin() as conn:
        for _, statement in ddl:
            conn.execute(text(statement))
    if store.dialect == "postgresql":
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in tables:
                conn.execute(text(f"VACUUM ANALYZE {table}"))
    else:
        with store.engine.begin() as conn:
            conn.execute(text("ANALYZE"))


# ---------------------------------------------------------------------- timed, checked queries

T0 = datetime(2025, 5, 1, tzinfo=UTC)  # = T_START
HOUR, DAY = 3_600_000, 86_400_000
Check = Callable[[list[SearchHit]], dict[str, float]]




def populate(store: Store, generator: Generator, progress: Progress | None = None) -> tuple[Truth, dict[str, int]]:
    """Bulk-load the generator's data into ``store`` (indices rebuilt after); the truth and rows per table."""
    counts = dict.fromkeys(("tracks", "events", "sightings"), 0)
    write = _writer(store)

    def counted(table: Table, columns: dict[str, Any]) -> None:
        counts[table.name] += len(next(iter(columns.values())))
        write(table, columns)

    with _indices_dropped(store, tuple(counts)):
        truth = generator.run(counted, progress)
    return truth, counts
