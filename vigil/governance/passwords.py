"""The password policy: long enough, not guessable, and not the account's own name.

Following NIST SP 800-63B, there are no composition rules ("one digit, one symbol"); instead a password must
have at least ``MIN_LENGTH`` characters and a zxcvbn strength score of at least ``MIN_SCORE`` (of 4), where
zxcvbn checks it against common passwords, dictionary words, keyboard patterns, dates and the username.
``MAX_LENGTH`` bounds the work of hashing and scoring a hostile input.
"""

from __future__ import annotations

from zxcvbn import zxcvbn

from vigil.governance.errors import UserError

MIN_LENGTH = 12
MAX_LENGTH = 256
MIN_SCORE = 3  # zxcvbn: 3 "safely unguessable: moderate protection from offline slow-hash scenario"


def check_password(username: str, password: str, display_name: str | None = None) -> str:
    """``password`` when it meets the policy, else ``UserError`` saying why (the password itself never appears)."""
    if len(password) < MIN_LENGTH:
        raise UserError(f"password for {username!r} is too short (at least {MIN_LENGTH} characters)")
    if len(password) > MAX_LENGTH:
        raise UserError(f"password for {username!r} is too long (at most {MAX_LENGTH} characters)")
    names = [n for n in (username, display_name) if n]
    lowered = password.lower()
    if any(len(n) >= 3 and n.lower() in lowered for n in names):
        raise UserError(f"password for {username!r} contains the user's name")
    result = zxcvbn(password, user_inputs=[*names, "vigil"])
    if result["score"] < MIN_SCORE:
        warning = result["feedback"].get("warning") or "it is too easy to guess"
        raise UserError(f"password for {username!r} is too weak: {warning.rstrip('.')}; "
                        f"use a longer phrase of unrelated words")
    return password
