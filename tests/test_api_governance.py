"""The accountability API (authorisations, audit log, reports, evidence holds) on a real uvicorn server, a real
SQLite store and real governance users: permissions per role, four-eyes, audit filters, verification, the
exported bundle checked with ``verify_bundle``, holds with and without a required authorisation."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support import governance_with_users
from tests.support import login as signed_in
from vigil.api.app import create_app
from vigil.api.deps import LoginThrottle
from vigil.api.server import serve_in_thread
from vigil.assembly import open_services
from vigil.config import GovernanceConfig, load_config
from vigil.governance.audit import verify_bundle
from vigil.governance.compliance import LABELS

PASSWORD = "correct horse 1"
CONFIG = {
    "data_dir": "data",
    "cameras": [
        {"id": "cam-a", "url": "a.mp4", "name": "North gate", "fps": 5, "purpose": "traffic safety"},
        {"id": "cam-b", "url": "b.mp4", "name": "South gate", "fps": 5},
    ],
}
USERS = (("admin", "admin", ["*"]), ("op", "operator", ["cam-a"]), ("sup", "supervisor", ["*"]),
         ("sup2", "supervisor", ["*"]), ("aud", "auditor", ["*"]), ("inv", "investigator", ["cam-a"]))


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("api-gov")
    config_path = folder / "vigil.yaml"
    config_path.write_text(yaml.safe_dump(CONFIG, sort_keys=False))
    config = load_config(config_path)
    services = open_services(config).start()
    governance = governance_with_users(services, USERS, PASSWORD)
    common = {"users": governance.users, "audit": governance.audit, "authorisations": governance.authorisations,
              "throttle": LoginThrottle(max_failures=1000)}
    server = serve_in_thread(create_app(config, services, config_path=config_path, **common))
    strict = config.model_copy(update={"governance": GovernanceConfig(require_authorisation_for=["evidence_hold"])})
    strict_server = serve_in_thread(create_app(strict, services, **common))
    yield {"url": server.url, "strict_url": strict_server.url, "governance": governance, "services": services}
    strict_server.stop()
    server.stop()
    services.close()


def login(env, username: str, url_key: str = "url") -> httpx.Client:
    return signed_in(env[url_key], username, PASSWORD)


def window(hours: float = 2, start_in: float = -1) -> dict[str, str]:
    start = datetime.now(UTC) + timedelta(hours=start_in)
    return {"valid_from": start.isoformat(), "valid_until": (start + timedelta(hours=hours)).isoformat()}


def request_body(case: str, cameras: list[str] | None = None, features: list[str] | None = None) -> dict:
    return {"legal_basis": "Police Act s.12", "case_ref": case, "purpose": "find a missing person",
            "features": features or ["live_face_match"], "cameras": cameras or ["cam-a"], **window()}


# ---------------------------------------------------------------------- permissions

#: (method, path, body) → roles allowed (the others get 403 before any body validation)
MATRIX = [
    ("GET", "/api/authorisations", None, {"admin", "sup", "sup2", "aud", "inv"}),
    ("POST", "/api/authorisations", {}, {"sup", "sup2", "inv"}),
    ("POST", "/api/authorisations/999999/approve", {}, {"sup", "sup2"}),
    ("POST", "/api/authorisations/999999/deny", {}, {"sup", "sup2"}),
    ("POST", "/api/authorisations/999999/revoke", {}, {"sup", "sup2", "inv"}),
    ("GET", "/api/audit", None, {"aud"}),
    ("GET", "/api/audit/verify", None, {"aud"}),
    ("GET", "/api/audit/export", None, {"aud"}),
    ("GET", "/api/audit/pubkey", None, {"admin", "op", "sup", "sup2", "aud", "inv"}),
    ("GET", "/api/reports/transparency", None, {"sup", "sup2", "aud"}),
    ("GET", "/api/reports/compliance", None, {"sup", "sup2", "aud"}),
    ("GET", "/api/reports/dpia", None, {"sup", "sup2", "aud"}),
    ("GET", "/api/holds", None, {"sup", "sup2", "aud", "inv"}),
    ("POST", "/api/holds", {}, {"sup", "sup2", "inv"}),
    ("DELETE", "/api/holds/999999", None, {"sup", "sup2", "inv"}),
]


def test_permissions_per_role_on_every_new_route(env) -> None:
    clients = {name: login(env, name) for name, _, _ in USERS}
    for method, path, body, allowed in MATRIX:
        for name, client in clients.items():
            response = client.request(method, path, json=body)
            if name in allowed:
                assert response.status_code != 403, (method, path, name, response.text)
                assert response.status_code < 500, (method, path, name, response.text)
            else:
                assert response.status_code == 403, (method, path, name, response.status_code)
                assert name in response.json()["detail"], response.json()
    assert httpx.get(env["url"] + "/api/audit").status_code == 401  # and nothing without a session


def test_auditor_uses_audit_reports_and_page_data_but_sees_no_video(env) -> None:
    aud = login(env, "aud")
    for path in ("/api/audit", "/api/audit/verify", "/api/reports/compliance", "/api/reports/dpia",
                 "/api/authorisations", "/api/holds", "/api/cameras"):
        assert aud.get(path).status_code == 200, path
    for path in ("/api/cameras/cam-a/snapshot.jpg", "/api/cameras/cam-a/live.mjpg",
                 "/api/recordings/cam-a/playlist.m3u8?from=2026-01-15T09:00:00Z&to=2026-01-15T10:00:00Z"):
        response = aud.get(path)
        assert response.status_code == 403, path
        assert "does not allow video" in response.json()["detail"]
    for path in ("/authorisations", "/audit", "/reports", "/holds"):
        page = aud.get(path)
        assert page.status_code == 200 and "<html" in page.text, path
        assert httpx.get(env["url"] + path, follow_redirects=False).status_code == 303  # login first


# ---------------------------------------------------------------------- authorisations

def test_request_approve_four_eyes_and_revoke(env) -> None:
    inv, sup, sup2 = login(env, "inv"), login(env, "sup"), login(env, "sup2")
    made = inv.post("/api/authorisations", json=request_body("CASE-1"))
    assert made.status_code == 201, made.text
    auth = made.json()
    assert auth["state"] == "requested" and auth["requester"] == "inv" and auth["watchlist_entries"] == ["*"]

    approved = sup.post(f"/api/authorisations/{auth['id']}/approve", json={"note": "checked warrant"})
    assert approved.status_code == 200, approved.text
    assert approved.json()["state"] == "active" and approved.json()["approver"] == "sup"
    again = sup2.post(f"/api/authorisations/{auth['id']}/deny", json={"reason": "late"})
    assert again.status_code == 409 and "not awaiting a decision" in again.json()["detail"]
    assert [a["id"] for a in sup.get("/api/authorisations", params={"state": "active"}).json()] == [auth["id"]]

    own = sup.post("/api/authorisations", json=request_body("CASE-2", ["*"], ["face_search", "plate_hotlist"]))
    assert own.status_code == 201, own.text
    refused = sup.post(f"/api/authorisations/{own.json()['id']}/approve")
    assert refused.status_code == 403
    assert refused.json()["detail"].startswith("four-eyes rule: 'sup' requested authorisation")
    denied = sup2.post(f"/api/authorisations/{own.json()['id']}/deny", json={"reason": "no legal basis"})
    assert denied.json()["state"] == "denied"

    assert inv.post(f"/api/authorisations/{auth['id']}/revoke", json={"reason": "case closed"}).json()["state"] \
        == "revoked"
    assert sup.post("/api/authorisations/999999/approve").status_code == 404
    logged = login(env, "aud").get("/api/audit", params={"object": f"authorisation:{auth['id']}"}).json()["items"]
    actions = [e["action"] for e in logged]
    assert actions == ["authorisation.revoke", "authorisation.deny_refused", "authorisation.approve",
                       "authorisation.request"]


def test_bad_authorisation_requests_get_a_clear_4xx(env) -> None:
    inv = login(env, "inv")
    base = request_body("C")
    cases = [
        ({**request_body("C"), "features": ["mind_reading"]}, 422, "features.0"),
        ({**base, "valid_until": base["valid_from"]}, 422, "valid_until must be after"),
        ({**request_body("C"), **window(start_in=-5)}, 422, "the window ends in the past"),
        ({**request_body("C"), "legal_basis": ""}, 422, "legal_basis"),
        ({**request_body("C"), "colour": "red"}, 422, "colour"),
        (request_body("C", ["cam-x"]), 422, "no camera 'cam-x'"),
        (request_body("C", ["cam-b"]), 403, "no access to camera 'cam-b'"),
        (request_body("C", ["*"]), 403, "every camera"),
    ]
    for body, status, words in cases:
        response = inv.post("/api/authorisations", json=body)
        assert response.status_code == status, (body, response.text)
        assert words in response.json()["detail"], response.json()
    bogus = inv.get("/api/authorisations", params={"state": "bogus"})
    assert bogus.status_code == 422 and "unknown state 'bogus'" in bogus.json()["detail"]
    assert login(env, "sup").post("/api/authorisations/1/deny", json={}).status_code == 422  # reason required


# ---------------------------------------------------------------------- audit log

def test_audit_filters_paging_verify_and_export_bundle(env, tmp_path: Path) -> None:
    aud, inv = login(env, "aud"), login(env, "inv")
    inv.post("/api/authorisations", json=request_body("CASE-AUDIT"))
    everything = aud.get("/api/audit", params={"limit": 500}).json()["items"]
    seqs = [e["seq"] for e in everything]
    assert seqs == sorted(seqs, reverse=True) and len(seqs) >= 8

    mine = aud.get("/api/audit", params={"actor": "inv", "action": "authorisation.request"}).json()["items"]
    assert mine and all(e["actor"] == "inv" and e["action"] == "authorisation.request" for e in mine)
    assert mine[0]["purpose"] == "CASE-AUDIT" and mine[0]["details"]["cameras"] == ["cam-a"]
    users = aud.get("/api/audit", params={"object": "user:", "action": "user.create"}).json()["items"]
    assert sorted(e["object"] for e in users) == sorted(f"user:{name}" for name, _, _ in USERS)

    first = aud.get("/api/audit", params={"limit": 3}).json()
    second = aud.get("/api/audit", params={"limit": 3, "before_seq": first["next_before_seq"]}).json()
    assert [e["seq"] for e in first["items"] + second["items"]] == seqs[:6]
    middle = everything[len(everything) // 2]["at"]
    older = aud.get("/api/audit", params={"to": middle, "limit": 500}).json()["items"]
    newer = aud.get("/api/audit", params={"from": middle, "limit": 500}).json()["items"]
    assert len(older) + len(newer) == len(everything) and all(e["at"] < middle for e in older)
    assert aud.get("/api/audit", params={"limit": 0}).status_code == 422
    assert aud.get("/api/audit", params={"from": middle, "to": middle}).status_code == 422

    verdict = aud.get("/api/audit/verify").json()
    assert verdict["ok"] and verdict["first_bad_seq"] is None and verdict["entries"] == verdict["head_seq"]

    exported = aud.get("/api/audit/export")
    assert exported.status_code == 200 and exported.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(exported.content)) as archive:
        assert sorted(archive.namelist()) == ["checkpoints.jsonl", "entries.jsonl", "manifest.json", "public_key.pem"]
        archive.extractall(tmp_path)
    pem = aud.get("/api/audit/pubkey").text
    assert pem.startswith("-----BEGIN PUBLIC KEY-----")
    bundle = verify_bundle(tmp_path, pem.encode())
    assert bundle.ok and bundle.entries > len(everything), bundle
    assert aud.get("/api/audit", params={"action": "audit.export"}).json()["items"][0]["actor"] == "aud"
    edited = (tmp_path / "entries.jsonl").read_text().replace('"actor":"inv"', '"actor":"sup"', 1)
    (tmp_path / "entries.jsonl").write_text(edited.replace('"actor": "inv"', '"actor": "sup"', 1))
    assert not verify_bundle(tmp_path, pem.encode()).ok  # a tampered bundle fails


# ---------------------------------------------------------------------- reports

def test_reports_transparency_compliance_and_dpia(env) -> None:
    aud = login(env, "aud")
    report = aud.get("/api/reports/transparency", params={"from": "2026-01-01T00:00:00Z"})
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    assert "Transparency report" in report.text and "cam-a" in report.text and "verified" in report.text
    assert aud.get("/api/reports/transparency", params={"from": "2026-01-02T00:00:00Z",
                                                         "to": "2026-01-01T00:00:00Z"}).status_code == 422

    compliance = aud.get("/api/reports/compliance").json()
    assert set(compliance) == {"at", "ok", "classes"} and isinstance(compliance["ok"], bool)
    assert {c["class"] for c in compliance["classes"]} == set(LABELS)
    for item in compliance["classes"]:
        assert set(item) == {"class", "label", "items", "oldest", "limit_hours", "over_limit", "held", "examples",
                             "note", "ok"}

    markdown = aud.get("/api/reports/dpia")
    assert markdown.headers["content-type"].startswith("text/markdown")
    assert markdown.text.startswith("# Data Protection Impact Assessment") and "traffic safety" in markdown.text
    html = aud.get("/api/reports/dpia", params={"format": "html"})
    assert "<h1>Data Protection Impact Assessment" in html.text and "<table>" in html.text
    assert aud.get("/api/reports/dpia", params={"format": "pdf"}).status_code == 422
    assert aud.get("/api/audit", params={"action": "report.view"}).json()["items"][0]["object"] \
        == "report:transparency"


# ---------------------------------------------------------------------- evidence holds

def hold_body(case: str, camera: str | None = "cam-a") -> dict:
    return {"case_id": case, "reason": "assault on 14 Jan", "camera_id": camera,
            "start": "2026-01-14T20:00:00Z", "end": "2026-01-14T22:00:00"}  # naive: UTC


def test_holds_create_list_release_and_audit(env) -> None:
    inv, sup, aud = login(env, "inv"), login(env, "sup"), login(env, "aud")
    made = inv.post("/api/holds", json=hold_body("CASE-H"))
    assert made.status_code == 201, made.text
    hold = made.json()
    assert hold["created_by"] == "inv" and hold["end"].startswith("2026-01-14T22:00:00")
    assert hold["id"] in [h["id"] for h in aud.get("/api/holds").json()]
    assert [h.id for h in env["services"].retention.holds()].count(hold["id"]) == 1  # what retention obeys

    for body, status, words in ((hold_body("C", "cam-b"), 403, "no access to camera 'cam-b'"),
                                (hold_body("C", None), 403, "every camera"),
                                (hold_body("C", "cam-x"), 422, "no camera 'cam-x'"),
                                ({**hold_body("C"), "end": "2026-01-14T19:00:00Z"}, 422, "end must be after start"),
                                ({**hold_body("C"), "case_id": ""}, 422, "case_id")):
        response = inv.post("/api/holds", json=body)
        assert response.status_code == status, (body, response.text)
        assert words in response.json()["detail"]

    everywhere = sup.post("/api/holds", json=hold_body("CASE-ALL", None)).json()
    assert everywhere["camera_id"] is None
    assert inv.delete(f"/api/holds/{everywhere['id']}").status_code == 403  # not theirs
    assert sup.delete(f"/api/holds/{everywhere['id']}").status_code == 204
    assert inv.delete(f"/api/holds/{hold['id']}").status_code == 204  # their own
    assert inv.delete(f"/api/holds/{hold['id']}").status_code == 404
    entries = aud.get("/api/audit", params={"object": f"hold:{hold['id']}"}).json()["items"]
    assert [e["action"] for e in entries] == ["evidence.hold_release", "evidence.hold"]
    assert entries[1]["purpose"] == "CASE-H" and entries[1]["details"]["camera"] == "cam-a"


def test_holds_need_an_active_authorisation_when_configured(env) -> None:
    inv, sup = login(env, "inv", "strict_url"), login(env, "sup", "strict_url")
    refused = inv.post("/api/holds", json=hold_body("CASE-S"))
    assert refused.status_code == 403
    assert "no active authorisation for case 'CASE-S' covering camera 'cam-a'" in refused.json()["detail"]

    auth = inv.post("/api/authorisations", json=request_body("CASE-S", features=["plate_hotlist"])).json()
    assert inv.post("/api/holds", json=hold_body("CASE-S")).status_code == 403  # requested, not approved
    assert sup.post(f"/api/authorisations/{auth['id']}/approve").json()["state"] == "active"
    assert inv.post("/api/holds", json=hold_body("CASE-OTHER")).status_code == 403  # another case
    made = inv.post("/api/holds", json=hold_body("CASE-S"))
    assert made.status_code == 201, made.text
    aud = login(env, "aud")
    logged = aud.get("/api/audit", params={"object": f"hold:{made.json()['id']}"}).json()["items"][0]
    assert logged["details"]["authorisation"] == auth["id"]
    refusals = aud.get("/api/audit", params={"action": "evidence.hold_refused", "actor": "inv"}).json()["items"]
    assert len(refusals) == 3 and "CASE-S" in refusals[-1]["details"]["reason"]
