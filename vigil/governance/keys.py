"""The Ed25519 key that signs audit checkpoints (DESIGN §6).

Generated once into the data dir (``audit/audit_ed25519.pem``, mode 0600); the public half is exported as PEM so
the chain can be verified by someone who never sees the database or the private key.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from vigil.governance.errors import AuditError

PRIVATE_KEY_FILE = "audit_ed25519.pem"
PUBLIC_KEY_FILE = "audit_ed25519.pub.pem"


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short fingerprint of a public key: the first 16 hex digits of the sha256 of its raw bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_public_key(pem: bytes | str | Path, source: str = "public key") -> Ed25519PublicKey:
    """An Ed25519 public key from PEM bytes/text or a PEM file; ``AuditError`` naming ``source`` otherwise."""
    if isinstance(pem, Path):
        source = str(pem)
        try:
            pem = pem.read_bytes()
        except OSError as exc:
            raise AuditError(f"{source}: cannot read public key ({exc.strerror})") from None
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise AuditError(f"{source}: not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise AuditError(f"{source}: not an Ed25519 public key")
    return key


def verify_signature(public_key: Ed25519PublicKey, message: bytes, signature_hex: str) -> bool:
    try:
        public_key.verify(bytes.fromhex(signature_hex), message)
    except (InvalidSignature, ValueError):
        return False
    return True


class AuditSigner:
    """Signs checkpoints with a private Ed25519 key."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private_key = private_key
        self.public_key = private_key.public_key()
        self.key_id = key_id(self.public_key)

    @classmethod
    def generate(cls) -> AuditSigner:
        """A fresh in-memory key (tests, throw-away chains)."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load_or_create(cls, directory: Path | str) -> AuditSigner:
        """The key in ``directory`` (created with mode 0600 on first use, plus its public PEM next to it)."""
        directory = Path(directory)
        private_file = directory / PRIVATE_KEY_FILE
        if private_file.exists():
            try:
                key = serialization.load_pem_private_key(private_file.read_bytes(), password=None)
            except (OSError, ValueError) as exc:
                raise AuditError(f"{private_file}: cannot load the audit signing key ({exc})") from None
            if not isinstance(key, Ed25519PrivateKey):
                raise AuditError(f"{private_file}: not an Ed25519 private key")
            return cls(key)
        directory.mkdir(parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        fd = os.open(private_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        signer = cls(key)
        (directory / PUBLIC_KEY_FILE).write_bytes(signer.public_pem())
        return signer

    def sign(self, message: bytes) -> str:
        """The signature of ``message`` as hex."""
        return self._private_key.sign(message).hex()

    def public_pem(self) -> bytes:
        return public_pem(self.public_key)
