"""Governance errors: one line each, naming the user, authorisation or audit entry at fault."""

from __future__ import annotations

from vigil.errors import VigilError


class GovernanceError(VigilError):
    """A governance operation was refused or is invalid."""


class UserError(GovernanceError):
    """A user is unknown, duplicated or given invalid attributes."""


class PermissionDenied(GovernanceError):
    """The actor lacks the role, permission or camera grant for an operation."""


class AuthorisationError(GovernanceError):
    """An authorisation request or decision is invalid (e.g. self-approval, wrong state)."""


class AuditError(GovernanceError):
    """The audit log, its signing key or an exported bundle cannot be used."""
