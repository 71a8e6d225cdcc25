"""Small helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import httpx
from argon2 import PasswordHasher

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
