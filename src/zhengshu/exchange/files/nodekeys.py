"""This node's key pair and the peers it trusts; signatures, digests and payload encryption for packages, receipts
and ferry bundles.

- Signing: Ed25519 (``cryptography``, fast) by default or SM2 with SM3 (``gmssl``, pure Python, ~100 signatures/s:
  enough for manifests, never per request). The algorithm is recorded with every signature.
- Key agreement: X25519 to wrap a per-bundle SM4 key for the receiving node (ephemeral-static, HKDF-SM3), so the
  two networks exchange only public keys.
- Payload: SM4-GCM where OpenSSL offers it, otherwise SM4-CTR with HMAC-SM3 (encrypt-then-MAC), streamed in chunks.

A key's id is the SM3 digest of its canonical public document; operators compare it out of band (phone, paper)
before trusting a peer.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import select
from sqlalchemy.orm import Session

from zhengshu.core.config import Settings, get_settings
from zhengshu.core.errors import Conflict, NotFound, ValidationFailed, ZhengshuError
from zhengshu.exchange.files.models import NodeKey
from zhengshu.security.actor import Actor
from zhengshu.security.crypto import (
    CryptoError,
    constant_time_equal,
    decrypt_secret,
    derive_key,
    encrypt_secret,
    hmac_sm3,
    sm3_hex,
    sm4_gcm_supported,
)

SIG_ALGS = ("ed25519", "sm2")
KEY_FORMAT = "zhengshu-node-key/1"
CHUNK = 1024 * 1024


class SignatureError(ZhengshuError):
    status = 422
    code = "exchange.bad_signature"
    title = "签名验证失败"


class UntrustedSigner(ZhengshuError):
    status = 422
    code = "exchange.untrusted_signer"
    title = "签名者不受信任"


# ---- canonical JSON and digests ------------------------------------------------------------------------


def canonical(data: Any) -> bytes:
    """Canonical JSON (sorted keys, no spaces, UTF-8): the exact bytes that are signed."""
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class Digests:
    """SHA-256 and SM3 computed together while a stream passes through."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self._sm3 = hashes.Hash(hashes.SM3())
        self.size = 0

    def update(self, chunk: bytes) -> None:
        self._sha.update(chunk)
        self._sm3.update(chunk)
        self.size += len(chunk)

    def result(self) -> tuple[str, str]:
        return self._sha.hexdigest(), self._sm3.finalize().hex()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_digests(path: Path) -> tuple[int, str, str]:
    """(size, sha256, sm3) of a file, read in chunks."""
    d = Digests()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            d.update(chunk)
    sha, sm3 = d.result()
    return d.size, sha, sm3


def copy_with_digests(src: IO[bytes], dst: IO[bytes], *, limit: int | None = None) -> tuple[int, str, str]:
    """Copy a stream, hashing it; stops with ``None`` digests past ``limit`` (the caller refuses the file)."""
    d = Digests()
    while chunk := src.read(CHUNK):
        d.update(chunk)
        if limit is not None and d.size > limit:
            raise _TooLarge(d.size)
        dst.write(chunk)
    sha, sm3 = d.result()
    return d.size, sha, sm3


class _TooLarge(Exception):
    def __init__(self, size: int) -> None:
        self.size = size


TooLarge = _TooLarge


