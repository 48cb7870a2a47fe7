"""SM3/SM4 helpers and password hashing."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zhengshu.core.config import get_settings, reset_settings
from zhengshu.security import crypto, passwords
from zhengshu.security.crypto import (
    CryptoError,
    decrypt_secret,
    derive_key,
    encrypt_secret,
    hmac_sm3,
    new_token,
    sm3_hex,
    token_digest,
)

KEY = bytes(range(16))


def _flip(text: str, index: int) -> str:
    """Change one base64url character so the decoded bytes differ."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    replacement = alphabet[(alphabet.index(text[index]) + 1) % len(alphabet)]
    return text[:index] + replacement + text[index + 1 :]


# --- SM3 ------------------------------------------------------------------------------------------------


def test_sm3_standard_vector() -> None:
    # GB/T 32905-2016 appendix A.1 example: SM3("abc").
    assert sm3_hex("abc") == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    assert sm3_hex(b"abc") == sm3_hex("abc")
    assert sm3_hex("政数") == sm3_hex("政数".encode())


def test_hmac_sm3_depends_on_key_and_data() -> None:
    tag = hmac_sm3(b"k1", b"message")
    assert len(tag) == 32
    assert tag == hmac_sm3(b"k1", b"message")
    assert tag != hmac_sm3(b"k2", b"message")
    assert tag != hmac_sm3(b"k1", b"message!")
    assert crypto.hmac_sm3_verify(b"k1", b"message", tag)
    assert not crypto.hmac_sm3_verify(b"k1", b"message", bytes(32))


def test_derive_key_separates_purposes() -> None:
    secrets_key = derive_key("master", "secrets")
    assert len(secrets_key) == 16
    assert secrets_key == derive_key("master", "secrets")
    assert secrets_key != derive_key("master", "sessions")
    assert secrets_key != derive_key("other-master", "secrets")
    assert len(derive_key("master", "mac", 32)) == 32


# --- SM4 ------------------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(st.text(max_size=200))
def test_sm4_round_trip(plaintext: str) -> None:
    token = encrypt_secret(plaintext, key=KEY)
    assert decrypt_secret(token, key=KEY) == plaintext


def test_sm4_token_format_and_randomness() -> None:
    token = encrypt_secret("数据源口令 P@ss", key=KEY)
    assert token.startswith("sm4gcm:v1:") if crypto.sm4_gcm_supported() else token.startswith("sm4cbc:v1:")
    assert "数据源" not in token and "P@ss" not in token
    assert token.isascii()
    # A fresh nonce every time: the same secret never gives the same token.
    assert encrypt_secret("数据源口令 P@ss", key=KEY) != token


def test_sm4_tamper_is_detected() -> None:
    token = encrypt_secret("secret-password", key=KEY)
    parts = token.split(":")
    for index in range(2, len(parts)):
        changed = parts.copy()
        changed[index] = _flip(changed[index], 0)
        with pytest.raises(CryptoError) as caught:
            decrypt_secret(":".join(changed), key=KEY)
        assert caught.value.code == "crypto.bad_token"
    # Truncation, a foreign version and garbage are refused the same way.
    for bad in (token[:-4], token.replace(":v1:", ":v2:"), "not-a-token", parts[0] + ":v1:!!:??"):
        with pytest.raises(CryptoError):
            decrypt_secret(bad, key=KEY)


def test_sm4_wrong_key_is_refused() -> None:
    token = encrypt_secret("secret-password", key=KEY)
    with pytest.raises(CryptoError):
        decrypt_secret(token, key=bytes(16))
    with pytest.raises(ValueError):
        encrypt_secret("x", key=b"short")


def test_cbc_fallback_round_trip_and_tamper(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crypto, "sm4_gcm_supported", lambda: False)
    token = encrypt_secret("回退模式", key=KEY)
    assert token.startswith("sm4cbc:v1:") and len(token.split(":")) == 5
    assert decrypt_secret(token, key=KEY) == "回退模式"
    header, version, iv, ct, tag = token.split(":")
    for changed in (
        f"{header}:{version}:{_flip(iv, 0)}:{ct}:{tag}",
        f"{header}:{version}:{iv}:{_flip(ct, 0)}:{tag}",
        f"{header}:{version}:{iv}:{ct}:{_flip(tag, 0)}",
    ):
        with pytest.raises(CryptoError):
            decrypt_secret(changed, key=KEY)
    with pytest.raises(CryptoError):
        decrypt_secret(token, key=bytes(16))


def test_gcm_token_layout() -> None:
    if not crypto.sm4_gcm_supported():
        pytest.skip("OpenSSL without SM4-GCM")
    token = encrypt_secret("x", key=KEY)
    _, _, nonce, body = token.split(":")
    raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    assert len(raw) == 1 + 16  # one byte of ciphertext plus the 16-byte tag
    assert len(base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))) == 12


def test_default_key_comes_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZHENGSHU_SECRET_KEY", "test-master-key-one")
    reset_settings()
    try:
        token = encrypt_secret("口令")
        assert decrypt_secret(token) == "口令"
        expected_key = derive_key(get_settings().resolved_secret_key(), "secrets")
        assert decrypt_secret(token, key=expected_key) == "口令"
        monkeypatch.setenv("ZHENGSHU_SECRET_KEY", "test-master-key-two")
        reset_settings()
        with pytest.raises(CryptoError):
            decrypt_secret(token)
    finally:
        monkeypatch.delenv("ZHENGSHU_SECRET_KEY")
        reset_settings()


# --- tokens ---------------------------------------------------------------------------------------------


def test_tokens_are_random_and_digest_is_stable() -> None:
    first, second = new_token(), new_token()
    assert first != second
    assert len(first) >= 43  # 32 bytes in base64url
    assert len(new_token(16)) < len(first)
    assert token_digest(first) == token_digest(first) == sm3_hex(first)
    assert len(token_digest(first)) == 64
    assert token_digest(first) != token_digest(second)
    assert crypto.constant_time_equal(token_digest(first), sm3_hex(first))
    assert not crypto.constant_time_equal(token_digest(first), token_digest(second))


# --- passwords ------------------------------------------------------------------------------------------


def test_password_hash_and_verify() -> None:
    hashed = passwords.hash_password("Zhengshu2026")
    assert hashed.startswith("$argon2id$")
    assert "Zhengshu2026" not in hashed
    assert passwords.verify_password(hashed, "Zhengshu2026")
    assert not passwords.verify_password(hashed, "zhengshu2026")
    assert not passwords.verify_password(hashed, "")
    assert not passwords.verify_password("not-a-hash", "Zhengshu2026")
    assert passwords.hash_password("Zhengshu2026") != hashed  # salted
    assert not passwords.needs_rehash(hashed)


def test_needs_rehash_for_weaker_parameters() -> None:
    from argon2 import PasswordHasher

    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("Zhengshu2026")
    assert passwords.verify_password(weak, "Zhengshu2026")
    assert passwords.needs_rehash(weak)
    assert passwords.needs_rehash("garbage")


@pytest.mark.parametrize(
    ("password", "expected"),
    [
        ("Zhengshu2026", []),
        ("abc123", ["密码长度至少 8 位"]),
        ("abcdefghij", ["密码须包含数字"]),
        ("1234567890", ["密码须包含英文字母"]),
        ("政务数据共享平台一二", ["密码须包含英文字母", "密码须包含数字"]),
        ("", ["密码长度至少 8 位", "密码须包含英文字母", "密码须包含数字"]),
    ],
)
def test_password_strength(password: str, expected: list[str]) -> None:
    assert passwords.check_password_strength(password) == expected
