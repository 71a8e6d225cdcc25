"""The accountability pages in headless Chromium against the real app and pipeline (see conftest): authorisations
with four-eyes approval, the audit log with its chain status, reports, and the auditor's lack of video."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.browser.conftest import wait_until

pytestmark = pytest.mark.browser
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@contextmanager
def _client(centre, username: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=centre.url, timeout=20) as client:
        login = {"username": username, "password": centre.password}
        client.headers["Authorization"] = f"Bearer {client.post('/api/auth/login', json=login).json()['token']}"
        yield client


def _case() -> str:
    return f"CASE-{uuid.uuid4().hex[:6].upper()}"


def _keep(shot, page, name: str) -> None:
    """Screenshot to test-artifacts and docs/screenshots/<name>.png."""
    path = shot(page, name)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, SCREENSHOTS / f"{name}.png")


def _fill_request(page, case: str, features: list[str]) -> None:
    page.click("#new-request")  # waits until the page shows it (the user may request)
    page.fill("#r-case", case)
    page.fill("#r-basis", "Police Act 2026 s.12, warrant W-77")
    page.fill("#r-purpose", "Trace a missing person last seen at the campus junction")
    for feature in features:
        page.check(f"#r-features input[value='{feature}']")
    page.click("#r-submit")


def test_supervisor_approves_an_investigators_request(page_as, centre, shot) -> None:
    case = _case()
    investigator = page_as("investigator")
    investigator.goto("/authorisations")
    investigator.wait_for_selector("#new-request", state="visible")
    _fill_request(investigator, case, ["face_search", "person_search"])
    row = f"#auth-rows tr[data-case='{case}']"
    investigator.wait_for_selector(f"{row}[data-state='requested']")
    assert investigator.locator(f"{row} button[data-action='approve']").count() == 0  # not theirs to approve
    assert investigator.locator(f"{row} button[data-action='revoke']").count() == 1  # but theirs to withdraw

    supervisor = page_as("supervisor")
    supervisor.goto("/authorisations")
    supervisor.click(f"{row} button[data-action='approve']")
    supervisor.wait_for_selector(f"{row}[data-state='active']")
    assert supervisor.text_content(f"{row} td.state") == "active"
    assert "approved by supervisor" in supervisor.text_content(row)
    assert "ends in" in supervisor.text_content(f"{row} td.window")
    investigator.reload()
    investigator.wait_for_selector(f"{row}[data-state='active']")


def test_self_approval_is_refused_with_the_four_eyes_message(page_as, centre, shot) -> None:
    case = _case()
    supervisor = page_as("supervisor")
    supervisor.goto("/authorisations")
    _fill_request(supervisor, case, ["plate_hotlist"])
    row = f"#auth-rows tr[data-case='{case}']"
    supervisor.wait_for_selector(f"{row}[data-state='requested']")
    supervisor.click(f"{row} button[data-action='approve']")
    supervisor.wait_for_selector(f"{row}.refused .row-note")
    banner = supervisor.text_content("#auth-error")
    assert "four-eyes rule: 'supervisor' requested authorisation" in banner
    assert "another supervisor must" in supervisor.text_content(f"{row} .row-note")
    assert supervisor.get_attribute(row, "data-state") == "requested"
    _keep(shot, supervisor, "authorisations")


def test_auditor_sees_the_audit_log_verified_and_reports(page_as, centre, shot) -> None:
    case = _case()
    now = datetime.now(UTC)
    with _client(centre, "investigator") as inv, _client(centre, "supervisor") as sup:
        made = inv.post("/api/authorisations", json={
            "legal_basis": "Court order 42", "case_ref": case, "purpose": "identify an assault suspect",
            "features": ["face_search"], "cameras": [centre.camera], "valid_from": now.isoformat(),
            "valid_until": (now + timedelta(days=2)).isoformat()}).json()
        assert sup.post(f"/api/authorisations/{made['id']}/approve", json={"note": "order checked"}).status_code == 200
        assert inv.post("/api/holds", json={"case_id": case, "reason": "assault at the junction",
                                            "camera_id": centre.camera, "start": (now - timedelta(hours=1)).isoformat(),
                                            "end": now.isoformat()}).status_code == 201

    auditor = page_as("auditor")
    auditor.goto("/audit")
    auditor.wait_for_selector("#chain-status[data-ok='true']")
    assert "Audit chain verified" in auditor.text_content("#chain-status")
    auditor.wait_for_selector("#audit-rows tr")
    auditor.fill("#f-object", f"authorisation:{made['id']}")
    auditor.click("#f-apply")
    expected = ["authorisation.approve supervisor", "authorisation.request investigator"]
    shown = "() => [...document.querySelectorAll('#audit-rows tr')].map(r => r.dataset.action + ' ' + r.dataset.actor)"
    # the filtered page replaces the unfiltered one: wait for it rather than for a row both pages have
    compact = json.dumps(json.dumps(expected, separators=(",", ":")))  # as JSON.stringify writes it
    wait_until(auditor, f"JSON.stringify(({shown})()) === {compact}")
    assert auditor.evaluate(shown) == expected
    assert case in auditor.text_content("#audit-rows")
    auditor.click("#f-clear")
    auditor.wait_for_selector("#audit-rows tr[data-action='evidence.hold']")
    _keep(shot, auditor, "audit")
    with auditor.expect_download() as download:
        auditor.click("#export")
    assert download.value.suggested_filename.startswith("vigil-audit-")

    auditor.goto("/reports")
    frame = auditor.frame_locator("#report-frame")
    frame.locator("h1", has_text="Transparency report").wait_for()
    assert frame.locator("text=verified").count() >= 1
    auditor.wait_for_selector("#compliance-rows tr[data-class='continuous']")
    assert auditor.locator("#compliance-rows tr").count() >= 7
    assert auditor.get_attribute("#dpia-html", "href") == "/api/reports/dpia?format=html"
    _keep(shot, auditor, "report")


def test_auditors_nav_has_no_video_and_video_is_refused(page_as, centre) -> None:
    auditor = page_as("auditor")
    auditor.goto("/audit")
    auditor.wait_for_selector("#nav-user")
    links = auditor.eval_on_selector_all("nav a.link", "links => links.map(a => a.getAttribute('href'))")
    assert {"/audit", "/reports", "/authorisations", "/holds"} <= set(links)
    assert not {"/live", "/search", "/admin/cameras"} & set(links)
    answer = auditor.evaluate("""async (camera) => {
        const r = await fetch(`/api/cameras/${camera}/snapshot.jpg`, {credentials: "same-origin"});
        return [r.status, (await r.json()).detail];
    }""", centre.camera)
    assert answer[0] == 403 and "does not allow video" in answer[1]
    auditor.goto("/holds")
    wait_until(auditor, "document.querySelector('#hold-count').textContent !== ''")
    assert auditor.is_hidden("#hold-panel")  # may look, not place or release
    assert auditor.locator("#hold-rows button[data-action='release']").count() == 0
