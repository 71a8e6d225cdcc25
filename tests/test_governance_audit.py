"""Audit chain: appends, signed checkpoints, 100+ random tamperings detected, bundles, concurrent writers —
on SQLite and on real PostgreSQL."""

from __future__ import annotations

import json
import random
import shutil
import stat
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, delete, insert, inspect, select, text, update

from tests.support import superuser_tampering
from vigil.governance.audit import AuditLog, verify_bundle
from vigil.governance.chain import entry_hash
from vigil.governance.errors import AuditError
from vigil.governance.keys import PRIVATE_KEY_FILE, PUBLIC_KEY_FILE, AuditSigner
from vigil.governance.schema import AuditRow
from vigil.store.db import Base, Store, make_engine
from vigil.store.migrations import downgrade, upgrade

GOVERNANCE_TABLES = {"users", "user_sessions", "audit_log", "audit_checkpoints", "authorisations"}
AUDIT = AuditRow.__table__
T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def ticking_clock(start: datetime = T0, step: timedelta = timedelta(seconds=1)) -> Callable[[], datetime]:
    state = {"now": start}

    def now() -> datetime:
        state["now"] += step
        return state["now"]

    return now


def fill(log: AuditLog, count: int) -> None:
    for i in range(count):
        log.append(f"user{i % 3}", ["video.live", "search", "export"][i % 3], f"camera:cam{i % 4}",
                   purpose=f"case-{i % 5}" if i % 2 else None,
                   details={"query": {"colour": "red", "n": i, "ratio": 0.1 * i}, "note": "naïve ü"})


def _governance_only(obj: Any, name: str | None, kind: str, *_: Any) -> bool:
    table = name if kind == "table" else getattr(getattr(obj, "table", None), "name", None)
    return table in GOVERNANCE_TABLES


def test_migration_matches_orm_and_goes_down(db_url: str) -> None:
    upgrade(db_url, "heads")
    engine = make_engine(db_url)
    try:
        assert set(inspect(engine).get_table_names()) >= GOVERNANCE_TABLES
        with engine.connect() as conn:  # the hand-written revision creates exactly what the ORM describes
            ctx = MigrationContext.configure(conn, opts={"compare_type": True, "include_object": _governance_only})
            assert compare_metadata(ctx, Base.metadata) == []
    finally:
        engine.dispose()
    downgrade(db_url, "0001")
    engine = make_engine(db_url)
    try:
        assert not GOVERNANCE_TABLES & set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_append_chain_and_checkpoints(store: Store, tmp_path: Path) -> None:
    signer = AuditSigner.load_or_create(tmp_path / "keys")
    assert stat.S_IMODE((tmp_path / "keys" / PRIVATE_KEY_FILE).stat().st_mode) == 0o600
    assert AuditSigner.load_or_create(tmp_path / "keys").key_id == signer.key_id  # loaded, not regenerated
    log = AuditLog(store, signer, checkpoint_every=5, clock=ticking_clock())
    assert log.verify().ok and log.verify().entries == 0
    fill(log, 12)
    head = log.head()
    assert head is not None and head.seq == 12
    assert head.details["note"] == "naïve ü" and head.at == T0 + timedelta(seconds=head.seq + 2)  # 2 checkpoints
    assert [m.seq for m in log.checkpoints()] == [5, 10]
    result = log.verify(public_key=(tmp_path / "keys" / PUBLIC_KEY_FILE))
    assert result.ok and result.entries == 12 and result.unsigned_tail == 2
    assert not log.verify(require_signed_head=True).ok
    assert log.checkpoint().seq == 12 and log.checkpoint().seq == 12  # on demand, once per head
    assert log.verify(require_signed_head=True).ok
    assert [e.seq for e in log.entries(actor="user1", limit=3)] == [11, 8, 5]
    assert [e.seq for e in log.entries(object_prefix="camera:cam0", before_seq=9)] == [5, 1]
    other = AuditSigner.generate()  # a different key does not verify these checkpoints
    bad = log.verify(public_key=other.public_pem())
    assert not bad.ok and "bad signature" in bad.reason and bad.first_bad_seq == 5


# ---------------------------------------------------------------- tampering


def _rows(conn: Connection) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in conn.execute(select(AUDIT).order_by(AUDIT.c.seq))]


