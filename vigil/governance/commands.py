"""CLI sub-commands for governance (mounted by ``vigil.cli``): ``audit``, ``users``, ``authorisations``, ``db``.

Console commands act as the named user (``--as``), or as ``cli:<login>`` for user administration; the
console has database access anyway, so it is trusted, but every action lands in the audit log.
"""

from __future__ import annotations

import contextlib
import getpass
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from vigil.governance.errors import GovernanceError

audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
users_app = typer.Typer(help="Users, roles and camera grants.", no_args_is_help=True)
authorisations_app = typer.Typer(help="Authorisations for face matching, face search and person search.",
                                 no_args_is_help=True)
db_app = typer.Typer(help="The metadata database: the PostgreSQL role the service connects as.",
                     no_args_is_help=True)

out = Console()

ConfigOption = typer.Option(..., "-c", "--config", help="YAML config file.")


@contextlib.contextmanager
def governance(config_path: Path, database: str | None = None) -> Iterator:  # type: ignore[type-arg]
    """Open the store of a config (or ``database``, a URL; migrated to every head) and the governance layer."""
    from vigil.config import load_config
    from vigil.governance.service import open_governance
    from vigil.store.db import open_store
    from vigil.store.migrations import upgrade_engine

    config = load_config(config_path)
    store = open_store(database or config.store.database, data_dir=config.data_dir, migrate=False)
    try:
        upgrade_engine(store.engine, "heads")
        yield open_governance(store, config.data_dir)
    finally:
        store.close()


def console_actor() -> str:
    return f"cli:{getpass.getuser()}"


