"""recognition: watchlists and hotlists with entries, face and plate sightings

Revision ID: 0004
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from vigil.store.migrations.columns import BigId, Json, utc_time

revision: str = "0004"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "recognition_lists",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        utc_time("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recognition_lists")),
        sa.UniqueConstraint("name", name=op.f("uq_recognition_lists_name")),
    )
    op.create_table(
        "recognition_list_entries",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("list_id", BigId, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("plate_text", sa.String(16), nullable=True),
        sa.Column("embedding", sa.LargeBinary(), nullable=True),
        sa.Column("image_paths", Json, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("authority", sa.String(256), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        utc_time("created_at"),
        utc_time("expires_at", nullable=True),
        sa.ForeignKeyConstraint(["list_id"], ["recognition_lists.id"], ondelete="CASCADE",
                                name=op.f("fk_recognition_list_entries_list_id_recognition_lists")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recognition_list_entries")),
    )
    op.create_index("ix_recognition_list_entries_list_id", "recognition_list_entries", ["list_id"])
    op.create_index("ix_recognition_list_entries_plate_text", "recognition_list_entries", ["plate_text"])
    op.create_table(
        "sightings",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("camera_id", sa.String(64), nullable=False),
        utc_time("start"),
        utc_time("end"),
        sa.Column("track_id", sa.Integer(), nullable=True),
        sa.Column("label", sa.String(64), nullable=True),
        sa.Column("plate_text", sa.String(16), nullable=True),
        sa.Column("plate_canon", sa.String(16), nullable=True),
        sa.Column("plate_rev", sa.String(16), nullable=True),
        sa.Column("plate_confidence", sa.Float(), nullable=True),
        sa.Column("embedding", sa.LargeBinary(), nullable=True),
        sa.Column("on_list", sa.Boolean(), nullable=False),
        sa.Column("thumbnail", sa.String(512), nullable=True),
        sa.Column("attributes", Json, nullable=False),
        utc_time("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sightings")),
    )
    op.create_index("ix_sightings_camera_start", "sightings", ["camera_id", "start"])
    op.create_index("ix_sightings_kind_start", "sightings", ["kind", "start"])
    op.create_index("ix_sightings_plate_text", "sightings", ["plate_text"])
    op.create_index("ix_sightings_plate_canon", "sightings", ["plate_canon"])
    op.create_index("ix_sightings_plate_rev", "sightings", ["plate_rev"])


def downgrade() -> None:
    op.drop_table("sightings")
    op.drop_index("ix_recognition_list_entries_plate_text", table_name="recognition_list_entries")
    op.drop_index("ix_recognition_list_entries_list_id", table_name="recognition_list_entries")
    op.drop_table("recognition_list_entries")
    op.drop_table("recognition_lists")
