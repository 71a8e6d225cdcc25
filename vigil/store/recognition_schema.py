"""ORM tables for recognition: watchlists and hotlists with their entries, and face/plate sightings.

Object sightings are the ``tracks`` table of ``vigil.store.schema``. Face embeddings are stored as float32
blobs in their row (one source of truth, transactional, shared by every node of a cluster); the FAISS index
over them is rebuilt in memory and extended incrementally (``vigil.store.sightings``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from vigil.store.db import Base, utcnow
from vigil.store.schema import BigId

LIST_KINDS = ("watchlist", "hotlist")


class RecognitionList(Base):
    """A face watchlist or a plate hotlist."""

    __tablename__ = "recognition_lists"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # watchlist | hotlist
    description: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    entries: Mapped[list[ListEntryRow]] = relationship(back_populates="owner", cascade="all, delete-orphan",
                                                       passive_deletes=True)


class ListEntryRow(Base):
    """A person on a watchlist (enrolment embedding + photo) or a plate on a hotlist."""

    __tablename__ = "recognition_list_entries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("recognition_lists.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))  # person's name, or the plate as entered
    plate_text: Mapped[str | None] = mapped_column(String(16), index=True)  # cleaned plate text (hotlists)
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)  # float32 enrolment vector (watchlists)
    image_paths: Mapped[list[Any]] = mapped_column(default=list)  # enrolment photos, relative to data_dir
    reason: Mapped[str] = mapped_column(Text)
    authority: Mapped[str] = mapped_column(String(256))  # warrant, case or order reference
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]

    owner: Mapped[RecognitionList] = relationship(back_populates="entries")


class SightingRow(Base):
    """A face seen on a track (with its embedding) or a plate read of a vehicle track (voted text).

    ``camera_id, track_id, start`` name the track (``tracks.camera_id, track_id, first_seen``).
    ``plate_canon`` / ``plate_rev`` hold the plate with confusables folded (O→0, I→1, …), forwards and reversed,
    so fuzzy search can use index range scans on a prefix or a suffix.
    """

    __tablename__ = "sightings"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # face | plate
    camera_id: Mapped[str] = mapped_column(String(64))
    start: Mapped[datetime]
    end: Mapped[datetime]
    track_id: Mapped[int | None]
    label: Mapped[str | None] = mapped_column(String(64))
    plate_text: Mapped[str | None] = mapped_column(String(16))
    plate_canon: Mapped[str | None] = mapped_column(String(16))
    plate_rev: Mapped[str | None] = mapped_column(String(16))
    plate_confidence: Mapped[float | None] = mapped_column(Float)
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
    on_list: Mapped[bool] = mapped_column(Boolean, default=False)  # matched a watchlist/hotlist entry
    thumbnail: Mapped[str | None] = mapped_column(String(512))
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index("ix_sightings_camera_start", "camera_id", "start"),
        Index("ix_sightings_kind_start", "kind", "start"),
        Index("ix_sightings_plate_text", "plate_text"),
        Index("ix_sightings_plate_canon", "plate_canon"),
        Index("ix_sightings_plate_rev", "plate_rev"),
    )
