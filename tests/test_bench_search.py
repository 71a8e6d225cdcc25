"""Search benchmark: a small run on SQLite and on real PostgreSQL, and its answer checks catching wrong answers."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator

import numpy as np
import pytest
from sqlalchemy import func, select

from vigil.bench.search import (
    QUERIES,
    Generator,
    QueryMaker,
    SearchBenchError,
    populate,
    run_search_bench,
)
from vigil.store.db import Store, StoreError, open_store, temporary_database
from vigil.store.recognition_schema import SightingRow
from vigil.store.schema import EventRow, TrackRow
from vigil.store.search import search
from vigil.store.sightings import SightingStore

PG_SERVER = os.environ.get("VIGIL_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_reachable() -> bool:
    try:
        with temporary_database(PG_SERVER, prefix="vigil_test_bench_probe"):
            return True
    except StoreError:
        return False


def _check_shape(result: dict, backend: str) -> None:
    assert result["rows"] == 20_000 and result["faces"] == 2_000 and result["backend"] == backend
    assert set(result["queries"]) == set(QUERIES)
    for name in QUERIES:
        timing = result["queries"][name]
        assert 0 < timing["p50_ms"] <= timing["p95_ms"] and timing["runs"] == 30
        assert timing["mean_hits"] >= 1, name  # every query was built to have at least one true match
    assert result["queries"]["face_top10"]["recall_at_10"] > 0.9
    assert result["queries"]["face_top10"]["own_sightings_found"] > 0.9
    assert result["generate_s"] > 0 and result["face_index_build_s"] >= 0
    assert result["plate_reads"] > 3_000 and result["events"] > 500


def test_small_run_on_sqlite():
    stages = set()
    result = run_search_bench(20_000, faces=2_000, progress=lambda stage, done, total: stages.add(stage))
    _check_shape(result, "sqlite")
    assert {"generate", *QUERIES} <= stages


def test_small_run_on_postgresql():
    if not _pg_reachable():
        pytest.skip("PostgreSQL not reachable; set VIGIL_TEST_POSTGRES")
    result = run_search_bench(20_000, dsn=PG_SERVER, faces=2_000)
    _check_shape(result, "postgresql")


def test_bad_arguments_are_one_line_errors():
    with pytest.raises(SearchBenchError, match="--rows"):
        run_search_bench(10)
    with pytest.raises(SearchBenchError, match="--dsn"):
        run_search_bench(5_000, dsn="sqlite:///x.db")


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, Generator, QueryMaker]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('bench') / 'search.db'}"
    with open_store(url) as store:
        generator = Generator(5_000, 500, seed=3)
        truth, _ = populate(store, generator)
        yield store, generator, QueryMaker(truth, generator, seed=3)


def test_generated_data_is_stored_with_its_indices(loaded):
    store, _, maker = loaded
    with store.session() as session:
        assert session.scalar(select(func.count(TrackRow.id))) == 5_000
        assert session.scalar(select(func.count(EventRow.id))) == len(maker.e["at"])
        assert session.scalar(select(func.count(SightingRow.id)).where(SightingRow.kind == "face")) == 500
        labels = dict(session.execute(select(TrackRow.label, func.count()).group_by(TrackRow.label)).all())
    assert 0.65 < labels["person"] / 5_000 < 0.75 and 0.16 < labels["car"] / 5_000 < 0.24
    index_names = {name for table in ("tracks", "sightings") for name in _sqlite_indices(store, table)}
    assert {"ix_tracks_camera_last_seen", "uq_tracks_camera_track_first", "ix_sightings_plate_rev"} <= index_names


def _sqlite_indices(store: Store, table: str) -> list[str]:
    with store.engine.connect() as conn:
        return [row[1] for row in conn.exec_driver_sql(f"PRAGMA index_list({table})")]


@pytest.mark.parametrize("name", QUERIES)
def test_checks_reject_wrong_answers(loaded, name: str):
    store, _, maker = loaded
    sightings = SightingStore(store)
    query, check = getattr(maker, name)()
    hits = search(store, query, sightings).hits
    assert hits
    check(hits)  # the real answer passes
    if name == "face_top10":  # approximate search: a miss lowers recall (the bench fails when it is below 0.5)
        assert check(hits)["recall_at_10"] == 1.0 and check([])["recall_at_10"] == 0.0
    else:
        with pytest.raises(SearchBenchError, match=name):
            check(hits[1:] if name in ("time_camera", "class_colour_zone") else [])  # a missing hit
    wrong = dataclasses.replace(hits[0], camera_id="cam-9999", label="giraffe", text="ZZZ999", distance=0.5,
                                details={"bench_person": -1})
    with pytest.raises(SearchBenchError, match=name):
        check([wrong, *hits[1:]])  # a hit that does not match the query


def test_same_seed_same_data():
    first, second = Generator(2_000, 100, seed=7), Generator(2_000, 100, seed=7)
    tables: list[list[dict]] = [[], []]
    first.run(lambda table, columns: tables[0].append({k: list(v) for k, v in columns.items()}))
    second.run(lambda table, columns: tables[1].append({k: list(v) for k, v in columns.items()}))
    assert len(tables[0]) == len(tables[1]) and all(
        a.keys() == b.keys() and all(np.array_equal(np.asarray(a[k], object), np.asarray(b[k], object)) for k in a)
        for a, b in zip(*tables, strict=True))
