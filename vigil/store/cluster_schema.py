"""ORM table for the cluster: camera leases with fencing tokens (migration ``0007``, ``vigil/cluster/leases.py``)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Float, String
from sqlalchemy.orm import Mapped, mapped_column

from vigil.store.db import Base


class CameraLeaseRow(Base):
    """Which worker analyses a camera, until when, and the fencing token of that holding.

    Times are seconds since the epoch on the *database's* clock, so that workers' clocks never decide who holds
    a camera. ``token`` grows by one each time the camera changes hands; ``acquired_at`` is when it last did."""

    __tablename__ = "camera_leases"

    camera_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(140))
    token: Mapped[int] = mapped_column(BigInteger)
    acquired_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
