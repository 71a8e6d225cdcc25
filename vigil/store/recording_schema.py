"""ORM tables for recordings: the segment index and evidence holds (migration ``0002``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from vigil.store.db import Base, utcnow

#: Autoincrementing 64-bit key (SQLite only autoincrements INTEGER PRIMARY KEY).
BigId = BigInteger().with_variant(Integer(), "sqlite")

#: ``kind`` of a segment: kept continuously, or kept because it overlaps an event (``events`` mode).
SEGMENT_KINDS = ("continuous", "event")


class SegmentRow(Base):
    """One fragmented-MP4 segment file of one camera; ``path`` is relative to the data dir."""

    __tablename__ = "recording_segments"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    camera_id: Mapped[str] = mapped_column(String(64))
    start: Mapped[datetime]
    end: Mapped[datetime]
    path: Mapped[str] = mapped_column(String(512), unique=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    keyframes: Mapped[int]
    codec: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16), default="continuous")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: the node whose disk holds the file (``cluster.node_id``, default the host name); NULL on one box
    node: Mapped[str | None] = mapped_column(String(140))

    __table_args__ = (
        Index("ix_recording_segments_camera_start", "camera_id", "start"),
        Index("ix_recording_segments_start", "start"),
        Index("ix_recording_segments_node_start", "node", "start"),
    )


class HoldRow(Base):
    """An evidence hold: recordings and data of ``camera_id`` (all cameras when NULL) in [start, end] are kept."""

    __tablename__ = "holds"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(String(128))
    created_by: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)
    camera_id: Mapped[str | None] = mapped_column(String(64))
    start: Mapped[datetime]
    end: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_holds_camera_start", "camera_id", "start"),)