def _relink(conn: Connection, from_seq: int) -> None:
    """What a careful forger does: recompute prev_hash and hash of every entry from ``from_seq`` on."""
    rows = _rows(conn)
    prev = "0" * 64
    for row in rows:
        if row["seq"] >= from_seq:
            digest = entry_hash(row["seq"], row["at"], row["actor"], row["action"], row["object"], row["purpose"],
                                row["details"], prev)
            conn.execute(update(AUDIT).where(AUDIT.c.seq == row["seq"]).values(prev_hash=prev, hash=digest))
            row["hash"] = digest
        prev = row["hash"]


def _forged(seq: int, prev: str) -> dict[str, Any]:
    row = {"seq": seq, "at": T0, "actor": "mallory", "action": "video.live", "object": "camera:cam1",
           "purpose": None, "details": "{}", "prev_hash": prev}
    return row | {"hash": entry_hash(seq, T0, "mallory", "video.live", "camera:cam1", None, "{}", prev)}


def mutate(conn: Connection, rng: random.Random, kind: str, head: int) -> int:
    """Tamper with the audit table through plain SQL; return the lowest seq touched."""
    rows = {r["seq"]: r for r in _rows(conn)}
    seq = rng.randint(1, head)
    rehash = kind.endswith("+rehash")
    kind = kind.removesuffix("+rehash")
    if kind == "edit":
        content = ["at", "actor", "action", "object", "purpose", "details"]
        column = rng.choice(content if rehash else [*content, "prev_hash", "hash"])  # rehash would undo a hash edit
        value: Any = {"at": rows[seq]["at"] + timedelta(microseconds=rng.randint(1, 10**6)),
                      "details": json.dumps({"query": "something else"}), "prev_hash": "f" * 64,
                      "hash": "e" * 64}.get(column, f"forged-{rng.randint(0, 99)}")
        conn.execute(update(AUDIT).where(AUDIT.c.seq == seq).values({column: value}))
    elif kind == "delete":
        conn.execute(delete(AUDIT).where(AUDIT.c.seq == seq))
        if rehash:  # close the gap as well
            conn.execute(update(AUDIT).where(AUDIT.c.seq > seq).values(seq=AUDIT.c.seq - 1))
    elif kind == "insert":
        conn.execute(update(AUDIT).where(AUDIT.c.seq >= seq).values(seq=AUDIT.c.seq + 10**6))
        conn.execute(update(AUDIT).where(AUDIT.c.seq >= 10**6).values(seq=AUDIT.c.seq - 10**6 + 1))
        conn.execute(insert(AUDIT).values(_forged(seq, rows[seq - 1]["hash"] if seq > 1 else "0" * 64)))
    elif kind == "append":
        seq = head + 1
        conn.execute(insert(AUDIT).values(_forged(seq, rows[head]["hash"])))
    elif kind == "swap":
        other = rng.choice([s for s in rows if s != seq])
        content = ["at", "actor", "action", "object", "purpose", "details"]
        conn.execute(update(AUDIT).where(AUDIT.c.seq == seq).values({c: rows[other][c] for c in content}))
        conn.execute(update(AUDIT).where(AUDIT.c.seq == other).values({c: rows[seq][c] for c in content}))
        seq = min(seq, other)
    elif kind == "truncate":
        seq = rng.randint(max(1, head - 5), head)
        conn.execute(delete(AUDIT).where(AUDIT.c.seq >= seq))
    if rehash:
        _relink(conn, seq)
    return seq


KINDS = ["edit", "edit+rehash", "delete", "delete+rehash", "insert", "insert+rehash", "append", "swap",
         "swap+rehash", "truncate"]


