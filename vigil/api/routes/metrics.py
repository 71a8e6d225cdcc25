"""``GET /metrics``: the node in Prometheus' text format (``vigil.api.metrics``).

It lies outside ``/api`` and outside the OpenAPI document (the body is Prometheus' exposition format, not JSON)
and checks its own credentials (``SELF_AUTHENTICATED_PATHS``), in this order:

1. ``Authorization: Bearer <metrics.token>``, as Prometheus sends it with ``authorization: {credentials: ...}``;
2. a client address inside ``metrics.allow_from``;
3. a signed-in session (cookie or bearer) whose role has ``config.manage`` (administrators), for a look with a
   browser or curl; camera series are then limited to the user's cameras.

Anything else is refused with a one-line JSON ``detail``: 401 when the scrape token is missing or wrong, 403 when
the address is not allowed, metrics are not enabled (neither ``token`` nor ``allow_from``) or the role lacks
``config.manage``. The token is never logged.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from prometheus_client.exposition import choose_encoder

from vigil.api.deps import ApiState, api_state, check, session_token
from vigil.api.metrics import app_metrics, build_registry, refusal, scrape_allowed
from vigil.governance.users import ALL_CAMERAS, User

router = APIRouter(tags=["metrics"])


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """The node's metrics for Prometheus (scrape token, allowed address, or an administrator's session)."""
    state = api_state(request)
    settings = state.config.metrics
    authorization = request.headers.get("authorization")
    client = request.client.host if request.client else None
    shared = app_metrics(request.app)
    registry = shared.registry
    if not scrape_allowed(settings, authorization, client):
        user = _session_user(state, request)
        if user is None:
            status, detail = refusal(settings, authorization, client)
            shared.refusals.refused(client, detail)
            headers = {"WWW-Authenticate": 'Bearer realm="vigil-metrics"'} if status == 401 else None
            raise HTTPException(status, detail, headers=headers)
        check(user, "config.manage")
        if ALL_CAMERAS not in user.cameras:
            registry = build_registry(state, user.sees_camera)
    encoder, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encoder(registry), media_type=content_type, headers={"Cache-Control": "no-store"})


def _session_user(state: ApiState, request: Request) -> User | None:
    token = session_token(request.scope)
    if token is None or len(token) >= 512:
        return None
    return state.users.verify_session(token)
