"""CLI sub-commands ``export`` (redacted case exports) and ``report`` (transparency, compliance, DPIA).

Mounted by ``vigil.cli``: ``app.add_typer(export_app, name="export")`` and ``app.add_typer(report_app, name="report")``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from vigil.governance.commands import ConfigOption, _time, console_actor, governance
from vigil.governance.errors import GovernanceError

export_app = typer.Typer(help="Redacted evidence exports.", no_args_is_help=True)
report_app = typer.Typer(help="Transparency report, retention compliance and DPIA draft.", no_args_is_help=True)

out = Console()


def _box(text: str) -> tuple[float, float, float, float]:
    try:
        x1, y1, x2, y2 = (float(v) for v in text.split(","))
    except ValueError:
        raise GovernanceError(f"--subject-box: expected x1,y1,x2,y2 in pixels, not {text!r}") from None
    if x2 <= x1 or y2 <= y1:
        raise GovernanceError(f"--subject-box: {text!r} is empty (x2 must exceed x1, y2 exceed y1)")
    return x1, y1, x2, y2


def _day(text: str, option: str) -> datetime:
    """A date (whole UTC day start) or an ISO time with zone."""
    if len(text) == 10:
        try:
            return datetime.fromisoformat(text).replace(tzinfo=UTC)
        except ValueError:
            pass
    value = _time(text, option)
    if value.tzinfo is None:
        raise GovernanceError(f"{option}: {text!r} needs a time zone (e.g. 2026-01-15T09:00:00Z) or use a date")
    return value


@export_app.command("case")
def export_case_command(
    config_path: Path = ConfigOption,
    case_id: str = typer.Option(..., "--case", help="Case reference."),
    actor: str = typer.Option(..., "--as", help="Requesting user (needs the export permission)."),
    camera_id: str = typer.Option(..., "--camera"),
    start: str = typer.Option(..., "--from", help="ISO time with zone."),
    end: str = typer.Option(..., "--to", help="ISO time with zone (exclusive)."),
    out_dir: Path = typer.Option(..., "-o", "--out", help="Folder to write the export into (new or empty)."),
    subject_box: str = typer.Option(None, "--subject-box", help="Subject's box x1,y1,x2,y2 at --subject-at."),
    subject_at: str = typer.Option(None, "--subject-at", help="When the subject is in that box (default --from)."),
    subject_track: int = typer.Option(None, "--subject-track", help="A stored track id on the camera instead."),
    authorisation: int = typer.Option(None, "--authorisation", help="Authorisation id the export runs under."),
    require_authorisation: bool = typer.Option(False, "--require-authorisation",
                                               help="Refuse without an active authorisation."),
    reason: str = typer.Option("", "--reason"),
) -> None:
    """Export a camera's range for a case with every face and plate blurred except the subject's."""
    from vigil.config import load_config
    from vigil.governance.evidence import CaseRequest, ExportTools, export_case, seed_from_track
    from vigil.governance.redaction import SubjectSeed
    from vigil.store.events import EventStore
    from vigil.store.recordings import RecordingIndex

    config = load_config(config_path)
    camera = config.camera(camera_id)
    t0, t1 = _time(start, "--from"), _time(end, "--to")
    with governance(config_path) as gov:
        subject = None
        if subject_track is not None:
            subject = seed_from_track(EventStore(gov.store), camera_id, subject_track, t0, t1)
        elif subject_box is not None:
            subject = SubjectSeed(_time(subject_at, "--subject-at") if subject_at else t0, _box(subject_box))
        request = CaseRequest(case_id, camera_id, t0, t1, subject, reason, authorisation)
        tools = ExportTools.load(config)
        index = RecordingIndex(gov.store, config.data_dir)
        result = export_case(gov, index, gov.users.get(actor), request, out_dir, tools, camera,
                             require_authorisation=require_authorisation, tracker_config=config.tracker)
    redacted = ", ".join(f"{n} {k}" for k, n in sorted(result.redacted.items())) or "nothing"
    out.print(f"exported case {case_id}: {result.frames} frames ({result.subject_frames} with the subject), "
              f"redacted {redacted}; audit entry {result.audit_seq}; {result.out_dir}")


@export_app.command("verify")
def export_verify(export_dir: Path = typer.Argument(..., help="An export folder."),
                  config_path: Path = typer.Option(None, "-c", "--config",
                                                   help="Also check the audit entry in this installation's log.")
                  ) -> None:
    """Check every file's sha256 and the export's audit entry (exit code 1 on any problem)."""
    from vigil.governance.evidence import verify_export

    if config_path is None:
        check = verify_export(export_dir)
    else:
        with governance(config_path) as gov:
            check = verify_export(export_dir, gov.audit)
    if check.ok:
        scope = "files and audit entry" if config_path else "files (no -c: audit entry not checked)"
        out.print(f"[green]export ok[/]: {scope}, audit entry {check.audit_seq}")
        return
    for problem in check.problems:
        out.print(f"[bold red]problem[/]: {problem}", highlight=False)
    raise typer.Exit(1)


@report_app.command("compliance")
def report_compliance(config_path: Path = ConfigOption,
                      as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """Each data class against its retention limit; exit code 1 when anything is held beyond it."""
    from vigil.config import load_config
    from vigil.governance.compliance import check_compliance

    config = load_config(config_path)
    with governance(config_path) as gov:
        report = check_compliance(config, gov.store, governance=gov)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        table = Table("data class", "items", "oldest (UTC)", "limit", "beyond limit", "held", "note")
        for c in report.classes:
            limit = "none" if c.limit_hours is None else "not stored" if c.limit_hours == 0 else f"{c.limit_hours:g} h"
            table.add_row(c.label, str(c.items), f"{c.oldest:%Y-%m-%d %H:%M}" if c.oldest else "-", limit,
                          f"[bold red]{c.over_limit}[/]" if c.over_limit else "0", str(c.held), c.note)
        out.print(table)
        out.print("[green]compliant[/]" if report.ok else "[bold red]NOT compliant[/]: items held beyond their limit")
    if not report.ok:
        raise typer.Exit(1)


@report_app.command("transparency")
def report_transparency(config_path: Path = ConfigOption,
                        start: str = typer.Option(None, "--from", help="Date or ISO time (default: 30 days ago)."),
                        end: str = typer.Option(None, "--to", help="Date or ISO time, exclusive (default: now)."),
                        output: Path = typer.Option(Path("transparency-report.html"), "-o", "--out")) -> None:
    """Write the transparency report (self-contained HTML)."""
    from vigil.config import load_config
    from vigil.governance.report import render_transparency_report
    from vigil.store.db import utcnow

    config = load_config(config_path)
    t1 = _day(end, "--to") if end else utcnow()
    t0 = _day(start, "--from") if start else t1 - timedelta(days=30)
    if t1 <= t0:
        raise GovernanceError(f"--to {t1.isoformat()} is not after --from {t0.isoformat()}")
    with governance(config_path) as gov:
        html = render_transparency_report(config, gov.store, gov, t0, t1)
        gov.audit.append(console_actor(), "report.transparency", f"file:{output}",
                         details={"from": t0.isoformat(), "to": t1.isoformat()})
    output.write_text(html)
    out.print(f"wrote {output} ({len(html) // 1024} KiB)")


@report_app.command("dpia")
def report_dpia(config_path: Path = ConfigOption,
                output: Path = typer.Option(Path("dpia-draft.md"), "-o", "--out")) -> None:
    """Write a DPIA draft (Markdown) pre-filled from the configuration."""
    from vigil.config import load_config
    from vigil.governance.report import render_dpia

    output.write_text(render_dpia(load_config(config_path)))
    out.print(f"wrote {output}")
