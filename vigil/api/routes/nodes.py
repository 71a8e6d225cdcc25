"""``/api/nodes``: the camera workers, as their last heartbeats described them (the nodes page).

Who may look: administrators (``config.manage``: they deploy and size the workers) and supervisors
(``authorisation.approve``, held by the supervisor role alone: they run the operation and need to see why cameras
are down). Neither operators nor investigators nor auditors need host names and load figures. Camera ids are
limited to the caller's cameras; the node's totals (fps, drops, camera count) are not personal data and stay whole.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from vigil.api.deps import ApiState, api_state, require_any
from vigil.api.schemas import NodeOut
from vigil.governance.users import User

router = APIRouter(prefix="/api/nodes", tags=["nodes"])
PERMISSIONS = ("config.manage", "authorisation.approve")


@router.get("", response_model=list[NodeOut])
def list_nodes(user: User = Depends(require_any(*PERMISSIONS)), state: ApiState = Depends(api_state)) -> list[NodeOut]:
    """Each worker: its cameras and their states, CPU, load, analysed fps, drops, memory, heartbeat age, lost.
    Lost workers first, then by name."""
    statuses = state.live.statuses()
    out = []
    for node in state.live.nodes():
        visible = [c for c in node.cameras if user.sees_camera(c)]
        states: dict[str, int] = {}
        for camera in visible:
            camera_state = statuses[camera].state if camera in statuses else "unknown"
            states[camera_state] = states.get(camera_state, 0) + 1
        out.append(NodeOut(
            node=node.node, host=node.host, cameras=visible, camera_count=len(node.cameras), states=states,
            cores=node.cores, load_1m=node.load_1m, cpu_percent=node.cpu_percent, analysed_fps=node.analysed_fps,
            drops=node.drops, rss_mb=node.rss_mb, age_s=node.age_s, lost=node.lost))
    return sorted(out, key=lambda n: (not n.lost, n.node))
