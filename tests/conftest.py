"""Shared fixtures: the third-party data directory (skipped with a reason when absent)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import FAST_HASHER, Clock
from vigil.governance.audit import AuditLog
from vigil.governance.keys import AuditSigner
from vigil.governance.users import UserStore
from vigil.paths import data_root
from vigil.store.db import Store, StoreError, open_store, temporary_database
from vigil.store.migrations import downgrade


@pytest.fixture(scope="session")
def data_dir() -> Path:
    root = data_root()
    if not (root / "video" / "vtest.avi").exists():
        pytest.skip(f"third-party test data not found in {root} (set VIGIL_DATA)")
    return root


# ---------------------------------------------------------------- the database, on SQLite and PostgreSQL

PG_SERVER = os.environ.get("VIGIL_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A throw-away database on the real PostgreSQL (127.0.0.1:5432), dropped after the session."""
    try:
        with temporary_database(PG_SERVER) as url:
            yield url
    except StoreError as exc:
        pytest.skip(f"PostgreSQL not reachable ({exc}); set VIGIL_TEST_POSTGRES")


@pytest.fixture
def fresh_pg_url() -> Iterator[str]:
    """A database of its own on the real PostgreSQL, dropped afterwards (for processes that share one)."""
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(temporary_database(PG_SERVER))
        except StoreError as exc:
            pytest.skip(f"PostgreSQL not reachable ({exc}); set VIGIL_TEST_POSTGRES")
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on a new SQLite file and on the PostgreSQL database, emptied first."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'vigil.db'}"
    url = request.getfixturevalue("pg_url")
    downgrade(url)
    return url


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    """A store migrated to every head."""
    with open_store(db_url) as opened:
        yield opened


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Browser tests last: Playwright's sync API keeps an event loop running in the main thread for the
    rest of the session, which ``asyncio.run`` in the other tests would trip over."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)


# ---------------------------------------------------------------- governance


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def users(store: Store, clock: Clock) -> UserStore:
    """Users over the parametrised store, with their own audit log, on the test clock."""
    audit = AuditLog(store, AuditSigner.generate(), clock=clock)
    return UserStore(store, audit, hasher=FAST_HASHER, clock=clock)


@pytest.fixture(scope="module")
def plate_reader():
    """A plate reader for the EU formats (PP-OCR is loaded once per module), skipped without the models."""
    from vigil.errors import ModelError
    from vigil.vision.plates import PlateReader

    try:
        return PlateReader(region="eu")
    except ModelError as exc:
        pytest.skip(f"PP-OCR models not in the cache: {exc}")
