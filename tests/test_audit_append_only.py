"""The audit tables are append-only in the database: triggers refuse UPDATE and DELETE (SQLite and PostgreSQL, even
for the owner), and the PostgreSQL application role cannot change them at all. A cut tail fails ``vigil audit
verify`` by default, through the CLI."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from tests.support import FAST_HASHER, superuser_tampering
from vigil.errors import VigilError
from vigil.governance.app_role import grant_app_role
from vigil.governance.audit import AuditLog
from vigil.governance.commands import audit_app, db_app
from vigil.governance.errors import AuditError
from vigil.governance.keys import AuditSigner
from vigil.governance.service import open_governance
from vigil.governance.users import UserStore
from vigil.store.db import Store, make_engine, open_store
from vigil.store.migrations import downgrade

app = typer.Typer()
app.add_typer(audit_app, name="audit")
app.add_typer(db_app, name="db")
runner = CliRunner()


def vigil(*args: str, stdin: str | None = None) -> tuple[int, str, BaseException | None]:
    result = runner.invoke(app, list(args), input=stdin)
    error = result.exception if not isinstance(result.exception, SystemExit) else None
    return result.exit_code, result.output, error


def refused(store: Store, statement: str, maintenance: bool = False) -> str:
    """The first line of the database's error for ``statement`` run as the store's own user ('' if it ran)."""
    try:
        with store.engine.begin() as conn:
            if maintenance:
                conn.execute(text("SET LOCAL vigil.audit_maintenance = 'on'"))
            conn.execute(text(statement))
    except DBAPIError as exc:
        return str(exc.orig).splitlines()[0]
    return ""


def filled(store: Store, count: int = 6) -> AuditLog:
    log = AuditLog(store, AuditSigner.generate(), checkpoint_every=2)
    for i in range(count):
        log.append("ivan", "search", f"camera:cam{i}")
    return log


# ---------------------------------------------------------------- triggers, for the owner too


def test_triggers_refuse_update_and_delete_even_for_the_owner(store: Store) -> None:
    log = filled(store)
    for table in ("audit_log", "audit_checkpoints"):
        assert refused(store, f"UPDATE {table} SET hash = 'x' WHERE seq = 2") == \
            f"{table} is append-only: UPDATE refused"
        assert refused(store, f"DELETE FROM {table} WHERE seq >= 4") == f"{table} is append-only: DELETE refused"
    if store.dialect == "sqlite":  # REPLACE deletes without DELETE triggers; the insert guard catches it
        assert refused(store, "INSERT OR REPLACE INTO audit_log SELECT * FROM audit_log WHERE seq = 3") == \
            "audit_log is append-only: INSERT over an existing row refused"
        assert refused(store, "INSERT OR REPLACE INTO audit_checkpoints SELECT * FROM audit_checkpoints") == \
            "audit_checkpoints is append-only: INSERT over an existing row refused"
    else:
        for table in ("audit_log", "audit_checkpoints"):
            assert refused(store, f"TRUNCATE {table}") == f"{table} is append-only: TRUNCATE refused"
        assert refused(store, "INSERT INTO audit_log SELECT * FROM audit_log WHERE seq = 3 "
                              "ON CONFLICT (seq) DO UPDATE SET actor = 'mallory'") == \
            "audit_log is append-only: UPDATE refused"
        # the owner's explicit maintenance escape (rolled back here by the failing statement after it)
        assert refused(store, "DELETE FROM audit_log WHERE seq = 6; SELECT 1/0", maintenance=True) == \
            "division by zero"
    for camera in ("cam8", "cam9"):  # appending (and checkpointing) still works
        log.append("ivan", "search", f"camera:{camera}")
    result = log.verify(require_signed_head=True)
    assert result.ok and result.entries == 8 and result.checkpoints == 4


# ---------------------------------------------------------------- the PostgreSQL application role


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[Store]:
    downgrade(pg_url)
    with open_store(pg_url) as opened:
        yield opened


@pytest.fixture
def app_role(pg_store: Store) -> Iterator[str]:
    """A unique role name, dropped (with its grants) afterwards: roles belong to the whole server."""
    role = f"vigil_app_{os.urandom(4).hex()}"
    yield role
    with pg_store.engine.begin() as conn:
        if conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first():
            conn.execute(text(f"DROP OWNED BY {role}"))
            conn.execute(text(f"DROP ROLE {role}"))


def as_role(url: str, role: str, password: str | None = None) -> str:
    return make_url(url).set(username=role, password=password).render_as_string(hide_password=False)


def test_the_application_role_can_append_but_never_tamper(pg_store: Store, app_role: str, tmp_path: Path) -> None:
    assert grant_app_role(pg_store.engine, app_role, password="s3cret pw") is True
    assert grant_app_role(pg_store.engine, app_role) is False  # idempotent: run again after an upgrade
    url = as_role(str(pg_store.engine.url.render_as_string(hide_password=False)), app_role, "s3cret pw")
    with open_store(url) as app_store:  # the service opens (and checks the schema version) as the role
        log = AuditLog(app_store, AuditSigner.generate(), checkpoint_every=2, witness_dir=tmp_path)
        users = UserStore(app_store, log, hasher=FAST_HASHER)
        users.create("ivan", "walnut kayak 73 larch", "investigator", "setup")  # other tables: full access
        users.disable("ivan", "setup")
        for i in range(5):
            log.append("ivan", "search", f"camera:cam{i}")
        assert log.verify(require_signed_head=True).ok and log.head().seq == 7
        for table in ("audit_log", "audit_checkpoints"):
            for statement in (f"UPDATE {table} SET seq = seq", f"DELETE FROM {table}", f"TRUNCATE {table}"):
                for maintenance in (False, True):  # the escape does not help without the privilege
                    assert refused(app_store, statement, maintenance) == f"permission denied for table {table}"
        for statement, error in [
            ("ALTER TABLE audit_log DISABLE TRIGGER USER", "must be owner of table audit_log"),
            ("DROP TRIGGER audit_log_append_only ON audit_log", "must be owner of relation audit_log"),
            ("DROP TABLE audit_checkpoints", "must be owner of table audit_checkpoints"),
            ("SET session_replication_role = replica", 'permission denied to set parameter "session_replication_role"'),
            ("UPDATE alembic_version SET version_num = '0001'", "permission denied for table alembic_version"),
        ]:
            assert refused(app_store, statement) == error, statement
        assert log.verify(require_signed_head=True).ok and log.head().seq == 7  # nothing changed


def test_grant_app_role_refuses_what_would_not_protect_the_log(pg_store: Store, app_role: str,
                                                                tmp_path: Path) -> None:
    with pytest.raises(AuditError, match="role 'postgres' is the one running the grants"):
        grant_app_role(pg_store.engine, "postgres")
    superuser = f"{app_role}_su"
    with pg_store.engine.begin() as conn:
        conn.execute(text(f"CREATE ROLE {superuser} SUPERUSER"))
    try:
        with pytest.raises(AuditError, match=f"role '{superuser}' is a superuser, which bypasses privileges"):
            grant_app_role(pg_store.engine, superuser)
    finally:
        with pg_store.engine.begin() as conn:
            conn.execute(text(f"DROP ROLE {superuser}"))
    with pytest.raises(AuditError, match=r"role name 'App; DROP TABLE x': use 1-63 lower-case"):
        grant_app_role(pg_store.engine, "App; DROP TABLE x")
    with pg_store.engine.begin() as conn:  # a grant that leaks through PUBLIC is caught, and nothing is kept
        conn.execute(text("GRANT DELETE ON audit_checkpoints TO PUBLIC"))
    with pytest.raises(AuditError, match=rf"role '{app_role}' can still DELETE audit_checkpoints \(it owns"):
        grant_app_role(pg_store.engine, app_role)
    with pg_store.engine.begin() as conn:
        assert conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": app_role}).first() is None
        conn.execute(text("REVOKE DELETE ON audit_checkpoints FROM PUBLIC"))
    with open_store(f"sqlite:///{tmp_path / 'vigil.db'}") as sqlite, \
            pytest.raises(AuditError, match="application roles exist on PostgreSQL only"):
        grant_app_role(sqlite.engine, app_role)


def test_grant_app_role_command(pg_store: Store, app_role: str, tmp_path: Path) -> None:
    owner_url = pg_store.engine.url.render_as_string(hide_password=False)
    config = tmp_path / "vigil.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\nstore:\n  database: {owner_url}\n")
    code, output, error = vigil("db", "grant-app-role", app_role, "-c", str(config), "--sql")
    assert (code, error) == (0, None)
    assert f"REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON \"public\".\"audit_log\", " \
           f"\"public\".\"audit_checkpoints\" FROM \"{app_role}\";" in output
    code, output, error = vigil("db", "grant-app-role", app_role, "-c", str(config), "--password-stdin",
                                stdin="pw-4711\n")
    assert (code, error) == (0, None) and f"created role {app_role}" in output
    code, output, error = vigil("db", "grant-app-role", app_role, "-c", str(config))
    assert (code, error) == (0, None) and f"updated role {app_role}" in output
    engine = create_engine(as_role(owner_url, app_role, "pw-4711"))
    try:
        with engine.connect() as conn:
            actions = conn.execute(text("SELECT action, object FROM audit_log ORDER BY seq")).all()
            assert [tuple(a) for a in actions] == [("db.grant_app_role", f"role:{app_role}")] * 2  # audited
            with pytest.raises(DBAPIError, match="permission denied for table audit_log"):
                conn.execute(text("DELETE FROM audit_log"))
    finally:
        engine.dispose()
    code, output, error = vigil("db", "grant-app-role", "Bad-Name", "-c", str(config))
    assert isinstance(error, VigilError) and "role name 'Bad-Name'" in str(error)
    sqlite_config = tmp_path / "sqlite.yaml"
    sqlite_config.write_text(f"data_dir: {tmp_path / 'lite'}\nstore:\n  database: sqlite:///vigil.db\n")
    code, output, error = vigil("db", "grant-app-role", app_role, "-c", str(sqlite_config))
    assert isinstance(error, VigilError) and "the database is not PostgreSQL" in str(error)
    assert not (tmp_path / "lite").exists()  # refused before anything was opened


# ---------------------------------------------------------------- a cut tail, through the CLI


@pytest.mark.parametrize("cut", [1, 3])
def test_audit_verify_catches_a_cut_tail_by_default(db_url: str, tmp_path: Path, cut: int) -> None:
    config = tmp_path / "vigil.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\nstore:\n  database: {db_url}\n")
    with open_store(db_url) as store:
        gov = open_governance(store, tmp_path / "data")
        for i in range(12):
            gov.audit.append("ivan", "video.live", f"camera:cam{i % 3}")
    code, output, _ = vigil("audit", "verify", "-c", str(config))
    assert code == 0 and output == "audit chain ok: 12 entries, 0 checkpoints, head witnessed at 12\n"
    code, output, _ = vigil("audit", "verify", "-c", str(config), "--strict")  # strict passes when honest, too
    assert code == 0
    engine = make_engine(db_url)
    try:
        with superuser_tampering(engine) as conn:
            conn.execute(text("DELETE FROM audit_log WHERE seq > :keep"), {"keep": 12 - cut})
    finally:
        engine.dispose()
    code, output, _ = vigil("audit", "verify", "-c", str(config))
    many = "entry" if cut == 1 else "entries"
    assert code == 1 and output == (f"audit chain BROKEN at entry 1: {cut} newest {many} missing: the log ends at "
                                    f"seq {12 - cut} but the witness head is at seq 12 (tail cut?) "
                                    f"({12 - cut} entries read)\n")
