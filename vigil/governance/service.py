"""One handle on the governance layer (audit log, users, authorisations) for the API, the runtime and the CLI."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from argon2 import PasswordHasher

from vigil.governance.audit import AuditLog
from vigil.governance.authorisations import AuthorisationStore
from vigil.governance.keys import AuditSigner
from vigil.governance.users import UserStore
from vigil.store.db import Store, utcnow

AUDIT_DIR = "audit"


@dataclass(slots=True)
class Governance:
    store: Store
    audit: AuditLog
    users: UserStore
    authorisations: AuthorisationStore


def open_governance(store: Store, data_dir: Path | str, checkpoint_every: int = 100,
                    hasher: PasswordHasher | None = None, clock: Callable[[], datetime] = utcnow,
                    session_ttl: timedelta = timedelta(hours=8)) -> Governance:
    """The governance layer over an open (migrated) store; the signing key and the checkpoint witness file live
    in ``<data_dir>/audit`` (the key is created there on first use, mode 0600)."""
    folder = Path(data_dir) / AUDIT_DIR
    audit = AuditLog(store, AuditSigner.load_or_create(folder), checkpoint_every, witness_dir=folder, clock=clock)
    users = UserStore(store, audit, hasher=hasher, clock=clock, session_ttl=session_ttl)
    return Governance(store, audit, users, AuthorisationStore(store, users, audit, clock=clock))
