"""Small helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import yaml
from argon2 import PasswordHasher
from sqlalchemy import Connection, Engine, text

from vigil.governance.service import Governance, open_governance

if TYPE_CHECKING:
    from vigil.assembly import Services

#: real argon2id, test-sized: a login costs milliseconds, not the production ~0.5 s
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


class Clock:
    """A settable clock for code that takes ``clock=``: tests move ``now`` by hand."""

    def __init__(self, now: datetime = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def governance_with_users(services: Services, users: Iterable[tuple[str, str, list[str]]], password: str) -> Governance:
    """The services' governance layer with a test-speed password hasher, and the given (name, role, cameras)."""
    governance = open_governance(services.store, services.config.data_dir, hasher=FAST_HASHER,
                                 session_ttl=services.governance.users.session_ttl)
    for name, role, cameras in users:
        governance.users.create(name, password, role, "test-setup", cameras=cameras)
    return governance


def login(base_url: str, username: str, password: str) -> httpx.Client:
    """An API client signed in as ``username`` (bearer token)."""
    client = httpx.Client(base_url=base_url, timeout=20)
    response = client.post("/api/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    client.headers["Authorization"] = f"Bearer {response.json()['token']}"
    return client


#: the tables whose rows the append-only triggers of revision 0006 protect
AUDIT_TABLES = ("audit_log", "audit_checkpoints")


@contextlib.contextmanager
def superuser_tampering(engine: Engine) -> Iterator[Connection]:
    """A transaction with the audit tables' append-only triggers out of the way, as a database superuser (or whoever
    holds the SQLite file) can arrange: on PostgreSQL the maintenance setting, on SQLite the triggers dropped and put
    back afterwards, so the tampering leaves no trace but in the chain itself."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL vigil.audit_maintenance = 'on'"))
            yield conn
            return
        tables = ", ".join(f"'{t}'" for t in AUDIT_TABLES)
        triggers = conn.execute(text(f"SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
                                     f"AND tbl_name IN ({tables})")).all()
        for name, _ in triggers:
            conn.execute(text(f'DROP TRIGGER "{name}"'))
        yield conn
        for _, ddl in triggers:
            conn.execute(text(ddl))


@contextlib.contextmanager
def served_api(folder: Path, config: dict, users: Iterable[tuple[str, str, list[str]]],
               password: str) -> Iterator[dict[str, Any]]:
    """The command-centre app over ``config`` (written to ``folder/vigil.yaml``) with the given users, on a real
    uvicorn server: yields ``url``, ``app``, ``services``, ``config_path``, ``audit`` and ``users``."""
    from vigil.api.app import create_app
    from vigil.api.deps import LoginThrottle
    from vigil.api.server import serve_in_thread
    from vigil.assembly import open_services
    from vigil.config import load_config

    config_path = folder / "vigil.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    loaded = load_config(config_path)
    services = open_services(loaded).start()
    governance = governance_with_users(services, users, password)
    app = create_app(loaded, services, users=governance.users, audit=governance.audit,
                     authorisations=governance.authorisations, config_path=config_path,
                     throttle=LoginThrottle(max_failures=100_000))
    server = serve_in_thread(app)
    try:
        yield {"url": server.url, "app": app, "services": services, "config_path": config_path,
               "audit": governance.audit, "users": governance.users, "folder": folder}
    finally:
        server.stop()
        services.close()
