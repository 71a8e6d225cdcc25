"""Alembic environment: run with the connection handed in by ``vigil.store.migrations`` (no alembic.ini)."""

from __future__ import annotations

from alembic import context

from vigil.store.db import Base
from vigil.store.migrations import load_schemas

load_schemas()  # registers every table on Base.metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through vigil.store.migrations.upgrade(url), not the alembic command")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
