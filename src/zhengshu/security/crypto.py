"""Chinese commercial cryptography helpers: SM3 digests and HMAC, key derivation, SM4 for secrets at rest.

Everything goes through ``cryptography`` (OpenSSL); nothing here hand-rolls a primitive. SM2 signatures
(gmssl) will live in their own module when packages and messages need them.
"""

from __future__ import annotations

import base64
import binascii
import hmac as _stdlib_hmac
import os
import secrets
from functools import lru_cache

from cryptography.exceptions import InvalidSignature, InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from zhengshu.core.errors import ZhengshuError

SM4_KEY_BYTES = 16
_GCM_NONCE_BYTES = 12
_GCM_TAG_BYTES = 16
_CBC_IV_BYTES = 16
_HKDF_SALT = b"zhengshu/v1"
_GCM_HEADER = "sm4gcm:v1"
_CBC_HEADER = "sm4cbc:v1"


class CryptoError(ZhengshuError):
    """A token that cannot be decrypted: wrong key, truncated, or changed after encryption."""

    status = 400
    code = "crypto.bad_token"
    title = "密文无效或已被篡改"


# --- SM3 -------------------------------------------------------------------------------------------------


def _to_bytes(data: bytes | str) -> bytes:
    return data.encode("utf-8") if isinstance(data, str) else data


def sm3_hex(data: bytes | str) -> str:
    """SM3 digest (GB/T 32905) as 64 lowercase hex digits; ``str`` input is hashed as UTF-8."""
    digest = hashes.Hash(hashes.SM3())
    digest.update(_to_bytes(data))
    return digest.finalize().hex()


def hmac_sm3(key: bytes, data: bytes) -> bytes:
    """HMAC-SM3 (32 bytes)."""
    mac = crypto_hmac.HMAC(key, hashes.SM3())
    mac.update(data)
    return mac.finalize()


def hmac_sm3_verify(key: bytes, data: bytes, expected: bytes) -> bool:
    """Constant-time check of an HMAC-SM3 tag."""
    mac = crypto_hmac.HMAC(key, hashes.SM3())
    mac.update(data)
    try:
        mac.verify(expected)
    except InvalidSignature:
        return False
    return True


def derive_key(master: str, purpose: str, length: int = SM4_KEY_BYTES) -> bytes:
    """HKDF-SM3 sub-key of the master secret, one per purpose, so a key leaked for one use opens no other."""
    if not purpose:
        raise ValueError("purpose is required")
    return HKDF(algorithm=hashes.SM3(), length=length, salt=_HKDF_SALT, info=f"zhengshu:{purpose}".encode()).derive(
        _to_bytes(master)
    )


@lru_cache(maxsize=8)
def _derived(master: str, purpose: str) -> bytes:
    return derive_key(master, purpose)


def _default_key() -> bytes:
    from zhengshu.core.config import get_settings

    return _derived(get_settings().resolved_secret_key(), "secrets")


# --- SM4 for secrets at rest ------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def sm4_gcm_supported() -> bool:
    """Whether the linked OpenSSL offers SM4-GCM (it does from OpenSSL 3.0 on most builds)."""
    try:
        Cipher(algorithms.SM4(bytes(SM4_KEY_BYTES)), modes.GCM(bytes(_GCM_NONCE_BYTES))).encryptor()
    except UnsupportedAlgorithm:
        return False
    return True


def _b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise CryptoError("密文编码无效") from exc


def _check_key(key: bytes) -> bytes:
    if len(key) != SM4_KEY_BYTES:
        raise ValueError(f"SM4 key must be {SM4_KEY_BYTES} bytes, got {len(key)}")
    return key


def _cbc_keys(key: bytes) -> tuple[bytes, bytes]:
    # Encrypt-then-MAC needs two independent keys; both come from the one secret key.
    master = key.hex()
    return derive_key(master, "sm4cbc-enc"), derive_key(master, "sm4cbc-mac", 32)


