"""Camera leases with fencing tokens, held in the shared database (issue 12: never two workers on one camera).

A worker analyses a camera only while it holds the camera's lease:

- ``acquire`` takes a camera whose lease is free or expired (or already ours) in one statement, on the
  database's clock; the fencing ``token`` grows by one whenever the camera changes hands.
- ``renew`` extends the leases still held and unexpired; a camera missing from its answer is lost.
- The worker's own deadline (``Lease.valid_until``, monotonic) is the renewal's *send* time plus the TTL minus a
  margin, so a worker that cannot reach the database stops analysing before anyone else may take over.
- ``fence`` is the store's side: inside the transaction that writes a batch of events, an event of a camera
  that another holder took over is refused if it happened after that takeover (a paused process that wakes up
  late cannot write what the new holder is already analysing).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, case, literal_column, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from vigil.store.cluster_schema import CameraLeaseRow
from vigil.store.db import Store
from vigil.types import Event

log = logging.getLogger(__name__)

#: the worker stops this long before its lease would expire, for the time a renewal answer takes to arrive
SAFETY_MARGIN_S = 1.0


@dataclass(frozen=True, slots=True)
class Lease:
    camera_id: str
    token: int
    valid_until: float  # time.monotonic() after which this worker must not analyse the camera


def db_now(store: Store) -> ColumnElement[float]:
    """Seconds since the epoch on the database's clock."""
    if store.engine.dialect.name == "postgresql":
        return literal_column("extract(epoch from clock_timestamp())")
    return literal_column("((julianday('now') - 2440587.5) * 86400.0)")


class CameraLeases:
    """One worker's leases. ``holder`` is unique per process (node id + a random suffix)."""

    def __init__(self, store: Store, node_id: str, ttl_s: float) -> None:
        if ttl_s <= 2 * SAFETY_MARGIN_S:
            raise ValueError(f"lease TTL {ttl_s} s is too short (more than {2 * SAFETY_MARGIN_S} s needed)")
        self.store = store
        self.node_id = node_id
        self.holder = f"{node_id}/{uuid.uuid4().hex[:8]}"
        self.ttl_s = ttl_s
        self.held: dict[str, Lease] = {}

    def _insert(self):  # type: ignore[no-untyped-def]
        return (postgresql if self.store.engine.dialect.name == "postgresql" else sqlite).insert(CameraLeaseRow)

    def acquire(self, camera_id: str) -> Lease | None:
        """Take the camera if its lease is free, expired or ours; None if another worker holds it."""
        sent = time.monotonic()
        now = db_now(self.store)
        table = CameraLeaseRow.__table__
        ours = table.c.holder == self.holder
        statement = self._insert().values(camera_id=camera_id, holder=self.holder, token=1, acquired_at=now,
                                          expires_at=now + self.ttl_s)
        statement = statement.on_conflict_do_update(
            index_elements=[table.c.camera_id],
            set_={"holder": self.holder,
                  "token": case((ours, table.c.token), else_=table.c.token + 1),
                  "acquired_at": case((ours, table.c.acquired_at), else_=now),
                  "expires_at": now + self.ttl_s},
            where=ours | (table.c.expires_at < now),
        ).returning(table.c.token)
        with self.store.session() as session:
            token = session.scalar(statement)
        if token is None:
            return None
        lease = Lease(camera_id, int(token), sent + self.ttl_s - SAFETY_MARGIN_S)
        if camera_id not in self.held or self.held[camera_id].token != lease.token:
            log.info("lease: %s took camera %s (token %d)", self.holder, camera_id, lease.token)
        self.held[camera_id] = lease
        return lease

    def renew(self) -> set[str]:
        """Extend every held, unexpired lease; returns the cameras lost (taken over, or expired meanwhile).

        Raises what the database raises when it is unreachable: the leases then run out at ``valid_until``."""
        if not self.held:
            return set()
        sent = time.monotonic()
        now = db_now(self.store)
        table = CameraLeaseRow.__table__
        statement = (update(table)
                     .where(table.c.holder == self.holder, table.c.camera_id.in_(list(self.held)),
                            table.c.expires_at >= now)
                     .values(expires_at=now + self.ttl_s)
                     .returning(table.c.camera_id, table.c.token))
        with self.store.session() as session:
            kept = {camera: token for camera, token in session.execute(statement)}
        lost = {c for c, lease in self.held.items() if kept.get(c) != lease.token}
        for camera_id in lost:
            log.warning("lease: %s lost camera %s", self.holder, camera_id)
            del self.held[camera_id]
        for camera_id, token in kept.items():
            if camera_id in self.held:
                self.held[camera_id] = Lease(camera_id, token, sent + self.ttl_s - SAFETY_MARGIN_S)
        return lost

    def valid(self, camera_id: str) -> bool:
        """True while this worker may analyse the camera (held, and its local deadline not passed)."""
        lease = self.held.get(camera_id)
        return lease is not None and time.monotonic() < lease.valid_until

    def release(self, cameras: Iterable[str] | None = None) -> None:
        """Give cameras up (all held ones by default) so another worker can take them at once."""
        cameras = list(self.held if cameras is None else cameras)
        if not cameras:
            return
        table = CameraLeaseRow.__table__
        with self.store.session() as session:
            session.execute(update(table).where(table.c.holder == self.holder, table.c.camera_id.in_(cameras))
                            .values(expires_at=db_now(self.store) - 1.0))
        for camera_id in cameras:
            self.held.pop(camera_id, None)

    def fence(self, session: Session, events: Sequence[Event]) -> list[Event]:
        """The events this holder may still write (``EventStore.add_events(fence=...)``): those of cameras it
        holds, of cameras nobody leases, and those that happened before another holder took the camera."""
        cameras = {e.camera_id for e in events}
        rows = session.execute(select(CameraLeaseRow.camera_id, CameraLeaseRow.holder, CameraLeaseRow.acquired_at)
                               .where(CameraLeaseRow.camera_id.in_(cameras))).all()
        taken_at = {camera: acquired for camera, holder, acquired in rows if holder != self.holder}
        kept = [e for e in events if e.camera_id not in taken_at or e.at.timestamp() < taken_at[e.camera_id]]
        if len(kept) < len(events):
            log.warning("lease: refused %d events of cameras another worker took over", len(events) - len(kept))
        return kept


def lease_table(store: Store) -> list[dict[str, object]]:
    """Every camera lease: camera, holder, token, seconds left (negative: expired), for ``vigil cluster status``."""
    now = db_now(store)
    query = select(CameraLeaseRow.camera_id, CameraLeaseRow.holder, CameraLeaseRow.token,
                   (CameraLeaseRow.expires_at - now).label("left")).order_by(CameraLeaseRow.camera_id)
    with store.session() as session:
        return [{"camera": c, "holder": h, "token": int(t), "left_s": round(float(left), 1)}
                for c, h, t, left in session.execute(query)]
