"""Users, roles and camera grants, login throttling and sessions — on SQLite and real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.support import Clock
from vigil.governance.audit import AuditLog
from vigil.governance.errors import PermissionDenied, UserError
from vigil.governance.keys import AuditSigner
from vigil.governance.roles import PERMISSIONS, ROLES
from vigil.governance.schema import SessionRow, UserRow
from vigil.governance.users import BAD_CREDENTIALS, UserStore
from vigil.store.db import Store

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def test_permission_matrix_and_camera_grants(users: UserStore) -> None:
    op = users.create("olive", "orange tram lantern 41", "operator", "admin1", cameras=["cam1", "cam2"])
    inv = users.create("ivan", "quiet harbour maple 7", "investigator", "admin1", cameras=["*"])
    aud = users.create("audrey", "copper violin meadow 3", "auditor", "admin1", cameras=["*"])
    adm = users.create("adam", "silver kettle orchard 9", "admin", "admin1", cameras=["*"])
    assert users.can_view_video(op, "cam1") and users.can_view_video(op, "cam2")
    assert not users.can_view_video(op, "cam3")  # not granted
    assert not users.can_view_video(op, "cam1", "video.playback")  # operators watch live only
    assert users.can_view_video(inv, "cam9", "video.playback") and not users.can_view_video(inv, "cam9")
    for no_video in (aud, adm):  # every camera granted, still no video: the role decides
        assert not users.can_view_video(no_video, "cam1")
        assert not users.can_view_video(no_video, "cam1", "video.playback")
    assert users.can(aud, "audit.read") and not users.can(aud, "search") and not users.can(aud, "export")
    assert users.can(adm, "users.manage") and not users.can(adm, "audit.read")
    assert not users.can(op, "authorisation.approve") and not users.can(inv, "authorisation.approve")
    with pytest.raises(PermissionDenied, match=r"role 'auditor' of 'audrey' does not allow video\.live"):
        users.require(aud, "video.live", "cam1")
    with pytest.raises(PermissionDenied, match="no access to camera 'cam3'"):
        users.require(op, "video.live", "cam3")
    users.require(op, "video.live", "cam2")
    with pytest.raises(UserError, match=r"unknown permission 'video\.watch'"):
        users.can(op, "video.watch")
    assert {p for p in PERMISSIONS if users.can(op, p)} == {"events.read", "events.ack", "video.live"}
    accounts = {role: users.create(f"x-{role}", "blue ferry pocket 55", role, "admin1", cameras=["*"])
                for role in ROLES}
    watchers = {role for role, account in accounts.items() if users.can(account, "video.live")}
    assert watchers == {"operator", "supervisor"}


def test_user_changes_are_validated_and_audited(users: UserStore) -> None:
    users.create("sam", "amber cactus rowing 12", "supervisor", "admin1", cameras=["cam1"], display_name="Sam S")
    with pytest.raises(UserError, match="user 'sam' already exists"):
        users.create("sam", "green wombat piano 88", "operator", "admin1")
    with pytest.raises(UserError, match="unknown role 'boss'"):
        users.create("bob", "violet gravel sunrise 6", "boss", "admin1")
    with pytest.raises(UserError, match="too short"):
        users.create("bob", "short", "operator", "admin1")
    with pytest.raises(UserError, match="bad username"):
        users.create("Bob Smith", "violet gravel sunrise 6", "operator", "admin1")
    with pytest.raises(UserError, match="no user 'nobody'"):
        users.update("nobody", "admin1", role="auditor")
    users.update("sam", "admin1", role="investigator", password="nimble otter canvas 27")
    users.grant_cameras("sam", ["cam1", "cam4", "cam1"], "admin1")
    users.disable("sam", "admin1", reason="left the unit")
    assert users.get("sam").disabled and users.get("sam").cameras == ("cam1", "cam4")
    trail = list(reversed(users.audit.entries(object_prefix="user:sam")))
    assert [e.action for e in trail] == ["user.create", "user.update", "user.update", "user.disable"]
    assert trail[0].details == {"role": "supervisor", "cameras": ["cam1"]} and trail[0].actor == "admin1"
    assert trail[1].details == {"role": {"from": "supervisor", "to": "investigator"}, "password": "changed"}
    assert trail[2].details == {"cameras": {"from": ["cam1"], "to": ["cam1", "cam4"]}}
    assert all("argon2" not in e.details_json and "new-password" not in e.details_json for e in trail)
    assert users.audit.verify().ok
    assert [u.username for u in users.list_users()] == ["sam"]


def test_login_throttling_locks_out_with_growing_delay(users: UserStore, clock: Clock) -> None:
    users.create("olive", "purple rocket garden 15", "operator", "admin1", cameras=["cam1"])
    assert users.authenticate("olive", "purple rocket garden 15").username == "olive"
    for _ in range(4):
        assert users.login("olive", "wrong").reason == BAD_CREDENTIALS
    fifth = users.login("olive", "wrong")
    assert fifth.user is None and "locked for 30 s" in fifth.reason
    locked = users.login("olive", "purple rocket garden 15")  # the right password does not help while locked
    assert locked.user is None and "locked until 2024-05-01 12:00:30" in locked.reason
    assert locked.retry_after_s == pytest.approx(30)
    clock.now += timedelta(seconds=30)
    assert "locked for 60 s" in users.login("olive", "wrong").reason  # the lock doubles
    clock.now += timedelta(seconds=59)
    assert not users.login("olive", "purple rocket garden 15").ok
    clock.now += timedelta(seconds=1)
    assert users.login("olive", "purple rocket garden 15").ok  # and a success resets the count
    assert "locked" not in users.login("olive", "wrong").reason
    assert users.login("nobody", "whatever").reason == BAD_CREDENTIALS  # no hint that the user does not exist
    users.disable("olive", "admin1")
    assert users.login("olive", "purple rocket garden 15").reason == "account 'olive' is disabled"
    actions = [e.action for e in users.audit.entries(object_prefix="user:olive", limit=100)]
    assert actions.count("user.login_failed") == 7 and actions.count("user.login_refused") == 3
    assert actions.count("user.login") == 2


def test_sessions_expire_revoke_and_store_only_a_digest(users: UserStore, clock: Clock, store: Store) -> None:
    inv = users.create("ivan", "quiet harbour maple 7", "investigator", "admin1", cameras=["*"])
    token = users.create_session(inv, ttl=timedelta(minutes=10))
    other = users.create_session(inv)
    assert users.verify_session(token).username == "ivan"
    with store.session() as session:
        stored = session.scalars(select(SessionRow.token_sha256)).all()
        assert token not in stored and len(stored) == 2 and all(len(s) == 64 for s in stored)
        assert session.scalars(select(UserRow.password_hash)).one().startswith("$argon2id$")
    clock.now += timedelta(minutes=10)
    assert users.verify_session(token) is None  # expired exactly at its end
    assert users.verify_session(other) is not None
    assert users.revoke_session(other) and not users.revoke_session(other)
    assert users.verify_session(other) is None and users.verify_session("made-up") is None
    third = users.create_session(inv)
    users.disable("ivan", "admin1")
    assert users.verify_session(third) is None
    users.enable("ivan", "admin1")
    assert users.verify_session(third) is None  # disabling ended it for good


def test_admin_ends_sessions_and_a_new_password_ends_them_too(users: UserStore) -> None:
    inv = users.create("ivan", "quiet harbour maple 7", "investigator", "admin1", cameras=["*"])
    first, second = users.create_session(inv), users.create_session(inv)
    assert users.active_sessions("ivan") == 2
    assert users.revoke_sessions("ivan", "admin1") == 2 and users.active_sessions("ivan") == 0
    assert users.verify_session(first) is None and users.verify_session(second) is None
    assert users.audit.entries(object_prefix="user:ivan")[0].action == "user.sessions_revoked"
    third = users.create_session(inv)
    users.update("ivan", "ivan", password="lemon glacier tuba 90")
    assert users.verify_session(third) is None  # signed in with the old password: ended


@pytest.mark.parametrize(("password", "reason"), [
    ("short-1", "too short"),
    ("x" * 257, "too long"),
    ("password1234", "too weak: This is a very common password"),
    ("qwertyuiop123", "too weak"),
    ("aaaaaaaaaaaaaaaa", "too weak"),
    ("olive-rocket-2024", "contains the user's name"),
])
def test_password_policy_names_the_weakness_never_the_password(users: UserStore, password: str,
                                                                reason: str) -> None:
    with pytest.raises(UserError, match=reason) as refused:
        users.create("olive", password, "operator", "admin1")
    assert password not in str(refused.value)
    assert users.find("olive") is None


def test_default_argon2_parameters(store: Store) -> None:
    users = UserStore(store, AuditLog(store, AuditSigner.generate()))
    users.create("dana", "hollow pepper train 64", "admin", "setup")
    assert users.authenticate("dana", "hollow pepper train 64") is not None
    assert users.authenticate("dana", "hollow pepper train 65") is None
