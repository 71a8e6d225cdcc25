"""Dashboards: counts over time per zone and label, line crossing totals."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query

from vigil.api.deps import ApiState, api_state, check_camera, require
from vigil.api.openapi import answers
from vigil.api.schemas import CountSeries, CountsOut, LinesOut, UtcTime
from vigil.governance.users import User

router = APIRouter(prefix="/api", tags=["analytics"])
CameraQuery = Annotated[str, Query(min_length=1, max_length=64)]
MAX_POINTS = 5000


@router.get("/counts", response_model=CountsOut, responses=answers(404))
def counts(camera: CameraQuery, user: User = Depends(require("events.read")), state: ApiState = Depends(api_state),
           from_: Annotated[UtcTime | None, Query(alias="from")] = None, to: UtcTime | None = None,
           bucket_s: Annotated[int, Query(ge=1, le=86_400)] = 60) -> CountsOut:
    """Objects per zone (``zone`` null: the whole view) and label, max and mean per bucket; default: last hour."""
    check_camera(state, user, camera, "events.read")
    to = to or datetime.now(UTC)
    from_ = from_ or to - timedelta(hours=1)
    if to <= from_:
        raise HTTPException(422, "'to' must be after 'from'")
    if (to - from_).total_seconds() / bucket_s > MAX_POINTS:
        raise HTTPException(422, f"too many buckets: at most {MAX_POINTS} per series (raise bucket_s)")
    series: dict[tuple[str | None, str], list] = defaultdict(list)
    for bucket in state.services.events.counts_over_time(camera, from_, to, bucket_s):
        series[(bucket.zone, bucket.label)].append((bucket.start, bucket.max, round(bucket.mean, 3)))
    return CountsOut(series=[CountSeries(zone=zone, label=label, points=points)
                             for (zone, label), points in series.items()])


@router.get("/lines", response_model=LinesOut, responses=answers(404))
def lines(camera: CameraQuery, user: User = Depends(require("events.read")),
          state: ApiState = Depends(api_state)) -> LinesOut:
    """Crossings per line, direction and label since the node started (zeros without a running node)."""
    config = check_camera(state, user, camera, "events.read")
    out: dict[str, dict[str, dict[str, int]]] = {ln.name: {"in": {}, "out": {}} for ln in config.lines}
    out.update(state.live.line_counts(camera) or {})
    return LinesOut(lines=out)