def encrypt_secret(plaintext: str, *, key: bytes | None = None) -> str:
    """Encrypt a short secret (a data source password, an app secret) for storage.

    Returns ``sm4gcm:v1:<nonce>:<ciphertext+tag>`` (base64url parts); where OpenSSL lacks SM4-GCM,
    ``sm4cbc:v1:<iv>:<ciphertext>:<hmac-sm3>``. The version header is authenticated too.
    """
    key = _check_key(key if key is not None else _default_key())
    data = plaintext.encode("utf-8")
    if sm4_gcm_supported():
        nonce = os.urandom(_GCM_NONCE_BYTES)
        enc = Cipher(algorithms.SM4(key), modes.GCM(nonce)).encryptor()
        enc.authenticate_additional_data(_GCM_HEADER.encode())
        body = enc.update(data) + enc.finalize() + enc.tag
        return f"{_GCM_HEADER}:{_b64e(nonce)}:{_b64e(body)}"
    enc_key, mac_key = _cbc_keys(key)
    iv = os.urandom(_CBC_IV_BYTES)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(data) + padder.finalize()
    cbc = Cipher(algorithms.SM4(enc_key), modes.CBC(iv)).encryptor()
    ct = cbc.update(padded) + cbc.finalize()
    tag = hmac_sm3(mac_key, _CBC_HEADER.encode() + iv + ct)
    return f"{_CBC_HEADER}:{_b64e(iv)}:{_b64e(ct)}:{_b64e(tag)}"


def decrypt_secret(token: str, *, key: bytes | None = None) -> str:
    """Inverse of :func:`encrypt_secret`; raises :class:`CryptoError` for a wrong key or a changed token."""
    key = _check_key(key if key is not None else _default_key())
    parts = token.split(":")
    header = ":".join(parts[:2])
    if header == _GCM_HEADER and len(parts) == 4:
        nonce, body = _b64d(parts[2]), _b64d(parts[3])
        if len(nonce) != _GCM_NONCE_BYTES or len(body) < _GCM_TAG_BYTES:
            raise CryptoError("密文长度不正确")
        ct, tag = body[:-_GCM_TAG_BYTES], body[-_GCM_TAG_BYTES:]
        try:
            dec = Cipher(algorithms.SM4(key), modes.GCM(nonce, tag)).decryptor()
        except UnsupportedAlgorithm as exc:
            raise CryptoError("本机密码库不支持 SM4-GCM，无法解密") from exc
        dec.authenticate_additional_data(_GCM_HEADER.encode())
        try:
            data = dec.update(ct) + dec.finalize()
        except InvalidTag as exc:
            raise CryptoError("密文校验失败：密钥不符或内容已被篡改") from exc
    elif header == _CBC_HEADER and len(parts) == 5:
        iv, ct, tag = _b64d(parts[2]), _b64d(parts[3]), _b64d(parts[4])
        if len(iv) != _CBC_IV_BYTES or not ct or len(ct) % 16:
            raise CryptoError("密文长度不正确")
        enc_key, mac_key = _cbc_keys(key)
        if not hmac_sm3_verify(mac_key, _CBC_HEADER.encode() + iv + ct, tag):
            raise CryptoError("密文校验失败：密钥不符或内容已被篡改")
        dec = Cipher(algorithms.SM4(enc_key), modes.CBC(iv)).decryptor()
        unpadder = padding.PKCS7(128).unpadder()
        try:
            data = unpadder.update(dec.update(ct) + dec.finalize()) + unpadder.finalize()
        except ValueError as exc:  # cannot happen after a valid MAC, kept as a guard
            raise CryptoError("密文填充无效") from exc
    else:
        raise CryptoError("无法识别的密文格式")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CryptoError("解密结果不是有效的文本") from exc


# --- random tokens -----------------------------------------------------------------------------------------


def new_token(nbytes: int = 32) -> str:
    """A URL-safe random bearer token; show it once, store only :func:`token_digest`."""
    return secrets.token_urlsafe(nbytes)


def token_digest(token: str) -> str:
    """SM3 hex of a token, the form in which API tokens are stored and looked up."""
    return sm3_hex(token)


def constant_time_equal(a: str | bytes, b: str | bytes) -> bool:
    """Compare secrets or digests without leaking where they differ."""
    return _stdlib_hmac.compare_digest(_to_bytes(a), _to_bytes(b))
