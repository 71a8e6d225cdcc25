"""Small helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from argon2 import PasswordHasher

#: real argon2id, test-sized: a login costs milliseconds, not the production ~0.5 s
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


class Clock:
    """A settable clock for code that takes ``clock=``: tests move ``now`` by hand."""

    def __init__(self, now: datetime = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now
