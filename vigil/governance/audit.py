"""The append-only audit log in the metadata database, with signed checkpoints and exportable bundles (DESIGN §6).

Appends are serialised so concurrent writers cannot fork the chain: PostgreSQL takes a transaction-scoped
advisory lock, SQLite takes the database write lock before reading the head; the primary key on ``seq`` is the
last line of defence (a losing writer retries).

The tables are append-only in the database too (revision ``0006``: triggers refusing UPDATE and DELETE, and on
PostgreSQL an application role without those privileges, ``vigil db grant-app-role``). Outside the database, the
witness folder keeps every checkpoint (``checkpoints.jsonl``) and the signed newest head (``audit_head.json``,
replaced after every append), so a cut tail shows in the default ``verify``.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from vigil.governance.chain import (
    GENESIS_HASH,
    HEAD_DOMAIN,
    AuditEntry,
    Checkpoint,
    VerifyResult,
    canonical_json,
    checkpoint_message,
    entry_hash,
    verify_chain,
)
from vigil.governance.errors import AuditError
from vigil.governance.keys import AuditSigner, load_public_key
from vigil.governance.schema import AuditRow, CheckpointRow
from vigil.store.db import Store, utcnow

ADVISORY_LOCK_KEY = 0x5649474C  # "VIGL"
BUNDLE_FORMAT = "vigil-audit-bundle/1"
WITNESS_FILE = "checkpoints.jsonl"
HEAD_FILE = "audit_head.json"

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: the head file is still replaced atomically, just not locked
    fcntl = None  # type: ignore[assignment]


def _entry(row: AuditRow) -> AuditEntry:
    return AuditEntry(seq=row.seq, at=row.at, actor=row.actor, action=row.action, object=row.object,
                      purpose=row.purpose, details_json=row.details, prev_hash=row.prev_hash, hash=row.hash)


def _checkpoint(row: CheckpointRow) -> Checkpoint:
    return Checkpoint(seq=row.seq, hash=row.hash, at=row.at, key_id=row.key_id, signature=row.signature)


@dataclass(frozen=True, slots=True)
class BundleInfo:
    path: Path
    entries: int
    checkpoints: int
    head_seq: int
    head_hash: str


class AuditLog:
    """Append, checkpoint, query, verify and export the audit chain.

    ``checkpoint_every``: sign the head every N entries (1 signs every append). ``witness_dir``: a folder
    outside the database (normally the data dir) that also receives every checkpoint, so deleting checkpoint
    rows from the database is detected too, and the signed newest head, so a cut tail is.
    """

    def __init__(self, store: Store, signer: AuditSigner, checkpoint_every: int = 100,
                 witness_dir: Path | str | None = None, clock: Callable[[], datetime] = utcnow) -> None:
        if checkpoint_every < 1:
            raise AuditError(f"checkpoint_every must be >= 1, not {checkpoint_every}")
        self.store = store
        self.signer = signer
        self.checkpoint_every = checkpoint_every
        self.witness = Path(witness_dir) / WITNESS_FILE if witness_dir is not None else None
        self.head_file = Path(witness_dir) / HEAD_FILE if witness_dir is not None else None
        self.clock = clock

    # ------------------------------------------------------------------ writing

    def append(self, actor: str, action: str, object: str, purpose: str | None = None,
               details: dict[str, Any] | None = None) -> AuditEntry:
        """Append one entry (``object`` like ``camera:cam1``; ``details`` JSON-able, e.g. a search query)."""
        if not actor or not action or not object:
            raise AuditError("audit entry needs an actor, an action and an object")
        details_json = canonical_json(details or {})
        entry, mark = self._retrying(lambda s: self._append_in(s, actor, action, object, purpose, details_json))
        if mark is not None:
            self._witness(mark)
        self._witness_head(entry)
        return entry

    def checkpoint(self) -> Checkpoint | None:
        """Sign the current head now (None for an empty log; the existing one if the head is signed already)."""
        mark = self._retrying(self._checkpoint_in)
        if mark is not None:
            self._witness(mark)
        return mark

    def _retrying(self, work: Callable[[Session], Any], attempts: int = 30) -> Any:
        for attempt in range(attempts):
            try:
                with self.store.session() as session:
                    self._lock(session)
                    return work(session)
            except (IntegrityError, OperationalError) as exc:
                if attempt == attempts - 1:
                    raise AuditError(f"audit log {self.store.url}: cannot append ({type(exc.orig).__name__})") from None
                time.sleep(0.005 * (attempt + 1))
        raise AssertionError("unreachable")

    def _lock(self, session: Session) -> None:
        if self.store.dialect == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
        else:  # a write as the first statement takes SQLite's write lock (waiting on busy_timeout) before we read
            session.execute(text("UPDATE audit_checkpoints SET seq = seq WHERE id = -1"))

    def _append_in(self, session: Session, actor: str, action: str, object_: str, purpose: str | None,
                   details_json: str) -> tuple[AuditEntry, Checkpoint | None]:
        head = session.execute(select(AuditRow.seq, AuditRow.hash).order_by(AuditRow.seq.desc()).limit(1)).first()
        seq, prev = (head.seq + 1, head.hash) if head else (1, GENESIS_HASH)
        at = self.clock()
        digest = entry_hash(seq, at, actor, action, object_, purpose, details_json, prev)
        row = AuditRow(seq=seq, at=at, actor=actor, action=action, object=object_, purpose=purpose,
                       details=details_json, prev_hash=prev, hash=digest)
        session.add(row)
        session.flush()
        mark = self._sign(session, seq, digest) if seq % self.checkpoint_every == 0 else None
        return _entry(row), mark

    def _checkpoint_in(self, session: Session) -> Checkpoint | None:
        head = session.execute(select(AuditRow.seq, AuditRow.hash).order_by(AuditRow.seq.desc()).limit(1)).first()
        if head is None:
            return None
        last = session.scalars(select(CheckpointRow).order_by(CheckpointRow.seq.desc()).limit(1)).first()
        if last is not None and last.seq == head.seq and last.hash == head.hash:
            return _checkpoint(last)
        return self._sign(session, head.seq, head.hash)

    def _sign(self, session: Session, seq: int, digest: str) -> Checkpoint:
        at = self.clock()
        signature = self.signer.sign(checkpoint_message(seq, digest, at, self.signer.key_id))
        session.add(CheckpointRow(seq=seq, hash=digest, at=at, key_id=self.signer.key_id, signature=signature))
        return Checkpoint(seq=seq, hash=digest, at=at, key_id=self.signer.key_id, signature=signature)

    def _witness(self, mark: Checkpoint) -> None:
        if self.witness is None:
            return
        self.witness.parent.mkdir(parents=True, exist_ok=True)
        with self.witness.open("a") as fh:
            fh.write(json.dumps(mark.to_json()) + "\n")

    def _witness_head(self, entry: AuditEntry) -> None:
        """Replace the head file with a signature over ``entry`` (after its commit, so the file never runs ahead
        of the database; under a file lock, so an older head never replaces a newer one)."""
        if self.head_file is None:
            return
        signature = self.signer.sign(checkpoint_message(entry.seq, entry.hash, entry.at, self.signer.key_id,
                                                        HEAD_DOMAIN))
        mark = Checkpoint(seq=entry.seq, hash=entry.hash, at=entry.at, key_id=self.signer.key_id, signature=signature)
        self.head_file.parent.mkdir(parents=True, exist_ok=True)
        with _locked(self.head_file.with_name(HEAD_FILE + ".lock")):
            with contextlib.suppress(AuditError):
                current = self.witness_head()
                if current is not None and current.seq >= entry.seq:
                    return
            temporary = self.head_file.with_name(f".{HEAD_FILE}.{os.getpid()}.{threading.get_ident()}.tmp")
            temporary.write_text(json.dumps(mark.to_json()) + "\n")
            os.replace(temporary, self.head_file)

    # ------------------------------------------------------------------ reading

    def witness_head(self) -> Checkpoint | None:
        """The newest head as recorded in the witness folder (None without a witness folder or before an append)."""
        if self.head_file is None or not self.head_file.exists():
            return None
        try:
            return Checkpoint.from_json(json.loads(self.head_file.read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            raise AuditError(f"{self.head_file}: not an audit head record") from None

    def head(self) -> AuditEntry | None:
        with self.store.session() as session:
            row = session.scalars(select(AuditRow).order_by(AuditRow.seq.desc()).limit(1)).first()
            return _entry(row) if row else None

    def entries(self, actor: str | None = None, action: str | None = None, object_prefix: str | None = None,
                since: datetime | None = None, until: datetime | None = None, before_seq: int | None = None,
                limit: int = 100) -> list[AuditEntry]:
        """Entries newest first, filtered (``object_prefix`` e.g. ``camera:``); page with ``before_seq``."""
        query = select(AuditRow).order_by(AuditRow.seq.desc()).limit(limit)
        if actor:
            query = query.where(AuditRow.actor == actor)
        if action:
            query = query.where(AuditRow.action == action)
        if object_prefix:
            query = query.where(AuditRow.object.startswith(object_prefix, autoescape=True))
        if since:
            query = query.where(AuditRow.at >= since)
        if until:
            query = query.where(AuditRow.at < until)
        if before_seq is not None:
            query = query.where(AuditRow.seq < before_seq)
        with self.store.session() as session:
            return [_entry(row) for row in session.scalars(query)]

    def iter_entries(self, batch: int = 1000) -> Iterator[AuditEntry]:
        """Every entry in seq order, read in batches."""
        after = 0
        while True:
            with self.store.session() as session:
                rows = session.scalars(select(AuditRow).where(AuditRow.seq > after)
                                       .order_by(AuditRow.seq).limit(batch)).all()
            yield from (_entry(row) for row in rows)
            if len(rows) < batch:
                return
            after = rows[-1].seq

    def checkpoints(self) -> list[Checkpoint]:
        """Checkpoints from the database and the witness file, deduplicated, by seq."""
        with self.store.session() as session:
            marks = {_checkpoint(row) for row in session.scalars(select(CheckpointRow))}
        if self.witness is not None and self.witness.exists():
            for n, line in enumerate(self.witness.read_text().splitlines(), 1):
                try:
                    marks.add(Checkpoint.from_json(json.loads(line)))
                except (ValueError, KeyError, TypeError):
                    raise AuditError(f"{self.witness}: line {n} is not a checkpoint") from None
        return sorted(marks, key=lambda m: (m.seq, m.at))

    # ------------------------------------------------------------------ verification and export

    def verify(self, public_key: Ed25519PublicKey | bytes | str | Path | None = None,
               require_signed_head: bool = False) -> VerifyResult:
        """Verify the whole chain against the checkpoints, with ``public_key`` (default: this log's key; pass the
        separately published one to rule out a replaced key file). See ``verify_chain`` for ``require_signed_head``.
        """
        key = self.signer.public_key if public_key is None else _as_key(public_key)
        head = self.witness_head()
        return verify_chain(self.iter_entries(), self.checkpoints(), key, require_signed_head, head)

    def public_pem(self) -> bytes:
        return self.signer.public_pem()

    def export(self, path: Path | str, actor: str = "system") -> BundleInfo:
        """Write a bundle folder (entries.jsonl, checkpoints.jsonl, public_key.pem, manifest.json).

        The export itself is audited first and the head is then checkpointed, so the bundle is signed to its end.
        """
        out = Path(path)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AuditError(f"{out}: cannot create export folder ({exc.strerror})") from None
        self.append(actor, "audit.export", f"file:{out}")
        self.checkpoint()
        count, head_seq, head_hash = 0, 0, GENESIS_HASH
        with (out / "entries.jsonl").open("w") as fh:
            for entry in self.iter_entries():
                fh.write(json.dumps(entry.to_json(), ensure_ascii=False) + "\n")
                count, head_seq, head_hash = count + 1, entry.seq, entry.hash
        marks = self.checkpoints()
        with (out / "checkpoints.jsonl").open("w") as fh:
            fh.writelines(json.dumps(mark.to_json()) + "\n" for mark in marks)
        (out / "public_key.pem").write_bytes(self.public_pem())
        manifest = {"format": BUNDLE_FORMAT, "entries": count, "checkpoints": len(marks), "head_seq": head_seq,
                    "head_hash": head_hash, "key_id": self.signer.key_id}
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        return BundleInfo(out, count, len(marks), head_seq, head_hash)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (created if missing) across threads and processes."""
    with path.open("a") as fh:
        if fcntl is not None:
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _as_key(key: Ed25519PublicKey | bytes | str | Path) -> Ed25519PublicKey:
    return key if isinstance(key, Ed25519PublicKey) else load_public_key(key)


def verify_bundle(path: Path | str, public_key: Ed25519PublicKey | bytes | str | Path,
                  require_signed_head: bool = True) -> VerifyResult:
    """Verify an exported bundle with nothing but its files and the public key (PEM bytes/text/file or key).

    The key inside the bundle is not trusted: pass the one published separately. A bundle is signed to its
    last entry, so by default entries past the last checkpoint count as tampering.
    """
    folder = Path(path)
    key = _as_key(public_key)
    entries: list[AuditEntry] = []
    marks: list[Checkpoint] = []
    for name, parse, into in (("entries.jsonl", AuditEntry.from_json, entries),
                              ("checkpoints.jsonl", Checkpoint.from_json, marks)):
        file = folder / name
        try:
            lines = file.read_text().splitlines()
        except OSError as exc:
            raise AuditError(f"{file}: cannot read audit bundle ({exc.strerror})") from None
        for n, line in enumerate(lines, 1):
            try:
                into.append(parse(json.loads(line)))  # type: ignore[arg-type]
            except (ValueError, KeyError, TypeError):
                return VerifyResult(False, len(entries), None, f"{name} line {n}: malformed record")
    return verify_chain(entries, marks, key, require_signed_head)
