"""Schemathesis hooks for ``test_api_fuzz.py`` (loaded by ``st run`` through ``SCHEMATHESIS_HOOKS``).

``role_matrix`` checks each response against the permissions the OpenAPI document declares for the operation
(``x-vigil-permissions``: all of them; ``x-vigil-permissions-any``: one of them) and the role of the caller,
named by ``VIGIL_FUZZ_ROLE``:
- a role that lacks them is refused with 403 (or 400 for a body that is not JSON, which is read first);
- a role that holds them is never refused for its role.
"""

from __future__ import annotations

import os
import re

import schemathesis

from vigil.governance.roles import ROLE_PERMISSIONS

ROLE_REFUSAL = re.compile(r"\brole '[^']+'")  # how the API words a refusal for the caller's role


def role_allows(role: str, operation: dict) -> bool | None:
    """Whether the document says ``role`` may call ``operation`` (None: a public route)."""
    if "x-vigil-permissions" not in operation:
        return None
    held = ROLE_PERMISSIONS[role]
    needs_any = operation.get("x-vigil-permissions-any") or []
    return set(operation["x-vigil-permissions"]) <= held and (not needs_any or bool(held & set(needs_any)))


@schemathesis.check
def role_matrix(ctx, response, case) -> None:  # type: ignore[no-untyped-def]
    """Refused exactly when the caller's role lacks the declared permissions."""
    if case.method.upper() != case.operation.method.upper():
        return  # schemathesis probing a method the path does not serve (its ``unsupported_method`` check)
    role = os.environ["VIGIL_FUZZ_ROLE"]
    allowed = role_allows(role, case.operation.definition.raw)
    if allowed is None:
        return
    status = response.status_code
    if not allowed and status not in (400, 403):
        raise AssertionError(f"role {role!r} lacks the declared permissions but got {status}")
    detail = response.text if status == 403 else ""
    if allowed and ROLE_REFUSAL.search(detail):
        raise AssertionError(f"role {role!r} holds the declared permissions but was refused: {detail}")