def b64e(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def b64d(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError("签名或密钥编码无效") from exc


# ---- key generation ------------------------------------------------------------------------------------


def _sm2_keypair() -> tuple[str, str]:
    from gmssl import sm2

    n = int(sm2.default_ecc_table["n"], 16)
    d = secrets.randbelow(n - 2) + 1
    private = f"{d:064x}"
    public = _gmssl_sm2(private, "")._kg(d, sm2.default_ecc_table["g"])
    return private, public


def _gmssl_sm2(private: str | None, public: str) -> Any:
    """gmssl's SM2 object with the public key as given: its constructor ``lstrip("04")``s the key, which strips
    every leading 0 and 4 (not an "04" prefix) and broke one SM2 key in 256 (signatures that did not verify,
    or a TypeError in its point arithmetic)."""
    from gmssl import sm2

    crypt = sm2.CryptSM2(private_key=private, public_key="")
    crypt.public_key = public
    return crypt


def _ed25519_keypair() -> tuple[str, str]:
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return private.hex(), public.hex()


def _x25519_keypair() -> tuple[str, str]:
    key = X25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return private.hex(), public.hex()


def public_document(key: NodeKey) -> dict[str, str]:
    """What a node hands to its peers (no secrets)."""
    return {
        "format": KEY_FORMAT,
        "node_code": key.node_code,
        "node_name": key.node_name,
        "sig_alg": key.sig_alg,
        "sign_public": key.sign_public,
        "kex_public": key.kex_public,
    }


def key_id_of(document: dict[str, Any]) -> str:
    fields = {k: document[k] for k in ("format", "node_code", "node_name", "sig_alg", "sign_public", "kex_public")}
    return sm3_hex(canonical(fields))


def fingerprint(key_id: str) -> str:
    """The key id grouped for reading aloud: ``3f2a 91c0 …`` (first 32 hex digits)."""
    return " ".join(key_id[i : i + 4] for i in range(0, 32, 4))


def local_key(session: Session) -> NodeKey | None:
    return session.scalars(
        select(NodeKey)
        .where(NodeKey.is_local.is_(True), NodeKey.status == "active")
        .order_by(NodeKey.created_at.desc())
    ).first()


def _secret(settings: Settings | None) -> bytes:
    """The key that encrypts this node's private keys at rest (a sub-key of the platform secret)."""
    return derive_key((settings or get_settings()).resolved_secret_key(), "node-keys")


def create_local_key(
    session: Session,
    *,
    actor: Actor,
    node_code: str,
    node_name: str,
    sig_alg: str = "ed25519",
    settings: Settings | None = None,
) -> NodeKey:
    """A new key pair for this node; the previous one is retired (still verifies what it signed)."""
    if sig_alg not in SIG_ALGS:
        raise ValidationFailed(f"不支持的签名算法 {sig_alg}（可选 ed25519、sm2）", code="exchange.bad_algorithm")
    for old in session.scalars(select(NodeKey).where(NodeKey.is_local.is_(True), NodeKey.status == "active")):
        old.status = "retired"
    sign_private, sign_public = _sm2_keypair() if sig_alg == "sm2" else _ed25519_keypair()
    kex_private, kex_public = _x25519_keypair()
    key = NodeKey(
        node_code=node_code,
        node_name=node_name,
        is_local=True,
        sig_alg=sig_alg,
        sign_public=sign_public,
        kex_public=kex_public,
        sign_private_enc=encrypt_secret(sign_private, key=_secret(settings)),
        kex_private_enc=encrypt_secret(kex_private, key=_secret(settings)),
        added_by=actor.username,
    )
    key.key_id = key_id_of(public_document(key))
    session.add(key)
    session.flush()
    return key


def ensure_local_key(
    session: Session, *, actor: Actor, node_code: str, node_name: str, sig_alg: str, settings: Settings | None = None
) -> NodeKey:
    key = local_key(session)
    if key is None:
        key = create_local_key(
            session, actor=actor, node_code=node_code, node_name=node_name, sig_alg=sig_alg, settings=settings
        )
    return key


def trust_peer(
    session: Session, *, actor: Actor, document: dict[str, Any], expected_key_id: str | None = None, note: str = ""
) -> NodeKey:
    """Add a peer's public key to the trusted keys. ``expected_key_id`` (read aloud by the peer's operator)
    guards against a key swapped on the way; a prefix of at least 16 hex digits is enough."""
    try:
        if document.get("format") != KEY_FORMAT or document["sig_alg"] not in SIG_ALGS:
            raise KeyError("format")
        key_id = key_id_of(document)
        _check_public(document["sig_alg"], document["sign_public"])
        X25519PublicKey.from_public_bytes(bytes.fromhex(document["kex_public"]))
    except (KeyError, ValueError, TypeError) as exc:
        raise ValidationFailed("公钥文件格式不正确", code="exchange.bad_key_document") from exc
    if expected_key_id is not None:
        wanted = expected_key_id.replace(" ", "").lower()
        if len(wanted) < 16 or not key_id.startswith(wanted):
            raise ValidationFailed(
                f"公钥指纹不符：文件为 {fingerprint(key_id)}，与对方告知的指纹不一致",
                code="exchange.fingerprint_mismatch",
            )
    existing = session.scalars(select(NodeKey).where(NodeKey.key_id == key_id)).first()
    if existing is not None:
        if existing.is_local:
            raise Conflict("这是本节点自己的密钥", code="exchange.key_is_local")
        existing.status = "active"
        return existing
    key = NodeKey(
        key_id=key_id,
        node_code=str(document["node_code"]),
        node_name=str(document.get("node_name", "")),
        is_local=False,
        sig_alg=document["sig_alg"],
        sign_public=document["sign_public"],
        kex_public=document["kex_public"],
        added_by=actor.username,
        note=note,
    )
    session.add(key)
    session.flush()
    return key


def revoke(session: Session, *, key_id: str) -> NodeKey:
    key = session.scalars(select(NodeKey).where(NodeKey.key_id.startswith(key_id.replace(" ", "").lower()))).first()
    if key is None:
        raise NotFound("未找到该密钥", code="exchange.key_not_found")
    key.status = "revoked"
    session.flush()
    return key


def list_keys(session: Session) -> list[NodeKey]:
    return list(session.scalars(select(NodeKey).order_by(NodeKey.is_local.desc(), NodeKey.created_at.desc())))


def _check_public(sig_alg: str, public: str) -> None:
    if sig_alg == "ed25519":
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(public))
    elif len(public) != 128:
        raise ValueError("SM2 public key must be 64 bytes")
    else:
        bytes.fromhex(public)


# ---- signatures ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Signature:
    alg: str
    key_id: str
    value: str  # base64

    def as_dict(self) -> dict[str, str]:
        return {"alg": self.alg, "key_id": self.key_id, "value": self.value}


def sign(key: NodeKey, data: bytes, *, settings: Settings | None = None) -> Signature:
    if not key.sign_private_enc:
        raise ValueError("not a local key")
    private = decrypt_secret(key.sign_private_enc, key=_secret(settings))
    if key.sig_alg == "sm2":
        value = bytes.fromhex(_gmssl_sm2(private, key.sign_public).sign_with_sm3(data))
    else:
        value = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(private)).sign(data)
    return Signature(key.sig_alg, key.key_id, b64e(value))


