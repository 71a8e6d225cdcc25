"""governance: users, sessions, audit chain and checkpoints, authorisations

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from vigil.store.migrations.columns import BigId, Json, utc_time

revision: str = "0003"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(128), nullable=False),
        sa.Column("password_hash", sa.String(256), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("cameras", Json, nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        utc_time("locked_until", nullable=True),
        utc_time("created_at"),
        utc_time("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "user_sessions",
        sa.Column("token_sha256", sa.String(64), nullable=False),
        sa.Column("user_id", BigId, nullable=False),
        utc_time("created_at"),
        utc_time("expires_at"),
        utc_time("revoked_at", nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_user_sessions_user_id_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("token_sha256", name=op.f("pk_user_sessions")),
    )
    op.create_index(op.f("ix_user_sessions_user_id"), "user_sessions", ["user_id"])

    op.create_table(
        "audit_log",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        utc_time("at"),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("object", sa.String(256), nullable=False),
        sa.Column("purpose", sa.String(256), nullable=True),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_actor_at", "audit_log", ["actor", "at"])

    op.create_table(
        "audit_checkpoints",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        utc_time("at"),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_checkpoints")),
    )
    op.create_index(op.f("ix_audit_checkpoints_seq"), "audit_checkpoints", ["seq"])

    op.create_table(
        "authorisations",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("requester", sa.String(64), nullable=False),
        sa.Column("legal_basis", sa.String(256), nullable=False),
        sa.Column("case_ref", sa.String(128), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("features", Json, nullable=False),
        sa.Column("cameras", Json, nullable=False),
        sa.Column("watchlist_entries", Json, nullable=False),
        utc_time("valid_from"),
        utc_time("valid_until"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("approver", sa.String(64), nullable=True),
        utc_time("decided_at", nullable=True),
        sa.Column("decision_note", sa.Text(), nullable=True),
        sa.Column("revoked_by", sa.String(64), nullable=True),
        utc_time("revoked_at", nullable=True),
        sa.Column("revoke_reason", sa.Text(), nullable=True),
        utc_time("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_authorisations")),
    )
    op.create_index("ix_authorisations_status_window", "authorisations", ["status", "valid_from", "valid_until"])


def downgrade() -> None:
    for table in ("authorisations", "audit_checkpoints", "audit_log", "user_sessions", "users"):
        op.drop_table(table)  # drops the table's indices with it