def _split(values: list[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _time(value: str, option: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise GovernanceError(f"{option}: not an ISO time with zone: {value!r} (e.g. 2024-05-01T08:00:00Z)") from None


# ---------------------------------------------------------------- audit


@audit_app.command("verify")
def audit_verify(config_path: Path = typer.Option(None, "-c", "--config", help="YAML config file."),
                 pubkey: Path = typer.Option(None, "--pubkey", help="Public key PEM to verify with (recommended)."),
                 bundle: Path = typer.Option(None, "--bundle", help="Verify an exported bundle folder instead."),
                 strict: bool = typer.Option(False, "--strict", help="Fail when the newest entries are not signed "
                                             "by a checkpoint or the witness head yet (always on for bundles).")
                 ) -> None:
    """Check every hash link, signed checkpoint and the witness head (a cut tail); report the first broken entry
    (exit code 1)."""
    from vigil.governance.audit import verify_bundle
    from vigil.governance.keys import load_public_key

    key = load_public_key(pubkey) if pubkey else None
    if bundle is not None:
        if key is None:
            raise GovernanceError("audit verify --bundle needs --pubkey (the key inside a bundle is not trusted)")
        result = verify_bundle(bundle, key)
    elif config_path is None:
        raise GovernanceError("audit verify needs -c CONFIG or --bundle DIR")
    else:
        with governance(config_path) as gov:
            result = gov.audit.verify(key, require_signed_head=strict)
    if result.ok:
        tail = f", {result.unsigned_tail} after the last checkpoint" if result.unsigned_tail else ""
        head = f", head witnessed at {result.witnessed_seq}" if result.witnessed_seq else ""
        out.print(f"[green]audit chain ok[/]: {result.entries} entries, {result.checkpoints} checkpoints{head}{tail}",
                  highlight=False, soft_wrap=True)
        return
    out.print(f"[bold red]audit chain BROKEN[/] at entry {result.first_bad_seq}: {result.reason} "
              f"({result.entries} entries read)", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


@audit_app.command("export")
def audit_export(config_path: Path = ConfigOption,
                 out_dir: Path = typer.Option(..., "--out", help="Folder to write the bundle into.")) -> None:
    """Write a verifiable bundle: entries, checkpoints and the public key."""
    with governance(config_path) as gov:
        info = gov.audit.export(out_dir, actor=console_actor())
    out.print(f"exported {info.entries} entries and {info.checkpoints} checkpoints to {info.path} "
              f"(head {info.head_seq} {info.head_hash[:16]})")


@audit_app.command("pubkey")
def audit_pubkey(config_path: Path = ConfigOption) -> None:
    """Print the public key (PEM) that verifies the checkpoints."""
    with governance(config_path) as gov:
        sys.stdout.write(gov.audit.public_pem().decode())


@audit_app.command("checkpoint")
def audit_checkpoint(config_path: Path = ConfigOption) -> None:
    """Sign the current head now."""
    with governance(config_path) as gov:
        mark = gov.audit.checkpoint()
    out.print("audit log is empty" if mark is None else f"checkpoint at entry {mark.seq} ({mark.hash[:16]})")


@audit_app.command("list")
def audit_list(config_path: Path = ConfigOption, limit: int = typer.Option(20, "--limit"),
               actor: str = typer.Option(None, "--actor"), action: str = typer.Option(None, "--action")) -> None:
    """The newest entries."""
    with governance(config_path) as gov:
        entries = gov.audit.entries(actor=actor, action=action, limit=limit)
    table = Table("seq", "at (UTC)", "actor", "action", "object", "purpose", "details")
    for e in entries:
        table.add_row(str(e.seq), f"{e.at:%Y-%m-%d %H:%M:%S}", e.actor, e.action, e.object, e.purpose or "",
                      e.details_json if e.details_json != "{}" else "")
    out.print(table)


# ---------------------------------------------------------------- db


@db_app.command("grant-app-role")
def db_grant_app_role(name: str = typer.Argument(..., help="PostgreSQL role the service connects as."),
                      config_path: Path = ConfigOption,
                      database: str = typer.Option(None, "--database", help="Owner URL to migrate and grant with "
                                                   "(default: store.database)."),
                      password_stdin: bool = typer.Option(False, "--password-stdin",
                                                          help="Set the role's password, read from stdin."),
                      print_sql: bool = typer.Option(False, "--sql", help="Print the GRANT/REVOKE statements instead "
                                                     "of running them.")) -> None:
    """Let role NAME (created if missing) use every table but only read and append the audit log; migrates first.
    Run it again after an upgrade."""
    from sqlalchemy import make_url

    from vigil.config import load_config
    from vigil.governance.app_role import app_role_sql, check_role_name, grant_app_role
    from vigil.store.db import resolve_database_url

    check_role_name(name)
    url = make_url(resolve_database_url(database or load_config(config_path).store.database))
    if url.get_backend_name() != "postgresql":
        raise GovernanceError("db grant-app-role: the database is not PostgreSQL (roles exist on PostgreSQL only; "
                              "on SQLite, triggers keep the audit tables append-only)")
    if print_sql:
        sys.stdout.write(f"-- CREATE ROLE {name} LOGIN PASSWORD '...';  (if it does not exist yet)\n")
        sys.stdout.writelines(f"{statement};\n" for statement in app_role_sql(name, url.database or "postgres"))
        return
    password = sys.stdin.readline().rstrip("\n") if password_stdin else None
    with governance(config_path, database) as gov:
        created = grant_app_role(gov.store.engine, name, password)
        gov.audit.append(console_actor(), "db.grant_app_role", f"role:{name}", details={"created": created})
    out.print(f"{'created' if created else 'updated'} role {name}: it may read and append the audit log but not "
              "change it; connect the service as it", highlight=False)


# ---------------------------------------------------------------- users


@users_app.command("add")
def users_add(username: str, config_path: Path = ConfigOption,
              role: str = typer.Option(..., "--role", help="operator, investigator, supervisor, auditor or admin."),
              cameras: list[str] = typer.Option([], "--cameras", help="Camera ids (comma-separated) or '*'."),
              name: str = typer.Option("", "--name", help="Display name."),
              password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin.")
              ) -> None:
    """Add a user (the password is prompted for, or read from stdin)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    with governance(config_path) as gov:
        user = gov.users.create(username, password, role, console_actor(), cameras=_split(cameras),
                                display_name=name)
    out.print(f"added {user.username} ({user.role}; cameras: {', '.join(user.cameras) or 'none'})")


@users_app.command("list")
def users_list(config_path: Path = ConfigOption) -> None:
    """Every user with role, cameras and state."""
    with governance(config_path) as gov:
        users = gov.users.list_users()
    table = Table("user", "name", "role", "cameras", "state")
    for u in users:
        table.add_row(u.username, u.display_name, u.role, ", ".join(u.cameras) or "-",
                      "[red]disabled[/]" if u.disabled else "active")
    out.print(table)


@users_app.command("disable")
def users_disable(username: str, config_path: Path = ConfigOption,
                  reason: str = typer.Option(None, "--reason")) -> None:
    """Disable a user and end their sessions."""
    with governance(config_path) as gov:
        gov.users.disable(username, console_actor(), reason)
    out.print(f"disabled {username}")


@users_app.command("enable")
def users_enable(username: str, config_path: Path = ConfigOption) -> None:
    """Enable a disabled or locked-out user."""
    with governance(config_path) as gov:
        gov.users.enable(username, console_actor())
    out.print(f"enabled {username}")


@users_app.command("revoke-sessions")
def users_revoke_sessions(username: str, config_path: Path = ConfigOption) -> None:
    """End every session of a user now (they must sign in again); audited."""
    with governance(config_path) as gov:
        count = gov.users.revoke_sessions(username, console_actor())
    out.print(f"ended {count} session{'s' if count != 1 else ''} of {username}")


@users_app.command("grant-cameras")
def users_grant_cameras(username: str, cameras: list[str] = typer.Argument(..., help="Camera ids or '*'."),
                        config_path: Path = ConfigOption) -> None:
    """Set the cameras a user may see (replaces the previous grant)."""
    with governance(config_path) as gov:
        user = gov.users.grant_cameras(username, _split(cameras), console_actor())
    out.print(f"{user.username} may see: {', '.join(user.cameras) or 'no cameras'}")


# ---------------------------------------------------------------- authorisations


@authorisations_app.command("request")
def auth_request(config_path: Path = ConfigOption,
                 actor: str = typer.Option(..., "--as", help="Requesting user."),
                 features: list[str] = typer.Option(..., "--feature", help="live_face_match, face_search, ..."),
                 cameras: list[str] = typer.Option(..., "--camera", help="Camera ids (comma-separated) or '*'."),
                 legal_basis: str = typer.Option(..., "--legal-basis"),
                 case_ref: str = typer.Option(..., "--case"),
                 purpose: str = typer.Option(..., "--purpose"),
                 start: str = typer.Option(..., "--from", help="ISO time with zone."),
                 end: str = typer.Option(..., "--until", help="ISO time with zone (exclusive)."),
                 entries: list[str] = typer.Option(["*"], "--entry", help="Watchlist entry ids or '*'.")) -> None:
    """Ask for an authorisation; a different supervisor must approve it."""
    with governance(config_path) as gov:
        auth = gov.authorisations.request(
            actor, legal_basis=legal_basis, case_ref=case_ref, purpose=purpose, features=_split(features),
            cameras=_split(cameras), valid_from=_time(start, "--from"), valid_until=_time(end, "--until"),
            watchlist_entries=_split(entries))
    out.print(f"authorisation {auth.id} requested (case {auth.case_ref}); awaiting approval")


@authorisations_app.command("approve")
def auth_approve(auth_id: int, config_path: Path = ConfigOption,
                 actor: str = typer.Option(..., "--as", help="Approving supervisor (not the requester)."),
                 note: str = typer.Option(None, "--note")) -> None:
    """Approve a request (four-eyes: a different supervisor)."""
    with governance(config_path) as gov:
        auth = gov.authorisations.approve(auth_id, actor, note)
    out.print(f"authorisation {auth.id} approved by {auth.approver}: {auth.valid_from} .. {auth.valid_until}")


@authorisations_app.command("deny")
def auth_deny(auth_id: int, config_path: Path = ConfigOption, actor: str = typer.Option(..., "--as"),
              reason: str = typer.Option(..., "--reason")) -> None:
    """Deny a request."""
    with governance(config_path) as gov:
        gov.authorisations.deny(auth_id, actor, reason)
    out.print(f"authorisation {auth_id} denied")


@authorisations_app.command("revoke")
def auth_revoke(auth_id: int, config_path: Path = ConfigOption, actor: str = typer.Option(..., "--as"),
                reason: str = typer.Option(..., "--reason")) -> None:
    """End an authorisation now."""
    with governance(config_path) as gov:
        gov.authorisations.revoke(auth_id, actor, reason)
    out.print(f"authorisation {auth_id} revoked")


@authorisations_app.command("list")
def auth_list(config_path: Path = ConfigOption, state: str = typer.Option(None, "--state")) -> None:
    """Authorisations with their state now."""
    from vigil.store.db import utcnow

    now = utcnow()
    with governance(config_path) as gov:
        found = gov.authorisations.list_authorisations(state)
    table = Table("id", "state", "features", "cameras", "case", "requester", "approver", "from (UTC)", "until (UTC)")
    for a in found:
        table.add_row(str(a.id), a.state(now), ", ".join(a.features), ", ".join(a.cameras), a.case_ref, a.requester,
                      a.approver or "-", f"{a.valid_from:%Y-%m-%d %H:%M:%S}", f"{a.valid_until:%Y-%m-%d %H:%M:%S}")
    out.print(table)

