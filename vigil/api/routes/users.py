"""``/api/users``: the accounts and their sessions, for admins (``users.manage``).

Accounts are created and changed with ``vigil users ...`` on the console; here an admin sees who has live
sessions and can end them (a lost laptop, a leaver). Ending sessions is audited by ``UserStore``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException
from fastapi import Path as PathParam
from pydantic import BaseModel

from vigil.api.deps import ApiState, api_state, require
from vigil.governance.users import ALL_CAMERAS, User

router = APIRouter(prefix="/api/users", tags=["users"])

Username = Annotated[str, PathParam(pattern=r"^[a-z0-9][a-z0-9._@-]{1,63}$")]


class AccountOut(BaseModel):
    username: str
    display_name: str
    role: str
    cameras: list[str] | Literal["*"]
    disabled: bool
    active_sessions: int


class SessionsRevokedOut(BaseModel):
    username: str
    revoked: int


def _account(state: ApiState, user: User) -> AccountOut:
    return AccountOut(username=user.username, display_name=user.display_name, role=user.role,
                      cameras=ALL_CAMERAS if ALL_CAMERAS in user.cameras else list(user.cameras),
                      disabled=user.disabled, active_sessions=state.users.active_sessions(user.username))


@router.get("", response_model=list[AccountOut])
def list_accounts(_admin: User = Depends(require("users.manage")),
                  state: ApiState = Depends(api_state)) -> list[AccountOut]:
    """Every account with its role, cameras, state and number of live sessions."""
    return [_account(state, user) for user in state.users.list_users()]


@router.post("/{username}/sessions/revoke", response_model=SessionsRevokedOut, responses={404: {}})
def revoke_sessions(username: Username, admin: User = Depends(require("users.manage")),
                    state: ApiState = Depends(api_state)) -> SessionsRevokedOut:
    """End every session of ``username`` now; their next request answers 401."""
    if state.users.find(username) is None:
        raise HTTPException(404, f"no user {username!r}")
    return SessionsRevokedOut(username=username, revoked=state.users.revoke_sessions(username, admin.username))
