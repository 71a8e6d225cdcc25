"""The audit hash chain as pure data: entries, checkpoints, hashing and verification (no database).

Each entry's ``hash`` is the sha256 of a canonical JSON object holding every field plus ``prev_hash`` (the
previous entry's hash; 64 zeros for the first). A checkpoint is an Ed25519 signature over (seq, hash) of the
head at some moment; the witness head is the same over the newest entry, kept outside the database and replaced on
every append. ``verify_chain`` checks a sequence of entries against a set of checkpoints and the witness head: an
edit, insertion or deletion breaks a hash link, a rewritten suffix breaks a checkpoint, a cut tail leaves a
checkpoint or the witness head pointing past the end.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from vigil.governance.keys import key_id, verify_signature

GENESIS_HASH = "0" * 64
CHECKPOINT_DOMAIN = "vigil-audit-checkpoint/1"
HEAD_DOMAIN = "vigil-audit-head/1"


def canonical_json(value: Any) -> str:
    """Deterministic JSON: sorted keys, no spaces, UTF-8 kept; unknown types (datetimes, paths) as ``str``."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def format_time(at: datetime) -> str:
    """UTC ISO-8601 with microseconds and ``Z``: the one spelling of a time that is hashed."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One link of the chain. ``details_json`` is the exact canonical text that was hashed."""

    seq: int
    at: datetime
    actor: str
    action: str
    object: str
    purpose: str | None
    details_json: str
    prev_hash: str
    hash: str

    @property
    def details(self) -> dict[str, Any]:
        return json.loads(self.details_json)

    def to_json(self) -> dict[str, Any]:
        """The fields as stored (time as ``format_time``), for bundles and the API."""
        data = asdict(self)
        data["at"] = format_time(self.at)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AuditEntry:
        return cls(seq=int(data["seq"]), at=parse_time(data["at"]), actor=data["actor"], action=data["action"],
                   object=data["object"], purpose=data["purpose"], details_json=data["details_json"],
                   prev_hash=data["prev_hash"], hash=data["hash"])


def entry_hash(seq: int, at: datetime, actor: str, action: str, object_: str, purpose: str | None,
               details_json: str, prev_hash: str) -> str:
    """The sha256 (hex) that links an entry into the chain."""
    body = {"seq": seq, "at": format_time(at), "actor": actor, "action": action, "object": object_,
            "purpose": purpose, "details": details_json, "prev_hash": prev_hash}
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


def recompute_hash(entry: AuditEntry) -> str:
    return entry_hash(entry.seq, entry.at, entry.actor, entry.action, entry.object, entry.purpose,
                      entry.details_json, entry.prev_hash)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signature over the chain head (``seq``, ``hash``) made at ``at`` with key ``key_id``."""

    seq: int
    hash: str
    at: datetime
    key_id: str
    signature: str

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["at"] = format_time(self.at)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Checkpoint:
        return cls(seq=int(data["seq"]), hash=data["hash"], at=parse_time(data["at"]), key_id=data["key_id"],
                   signature=data["signature"])


def checkpoint_message(seq: int, hash_: str, at: datetime, key: str, domain: str = CHECKPOINT_DOMAIN) -> bytes:
    """The bytes a checkpoint signs (``domain=HEAD_DOMAIN``: a witness head, which is not a checkpoint)."""
    return canonical_json({"domain": domain, "seq": seq, "hash": hash_, "at": format_time(at),
                           "key_id": key}).encode()


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The outcome of a verification: ``first_bad_seq`` is the first entry that cannot be trusted."""

    ok: bool
    entries: int
    first_bad_seq: int | None
    reason: str
    checkpoints: int = 0
    head_seq: int = 0
    unsigned_tail: int = 0  # entries after the last valid checkpoint or witness head (protected by hash links only)
    witnessed_seq: int = 0  # the seq of the witness head checked (0: none given)


def _entries(count: int) -> str:
    return f"{count} newest entr{'y' if count == 1 else 'ies'}"


