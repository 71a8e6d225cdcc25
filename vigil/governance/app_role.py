"""The PostgreSQL role the service connects as: it may use every table, but only read and append the audit log.

``vigil db grant-app-role NAME`` (run as the database owner; it migrates first) creates the role if needed and
grants it SELECT, INSERT, UPDATE and DELETE on every table of the schema, except the audit tables (SELECT and
INSERT only) and ``alembic_version`` (SELECT: the service checks the schema version but cannot migrate). Without
UPDATE, DELETE and TRUNCATE, and not owning the tables, the role can neither tamper with the audit log nor turn
off the append-only triggers (revision ``0006``). Run it again after an upgrade that adds tables.
"""

from __future__ import annotations

import re

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from vigil.governance.errors import AuditError
from vigil.store.db import describe_url

AUDIT_TABLES = ("audit_log", "audit_checkpoints")
ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
FORBIDDEN = ("UPDATE", "DELETE", "TRUNCATE")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def check_role_name(role: str) -> str:
    """``role`` if it is a plain PostgreSQL role name (lower case, digits, ``_``); ``AuditError`` otherwise."""
    if not ROLE_NAME.fullmatch(role) or role.startswith("pg_"):
        raise AuditError(f"role name {role!r}: use 1-63 lower-case letters, digits and '_', not starting with "
                         "a digit or 'pg_'")
    return role


def app_role_sql(role: str, database: str, schema: str = "public") -> list[str]:
    """The GRANT and REVOKE statements for ``role`` (which must exist), in order."""
    r, s = _quote(check_role_name(role)), _quote(schema)
    audit = ", ".join(f"{s}.{_quote(t)}" for t in AUDIT_TABLES)
    return [
        f"GRANT CONNECT ON DATABASE {_quote(database)} TO {r}",
        f"GRANT USAGE ON SCHEMA {s} TO {r}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {s} TO {r}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {s} TO {r}",
        f"REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON {audit} FROM {r}",
        f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON {s}.alembic_version FROM {r}",
    ]


def grant_app_role(engine: Engine, role: str, password: str | None = None) -> bool:
    """Create ``role`` (LOGIN, no special powers) if missing, set its password if given, and grant it the
    application's privileges in the database behind ``engine``. True when the role was created.

    Refuses a superuser, the role running the grants, and a role that can still change the audit tables
    afterwards (the owner, a member of the owner, or through a grant to PUBLIC or a group): ``AuditError``.
    """
    check_role_name(role)
    if engine.dialect.name != "postgresql":
        raise AuditError(f"database {describe_url(engine.url)}: application roles exist on PostgreSQL only "
                         "(on SQLite, triggers keep the audit tables append-only)")
    try:
        with engine.begin() as conn:
            return _grant(conn, role, password)
    except DBAPIError as exc:
        first = str(exc.orig or exc).strip().splitlines()[0]
        raise AuditError(f"database {describe_url(engine.url)}: cannot grant role {role!r} ({first})") from None


def _grant(conn: Connection, role: str, password: str | None) -> bool:
    me = conn.execute(text("SELECT current_user AS name, current_database() AS db, current_schema() AS schema")).one()
    if role == me.name:
        raise AuditError(f"role {role!r} is the one running the grants (it owns the tables): choose a separate "
                         "role for the service")
    existing = conn.execute(text("SELECT rolsuper FROM pg_roles WHERE rolname = :r"), {"r": role}).first()
    if existing is not None and existing.rolsuper:
        raise AuditError(f"role {role!r} is a superuser, which bypasses privileges and can disable triggers: "
                         "choose a separate role for the service")
    if existing is None:
        conn.execute(text(f"CREATE ROLE {_quote(role)} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION"))
    if password:
        from psycopg import sql  # the PostgreSQL driver: quotes the password literal

        statement = sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(password))
        conn.connection.driver_connection.execute(statement)  # type: ignore[union-attr]
    for statement_text in app_role_sql(role, me.db, me.schema):
        conn.execute(text(statement_text))
    leaks = [f"{verb} {table}" for table in AUDIT_TABLES for verb in FORBIDDEN
             if conn.execute(text("SELECT has_table_privilege(:r, :t, :p)"),
                             {"r": role, "t": f"{_quote(me.schema)}.{_quote(table)}", "p": verb}).scalar()]
    if leaks:
        raise AuditError(f"role {role!r} can still {', '.join(leaks)} (it owns the tables, belongs to a role that "
                         "does, or holds a grant through PUBLIC or a group): revoke that, or choose another role")
    return existing is None
