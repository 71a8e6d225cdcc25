"""Transparency report and DPIA draft, rendered from a populated store, audit log and configuration."""

from __future__ import annotations

import re
from datetime import timedelta
from html.parser import HTMLParser

import pytest
import yaml
from typer.testing import CliRunner

from vigil.config import load_config
from vigil.governance.evidence_commands import report_app
from vigil.governance.report import audit_counts, authorisation_counts, render_dpia, render_transparency_report
from vigil.governance.service import open_governance
from vigil.store.db import open_store, utcnow
from vigil.store.schema import EventRow

PASSWORD = "correct horse battery"
CONFIG = {
    "data_dir": "data",
    "retention": {"continuous_hours": 168, "events_hours": 2160},
    "recognition": {"plates": {"read_retention_hours": 48}},
    "cameras": [
        {"id": "station-east", "name": "Station <east> entrance", "url": "rtsp://u:pw4711@10.0.0.5/s",
         "purpose": "Crime prevention & public safety <script>alert(1)</script>", "lat": 51.5, "lon": -0.12,
         "privacy_masks": [[[0, 0], [100, 0], [100, 50]]], "recording": {"mode": "continuous"},
         "recognition": {"faces": True}},
        {"id": "ring-road", "url": "rtsp://cam/ring", "purpose": "Traffic management",
         "recognition": {"plates": True}, "recording": {"mode": "events"}},
    ],
}


@pytest.fixture
def populated(tmp_path):
    path = tmp_path / "vigil.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    config = load_config(path)
    store = open_store(config.store.database, data_dir=config.data_dir)
    gov = open_governance(store, config.data_dir, checkpoint_every=5)
    gov.users.create("ines", PASSWORD, "investigator", "admin", cameras=["*"])
    gov.users.create("sam", PASSWORD, "supervisor", "admin", cameras=["*"])
    now = utcnow()
    window = {"valid_from": now - timedelta(hours=1), "valid_until": now + timedelta(days=2)}
    a1 = gov.authorisations.request("ines", legal_basis="s.32 order", case_ref="C-1", purpose="robbery",
                                    features=["face_search"], cameras=["station-east"], **window)
    gov.authorisations.approve(a1.id, "sam")
    a2 = gov.authorisations.request("ines", legal_basis="none", case_ref="C-2", purpose="curiosity",
                                    features=["person_search"], cameras=["*"], **window)
    gov.authorisations.deny(a2.id, "sam", "no legal basis")
    for action in ("search", "search", "search.face", "search.plate", "video.playback"):
        gov.audit.append("ines", action, "camera:station-east", purpose="C-1")
    with store.session() as s:
        for i in range(12):
            kind = ("face_match", "line_cross", "loitering")[i % 3]
            s.add(EventRow(id=f"e{i}", kind=kind, camera_id="station-east", at=now - timedelta(days=i % 4, hours=1),
                           severity="high" if kind == "face_match" else "info"))
    yield path, config, store, gov, now
    store.close()


def test_counts_from_audit_and_authorisations(populated):
    _, _, _, gov, now = populated
    start, end = now - timedelta(days=7), now + timedelta(minutes=1)
    groups = audit_counts(gov, start, end)
    assert dict(groups["searches"]) == {"search": 2, "search.face": 1, "search.plate": 1}
    assert groups["video"]["video.playback"] == 1
    counts = authorisation_counts(gov, start, end)
    assert counts["requested"] == 2 and counts["approved"] == 1 and counts["denied"] == 1
    assert counts["active now"] == 1 and counts["revoked"] == 0


def test_transparency_report_is_self_contained_escaped_html(populated):
    _, config, store, gov, now = populated
    html = render_transparency_report(config, store, gov, now - timedelta(days=7), now + timedelta(minutes=1))
    HTMLParser().feed(html)  # parses
    assert "<script>" not in html and "&lt;script&gt;" in html and "Station &lt;east&gt; entrance" in html
    assert "pw4711" not in html  # camera URLs (with credentials) are never shown
    assert html.count("<svg") == 1
    assert not re.search(r"""<(link|script|img|iframe)\b|(src|href)=["']?https?:""", html)  # nothing from elsewhere
    for text in ("Traffic management", "face recognition", "plate recognition", "search.face", "face_match",
                 "Audit chain", "verified", "Plate reads (not on a hotlist)", "48 h", "168 h"):
        assert text in html, text
    assert re.search(r"<td>face_match</td><td class=\"num\">4</td>", html)


def test_report_shows_a_broken_audit_chain(populated):
    from sqlalchemy import update

    from tests.support import superuser_tampering
    from vigil.governance.schema import AuditRow

    _, config, store, gov, now = populated
    with superuser_tampering(store.engine) as conn:
        conn.execute(update(AuditRow).where(AuditRow.seq == 3).values(actor="mallory"))
    html = render_transparency_report(config, store, gov, now - timedelta(days=7), now + timedelta(minutes=1))
    assert "BROKEN" in html and "at entry 3" in html


def test_dpia_is_prefilled_from_the_config(populated):
    _, config, _, _, _ = populated
    text = render_dpia(config)
    for expected in ("Crime prevention", "Traffic management", "| station-east |", "51.50000, -0.12000",
                     "live matching on cameras station-east", "| continuous video | 168 hours (7 days) |",
                     "| plate reads not on a hotlist | 48 hours (2 days) |", "not stored",
                     "privacy masks blacked out before analysis on station-east", "four-eyes"):
        assert expected in text, expected
    assert "pw4711" not in text


def test_cli_writes_the_report_and_audits_it(populated, tmp_path):
    path, _, _, gov, _ = populated
    out = tmp_path / "report.html"
    result = CliRunner().invoke(report_app, ["transparency", "-c", str(path), "--from", "2020-01-01", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("<!doctype html>")
    assert gov.audit.entries(action="report.transparency", limit=1)
    dpia = tmp_path / "dpia.md"
    assert CliRunner().invoke(report_app, ["dpia", "-c", str(path), "-o", str(dpia)]).exit_code == 0
    assert dpia.read_text().startswith("# Data Protection Impact Assessment")
