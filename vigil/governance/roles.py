"""Roles and the permission matrix (DESIGN §6). Pure data: no database.

- operator: live view and alerts for assigned cameras;
- investigator: search and playback inside an open case;
- supervisor: approves authorisations (and may watch and play back to review);
- auditor: audit log, authorisations and reports, no video;
- admin: configuration and users, no video.

Face search, person search and live face matching additionally need an active authorisation
(``vigil.governance.authorisations``); a permission here only says the role may ask.
"""

from __future__ import annotations

from vigil.governance.errors import UserError

ROLES = ("operator", "investigator", "supervisor", "auditor", "admin")

PERMISSIONS = (
    "events.read",  # alerts and their metadata
    "events.ack",  # acknowledge / resolve alerts
    "video.live",
    "video.playback",  # recordings, clips and snapshots
    "search",  # structured forensic search (class, colour, time, zone, plate)
    "search.face",  # retrospective face search (needs an authorisation)
    "search.person",  # cross-camera person tracking (needs an authorisation)
    "watchlist.manage",
    "authorisation.request",
    "authorisation.approve",
    "authorisation.read",
    "audit.read",
    "reports.read",
    "config.manage",
    "users.manage",
    "export",  # redacted evidence exports
)

#: Video permissions are also limited to the user's cameras.
VIDEO_PERMISSIONS = frozenset({"video.live", "video.playback"})

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "operator": frozenset({"events.read", "events.ack", "video.live"}),
    "investigator": frozenset({"events.read", "video.playback", "search", "search.face", "search.person",
                               "watchlist.manage", "authorisation.request", "authorisation.read", "export"}),
    "supervisor": frozenset({"events.read", "events.ack", "video.live", "video.playback", "search",
                             "watchlist.manage", "authorisation.request", "authorisation.approve",
                             "authorisation.read", "reports.read"}),
    "auditor": frozenset({"audit.read", "reports.read", "authorisation.read", "events.read"}),
    "admin": frozenset({"config.manage", "users.manage", "events.read", "authorisation.read"}),
}


def check_role(role: str) -> str:
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}; choose from {', '.join(ROLES)}")
    return role


def check_permission(permission: str) -> str:
    if permission not in PERMISSIONS:
        raise UserError(f"unknown permission {permission!r}")
    return permission


def role_allows(role: str, permission: str) -> bool:
    """True when ``role`` carries ``permission`` (both must be known names)."""
    return check_permission(permission) in ROLE_PERMISSIONS[check_role(role)]
