"""The metadata database: URL handling, engine, sessions and the ORM base (DESIGN §1, store/).

SQLite is the default; PostgreSQL (psycopg 3) is chosen by the URL. ``open_store(url)`` runs the
Alembic migrations to head, so a store is always at the current schema.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import JSON, DateTime, Engine, MetaData, create_engine, event, make_url, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import TypeDecorator

from vigil.config import redact_url
from vigil.errors import VigilError

log = logging.getLogger(__name__)


class StoreError(VigilError):
    """The database cannot be opened or used; the message names the database (password hidden)."""


class EventNotFound(StoreError):
    """No event with the given id."""


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite keeps no zone; naive input is taken as UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


#: JSON documents: JSONB on PostgreSQL, JSON text elsewhere.
JSONType = JSON().with_variant(JSONB(), "postgresql")

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Base of every ORM table. Named constraints keep later Alembic revisions portable (SQLite batch mode)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSONType,
        list[Any]: JSONType,
    }


def utcnow() -> datetime:
    return datetime.now(UTC)


def resolve_database_url(database: str, data_dir: Path | str | None = None) -> str:
    """Normalise a configured database URL.

    A relative SQLite path (``sqlite:///vigil.db``) is resolved against ``data_dir`` and its folder is
    created; ``postgresql://`` / ``postgres://`` select the psycopg 3 driver. Raises ``StoreError``
    for a URL SQLAlchemy cannot parse or a backend other than SQLite and PostgreSQL.
    """
    try:
        url = make_url(database)
    except ArgumentError:
        raise StoreError(f"store.database: not a database URL: {redact_url(database)!r}") from None
    backend = url.get_backend_name()
    if backend in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    elif backend == "sqlite":
        path = url.database or ""
        if path and path != ":memory:" and not path.startswith("file:"):
            file = Path(path).expanduser()
            if not file.is_absolute() and data_dir is not None:
                file = Path(data_dir).expanduser().resolve() / file
            file.parent.mkdir(parents=True, exist_ok=True)
            url = url.set(database=str(file))
    else:
        raise StoreError(f"store.database: unsupported backend {backend!r} (use sqlite:/// or postgresql://)")
    return url.render_as_string(hide_password=False)


def describe_url(url: str | URL) -> str:
    """The URL with its password hidden, for logs and errors."""
    return make_url(url).render_as_string(hide_password=True)


def make_engine(url: str, timeout_s: float = 5.0) -> Engine:
    """An engine: SQLite in WAL mode waiting up to ``timeout_s`` for locks, PostgreSQL with pre-ping and a
    ``timeout_s`` connect timeout."""
    sa_url = make_url(resolve_database_url(url))
    if sa_url.get_backend_name() == "sqlite":
        memory = sa_url.database in (None, "", ":memory:")
        engine = create_engine(
            sa_url,
            connect_args={"timeout": timeout_s, "check_same_thread": False},
            poolclass=StaticPool if memory else None,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            if not memory:
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_engine(
        sa_url,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        connect_args={"connect_timeout": max(1, round(timeout_s))},
    )


class Store:
    """An open metadata database: an engine and a session factory. Pass it to the repositories."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions = sessionmaker(engine, expire_on_commit=False)

    @property
    def url(self) -> str:
        """The database URL with its password hidden."""
        return describe_url(self.engine.url)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A session inside one transaction: committed on success, rolled back on error."""
        with self.sessions.begin() as session:
            yield session

    def ping(self) -> bool:
        """True when the database answers."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except DBAPIError:
            return False

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_store(url: str, data_dir: Path | str | None = None, migrate: bool = True, timeout_s: float = 5.0) -> Store:
    """Open the database at ``url`` (relative SQLite paths against ``data_dir``) and migrate it to head.

    ``timeout_s`` bounds waiting for a SQLite lock or a PostgreSQL connection.
    Raises ``StoreError`` naming the database when it cannot be reached or migrated.
    """
    from vigil.store.migrations import upgrade_engine

    engine = make_engine(resolve_database_url(url, data_dir), timeout_s)
    try:
        if migrate:
            upgrade_engine(engine)
        else:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
    except DBAPIError as exc:
        engine.dispose()
        raise StoreError(f"database {describe_url(engine.url)}: cannot open ({_first_line(exc)})") from None
    return Store(engine)


def create_database(url: str) -> None:
    """Create the PostgreSQL database named in ``url`` if it does not exist (SQLite: nothing to do)."""
    sa_url = make_url(resolve_database_url(url))
    if sa_url.get_backend_name() != "postgresql":
        return
    admin = create_engine(sa_url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": sa_url.database})
            if exists.first() is None:
                conn.execute(text(f'CREATE DATABASE "{sa_url.database}"'))
    finally:
        admin.dispose()


def drop_database(url: str) -> None:
    """Drop the PostgreSQL database named in ``url`` (closing its connections), or delete the SQLite file."""
    sa_url = make_url(resolve_database_url(url))
    if sa_url.get_backend_name() == "sqlite":
        if sa_url.database and sa_url.database != ":memory:":
            for suffix in ("", "-wal", "-shm"):
                Path(sa_url.database + suffix).unlink(missing_ok=True)
        return
    admin = create_engine(sa_url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{sa_url.database}" WITH (FORCE)'))
    finally:
        admin.dispose()


@contextlib.contextmanager
def temporary_database(server_url: str, prefix: str = "vigil_test") -> Iterator[str]:
    """A throw-away PostgreSQL database ``<prefix>_<random>`` on the server of ``server_url``, dropped afterwards.

    Yields its URL. Raises ``StoreError`` when the server cannot be reached.
    """
    sa_url = make_url(resolve_database_url(server_url)).set(database=f"{prefix}_{os.urandom(5).hex()}")
    url = sa_url.render_as_string(hide_password=False)
    try:
        create_database(url)
    except DBAPIError as exc:
        raise StoreError(f"database server {describe_url(sa_url)}: unreachable ({_first_line(exc)})") from None
    try:
        yield url
    finally:
        drop_database(url)


def _first_line(exc: DBAPIError) -> str:
    text_ = str(exc.orig or exc).strip()
    return text_.splitlines()[0] if text_ else type(exc).__name__
