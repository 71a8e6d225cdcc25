"""Authorisations for sensitive features, with four-eyes approval (DESIGN §6).

Life cycle: ``requested`` → ``approved`` (by a different user holding the supervisor's approve permission) →
active inside ``[valid_from, valid_until)`` → expired; or ``denied``; or ``revoked`` at any time before expiry.
Without an active authorisation the feature is off. Every state change, refused decision and refused use is audited.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from vigil.governance.audit import AuditLog
from vigil.governance.errors import AuthorisationError, PermissionDenied
from vigil.governance.schema import AuthorisationRow
from vigil.governance.users import ALL_CAMERAS, User, UserStore, check_cameras
from vigil.store.db import Store, utcnow

FEATURES = ("live_face_match", "face_search", "person_search", "plate_hotlist")
STATES = ("requested", "approved", "active", "expired", "denied", "revoked")


@dataclass(frozen=True, slots=True)
class Authorisation:
    id: int
    requester: str
    legal_basis: str
    case_ref: str
    purpose: str
    features: tuple[str, ...]
    cameras: tuple[str, ...]  # ("*",) for every camera
    watchlist_entries: tuple[str, ...]  # ("*",) for every entry
    valid_from: datetime
    valid_until: datetime
    status: str  # requested | approved | denied | revoked (stored)
    approver: str | None
    decided_at: datetime | None
    decision_note: str | None
    revoked_by: str | None
    revoked_at: datetime | None
    revoke_reason: str | None
    created_at: datetime

    def state(self, at: datetime) -> str:
        """The state at ``at``: an approved authorisation is ``approved`` before, ``active`` inside and
        ``expired`` after its window."""
        if self.status != "approved":
            return self.status
        if at < self.valid_from:
            return "approved"
        return "active" if at < self.valid_until else "expired"

    def covers(self, feature: str, camera_id: str, watchlist_entry: str | None = None) -> bool:
        """The scope includes ``feature`` on ``camera_id`` (and ``watchlist_entry`` when given)."""
        return (feature in self.features
                and (ALL_CAMERAS in self.cameras or camera_id in self.cameras)
                and (watchlist_entry is None or ALL_CAMERAS in self.watchlist_entries
                     or watchlist_entry in self.watchlist_entries))


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether a feature may be used now, why, and under which authorisation (and case)."""

    allowed: bool
    reason: str
    authorisation_id: int | None = None
    case_ref: str | None = None


def _auth(row: AuthorisationRow) -> Authorisation:
    return Authorisation(
        id=row.id, requester=row.requester, legal_basis=row.legal_basis, case_ref=row.case_ref, purpose=row.purpose,
        features=tuple(row.features), cameras=tuple(row.cameras), watchlist_entries=tuple(row.watchlist_entries),
        valid_from=row.valid_from, valid_until=row.valid_until, status=row.status, approver=row.approver,
        decided_at=row.decided_at, decision_note=row.decision_note, revoked_by=row.revoked_by,
        revoked_at=row.revoked_at, revoke_reason=row.revoke_reason, created_at=row.created_at)


def _check_time(name: str, value: datetime) -> datetime:
    if value.tzinfo is None:
        raise AuthorisationError(f"{name} must carry a time zone (e.g. 2024-05-01T12:00:00+00:00)")
    return value


def check_feature(feature: str) -> str:
    if feature not in FEATURES:
        raise AuthorisationError(f"unknown feature {feature!r}; choose from {', '.join(FEATURES)}")
    return feature


