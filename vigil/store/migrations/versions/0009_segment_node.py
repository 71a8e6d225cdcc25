"""segment node: which node's disk holds each recording segment (cluster playback and per-node retention)

Revision ID: 0009
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("recording_segments") as batch:
        batch.add_column(sa.Column("node", sa.String(140), nullable=True))
        batch.create_index("ix_recording_segments_node_start", ["node", "start"])


def downgrade() -> None:
    with op.batch_alter_table("recording_segments") as batch:
        batch.drop_index("ix_recording_segments_node_start")
        batch.drop_column("node")