def _verify_with(key: NodeKey, data: bytes, value: bytes) -> bool:
    if key.sig_alg == "sm2":
        if len(value) != 64:
            return False
        try:
            return bool(_gmssl_sm2(None, key.sign_public).verify_with_sm3(value.hex(), data))
        except (ValueError, ZeroDivisionError, TypeError):  # gmssl on values off the curve
            return False
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(key.sign_public)).verify(value, data)
    except InvalidSignature:
        return False
    return True


def verify(session: Session, *, data: bytes, alg: str, key_id: str, value: str, what: str = "清单") -> NodeKey:
    """Check a signature against this node's keys and its trusted peers; returns the signer's key."""
    key = session.scalars(select(NodeKey).where(NodeKey.key_id == key_id)).first()
    if key is None or key.status == "revoked":
        raise UntrustedSigner(
            f"{what}的签名密钥（{fingerprint(key_id) if len(key_id) >= 32 else key_id}）不在信任列表中"
        )
    if key.sig_alg != alg:
        raise SignatureError(f"{what}声明的签名算法 {alg} 与签名密钥不符")
    if not _verify_with(key, data, b64d(value)):
        raise SignatureError(f"{what}签名验证失败：内容在签名后被修改，或签名不属于该密钥")
    return key


# ---- key wrapping (X25519 + HKDF-SM3 + SM4) -------------------------------------------------------------


def _kek(shared: bytes, context: bytes) -> bytes:
    return HKDF(algorithm=hashes.SM3(), length=16, salt=b"zhengshu/ferry/v1", info=context).derive(shared)


def wrap_key(recipient: NodeKey, content_key: bytes, *, context: bytes) -> dict[str, str]:
    """Encrypt ``content_key`` so only ``recipient`` (its X25519 private key) can open it."""
    ephemeral = X25519PrivateKey.generate()
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(bytes.fromhex(recipient.kex_public)))
    nonce = os.urandom(12)
    sealed = seal(_kek(shared, context), content_key, nonce=nonce, aad=context)
    epk = ephemeral.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {
        "alg": "X25519-HKDF-SM3",
        "recipient_key_id": recipient.key_id,
        "ephemeral_public": epk.hex(),
        "nonce": b64e(nonce),
        "sealed": b64e(sealed),
        "cipher": cipher_name(),
    }


def unwrap_key(session: Session, wrapped: dict[str, Any], *, context: bytes, settings: Settings | None = None) -> bytes:
    key = session.scalars(
        select(NodeKey).where(NodeKey.key_id == wrapped.get("recipient_key_id"), NodeKey.is_local.is_(True))
    ).first()
    if key is None or not key.kex_private_enc:
        raise CryptoError("载荷密钥不是为本节点加密的（找不到对应的本节点密钥）", code="ferry.not_for_this_node")
    private = X25519PrivateKey.from_private_bytes(
        bytes.fromhex(decrypt_secret(key.kex_private_enc, key=_secret(settings)))
    )
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(bytes.fromhex(str(wrapped["ephemeral_public"]))))
        return open_sealed(
            _kek(shared, context),
            b64d(str(wrapped["sealed"])),
            nonce=b64d(str(wrapped["nonce"])),
            aad=context,
            cipher=str(wrapped.get("cipher", cipher_name())),
        )
    except (KeyError, ValueError) as exc:
        raise CryptoError("载荷密钥无法解开", code="ferry.bad_key") from exc


# ---- SM4: one-shot seal and streaming file encryption ---------------------------------------------------


