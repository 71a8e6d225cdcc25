"""recordings: segment index and evidence holds

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from vigil.store.migrations.columns import BigId, utc_time

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "recording_segments",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("camera_id", sa.String(64), nullable=False),
        utc_time("start"),
        utc_time("end"),
        sa.Column("path", sa.String(512), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("keyframes", sa.Integer(), nullable=False),
        sa.Column("codec", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        utc_time("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recording_segments")),
        sa.UniqueConstraint("path", name=op.f("uq_recording_segments_path")),
    )
    op.create_index("ix_recording_segments_camera_start", "recording_segments", ["camera_id", "start"])
    op.create_index("ix_recording_segments_start", "recording_segments", ["start"])

    op.create_table(
        "holds",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("case_id", sa.String(128), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("camera_id", sa.String(64), nullable=True),
        utc_time("start"),
        utc_time("end"),
        utc_time("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_holds")),
    )
    op.create_index("ix_holds_camera_start", "holds", ["camera_id", "start"])


def downgrade() -> None:
    op.drop_table("holds")
    op.drop_table("recording_segments")
