"""Accountability: ``/api/authorisations``, ``/api/audit``, ``/api/reports`` and ``/api/holds`` (evidence holds).

Thin over ``vigil.governance``: the library audits authorisation changes and audit exports itself; this router
audits evidence holds and report views. Permissions:
- authorisations: list ``authorisation.read``; request and revoke ``authorisation.request`` (the library lets only
  the requester or a supervisor revoke); approve and deny ``authorisation.approve`` (four-eyes refusals are 403);
- audit log, verification, bundle export: ``audit.read`` (the public key: any signed-in user);
- reports: ``reports.read``;
- evidence holds: list ``export``, ``authorisation.approve`` or ``audit.read``; create ``export`` or
  ``authorisation.approve``; release ``authorisation.approve``, or the hold's creator. With ``evidence_hold`` in
  ``governance.require_authorisation_for``, a new hold needs an active authorisation for the same case covering
  its camera.
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from markdown_it import MarkdownIt

from vigil.api.deps import ApiState, DbId, DbIdQuery, api_state, require, require_any
from vigil.api.governance_schemas import (
    AuditEntryOut,
    AuditPageOut,
    AuthorisationIn,
    AuthorisationOut,
    DecisionIn,
    HoldIn,
    HoldOut,
    ReasonIn,
    VerifyOut,
)
from vigil.api.schemas import UtcTime
from vigil.governance.audit import AuditLog
from vigil.governance.authorisations import Authorisation
from vigil.governance.chain import AuditEntry
from vigil.governance.compliance import check_compliance
from vigil.governance.errors import AuthorisationError, PermissionDenied
from vigil.governance.report import render_dpia, render_transparency_report
from vigil.governance.service import Governance
from vigil.governance.users import ALL_CAMERAS, User
from vigil.store.db import utcnow
from vigil.store.retention import Hold

router = APIRouter(tags=["governance"])
T = TypeVar("T")
MAX_REPORT_DAYS = 400
HOLD_READERS = ("export", "authorisation.approve", "audit.read")
HOLD_MAKERS = ("export", "authorisation.approve")


def _audit_log(state: ApiState) -> AuditLog:
    if state.audit.audit is None:
        raise HTTPException(503, "no audit log is configured")
    return state.audit.audit


def _governance(state: ApiState) -> Governance:
    if state.authorisations is None:
        raise HTTPException(503, "no authorisation store is configured")
    return Governance(state.services.store, _audit_log(state), state.users, state.authorisations)


# ---------------------------------------------------------------------- authorisations

def _auth_out(auth: Authorisation, now: datetime) -> AuthorisationOut:
    return AuthorisationOut(
        id=auth.id, state=auth.state(now), requester=auth.requester, legal_basis=auth.legal_basis,  # type: ignore[arg-type]
        case_ref=auth.case_ref, purpose=auth.purpose, features=list(auth.features), cameras=list(auth.cameras),
        watchlist_entries=list(auth.watchlist_entries), valid_from=auth.valid_from, valid_until=auth.valid_until,
        approver=auth.approver, decided_at=auth.decided_at, decision_note=auth.decision_note,
        revoked_by=auth.revoked_by, revoked_at=auth.revoked_at, revoke_reason=auth.revoke_reason,
        created_at=auth.created_at)


def _decided(work: Callable[[], T]) -> T:
    """Run a library call; its refusals become 403 (permission, four-eyes), 404 (unknown id), 409 (wrong state)
    or 422 (invalid request), each with the library's sentence."""
    try:
        return work()
    except PermissionDenied as exc:
        raise HTTPException(403, str(exc)) from None
    except AuthorisationError as exc:
        text = str(exc)
        if text.startswith("no authorisation"):
            status = 404
        elif text.startswith("four-eyes"):
            status = 403
        elif text.startswith(("authorisation request", "unknown")) or "time zone" in text:
            status = 422
        else:
            status = 409
        raise HTTPException(status, text) from None


def _check_scope(state: ApiState, user: User, cameras: list[str]) -> list[str]:
    """Requested cameras must be known and granted to the requester ("*" only for users of every camera)."""
    wanted = list(dict.fromkeys(c.strip() for c in cameras))
    for camera_id in wanted:
        if camera_id == ALL_CAMERAS:
            if ALL_CAMERAS not in user.cameras:
                raise HTTPException(403, f"user {user.username!r} may not ask for every camera ('*'): "
                                         "name the cameras granted to them")
        elif state.camera(camera_id) is None:
            raise HTTPException(422, f"cameras: no camera {camera_id!r}")
        elif not user.sees_camera(camera_id):
            raise HTTPException(403, f"user {user.username!r} has no access to camera {camera_id!r}")
    return [ALL_CAMERAS] if ALL_CAMERAS in wanted else wanted