def cipher_name() -> str:
    return "SM4-GCM" if sm4_gcm_supported() else "SM4-CTR-HMAC-SM3"


def _ctr_keys(key: bytes) -> tuple[bytes, bytes]:
    return derive_key(key.hex(), "sm4ctr-enc"), derive_key(key.hex(), "sm4ctr-mac", 32)


def seal(key: bytes, data: bytes, *, nonce: bytes, aad: bytes) -> bytes:
    if cipher_name() == "SM4-GCM":
        enc = Cipher(algorithms.SM4(key), modes.GCM(nonce)).encryptor()
        enc.authenticate_additional_data(aad)
        return enc.update(data) + enc.finalize() + enc.tag
    enc_key, mac_key = _ctr_keys(key)
    ct = Cipher(algorithms.SM4(enc_key), modes.CTR(nonce + bytes(4))).encryptor().update(data)
    return ct + hmac_sm3(mac_key, aad + nonce + ct)


def open_sealed(key: bytes, sealed: bytes, *, nonce: bytes, aad: bytes, cipher: str) -> bytes:
    try:
        if cipher == "SM4-GCM":
            dec = Cipher(algorithms.SM4(key), modes.GCM(nonce, sealed[-16:])).decryptor()
            dec.authenticate_additional_data(aad)
            return dec.update(sealed[:-16]) + dec.finalize()
        enc_key, mac_key = _ctr_keys(key)
        ct, tag = sealed[:-32], sealed[-32:]
        if not constant_time_equal(hmac_sm3(mac_key, aad + nonce + ct), tag):
            raise InvalidTag()
        return Cipher(algorithms.SM4(enc_key), modes.CTR(nonce + bytes(4))).decryptor().update(ct)
    except InvalidTag as exc:
        raise CryptoError("密文校验失败：密钥不符或内容已被篡改", code="ferry.payload_tampered") from exc


def encrypt_stream(key: bytes, chunks: Iterator[bytes], out: IO[bytes], *, aad: bytes, cipher: str) -> dict[str, str]:
    """Encrypt chunks into ``out``; returns the parameters the reader needs (nonce, tag)."""
    nonce = os.urandom(12)
    if cipher == "SM4-GCM":
        enc = Cipher(algorithms.SM4(key), modes.GCM(nonce)).encryptor()
        enc.authenticate_additional_data(aad)
        for chunk in chunks:
            out.write(enc.update(chunk))
        out.write(enc.finalize())
        return {"nonce": b64e(nonce), "tag": b64e(enc.tag)}
    enc_key, mac_key = _ctr_keys(key)
    ctr = Cipher(algorithms.SM4(enc_key), modes.CTR(nonce + bytes(4))).encryptor()
    from cryptography.hazmat.primitives import hmac as crypto_hmac

    mac = crypto_hmac.HMAC(mac_key, hashes.SM3())
    mac.update(aad + nonce)
    for chunk in chunks:
        ct = ctr.update(chunk)
        mac.update(ct)
        out.write(ct)
    return {"nonce": b64e(nonce), "tag": b64e(mac.finalize())}


def decrypt_file(key: bytes, src: Path, out: IO[bytes], *, params: dict[str, Any], aad: bytes, cipher: str) -> None:
    """Decrypt ``src`` into ``out``. Raises :class:`CryptoError` at the end when the tag does not match; the
    caller must then discard everything written."""
    nonce, tag = b64d(str(params["nonce"])), b64d(str(params["tag"]))
    with src.open("rb") as fh:
        if cipher == "SM4-GCM":
            dec = Cipher(algorithms.SM4(key), modes.GCM(nonce, tag)).decryptor()
            dec.authenticate_additional_data(aad)
            while chunk := fh.read(CHUNK):
                out.write(dec.update(chunk))
            try:
                out.write(dec.finalize())
            except InvalidTag as exc:
                raise CryptoError("载荷校验失败：内容已被篡改或密钥不符", code="ferry.payload_tampered") from exc
            return
        from cryptography.hazmat.primitives import hmac as crypto_hmac

        enc_key, mac_key = _ctr_keys(key)
        mac = crypto_hmac.HMAC(mac_key, hashes.SM3())
        mac.update(aad + nonce)
        ctr = Cipher(algorithms.SM4(enc_key), modes.CTR(nonce + bytes(4))).decryptor()
        while chunk := fh.read(CHUNK):
            mac.update(chunk)
            out.write(ctr.update(chunk))
        try:
            mac.verify(tag)
        except InvalidSignature as exc:
            raise CryptoError("载荷校验失败：内容已被篡改或密钥不符", code="ferry.payload_tampered") from exc


def new_content_key() -> bytes:
    return os.urandom(16)