def verify_chain(entries: Iterable[AuditEntry], checkpoints: Iterable[Checkpoint], public_key: Ed25519PublicKey,
                 require_signed_head: bool = False, witness_head: Checkpoint | None = None) -> VerifyResult:
    """Check hash links, sequence numbers, signed checkpoints and the witness head; report the first untrustworthy
    entry.

    ``witness_head`` (signed over ``HEAD_DOMAIN``) is the newest entry as recorded outside the database: a log
    ending before it lost its newest entries. It may lag behind the log (an append in flight, a crash between
    commit and file write), never run ahead. Entries after the last checkpoint or witness head are protected by
    the hash links only: anyone able to write the database could extend that tail. ``require_signed_head``
    treats such a tail as a failure (use it for bundles, which are checkpointed at their head when exported).
    """
    problems: list[tuple[int, str]] = []
    marks = sorted(set(checkpoints), key=lambda c: (c.seq, c.at))
    expected_key = key_id(public_key)
    good_marks: list[Checkpoint] = []
    for mark in marks:
        message = checkpoint_message(mark.seq, mark.hash, mark.at, mark.key_id)
        if not verify_signature(public_key, message, mark.signature):
            other = "" if mark.key_id == expected_key else f" (made with key {mark.key_id}, not {expected_key})"
            problems.append((mark.seq, f"checkpoint at seq {mark.seq}: bad signature{other}"))
        else:
            good_marks.append(mark)
    if witness_head is not None:
        message = checkpoint_message(witness_head.seq, witness_head.hash, witness_head.at, witness_head.key_id,
                                     HEAD_DOMAIN)
        if not verify_signature(public_key, message, witness_head.signature):
            problems.append((witness_head.seq, f"witness head at seq {witness_head.seq}: bad signature"))
            witness_head = None
    wanted = {mark.seq for mark in good_marks} | ({witness_head.seq} if witness_head else set())
    seen: dict[int, str] = {}
    count, prev_hash, expected_seq, broken = 0, GENESIS_HASH, 1, False
    for entry in entries:
        count += 1
        if broken:
            continue
        if entry.seq != expected_seq:
            what = "missing (deleted?)" if entry.seq > expected_seq else f"followed by seq {entry.seq} (inserted?)"
            problems.append((expected_seq, f"entry {expected_seq} is {what}"))
            broken = True
        elif entry.prev_hash != prev_hash:
            problems.append((entry.seq, f"entry {entry.seq}: prev_hash does not match entry {entry.seq - 1}"))
            broken = True
        elif recompute_hash(entry) != entry.hash:
            problems.append((entry.seq, f"entry {entry.seq}: content does not match its hash (edited?)"))
            broken = True
        else:
            if entry.seq in wanted:
                seen[entry.seq] = entry.hash
            prev_hash, expected_seq = entry.hash, entry.seq + 1
    head_seq = expected_seq - 1
    trusted_until = 0
    for mark in good_marks:
        if mark.seq > head_seq and not broken:
            problems.append((trusted_until + 1, f"checkpoint at seq {mark.seq} but the log ends at seq {head_seq}: "
                                                f"entries after seq {trusted_until} (the last matching checkpoint) "
                                                "were cut or rewritten"))
        elif mark.seq in seen and seen[mark.seq] != mark.hash:
            problems.append((trusted_until + 1, f"checkpoint at seq {mark.seq} does not match the chain "
                                                f"(entries {trusted_until + 1}..{mark.seq} rewritten)"))
        elif mark.seq in seen:
            trusted_until = max(trusted_until, mark.seq)
    cut = None
    if witness_head is not None and not broken:
        if witness_head.seq > head_seq:
            cut = (trusted_until + 1, f"{_entries(witness_head.seq - head_seq)} missing: the log ends at seq "
                                      f"{head_seq} but the witness head is at seq {witness_head.seq} (tail cut?)")
            problems.append(cut)
        elif seen.get(witness_head.seq) != witness_head.hash:
            problems.append((trusted_until + 1, f"entry {witness_head.seq} does not match the witness head "
                                                f"(entries {trusted_until + 1}..{witness_head.seq} rewritten)"))
        else:
            trusted_until = max(trusted_until, witness_head.seq)
    witnessed = witness_head.seq if witness_head else 0
    if problems:
        first = min(problems, key=lambda p: p[0])
        reason = first[1] if cut is None or cut is first else f"{first[1]}; {cut[1]}"
        return VerifyResult(False, count, first[0], reason, len(marks), head_seq, 0, witnessed)
    tail = head_seq - trusted_until
    if require_signed_head and tail:
        return VerifyResult(False, count, trusted_until + 1, f"entries {trusted_until + 1}..{head_seq} are not "
                            "covered by a signed checkpoint (appended after it?)", len(marks), head_seq, tail,
                            witnessed)
    return VerifyResult(True, count, None, "ok", len(marks), head_seq, tail, witnessed)
