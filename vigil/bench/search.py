"""Forensic search benchmark: p50/p95 latency of typical queries through ``vigil.store.search.search``.

A seeded generator bulk-loads N object tracks (1000 cameras, 30 days, diurnal traffic, 70 % people, 20 % cars,
buses/trucks/bicycles/motorcycles; dominant colours; zones) with events for a fraction, plate reads of vehicle
tracks (EU/UK/US formats, Zipf-distributed so some cars are seen hundreds of times, a few OCR misreads) and
face sightings with 128-d vectors (synthetic identities). Rows go in with ``COPY`` on PostgreSQL and chunked
Core ``insert()`` on SQLite, with the secondary indices dropped during the load and rebuilt after it, then
``ANALYZE``. Each timed query is checked against the generated ground truth (not only timed).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError

from vigil.bench.search_data import (
    CAMERAS,
    DAY,
    FACE_CAP,
    FACE_THRESHOLD,
    HOUR,
    LABELS,
    MIN_RECALL,
    QUERIES,
    T0,
    ZONES,
    Check,
    Generator,
    Progress,
    SearchBenchError,
    Truth,
    _camera,
    _misread,
    populate,
)
from vigil.store.db import Store, open_store, temporary_database
from vigil.store.search import SearchHit, SearchQuery, search
from vigil.store.sightings import SightingStore
from vigil.vision.colour import COLOURS
from vigil.vision.plate_text import plate_distance


def _when(ms: int) -> datetime:
    return T0 + timedelta(milliseconds=int(ms))


def _ms(when: datetime) -> int:
    return round((when - T0).total_seconds() * 1000)


def _fail(query: str, message: str) -> SearchBenchError:
    return SearchBenchError(f"search bench: {query}: {message}")


def _same_newest(name: str, hits: list[SearchHit], expected_ends: np.ndarray, limit: int) -> None:
    """The hits are exactly the ``limit`` newest matches (compared by end time, which ties cannot change)."""
    want = np.sort(expected_ends)[-limit:].tolist()
    got = sorted(_ms(hit.end) for hit in hits)
    if got != want:
        raise _fail(name, f"{len(got)} hits, expected the newest {len(want)} of {len(expected_ends)} matches")


class QueryMaker:
    """Random parameters for each typical query, and the check of its answer against the ground truth."""

    def __init__(self, truth: Truth, generator: Generator, seed: int) -> None:
        self.rng, self.generator = np.random.default_rng(seed + 1), generator
        self.t = {name: parts[0] for name, parts in truth.tracks.items()}
        self.e = {name: parts[0] for name, parts in truth.events.items()}
        self.reads = truth.reads
        self.people = np.concatenate(truth.face_people) if truth.face_people else np.empty(0, np.int64)
        self.vectors = np.concatenate(truth.face_vectors) if truth.face_vectors else np.empty((0, 128), np.float32)
        self.exact = faiss.IndexFlatL2(128)  # brute force: the true top 10 that the search is checked against
        self.exact.add(self.vectors)

    def time_camera(self) -> tuple[SearchQuery, Check]:
        t, i = self.t, int(self.rng.integers(len(self.t["cam"])))
        cams = np.unique(np.append(self.rng.choice(CAMERAS, 4, replace=False), t["cam"][i]))
        start = int(t["first"][i]) - int(self.rng.integers(0, HOUR))
        end = start + HOUR
        query = SearchQuery(start=_when(start), end=_when(end), cameras=_camera(cams))
        tracks = np.isin(t["cam"], cams) & (t["last"] >= start) & (t["first"] < end)
        events = np.isin(self.e["cam"], cams) & (self.e["at"] >= start) & (self.e["at"] < end)
        expected = np.concatenate([t["last"][tracks], self.e["at"][events]])

        def check(hits: list[SearchHit]) -> dict[str, float]:
            names = set(query.cameras or [])
            for hit in hits:
                if hit.camera_id not in names or _ms(hit.end) < start or _ms(hit.start) >= end:
                    raise _fail("time_camera", f"{hit.id} on {hit.camera_id} is outside the cameras or the hour")
            _same_newest("time_camera", hits, expected, query.limit)
            return {}
        return query, check

    def class_colour_zone(self) -> tuple[SearchQuery, Check]:
        t = self.t
        i = int(self.rng.integers(len(t["cam"])))
        while t["colour"][i] < 0 or t["z1"][i] < 0:
            i = int(self.rng.integers(len(t["cam"])))
        label, colour = int(t["label"][i]), int(t["colour"][i])
        zone = int(t["z2"][i] if t["z2"][i] >= 0 and self.rng.random() < 0.5 else t["z1"][i])
        start = int(t["first"][i]) // DAY * DAY
        end = start + DAY
        query = SearchQuery(start=_when(start), end=_when(end), classes=[LABELS[label]], colours=[COLOURS[colour]],
                            zones=[ZONES[zone]])
        match = ((t["label"] == label) & (t["colour"] == colour) & ((t["z1"] == zone) | (t["z2"] == zone))
                 & (t["last"] >= start) & (t["first"] < end))

        def check(hits: list[SearchHit]) -> dict[str, float]:
            for hit in hits:
                if (hit.kind != "track" or hit.label != LABELS[label] or hit.details.get("colour") != COLOURS[colour]
                        or ZONES[zone] not in hit.details.get("zones", []) or _ms(hit.end) < start
                        or _ms(hit.start) >= end):
                    raise _fail("class_colour_zone", f"{hit.id} ({hit.label}, {hit.details}) does not match")
            _same_newest("class_colour_zone", hits, t["last"][match], query.limit)
            return {}
        return query, check

    def fuzzy_plate(self) -> tuple[SearchQuery, Check]:
        seen = self.reads[int(self.rng.integers(len(self.reads)))]
        probe = _misread(seen, self.rng)
        query = SearchQuery(kinds=["plate"], plate=probe, fuzzy=True)
        own = plate_distance(probe, seen)

        def check(hits: list[SearchHit]) -> dict[str, float]:
            distances = [hit.distance if hit.distance is not None else np.inf for hit in hits]
            for hit, distance in zip(hits, distances, strict=True):
                if hit.kind != "plate" or abs(plate_distance(probe, hit.text or "") - distance) > 1e-3:
                    raise _fail("fuzzy_plate", f"{hit.id} {hit.text!r} has a wrong distance to {probe!r}")
            if distances != sorted(distances) or (distances and distances[-1] > query.max_distance):
                raise _fail("fuzzy_plate", f"hits for {probe!r} are not ranked within {query.max_distance}")
            if seen not in {hit.text for hit in hits} and not (len(hits) == query.limit and distances[-1] <= own):
                raise _fail("fuzzy_plate", f"{seen!r} (distance {own}) is missing from the hits for {probe!r}")
            return {}
        return query, check

    def face_top10(self) -> tuple[SearchQuery, Check]:
        person = int(self.people[int(self.rng.integers(len(self.people)))])
        probe = self.generator.face_vectors(np.array([person]))[0]
        query = SearchQuery(kinds=["face"], face_vector=probe, face_top_k=10, face_threshold=FACE_THRESHOLD)
        squared, nearest = self.exact.search(probe[None, :], 10)
        exact = {int(k) for d, k in zip(squared[0], nearest[0], strict=True) if k >= 0 and d < FACE_THRESHOLD ** 2}

        def check(hits: list[SearchHit]) -> dict[str, float]:
            distances = [hit.distance if hit.distance is not None else np.inf for hit in hits]
            if len(hits) > 10 or distances != sorted(distances) or (hits and distances[-1] >= FACE_THRESHOLD):
                raise _fail("face_top10", f"{len(hits)} hits, distances {distances} (top 10 within {FACE_THRESHOLD})")
            found = set()
            for hit, distance in zip(hits, distances, strict=True):
                stored = int(hit.details.get("bench_face", -1))
                true = float(np.linalg.norm(self.vectors[stored] - probe)) if 0 <= stored < len(self.vectors) else -1
                if hit.kind != "face" or abs(true - distance) > 1e-3:
                    raise _fail("face_top10", f"{hit.id} is {true:.4f} from the probe, reported {distance}")
                found.add(stored)
            own = [k for k in exact if self.people[k] == person]
            return {"recall_at_10": len(found & exact) / len(exact) if exact else 1.0,
                    "own_sightings_found": len(found.intersection(own)) / len(own) if own else 1.0}
        return query, check


def _measure(name: str, make: Callable[[], tuple[SearchQuery, Check]], store: Store, sightings: SightingStore,
             runs: int, progress: Progress | None) -> dict[str, float]:
    """p50/p95 over ``runs`` searches with fresh parameters (after 2 unrecorded warm-up runs), each answer checked."""
    times, hit_counts, extras = [], [], []
    for run in range(runs + 2):
        query, check = make()
        began = time.perf_counter()
        page = search(store, query, sightings)
        elapsed = (time.perf_counter() - began) * 1000
        extras.append(check(page.hits))
        if run >= 2:
            times.append(elapsed)
            hit_counts.append(len(page.hits))
        if progress:
            progress(name, run + 1, runs + 2)
    result = {"p50_ms": round(float(np.percentile(times, 50)), 2), "p95_ms": round(float(np.percentile(times, 95)), 2),
              "runs": runs, "mean_hits": round(float(np.mean(hit_counts)), 1)}
    for key in {key for extra in extras for key in extra}:
        result[key] = round(float(np.mean([extra[key] for extra in extras if key in extra])), 3)
    if result.get("recall_at_10", 1.0) < MIN_RECALL:
        raise _fail(name, f"recall@10 {result['recall_at_10']} against brute force is below {MIN_RECALL}")
    return result


# ---------------------------------------------------------------------- entry point

def run_search_bench(rows: int, dsn: str | None = None, faces: int | None = None, progress: Progress | None = None,
                     seed: int = 0, runs: int = 30) -> dict[str, Any]:
    """Generate ``rows`` tracks (+ events, plate reads, ``faces`` face sightings: default 10 % of rows, at most
    1M) in a throw-away database — a temporary database on the PostgreSQL server of ``dsn``, else a temporary
    SQLite file — and time the typical searches. ``progress(stage, done, total)`` is called as it goes."""
    if rows < 1000:
        raise SearchBenchError(f"--rows must be at least 1000 (got {rows})")
    faces = min(rows // 10, FACE_CAP) if faces is None else faces
    if faces < 0 or runs < 1:
        raise SearchBenchError("--faces must be ≥ 0 and runs ≥ 1")
    if dsn is None:
        with tempfile.TemporaryDirectory(prefix="vigil-bench-search-") as folder:
            return _bench(f"sqlite:///{Path(folder) / 'search.db'}", rows, faces, progress, seed, runs)
    try:
        backend = make_url(dsn).get_backend_name()
    except ArgumentError:
        backend = ""
    if backend not in ("postgresql", "postgres"):
        raise SearchBenchError("--dsn must be a postgresql:// URL (without it the bench uses a temporary SQLite file)")
    with temporary_database(dsn, prefix="vigil_bench_search") as url:
        return _bench(url, rows, faces, progress, seed, runs)


def _bench(url: str, rows: int, faces: int, progress: Progress | None, seed: int, runs: int) -> dict[str, Any]:
    with open_store(url, timeout_s=30.0) as store:
        generator = Generator(rows, faces, seed)
        began = time.perf_counter()
        truth, counts = populate(store, generator, progress)
        generate_s = time.perf_counter() - began
        sightings = SightingStore(store, face_threshold=FACE_THRESHOLD)
        build_s = None
        if faces:
            if progress:
                progress("face index", 0, 1)
            began = time.perf_counter()
            sightings.nearest_faces(generator.face_vectors(np.array([0]))[0], 1)
            build_s = round(time.perf_counter() - began, 2)
        maker = QueryMaker(truth, generator, seed)
        queries: dict[str, Any] = {}
        for name in QUERIES:
            if name == "face_top10" and not faces:
                queries[name] = None
                continue
            queries[name] = _measure(name, getattr(maker, name), store, sightings, runs, progress)
        return {"rows": rows, "backend": store.dialect, "faces": faces, "plate_reads": counts["sightings"] - faces,
                "events": counts["events"], "queries": queries, "generate_s": round(generate_s, 2),
                "face_index_build_s": build_s, "seed": seed, "runs": runs}
