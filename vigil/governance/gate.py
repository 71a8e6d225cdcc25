"""The runtime's switch for biometric features: on exactly inside an active authorisation's window.

``AuthorisationGate(authorisations, feature)`` is the ``allowed(camera_id, at)`` callable the face
enricher asks on every frame. A decision is cached per camera until the next window bound
(``next_change``), so matching starts and stops at the bounds to the capture-time second, and for at
most ``recheck_s`` of capture time otherwise, so a new approval or a revocation is seen within that.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from vigil.governance.authorisations import AuthorisationStore


class AuthorisationGate:
    def __init__(self, authorisations: AuthorisationStore, feature: str = "live_face_match",
                 recheck_s: float = 5.0) -> None:
        self.authorisations = authorisations
        self.feature = feature
        self.recheck = timedelta(seconds=recheck_s)
        self._decisions: dict[str, tuple[datetime, datetime, bool]] = {}  # camera → (from, until, allowed)

    def __call__(self, camera_id: str, at: datetime) -> bool:
        cached = self._decisions.get(camera_id)
        if cached is not None and cached[0] <= at < cached[1]:
            return cached[2]
        allowed = self.authorisations.active_for(self.feature, camera_id, at) is not None
        until = at + self.recheck
        bound = self.authorisations.next_change(self.feature, camera_id, at)
        if bound is not None and bound < until:
            until = bound
        self._decisions[camera_id] = (at, until, allowed)
        return allowed