def test_random_tampering_is_always_detected(store: Store) -> None:
    log = AuditLog(store, AuditSigner.generate(), checkpoint_every=10, clock=ticking_clock())
    fill(log, 45)
    log.checkpoint()  # sign the head, so a cut tail shows
    assert log.verify(require_signed_head=True).ok
    with store.engine.connect() as conn:
        pristine = _rows(conn)
    rng = random.Random(20240501)
    missed, done = [], 0
    for i in range(120):
        kind = KINDS[i % len(KINDS)]
        with superuser_tampering(store.engine) as conn:  # a fresh copy of the chain for every mutation
            conn.execute(delete(AUDIT))
            conn.execute(insert(AUDIT), pristine)
            touched = mutate(conn, rng, kind, head=45)
        result = log.verify(require_signed_head=True)
        done += 1
        if result.ok or result.first_bad_seq is None or result.first_bad_seq > touched + 1:
            missed.append((i, kind, touched, result))
    if missed:
        pytest.fail("undetected tampering:\n" + "\n".join(map(str, missed)))
    assert done == 120
    with superuser_tampering(store.engine) as conn:  # and the untouched copy still verifies
        conn.execute(delete(AUDIT))
        conn.execute(insert(AUDIT), pristine)
    assert log.verify(require_signed_head=True).ok


def test_deleting_checkpoint_rows_is_caught_by_the_witness_file(store: Store, tmp_path: Path) -> None:
    log = AuditLog(store, AuditSigner.generate(), checkpoint_every=4, witness_dir=tmp_path, clock=ticking_clock())
    fill(log, 10)
    with superuser_tampering(store.engine) as conn:  # cut the tail and every checkpoint from the database
        conn.execute(delete(AUDIT).where(AUDIT.c.seq > 6))
        conn.execute(text("DELETE FROM audit_checkpoints"))
    result = log.verify()
    assert not result.ok and result.first_bad_seq == 5 and "checkpoint at seq 8" in result.reason
    assert not AuditLog(store, log.signer).verify(require_signed_head=True).ok  # without the witness: unsigned


# ---------------------------------------------------------------- bundles and concurrency


def test_bundle_verifies_with_only_bundle_and_public_key(store: Store, tmp_path: Path) -> None:
    log = AuditLog(store, AuditSigner.generate(), checkpoint_every=7, clock=ticking_clock())
    fill(log, 20)
    info = log.export(tmp_path / "bundle", actor="auditor1")
    assert info.entries == 21 and info.head_seq == 21  # the export itself is audited
    assert log.head().action == "audit.export"
    (tmp_path / "pub.pem").write_bytes(log.public_pem())
    store.close()  # nothing but the bundle and the key from here on
    bundle = tmp_path / "bundle"
    result = verify_bundle(bundle, tmp_path / "pub.pem")
    assert result.ok and result.entries == 21 and result.checkpoints == 3  # 7, 14, 21 (the export's head)

    def tampered(edit: Callable[[list[str]], list[str]], name: str = "entries.jsonl") -> Path:
        copy = tmp_path / f"copy{len(list(tmp_path.iterdir()))}"
        shutil.copytree(bundle, copy)
        lines = (copy / name).read_text().splitlines()
        (copy / name).write_text("\n".join(edit(lines)) + "\n")
        return copy

    def edit_actor(lines: list[str]) -> list[str]:
        entry = json.loads(lines[9])
        entry["actor"] = "someone-else"
        return [*lines[:9], json.dumps(entry), *lines[10:]]

    cases = {
        "edit": (tampered(edit_actor), 10),
        "delete": (tampered(lambda ls: ls[:4] + ls[5:]), 5),
        "truncate": (tampered(lambda ls: ls[:-2]), 15),  # untrusted from the last matching checkpoint on
        "reorder": (tampered(lambda ls: [ls[1], ls[0], *ls[2:]]), 1),
        "garbage": (tampered(lambda ls: [*ls[:3], "{not json", *ls[3:]]), None),
        "drop checkpoints": (tampered(lambda ls: ls[:1], "checkpoints.jsonl"), 8),
    }
    for name, (path, first_bad) in cases.items():
        result = verify_bundle(path, tmp_path / "pub.pem")
        assert not result.ok, name
        assert result.first_bad_seq == first_bad, (name, result)
    forger = AuditSigner.generate()  # a bundle re-signed with another key fails against the published key
    resigned = tampered(lambda ls: ls)
    (resigned / "public_key.pem").write_bytes(forger.public_pem())
    assert verify_bundle(resigned, forger.public_pem()).ok is False


