"""Authorisations: four-eyes approval, windows checked to the second, audited refusals — SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from tests.support import Clock
from vigil.governance.authorisations import AuthorisationStore
from vigil.governance.errors import AuthorisationError, PermissionDenied
from vigil.governance.gate import AuthorisationGate
from vigil.governance.users import UserStore
from vigil.store.db import Store

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)
TICK = timedelta(microseconds=1)


@pytest.fixture
def auths(store: Store, users: UserStore, clock: Clock) -> AuthorisationStore:
    for name, role in [("ivan", "investigator"), ("sue", "supervisor"), ("sid", "supervisor"), ("olive", "operator"),
                       ("audrey", "auditor")]:
        users.create(name, f"{role} walnut kayak 73", role, "admin1", cameras=["*"])
    return AuthorisationStore(store, users, users.audit, clock=clock)


def ask(auths: AuthorisationStore, requester: str = "ivan", start: datetime = T0 + 10 * SECOND,
        end: datetime = T0 + 70 * SECOND, **scope: object) -> int:
    fields: dict = {"legal_basis": "Criminal Procedure Act s.100a", "case_ref": "CASE-2024-0042",
                    "purpose": "find a missing child seen near the station", "features": ["face_search"],
                    "cameras": ["cam1", "cam2"], "valid_from": start, "valid_until": end} | scope
    return auths.request(requester, **fields).id


def test_four_eyes_rule(auths: AuthorisationStore) -> None:
    mine = ask(auths, requester="sue")  # a supervisor may ask, but not approve her own request
    with pytest.raises(AuthorisationError, match="four-eyes rule: 'sue' requested authorisation 1 and cannot approve"):
        auths.approve(mine, "sue")
    request = ask(auths)
    with pytest.raises(PermissionDenied, match=r"'olive' \(role 'operator'\) may not approve authorisation 2"):
        auths.approve(request, "olive")
    with pytest.raises(PermissionDenied, match="'audrey'"):
        auths.approve(request, "audrey")
    auths.users.disable("sid", "admin1")
    with pytest.raises(PermissionDenied, match=r"'sid' \(disabled\)"):
        auths.approve(request, "sid")
    assert auths.get(request).status == "requested"
    approved = auths.approve(request, "sue", note="proportionate")
    assert approved.status == "approved" and approved.approver == "sue" and approved.requester == "ivan"
    with pytest.raises(AuthorisationError, match="is approved, not awaiting a decision"):
        auths.deny(request, "sue", "changed my mind")
    with pytest.raises(PermissionDenied):
        auths.request("olive", legal_basis="x", case_ref="y", purpose="z", features=["face_search"], cameras=["*"],
                      valid_from=T0, valid_until=T0 + SECOND)
    trail = [(e.actor, e.action) for e in reversed(auths.audit.entries(object_prefix="authorisation:"))]
    assert trail == [("sue", "authorisation.request"), ("sue", "authorisation.approve_refused"),
                     ("ivan", "authorisation.request"), ("olive", "authorisation.approve_refused"),
                     ("audrey", "authorisation.approve_refused"), ("sid", "authorisation.approve_refused"),
                     ("sue", "authorisation.approve"), ("sue", "authorisation.deny_refused")]
    assert all(e.purpose == "CASE-2024-0042" for e in auths.audit.entries(object_prefix="authorisation:"))


def test_window_switches_access_on_and_off_to_the_second(auths: AuthorisationStore) -> None:
    auth_id = ask(auths)
    start, end = T0 + 10 * SECOND, T0 + 70 * SECOND
    assert auths.active_for("face_search", "cam1", start) is None  # not approved yet
    auths.approve(auth_id, "sid")
    for at, on in [(start - SECOND, False), (start - TICK, False), (start, True), (start + SECOND, True),
                   (end - SECOND, True), (end - TICK, True), (end, False), (end + SECOND, False)]:
        found = auths.active_for("face_search", "cam1", at)
        assert (found is not None) is on, at
        assert auths.check("face_search", "cam2", "ivan", at).allowed is on
    assert auths.get(auth_id).state(start - SECOND) == "approved"
    assert auths.get(auth_id).state(start) == "active" and auths.get(auth_id).state(end) == "expired"
    assert auths.active_for("face_search", "cam3", start) is None  # camera outside the scope
    assert auths.active_for("person_search", "cam1", start) is None  # feature outside the scope
    assert auths.next_change("face_search", "cam1", T0) == start
    assert auths.next_change("face_search", "cam1", start) == end
    assert auths.next_change("face_search", "cam1", end) is None
    assert auths.next_change("face_search", "cam3", T0) is None


def test_refused_biometric_check_is_audited(auths: AuthorisationStore, clock: Clock) -> None:
    before = auths.audit.head().seq
    decision = auths.check("live_face_match", "cam1", "olive")
    assert not decision.allowed and decision.authorisation_id is None
    assert decision.reason == "no active authorisation for live_face_match on camera 'cam1'"
    entry = auths.audit.head()
    assert entry.seq == before + 1 and entry.actor == "olive" and entry.action == "authorisation.refused"
    assert entry.object == "camera:cam1" and entry.details["feature"] == "live_face_match"
    assert entry.details["reason"] == decision.reason
    auth_id = ask(auths, features=["live_face_match"], watchlist_entries=["wl-7"])
    auths.approve(auth_id, "sue")
    early = auths.check("live_face_match", "cam1", "olive", watchlist_entry="wl-7")
    assert not early.allowed and "authorisation 1 starts at 2024-05-01 12:00:10" in early.reason
    clock.now = T0 + 30 * SECOND
    allowed = auths.check("live_face_match", "cam1", "olive", watchlist_entry="wl-7")
    assert allowed.allowed and allowed.authorisation_id == auth_id and allowed.case_ref == "CASE-2024-0042"
    assert auths.audit.head().action == "authorisation.refused"  # allowed checks are audited by their use
    assert not auths.check("live_face_match", "cam1", "olive", watchlist_entry="wl-8").allowed
    assert auths.audit.verify().ok


def test_revoke_and_deny(auths: AuthorisationStore, clock: Clock) -> None:
    auth_id = ask(auths, features=["person_search", "face_search"], cameras=["*"])
    auths.approve(auth_id, "sue")
    clock.now = T0 + 20 * SECOND
    assert auths.check("person_search", "any-camera", "ivan").allowed
    with pytest.raises(PermissionDenied):
        auths.revoke(auth_id, "olive", "not hers to revoke")
    revoked = auths.revoke(auth_id, "sid", "suspect found")
    assert revoked.status == "revoked" and revoked.revoked_by == "sid" and revoked.revoked_at == clock.now
    assert not auths.check("person_search", "any-camera", "ivan").allowed  # off at once
    with pytest.raises(AuthorisationError, match="is revoked and cannot be revoked"):
        auths.revoke(auth_id, "sid", "again")
    denied = auths.deny(ask(auths), "sid", "not proportionate")
    assert denied.status == "denied" and denied.decision_note == "not proportionate"
    withdrawn = auths.revoke(ask(auths), "ivan", "withdrawn by the requester")
    assert withdrawn.status == "revoked"
    assert [a.id for a in auths.list_authorisations("revoked")] == [3, 1]
    actions = [e.action for e in auths.audit.entries(object_prefix="authorisation:")]
    assert actions[:3] == ["authorisation.revoke", "authorisation.request", "authorisation.deny"]


def test_request_validation(auths: AuthorisationStore) -> None:
    with pytest.raises(AuthorisationError, match="unknown feature 'gait_match'"):
        ask(auths, features=["gait_match"])
    with pytest.raises(AuthorisationError, match="valid_from must carry a time zone"):
        ask(auths, start=datetime(2024, 5, 1, 12, 0, 10))
    with pytest.raises(AuthorisationError, match="is not after valid_from"):
        ask(auths, start=T0 + 70 * SECOND, end=T0 + 70 * SECOND)
    with pytest.raises(AuthorisationError, match="window ends in the past"):
        ask(auths, start=T0 - 70 * SECOND, end=T0)
    with pytest.raises(AuthorisationError, match="legal_basis is required"):
        ask(auths, legal_basis="  ")
    with pytest.raises(AuthorisationError, match="no authorisation 99"):
        auths.approve(99, "sue")
    assert auths.list_authorisations() == []


def test_runtime_gate_switches_face_matching_exactly_at_the_window_bounds(auths: AuthorisationStore) -> None:
    """The face enricher asks the gate on every analysed frame: on from valid_from, off at valid_until, even
    between its re-checks (it caches only up to the next bound)."""
    auth_id = ask(auths, features=["live_face_match"])
    auths.approve(auth_id, "sid")
    start, end = T0 + 10 * SECOND, T0 + 70 * SECOND
    gate = AuthorisationGate(auths, "live_face_match", recheck_s=3600)  # long re-check: bounds must still hold
    frames = [T0 + i * timedelta(milliseconds=200) for i in range(0, 400)]  # 5 fps over 80 s
    switched = [at for previous, at in itertools.pairwise(frames)
                if gate("cam1", previous) != gate("cam1", at)]
    assert switched == [start, end]
    assert not gate("cam1", start - TICK) and gate("cam1", start) and gate("cam1", end - TICK)
    assert not gate("cam1", end)
    assert not gate("cam3", start + SECOND)  # a camera outside the scope
