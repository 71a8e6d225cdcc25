"""The governance sub-commands end to end on a SQLite config: users, four-eyes authorisation, audit verify/export."""

from __future__ import annotations

from pathlib import Path

import typer
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from tests.support import superuser_tampering
from vigil.errors import VigilError
from vigil.governance.commands import audit_app, authorisations_app, users_app

app = typer.Typer()
app.add_typer(audit_app, name="audit")
app.add_typer(users_app, name="users")
app.add_typer(authorisations_app, name="authorisations")
runner = CliRunner()


def vigil(*args: str, stdin: str | None = None) -> tuple[int, str, BaseException | None]:
    result = runner.invoke(app, list(args), input=stdin)
    error = result.exception if not isinstance(result.exception, SystemExit) else None
    return result.exit_code, result.output, error


def test_governance_commands(tmp_path: Path) -> None:
    config = tmp_path / "vigil.yaml"
    config.write_text("data_dir: data\nstore:\n  database: sqlite:///vigil.db\n")
    c = ["-c", str(config)]
    for name, role in [("ivan", "investigator"), ("sue", "supervisor")]:
        code, output, error = vigil("users", "add", name, *c, "--role", role, "--cameras", "cam1,cam2",
                                    "--password-stdin", stdin=f"walnut kayak {role} 73\n")
        assert (code, error) == (0, None) and f"added {name} ({role}" in output
    code, output, error = vigil("users", "add", "eve", *c, "--role", "boss", "--password-stdin", stdin="pw-123456\n")
    assert isinstance(error, VigilError) and "unknown role 'boss'" in str(error)
    assert "ivan" in vigil("users", "list", *c)[1]
    assert "cam3" in vigil("users", "grant-cameras", "ivan", "cam3", *c)[1]

    request = ["authorisations", "request", *c, "--as", "ivan", "--feature", "face_search", "--camera", "cam1",
               "--legal-basis", "court order 17/24", "--case", "CASE-17", "--purpose", "identify a suspect",
               "--from", "2024-01-01T00:00:00Z", "--until", "2999-01-01T00:00:00Z"]
    code, output, error = vigil(*request)
    assert (code, error) == (0, None) and "authorisation 1 requested" in output
    code, output, error = vigil("authorisations", "approve", "1", *c, "--as", "ivan")
    assert isinstance(error, VigilError) and "four-eyes rule" in str(error)
    code, output, error = vigil("authorisations", "approve", "1", *c, "--as", "sue")
    assert (code, error) == (0, None) and "approved by sue" in output
    assert "active" in vigil("authorisations", "list", *c, "--state", "active")[1]

    code, output, _ = vigil("audit", "verify", *c)
    assert code == 0 and "audit chain ok" in output
    pem = tmp_path / "pub.pem"
    code, output, _ = vigil("audit", "pubkey", *c)
    pem.write_text(output)
    assert output.startswith("-----BEGIN PUBLIC KEY-----")
    key_file = tmp_path / "data" / "audit" / "audit_ed25519.pem"
    assert key_file.stat().st_mode & 0o777 == 0o600
    code, output, _ = vigil("audit", "export", *c, "--out", str(tmp_path / "bundle"))
    assert code == 0 and "exported" in output
    code, output, _ = vigil("audit", "verify", "--bundle", str(tmp_path / "bundle"), "--pubkey", str(pem))
    assert code == 0 and "audit chain ok" in output

    engine = create_engine(f"sqlite:///{tmp_path / 'data' / 'vigil.db'}")
    with superuser_tampering(engine) as conn:  # someone with the database file hides who approved
        conn.execute(text("UPDATE audit_log SET actor = 'nobody' WHERE action = 'authorisation.approve'"))
        seq = conn.execute(text("SELECT seq FROM audit_log WHERE action = 'authorisation.approve'")).scalar_one()
    engine.dispose()
    code, output, _ = vigil("audit", "verify", *c, "--pubkey", str(pem))
    assert code == 1 and f"BROKEN at entry {seq}" in output and "edited" in output
