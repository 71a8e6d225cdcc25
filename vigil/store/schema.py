"""ORM tables of the metadata database. Every change here needs a new Alembic revision in ``migrations/versions``.

Later issues add their tables (recordings, sightings, audit) as new modules on the same ``Base`` plus a
revision each; nothing here needs to change for that.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from vigil.store.db import Base, utcnow

#: Autoincrementing 64-bit key (SQLite only autoincrements INTEGER PRIMARY KEY).
BigId = BigInteger().with_variant(Integer(), "sqlite")

EVENT_STATUSES = ("open", "acknowledged", "resolved")


class EventRow(Base):
    """One ``vigil.types.Event`` plus its handling state."""

    __tablename__ = "events"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # Event.id, time-sortable
    kind: Mapped[str] = mapped_column(String(64))
    camera_id: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]
    severity: Mapped[str] = mapped_column(String(16), default="info")
    track_id: Mapped[int | None]
    label: Mapped[str | None] = mapped_column(String(64))
    zone: Mapped[str | None] = mapped_column(String(128))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    snapshot: Mapped[str | None] = mapped_column(String(512))
    clip: Mapped[str | None] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(16), default="open", server_default="open")
    acknowledged_by: Mapped[str | None] = mapped_column(String(128))
    acknowledged_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(128))
    resolved_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    comments: Mapped[list[EventComment]] = relationship(
        back_populates="event", cascade="all, delete-orphan", order_by="EventComment.id"
    )

    __table_args__ = (
        Index("ix_events_camera_at", "camera_id", "at"),
        Index("ix_events_kind_at", "kind", "at"),
        Index("ix_events_status_at", "status", "at"),
        Index("ix_events_at", "at"),
        # open alerts per camera (camera list, map): revision 0008
        Index("ix_events_status_severity_camera", "status", "severity", "camera_id"),
    )


class EventComment(Base):
    """An operator's note on an event."""

    __tablename__ = "event_comments"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    author: Mapped[str] = mapped_column(String(128))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    event: Mapped[EventRow] = relationship(back_populates="comments")


class TrackRow(Base):
    """Summary of one track on one camera (track ids restart with the worker, so first_seen is part of the key)."""

    __tablename__ = "tracks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    camera_id: Mapped[str] = mapped_column(String(64))
    track_id: Mapped[int]
    label: Mapped[str] = mapped_column(String(64))
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]
    colour: Mapped[str | None] = mapped_column(String(32))
    zones: Mapped[list[Any]] = mapped_column(default=list)  # zone names visited
    path: Mapped[list[Any]] = mapped_column(default=list)  # downsampled ground points [[x, y], ...]
    thumbnail: Mapped[str | None] = mapped_column(String(512))
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)

    __table_args__ = (
        Index("uq_tracks_camera_track_first", "camera_id", "track_id", "first_seen", unique=True),
        Index("ix_tracks_camera_last_seen", "camera_id", "last_seen"),
        Index("ix_tracks_last_seen", "last_seen"),
        Index("ix_tracks_label_colour_last_seen", "label", "colour", "last_seen"),
    )


class CountRow(Base):
    """A per-second object count on a camera, for one zone (or the whole view when zone is NULL) and label."""

    __tablename__ = "counts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    camera_id: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]
    zone: Mapped[str | None] = mapped_column(String(128))
    label: Mapped[str] = mapped_column(String(64))
    count: Mapped[int]

    __table_args__ = (Index("ix_counts_camera_zone_at", "camera_id", "zone", "at"),)


class OutboxRow(Base):
    """An event waiting to be published to the bus (DESIGN §7). ``id`` gives the publishing order."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(32), index=True)
    payload: Mapped[str] = mapped_column(Text)  # the encoded event, exactly as published
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    #: the writer (a cluster worker's lease holder) whose relay publishes it; NULL on one box
    origin: Mapped[str | None] = mapped_column(String(140))

    __table_args__ = (
        Index(
            "ix_outbox_pending",
            "id",
            sqlite_where=text("published_at IS NULL"),
            postgresql_where=text("published_at IS NULL"),
        ),
    )
