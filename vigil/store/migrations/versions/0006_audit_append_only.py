"""audit append-only: triggers refuse UPDATE, DELETE and TRUNCATE of audit entries and checkpoints

PostgreSQL: one PL/pgSQL function behind row triggers (UPDATE, DELETE) and a statement trigger (TRUNCATE) on
``audit_log`` and ``audit_checkpoints``. They refuse even the tables' owner, unless the transaction ran
``SET LOCAL vigil.audit_maintenance = 'on'`` (an explicit admin task). The application itself should connect as
a role holding only SELECT and INSERT on these tables (``vigil db grant-app-role``), so it cannot use that escape.

SQLite: ``RAISE(ABORT)`` triggers on UPDATE and DELETE, and one refusing an INSERT over an existing key
(``INSERT OR REPLACE`` deletes the old row without firing DELETE triggers). No escape: whoever holds the file
can drop the triggers, which is what the hash chain and the witness files are there to catch.

Revision ID: 0006
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = {"audit_log": "seq", "audit_checkpoints": "id"}  # table -> primary key

PG_FUNCTION = """
CREATE OR REPLACE FUNCTION vigil_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('vigil.audit_maintenance', true), '') = 'on' THEN
        IF TG_OP = 'DELETE' THEN
            RETURN OLD;
        END IF;
        RETURN NEW;
    END IF;
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_FUNCTION)
        for table in TABLES:
            op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                       "FOR EACH ROW EXECUTE FUNCTION vigil_audit_append_only()")
            op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                       "FOR EACH STATEMENT EXECUTE FUNCTION vigil_audit_append_only()")
        return
    for table, key in TABLES.items():
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                       f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {verb} refused'); END")
        op.execute(f"CREATE TRIGGER {table}_no_replace BEFORE INSERT ON {table} "
                   f"WHEN EXISTS (SELECT 1 FROM {table} WHERE {key} = NEW.{key}) "
                   f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: INSERT over an existing row refused'); END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        op.execute("DROP FUNCTION IF EXISTS vigil_audit_append_only()")
        return
    for table in TABLES:
        for name in ("no_update", "no_delete", "no_replace"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_{name}")