@router.get("/api/authorisations", response_model=list[AuthorisationOut])
def list_authorisations(state_: Annotated[str | None, Query(alias="state", max_length=20)] = None,
                        _user: User = Depends(require("authorisation.read")),
                        state: ApiState = Depends(api_state)) -> list[AuthorisationOut]:
    """Authorisations, newest first, optionally only those in ``state`` now
    (requested, approved, active, expired, denied, revoked)."""
    store = _governance(state).authorisations
    now = store.clock()
    found = _decided(lambda: store.list_authorisations(state_ or None, at=now))
    return [_auth_out(a, now) for a in found]


@router.post("/api/authorisations", response_model=AuthorisationOut, status_code=201)
def request_authorisation(body: AuthorisationIn, user: User = Depends(require("authorisation.request")),
                          state: ApiState = Depends(api_state)) -> AuthorisationOut:
    """Ask for features on cameras for a case inside [valid_from, valid_until). Audited by the library."""
    store = _governance(state).authorisations
    cameras = _check_scope(state, user, body.cameras)
    auth = _decided(lambda: store.request(
        user.username, legal_basis=body.legal_basis, case_ref=body.case_ref, purpose=body.purpose,
        features=body.features, cameras=cameras, valid_from=body.valid_from, valid_until=body.valid_until,
        watchlist_entries=body.watchlist_entries))
    return _auth_out(auth, store.clock())


@router.post("/api/authorisations/{auth_id}/approve", response_model=AuthorisationOut)
def approve_authorisation(auth_id: DbId, body: DecisionIn | None = None,
                          user: User = Depends(require("authorisation.approve")),
                          state: ApiState = Depends(api_state)) -> AuthorisationOut:
    """Approve a request (four-eyes: never one's own; 403 with the reason). Audited by the library."""
    store = _governance(state).authorisations
    auth = _decided(lambda: store.approve(auth_id, user.username, body.note if body else None))
    return _auth_out(auth, store.clock())


@router.post("/api/authorisations/{auth_id}/deny", response_model=AuthorisationOut)
def deny_authorisation(auth_id: DbId, body: ReasonIn, user: User = Depends(require("authorisation.approve")),
                       state: ApiState = Depends(api_state)) -> AuthorisationOut:
    """Deny a request, with a reason (same four-eyes rule). Audited by the library."""
    store = _governance(state).authorisations
    auth = _decided(lambda: store.deny(auth_id, user.username, body.reason))
    return _auth_out(auth, store.clock())


@router.post("/api/authorisations/{auth_id}/revoke", response_model=AuthorisationOut)
def revoke_authorisation(auth_id: DbId, body: ReasonIn, user: User = Depends(require("authorisation.request")),
                         state: ApiState = Depends(api_state)) -> AuthorisationOut:
    """End a requested or approved authorisation now (its requester or a supervisor). Audited by the library."""
    store = _governance(state).authorisations
    auth = _decided(lambda: store.revoke(auth_id, user.username, body.reason))
    return _auth_out(auth, store.clock())


# ---------------------------------------------------------------------- audit log

def _entry_out(entry: AuditEntry) -> AuditEntryOut:
    return AuditEntryOut(seq=entry.seq, at=entry.at, actor=entry.actor, action=entry.action, object=entry.object,
                         purpose=entry.purpose, details=entry.details, hash=entry.hash, prev_hash=entry.prev_hash)


@router.get("/api/audit", response_model=AuditPageOut)
def audit_entries(actor: Annotated[str | None, Query(max_length=64)] = None,
                  action: Annotated[str | None, Query(max_length=100)] = None,
                  object_: Annotated[str | None, Query(alias="object", max_length=300,
                                                       description="prefix, e.g. camera: or authorisation:3")] = None,
                  from_: Annotated[UtcTime | None, Query(alias="from")] = None, to: UtcTime | None = None,
                  before_seq: DbIdQuery = None,
                  limit: Annotated[int, Query(ge=1, le=500)] = 100,
                  _user: User = Depends(require("audit.read")),
                  state: ApiState = Depends(api_state)) -> AuditPageOut:
    """Audit entries newest first, filtered; page with ``before_seq`` = the previous page's ``next_before_seq``."""
    if from_ is not None and to is not None and to <= from_:
        raise HTTPException(422, "'to' must be after 'from'")
    found = _audit_log(state).entries(actor=actor or None, action=action or None, object_prefix=object_ or None,
                                      since=from_, until=to, before_seq=before_seq, limit=limit)
    more = len(found) == limit and found[-1].seq > 1
    return AuditPageOut(items=[_entry_out(e) for e in found], next_before_seq=found[-1].seq if more else None)