class AuthorisationStore:
    """Authorisations in the metadata database; users come from ``users``, every change goes to ``audit``."""

    def __init__(self, store: Store, users: UserStore, audit: AuditLog,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.users = users
        self.audit = audit
        self.clock = clock

    # ------------------------------------------------------------------ life cycle

    def request(self, requester: str, *, legal_basis: str, case_ref: str, purpose: str, features: Iterable[str],
                cameras: Iterable[str], valid_from: datetime, valid_until: datetime,
                watchlist_entries: Iterable[str] = (ALL_CAMERAS,)) -> Authorisation:
        """Ask for ``features`` on ``cameras`` inside ``[valid_from, valid_until)`` for a case."""
        self._allowed(self.users.get(requester), "authorisation.request")
        fields = {"legal_basis": legal_basis.strip(), "case_ref": case_ref.strip(), "purpose": purpose.strip()}
        for name, value in fields.items():
            if not value:
                raise AuthorisationError(f"authorisation request: {name} is required")
        wanted = list(dict.fromkeys(check_feature(f) for f in features))
        grant = check_cameras(cameras)
        entries = list(dict.fromkeys(str(e).strip() for e in watchlist_entries if str(e).strip()))
        if not wanted or not grant or not entries:
            raise AuthorisationError("authorisation request: features, cameras and watchlist entries must not be "
                                     "empty ('*' for all cameras or entries)")
        if ALL_CAMERAS in entries:
            entries = [ALL_CAMERAS]
        start, end = _check_time("valid_from", valid_from), _check_time("valid_until", valid_until)
        if end <= start:
            raise AuthorisationError(f"authorisation request: valid_until {end} is not after valid_from {start}")
        if end <= self.clock():
            raise AuthorisationError(f"authorisation request: the window ends in the past ({end})")
        with self.store.session() as session:
            row = AuthorisationRow(requester=requester, features=wanted, cameras=grant, watchlist_entries=entries,
                                   valid_from=start, valid_until=end, status="requested", created_at=self.clock(),
                                   **fields)
            session.add(row)
            session.flush()
            auth = _auth(row)
        self._audit(requester, "authorisation.request", auth, {
            "legal_basis": auth.legal_basis, "purpose": auth.purpose, "features": wanted, "cameras": grant,
            "watchlist_entries": entries, "valid_from": start.isoformat(), "valid_until": end.isoformat()})
        return auth

    def approve(self, auth_id: int, approver: str, note: str | None = None) -> Authorisation:
        """Approve a request: ``approver`` must be a different, enabled user allowed to approve (supervisor)."""
        return self._decide(auth_id, approver, "approved", note)

    def deny(self, auth_id: int, approver: str, reason: str) -> Authorisation:
        """Deny a request (same four-eyes rule as approval)."""
        return self._decide(auth_id, approver, "denied", reason)

    def revoke(self, auth_id: int, actor: str, reason: str) -> Authorisation:
        """End a requested or approved authorisation now (by a supervisor or its requester)."""
        now = self.clock()
        user = self.users.get(actor)
        current = self.get(auth_id)
        if actor != current.requester:
            self._allowed(user, "authorisation.approve", auth_id)
        if current.state(now) not in ("requested", "approved", "active"):
            raise AuthorisationError(f"authorisation {auth_id} is {current.state(now)} and cannot be revoked")
        changed = self._transition(auth_id, current.status, status="revoked", revoked_by=actor, revoked_at=now,
                                   revoke_reason=reason)
        self._audit(actor, "authorisation.revoke", changed, {"reason": reason})
        return changed

    def _decide(self, auth_id: int, approver: str, status: str, note: str | None) -> Authorisation:
        action = "authorisation.approve" if status == "approved" else "authorisation.deny"
        current = self.get(auth_id)
        try:
            if approver == current.requester:
                raise AuthorisationError(f"four-eyes rule: {approver!r} requested authorisation {auth_id} and "
                                         f"cannot {action.split('.')[1]} it; another supervisor must")
            self._allowed(self.users.get(approver), "authorisation.approve", auth_id)
            if current.status != "requested":
                raise AuthorisationError(f"authorisation {auth_id} is {current.status}, not awaiting a decision")
            if status == "approved" and current.valid_until <= self.clock():
                raise AuthorisationError(f"authorisation {auth_id}: its window ended at {current.valid_until}")
        except (AuthorisationError, PermissionDenied) as exc:
            self._audit(approver, action + "_refused", current, {"reason": str(exc)})
            raise
        changed = self._transition(auth_id, "requested", status=status, approver=approver,
                                   decided_at=self.clock(), decision_note=note)
        self._audit(approver, action, changed, {"note": note} if note else None)
        return changed

    def _transition(self, auth_id: int, expected: str, **values: Any) -> Authorisation:
        with self.store.session() as session:  # conditional update: two deciders cannot both win
            result = session.execute(update(AuthorisationRow).where(AuthorisationRow.id == auth_id,
                                                                    AuthorisationRow.status == expected)
                                     .values(**values))
            if not result.rowcount:  # type: ignore[attr-defined]
                raise AuthorisationError(f"authorisation {auth_id} changed meanwhile; look again")
            return _auth(self._row(session, auth_id))

    @staticmethod
    def _allowed(user: User, permission: str, auth_id: int | None = None) -> None:
        if not user.can(permission):
            what = f" authorisation {auth_id}" if auth_id is not None else ""
            state = "disabled" if user.disabled else f"role {user.role!r}"
            raise PermissionDenied(f"{user.username!r} ({state}) may not {permission.split('.')[1]}{what}")

    def _audit(self, actor: str, action: str, auth: Authorisation, details: dict[str, Any] | None) -> None:
        self.audit.append(actor, action, f"authorisation:{auth.id}", purpose=auth.case_ref, details=details)

    # ------------------------------------------------------------------ reading

    def get(self, auth_id: int) -> Authorisation:
        with self.store.session() as session:
            return _auth(self._row(session, auth_id))

    @staticmethod
    def _row(session: Session, auth_id: int) -> AuthorisationRow:
        row = session.get(AuthorisationRow, auth_id)
        if row is None:
            raise AuthorisationError(f"no authorisation {auth_id}")
        return row

    def list_authorisations(self, state: str | None = None, at: datetime | None = None) -> list[Authorisation]:
        """Authorisations, newest first, optionally only those in ``state`` at ``at`` (default now)."""
        if state is not None and state not in STATES:
            raise AuthorisationError(f"unknown state {state!r}; choose from {', '.join(STATES)}")
        at = at or self.clock()
        with self.store.session() as session:
            rows = session.scalars(select(AuthorisationRow).order_by(AuthorisationRow.id.desc())).all()
            found = [_auth(row) for row in rows]
        return [a for a in found if state is None or a.state(at) == state]

    def _approved(self, feature: str, camera_id: str, after: datetime,
                  watchlist_entry: str | None = None) -> list[Authorisation]:
        """Approved authorisations covering the scope whose window has not ended by ``after``."""
        check_feature(feature)
        query = select(AuthorisationRow).where(AuthorisationRow.status == "approved",
                                               AuthorisationRow.valid_until > after)
        with self.store.session() as session:
            found = [_auth(row) for row in session.scalars(query)]
        return [a for a in found if a.covers(feature, camera_id, watchlist_entry)]

    def active_for(self, feature: str, camera_id: str, at: datetime | None = None,
                   watchlist_entry: str | None = None) -> Authorisation | None:
        """The authorisation that makes ``feature`` usable on ``camera_id`` at ``at`` (start inclusive, end
        exclusive), the one lasting longest when several do; None when the feature is off."""
        at = _check_time("at", at) if at is not None else self.clock()
        active = [a for a in self._approved(feature, camera_id, at, watchlist_entry) if a.valid_from <= at]
        return max(active, key=lambda a: (a.valid_until, a.id), default=None)

    def check(self, feature: str, camera_id: str, actor: str, at: datetime | None = None,
              watchlist_entry: str | None = None) -> Decision:
        """May ``feature`` be used on ``camera_id`` now? A refusal is audited with its reason."""
        at = _check_time("at", at) if at is not None else self.clock()
        found = self.active_for(feature, camera_id, at, watchlist_entry)
        if found is not None:
            return Decision(True, f"authorisation {found.id} (case {found.case_ref}) until {found.valid_until}",
                            found.id, found.case_ref)
        scope = f"{feature} on camera {camera_id!r}" + (f" for entry {watchlist_entry!r}" if watchlist_entry else "")
        reason = f"no active authorisation for {scope}"
        upcoming = [a for a in self._approved(feature, camera_id, at, watchlist_entry) if a.valid_from > at]
        if upcoming:
            first = min(upcoming, key=lambda a: a.valid_from)
            reason += f" (authorisation {first.id} starts at {first.valid_from})"
        self.audit.append(actor, "authorisation.refused", f"camera:{camera_id}",
                          details={"feature": feature, "reason": reason, "watchlist_entry": watchlist_entry,
                                   "at": at.isoformat()})
        return Decision(False, reason)

    def next_change(self, feature: str, camera_id: str, after: datetime) -> datetime | None:
        """The first window bound (start or end) strictly after ``after`` at which ``active_for`` may change;
        None when no approved window lies ahead. Revocations take effect at once and are not predicted here."""
        after = _check_time("after", after)
        bounds = [bound for a in self._approved(feature, camera_id, after)
                  for bound in (a.valid_from, a.valid_until) if bound > after]
        return min(bounds, default=None)