def test_concurrent_appends_keep_one_chain(store: Store, tmp_path: Path) -> None:
    log = AuditLog(store, AuditSigner.generate(), checkpoint_every=9, witness_dir=tmp_path)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(20):
                log.append(f"worker{n}", "search", f"camera:cam{i}", details={"i": i})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    result = log.verify()
    assert result.ok and result.entries == 100 and result.head_seq == 100
    assert result.witnessed_seq == 100 and result.unsigned_tail == 0  # an older head never replaced a newer one
    assert [m.seq for m in log.checkpoints()] == [9 * k for k in range(1, 12)]
    actors = {e.actor for e in log.entries(limit=100)}
    assert actors == {f"worker{n}" for n in range(5)}


# ---------------------------------------------------------------- the witness head: a cut tail fails the default verify


def test_random_tampering_is_detected_by_default_with_the_witness_head(store: Store, tmp_path: Path) -> None:
    """No checkpoint at the head this time: entries 41..45 are covered by the witness head file only."""
    log = AuditLog(store, AuditSigner.generate(), checkpoint_every=10, witness_dir=tmp_path, clock=ticking_clock())
    fill(log, 45)
    honest = log.verify()
    assert honest.ok and honest.witnessed_seq == 45 and honest.unsigned_tail == 0
    assert log.verify(require_signed_head=True).ok  # the witness head signs the newest entry
    with store.engine.connect() as conn:
        pristine = _rows(conn)
    rng = random.Random(20240502)
    missed = []
    for i in range(120):
        kind = KINDS[i % len(KINDS)]
        with superuser_tampering(store.engine) as conn:
            conn.execute(delete(AUDIT))
            conn.execute(insert(AUDIT), pristine)
            touched = mutate(conn, rng, kind, head=45)
        default, strict = log.verify(), log.verify(require_signed_head=True)
        if kind == "append":  # an entry past the witness head looks like an append in flight: --strict flags it
            assert default.ok and default.unsigned_tail == 1, default
            checked = [strict]
        else:
            checked = [default, strict]
        for result in checked:
            if result.ok or result.first_bad_seq is None or result.first_bad_seq > touched + 1:
                missed.append((i, kind, touched, result))
    if missed:
        pytest.fail("undetected tampering:\n" + "\n".join(map(str, missed)))


@pytest.mark.parametrize("cut", [1, 3])
def test_a_cut_tail_fails_the_default_verify(store: Store, tmp_path: Path, cut: int) -> None:
    log = AuditLog(store, AuditSigner.generate(), witness_dir=tmp_path, clock=ticking_clock())  # checkpoint every 100
    fill(log, 20)
    assert log.verify().ok
    with superuser_tampering(store.engine) as conn:
        conn.execute(delete(AUDIT).where(AUDIT.c.seq > 20 - cut))
    result = log.verify()
    many = "entry" if cut == 1 else "entries"
    assert not result.ok and result.first_bad_seq == 1  # nothing before the cut was signed
    assert result.reason == (f"{cut} newest {many} missing: the log ends at seq {20 - cut} but the witness head "
                             "is at seq 20 (tail cut?)")
    assert not AuditLog(store, log.signer).verify(require_signed_head=True).ok  # without the witness: unsigned


def test_the_witness_head_may_lag_but_not_be_forged(store: Store, tmp_path: Path) -> None:
    signer = AuditSigner.generate()
    log = AuditLog(store, signer, checkpoint_every=4, witness_dir=tmp_path, clock=ticking_clock())
    fill(log, 6)
    fill(AuditLog(store, signer, checkpoint_every=100, clock=ticking_clock(T0 + timedelta(hours=1))), 2)
    lagging = log.verify()  # appended past the witness (a crash between commit and file write): still honest
    assert lagging.ok and lagging.witnessed_seq == 6 and lagging.unsigned_tail == 2
    assert not log.verify(require_signed_head=True).ok
    head = json.loads((tmp_path / "audit_head.json").read_text())
    (tmp_path / "audit_head.json").write_text(json.dumps(head | {"seq": 5}))  # rolled back by hand
    forged = log.verify()
    assert not forged.ok and forged.reason == "witness head at seq 5: bad signature"
    (tmp_path / "audit_head.json").write_text("{not json")
    with pytest.raises(AuditError, match=r"audit_head\.json: not an audit head record"):
        log.verify()
    log.append("user1", "search", "camera:cam1")  # a broken head file is replaced by the next append
    assert log.verify().ok and log.witness_head().seq == 9
