"""User passwords: argon2id hashes (argon2-cffi) and the platform's minimum strength rule."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from zhengshu.core.errors import Unauthenticated

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


# Lockout after repeated failures, the same for government users and registered members of the public.
MAX_FAILED_LOGINS = 5
LOCK_MINUTES = 15


class LoginAccount(Protocol):
    active: bool
    password_hash: str
    failed_logins: int
    locked_until: datetime | None
    last_login_at: datetime | None


def check_login(account: LoginAccount | None, password: str, *, now: datetime, codes: str, who: str) -> None:
    """Check ``password`` for ``account`` (None when the name is unknown), counting failures and locking the
    account for a while after too many. Raises ``Unauthenticated`` with codes ``<codes>.bad_credentials`` or
    ``<codes>.locked``; ``who`` names the login field in the message (用户名, 登录名). The caller flushes."""
    bad = f"{who}或密码错误"
    if account is None or not account.active:
        raise Unauthenticated(bad, code=f"{codes}.bad_credentials")
    if account.locked_until and account.locked_until > now:
        raise Unauthenticated("连续登录失败次数过多，账号已临时锁定，请稍后再试", code=f"{codes}.locked")
    if not verify_password(account.password_hash, password):
        account.failed_logins += 1
        if account.failed_logins >= MAX_FAILED_LOGINS:
            account.locked_until = now + timedelta(minutes=LOCK_MINUTES)
            account.failed_logins = 0
        raise Unauthenticated(bad, code=f"{codes}.bad_credentials")
    account.failed_logins = 0
    account.locked_until = None
    account.last_login_at = now
    if needs_rehash(account.password_hash):
        account.password_hash = hash_password(password)
