"""User passwords: argon2id hashes (argon2-cffi) and the platform's minimum strength rule."""

from __future__ import annotations

import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_PASSWORD_LENGTH = 8

# argon2-cffi's defaults follow RFC 9106's low-memory recommendation; one hasher for the process.
_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when the password matches; False on mismatch or an unreadable hash, never an exception."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):  # VerifyMismatchError is a VerificationError
        return False


def needs_rehash(password_hash: str) -> bool:
    """Whether the hash was made with weaker parameters than today's; rehash at the next login."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except (InvalidHashError, ValueError):
        return True


def check_password_strength(password: str) -> list[str]:
    """Problems with a new password, in Chinese; an empty list means it is acceptable."""
    problems: list[str] = []
    if len(password) < MIN_PASSWORD_LENGTH:
        problems.append(f"密码长度至少 {MIN_PASSWORD_LENGTH} 位")
    if not re.search(r"[A-Za-z]", password):
        problems.append("密码须包含英文字母")
    if not re.search(r"[0-9]", password):
        problems.append("密码须包含数字")
    return problems
