"""``/api/auth``: login (argon2 via the governance ``UserStore``, throttled), logout, the current user."""

from __future__ import annotations

import math

import anyio
from fastapi import APIRouter, Depends, HTTPException, Request, Response

from vigil.api.deps import SESSION_COOKIE, TOKEN_KEY, ApiState, api_state, current_user, user_out
from vigil.api.schemas import LoginIn, LoginOut, UserOut
from vigil.governance.users import BAD_CREDENTIALS, User

router = APIRouter(prefix="/api/auth", tags=["auth"])


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.post("/login", response_model=LoginOut, responses={401: {}, 429: {}})
async def login(body: LoginIn, request: Request, response: Response,
                state: ApiState = Depends(api_state)) -> LoginOut:
    """Sign in; the token works as a bearer token and is also set as the HttpOnly cookie ``vigil_session``."""
    client = _client(request)
    wait = state.throttle.retry_after(client)
    if wait > 0:
        raise HTTPException(429, f"too many failed logins from {client}; try again in {math.ceil(wait)} s",
                            headers={"Retry-After": str(math.ceil(wait))})
    result = await anyio.to_thread.run_sync(state.users.login, body.username, body.password)
    if result.retry_after_s > 0:
        state.throttle.failed(client)
        seconds = math.ceil(result.retry_after_s)
        raise HTTPException(429, result.reason, headers={"Retry-After": str(seconds)})
    if result.user is None:
        state.throttle.failed(client)
        # the account's own lockout message is kept; anything else stays the generic sentence
        detail = result.reason if result.reason.startswith(BAD_CREDENTIALS) else BAD_CREDENTIALS
        raise HTTPException(401, detail)
    state.throttle.succeeded(client)
    token = await anyio.to_thread.run_sync(state.users.create_session, result.user)
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict", path="/",
                        secure=request.url.scheme == "https",
                        max_age=int(state.users.session_ttl.total_seconds()))
    return LoginOut(token=token, user=UserOut(**user_out(result.user)))


@router.post("/logout", status_code=204)
def logout(request: Request, response: Response, _user: User = Depends(current_user),
           state: ApiState = Depends(api_state)) -> Response:
    """End this session (the cookie is cleared)."""
    token = request.scope.get(TOKEN_KEY)
    if token:
        state.users.revoke_session(token)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.get("/me", response_model=UserOut)
def me(user: User = Depends(current_user)) -> UserOut:
    return UserOut(**user_out(user))
