"""ORM tables of the governance layer (DESIGN §6). Created by the hand-written revision ``0003_governance``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from vigil.store.db import Base, utcnow

#: Autoincrementing 64-bit key (SQLite only autoincrements INTEGER PRIMARY KEY).
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UserRow(Base):
    """A person who signs in: one role, the cameras they may see (``["*"]`` for all) and lockout state."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(128), default="")
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))
    cameras: Mapped[list[Any]] = mapped_column(default=list)
    disabled: Mapped[bool] = mapped_column(default=False)
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class SessionRow(Base):
    """A sign-in session; only the sha256 of the opaque token is kept."""

    __tablename__ = "user_sessions"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class AuditRow(Base):
    """One audit entry. ``details`` is kept as the exact canonical JSON text that was hashed."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    object: Mapped[str] = mapped_column(String(256))
    purpose: Mapped[str | None] = mapped_column(String(256))
    details: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    __table_args__ = (Index("ix_audit_log_at", "at"), Index("ix_audit_log_actor_at", "actor", "at"))


class CheckpointRow(Base):
    """An Ed25519 signature over the chain head (seq, hash) at one moment."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(BigInteger, index=True)
    hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]
    key_id: Mapped[str] = mapped_column(String(32))
    signature: Mapped[str] = mapped_column(String(128))  # hex


class AuthorisationRow(Base):
    """A request to use a sensitive feature, and its four-eyes decision."""

    __tablename__ = "authorisations"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    requester: Mapped[str] = mapped_column(String(64))
    legal_basis: Mapped[str] = mapped_column(String(256))
    case_ref: Mapped[str] = mapped_column(String(128))
    purpose: Mapped[str] = mapped_column(Text)
    features: Mapped[list[Any]] = mapped_column(default=list)
    cameras: Mapped[list[Any]] = mapped_column(default=list)
    watchlist_entries: Mapped[list[Any]] = mapped_column(default=list)
    valid_from: Mapped[datetime]
    valid_until: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), default="requested")
    approver: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None]
    decision_note: Mapped[str | None] = mapped_column(Text)
    revoked_by: Mapped[str | None] = mapped_column(String(64))
    revoked_at: Mapped[datetime | None]
    revoke_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_authorisations_status_window", "status", "valid_from", "valid_until"),)