@router.get("/api/audit/verify", response_model=VerifyOut)
def audit_verify(_user: User = Depends(require("audit.read")), state: ApiState = Depends(api_state)) -> VerifyOut:
    """Verify the whole chain (hash links and signed checkpoints): ok, or the first entry that cannot be trusted."""
    result = _audit_log(state).verify()
    return VerifyOut(ok=result.ok, entries=result.entries, first_bad_seq=result.first_bad_seq, reason=result.reason,
                     checkpoints=result.checkpoints, head_seq=result.head_seq, unsigned_tail=result.unsigned_tail)


@router.get("/api/audit/export", response_class=Response, responses={200: {"content": {"application/zip": {}}}})
def audit_export(user: User = Depends(require("audit.read")), state: ApiState = Depends(api_state)) -> Response:
    """The audit bundle (entries.jsonl, checkpoints.jsonl, public_key.pem, manifest.json) as a zip, signed to its
    last entry; the export itself is audited first. Verify it with ``vigil.governance.audit.verify_bundle`` and
    the separately published key (``/api/audit/pubkey``)."""
    log = _audit_log(state)
    with tempfile.TemporaryDirectory(prefix="vigil-audit-") as folder:
        info = log.export(Path(folder) / "bundle", actor=user.username)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for file in sorted(info.path.iterdir()):
                archive.write(file, file.name)
    name = f"vigil-audit-{info.head_seq}.zip"
    return Response(buffer.getvalue(), media_type="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})


@router.get("/api/audit/pubkey", response_class=PlainTextResponse,
            responses={200: {"content": {"application/x-pem-file": {}}}})
def audit_pubkey(_user: User = Depends(require()), state: ApiState = Depends(api_state)) -> PlainTextResponse:
    """The audit log's Ed25519 public key (PEM): publish it separately to check bundles against."""
    return PlainTextResponse(_audit_log(state).public_pem(), media_type="application/x-pem-file")


# ---------------------------------------------------------------------- reports

@router.get("/api/reports/transparency", response_class=HTMLResponse)
def transparency_report(from_: Annotated[UtcTime | None, Query(alias="from")] = None, to: UtcTime | None = None,
                        user: User = Depends(require("reports.read")),
                        state: ApiState = Depends(api_state)) -> HTMLResponse:
    """The transparency report for [from, to) (default: the last 30 days) as one self-contained HTML page."""
    end = to or utcnow()
    start = from_ or end - timedelta(days=30)
    if end <= start or end - start > timedelta(days=MAX_REPORT_DAYS):
        raise HTTPException(422, f"'to' must be after 'from' and at most {MAX_REPORT_DAYS} days later")
    governance = _governance(state)
    state.audit.record(user, "report.view", "report:transparency", dedupe=True,
                       details={"from": start.isoformat(), "to": end.isoformat()})
    html = render_transparency_report(state.config, state.services.store, governance, start, end)
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


@router.get("/api/reports/compliance")
def compliance_report(_user: User = Depends(require("reports.read")),
                      state: ApiState = Depends(api_state)) -> dict[str, Any]:
    """Every data class held against its retention limit: ``{at, ok, classes: [{class, label, items, oldest,
    limit_hours, over_limit, held, examples, note, ok}]}``."""
    return check_compliance(state.config, state.services.store, governance=_governance(state)).to_dict()


@router.get("/api/reports/dpia", response_class=PlainTextResponse,
            responses={200: {"content": {"text/markdown": {}, "text/html": {}}}})
def dpia(format_: Annotated[Literal["md", "html"], Query(alias="format")] = "md",
         _user: User = Depends(require("reports.read")), state: ApiState = Depends(api_state)) -> Response:
    """A Data Protection Impact Assessment draft pre-filled from the configuration: Markdown, or HTML."""
    text = render_dpia(state.config)
    if format_ == "md":
        return PlainTextResponse(text, media_type="text/markdown; charset=utf-8",
                                 headers={"Content-Disposition": 'inline; filename="dpia-draft.md"'})
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(text)
    page = ("<!doctype html><html lang='en'><head><meta charset='utf-8'><title>DPIA draft · Vigil</title><style>"
            "body{font:15px/1.5 system-ui,sans-serif;max-width:960px;margin:30px auto;padding:0 24px;color:#1d2330}"
            "table{border-collapse:collapse}th,td{border:1px solid #d5dbe6;padding:5px 9px;text-align:left}"
            f"th{{background:#eef2f8}}</style></head><body>{body}</body></html>")
    return HTMLResponse(page)


# ---------------------------------------------------------------------- evidence holds

def _hold_out(hold: Hold) -> HoldOut:
    assert hold.id is not None
    return HoldOut(id=hold.id, case_id=hold.case_id, reason=hold.reason, camera_id=hold.camera_id, start=hold.start,
                   end=hold.end, created_by=hold.created_by, created_at=hold.created_at)


def _hold_authorisation(state: ApiState, user: User, body: HoldIn) -> Authorisation | None:
    """When holds need an authorisation: the active one for the hold's case covering its camera (403 otherwise,
    audited); None when the configuration does not ask for one."""
    if "evidence_hold" not in state.config.governance.require_authorisation_for:
        return None
    store = _governance(state).authorisations
    for auth in store.list_authorisations("active"):
        if auth.case_ref == body.case_id and (ALL_CAMERAS in auth.cameras or body.camera_id in auth.cameras):
            return auth
    scope = f"camera {body.camera_id!r}" if body.camera_id else "every camera ('*')"
    reason = (f"evidence hold refused: no active authorisation for case {body.case_id!r} covering {scope} "
              "(governance.require_authorisation_for includes evidence_hold)")
    state.audit.record(user, "evidence.hold_refused", f"camera:{body.camera_id or ALL_CAMERAS}",
                       purpose=body.case_id, details={"reason": reason})
    raise HTTPException(403, reason)


@router.get("/api/holds", response_model=list[HoldOut])
def list_holds(user: User = Depends(require_any(*HOLD_READERS)),
               state: ApiState = Depends(api_state)) -> list[HoldOut]:
    """Evidence holds (on the user's cameras, and those on every camera), oldest first."""
    holds = state.services.retention.holds()
    return [_hold_out(h) for h in holds if h.camera_id is None or user.sees_camera(h.camera_id)]


@router.post("/api/holds", response_model=HoldOut, status_code=201)
def create_hold(body: HoldIn, user: User = Depends(require_any(*HOLD_MAKERS)),
                state: ApiState = Depends(api_state)) -> HoldOut:
    """Exempt a camera's data (or every camera's) in [start, end] from retention for a case. Audited."""
    if body.camera_id is None:
        if ALL_CAMERAS not in user.cameras:
            raise HTTPException(403, f"user {user.username!r} may not hold every camera: name a granted camera")
    elif state.camera(body.camera_id) is None:
        raise HTTPException(422, f"camera_id: no camera {body.camera_id!r}")
    elif not user.sees_camera(body.camera_id):
        raise HTTPException(403, f"user {user.username!r} has no access to camera {body.camera_id!r}")
    auth = _hold_authorisation(state, user, body)
    hold = state.services.retention.add_hold(body.case_id.strip(), user.username, body.reason.strip(), body.start,
                                             body.end, body.camera_id)
    state.audit.record(user, "evidence.hold", f"hold:{hold.id}", purpose=hold.case_id, details={
        "camera": hold.camera_id or ALL_CAMERAS, "start": hold.start.isoformat(), "end": hold.end.isoformat(),
        "reason": hold.reason, "authorisation": auth.id if auth else None})
    return _hold_out(hold)


@router.delete("/api/holds/{hold_id}", status_code=204)
def release_hold(hold_id: DbId, user: User = Depends(require_any(*HOLD_MAKERS)),
                 state: ApiState = Depends(api_state)) -> None:
    """Release a hold (a supervisor, or its creator): its data falls under retention again. Audited."""
    hold = next((h for h in state.services.retention.holds() if h.id == hold_id), None)
    if hold is None or not (hold.camera_id is None or user.sees_camera(hold.camera_id)):
        raise HTTPException(404, f"no evidence hold {hold_id}")
    if hold.created_by != user.username and not user.can("authorisation.approve"):
        raise HTTPException(403, f"hold {hold_id} was placed by {hold.created_by!r}: only they or a supervisor "
                                 "may release it")
    if not state.services.retention.release_hold(hold_id):
        raise HTTPException(404, f"no evidence hold {hold_id}")
    state.audit.record(user, "evidence.hold_release", f"hold:{hold_id}", purpose=hold.case_id,
                       details={"camera": hold.camera_id or ALL_CAMERAS, "created_by": hold.created_by})
