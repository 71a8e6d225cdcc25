"""Request and response bodies of the accountability API: authorisations, the audit log, evidence holds.

Request models forbid unknown fields (a client's typo is a 422 naming the field). Times without a zone are UTC.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from vigil.api.schemas import Body, UtcTime
from vigil.governance.authorisations import FEATURES

Feature = Literal[FEATURES]  # type: ignore[valid-type]  # the library's feature names


# ---------------------------------------------------------------------- authorisations

class AuthorisationIn(Body):
    legal_basis: str = Field(min_length=1, max_length=2000)
    case_ref: str = Field(min_length=1, max_length=200)
    purpose: str = Field(min_length=1, max_length=2000)
    features: list[Feature] = Field(min_length=1, max_length=len(FEATURES))
    cameras: list[str] = Field(min_length=1, max_length=500)  # ["*"]: every camera
    watchlist_entries: list[str] = Field(default_factory=lambda: ["*"], min_length=1, max_length=1000)
    valid_from: UtcTime
    valid_until: UtcTime

    @model_validator(mode="after")
    def _window(self) -> AuthorisationIn:
        if self.valid_until <= self.valid_from:
            raise ValueError("valid_until must be after valid_from")
        return self


class DecisionIn(Body):
    note: str | None = Field(None, max_length=2000)


class ReasonIn(Body):
    reason: str = Field(min_length=1, max_length=2000)


class AuthorisationOut(BaseModel):
    id: int
    state: Literal["requested", "approved", "active", "expired", "denied", "revoked"]
    requester: str
    legal_basis: str
    case_ref: str
    purpose: str
    features: list[str]
    cameras: list[str]
    watchlist_entries: list[str]
    valid_from: datetime
    valid_until: datetime
    approver: str | None
    decided_at: datetime | None
    decision_note: str | None
    revoked_by: str | None
    revoked_at: datetime | None
    revoke_reason: str | None
    created_at: datetime


# ---------------------------------------------------------------------- audit log

class AuditEntryOut(BaseModel):
    seq: int
    at: datetime
    actor: str
    action: str
    object: str
    purpose: str | None
    details: dict[str, Any]
    hash: str
    prev_hash: str


class AuditPageOut(BaseModel):
    items: list[AuditEntryOut]
    next_before_seq: int | None  # pass as before_seq for the next (older) page; None at the end


class VerifyOut(BaseModel):
    ok: bool
    entries: int
    first_bad_seq: int | None
    reason: str
    checkpoints: int
    head_seq: int
    unsigned_tail: int  # entries after the last signed checkpoint (protected by the hash links only)


# ---------------------------------------------------------------------- evidence holds

class HoldIn(Body):
    case_id: str = Field(min_length=1, max_length=200)
    reason: str = Field(min_length=1, max_length=2000)
    camera_id: str | None = Field(None, min_length=1, max_length=64)  # None: every camera
    start: UtcTime
    end: UtcTime

    @model_validator(mode="after")
    def _range(self) -> HoldIn:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class HoldOut(BaseModel):
    id: int
    case_id: str
    reason: str
    camera_id: str | None
    start: datetime
    end: datetime
    created_by: str
    created_at: datetime | None
