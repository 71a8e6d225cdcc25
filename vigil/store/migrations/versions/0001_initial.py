"""initial schema: events, event comments, tracks, counts, outbox

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from vigil.store.migrations.columns import BigId, Json, utc_time

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("camera_id", sa.String(64), nullable=False),
        utc_time("at"),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("track_id", sa.Integer(), nullable=True),
        sa.Column("label", sa.String(64), nullable=True),
        sa.Column("zone", sa.String(128), nullable=True),
        sa.Column("payload", Json, nullable=False),
        sa.Column("snapshot", sa.String(512), nullable=True),
        sa.Column("clip", sa.String(512), nullable=True),
        sa.Column("status", sa.String(16), server_default="open", nullable=False),
        sa.Column("acknowledged_by", sa.String(128), nullable=True),
        utc_time("acknowledged_at", nullable=True),
        sa.Column("resolved_by", sa.String(128), nullable=True),
        utc_time("resolved_at", nullable=True),
        utc_time("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    op.create_index("ix_events_at", "events", ["at"])
    op.create_index("ix_events_camera_at", "events", ["camera_id", "at"])
    op.create_index("ix_events_kind_at", "events", ["kind", "at"])
    op.create_index("ix_events_status_at", "events", ["status", "at"])

    op.create_table(
        "event_comments",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(32), nullable=False),
        sa.Column("author", sa.String(128), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        utc_time("created_at"),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.id"], name=op.f("fk_event_comments_event_id_events"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_comments")),
    )
    op.create_index(op.f("ix_event_comments_event_id"), "event_comments", ["event_id"])

    op.create_table(
        "tracks",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("camera_id", sa.String(64), nullable=False),
        sa.Column("track_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        utc_time("first_seen"),
        utc_time("last_seen"),
        sa.Column("colour", sa.String(32), nullable=True),
        sa.Column("zones", Json, nullable=False),
        sa.Column("path", Json, nullable=False),
        sa.Column("thumbnail", sa.String(512), nullable=True),
        sa.Column("attributes", Json, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracks")),
    )
    op.create_index("uq_tracks_camera_track_first", "tracks", ["camera_id", "track_id", "first_seen"], unique=True)
    op.create_index("ix_tracks_camera_last_seen", "tracks", ["camera_id", "last_seen"])
    op.create_index("ix_tracks_last_seen", "tracks", ["last_seen"])

    op.create_table(
        "counts",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("camera_id", sa.String(64), nullable=False),
        utc_time("at"),
        sa.Column("zone", sa.String(128), nullable=True),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_counts")),
    )
    op.create_index("ix_counts_camera_zone_at", "counts", ["camera_id", "zone", "at"])

    op.create_table(
        "outbox",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(32), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        utc_time("created_at"),
        utc_time("published_at", nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    op.create_index(op.f("ix_outbox_event_id"), "outbox", ["event_id"])
    pending = sa.text("published_at IS NULL")
    op.create_index("ix_outbox_pending", "outbox", ["id"], sqlite_where=pending, postgresql_where=pending)


def downgrade() -> None:
    for table in ("outbox", "counts", "tracks", "event_comments", "events"):
        op.drop_table(table)  # drops the table's indices with it
