"""The signing scheme of interface calls (HMAC-SM3 over a canonical request), for the gateway and for callers.

The string to sign is eight lines joined by ``\\n``::

    ZS-HMAC-SM3
    <METHOD>                       upper case
    <path>                         the URL path, each segment percent-encoded (RFC 3986 unreserved kept)
    <canonical query>              name=value pairs, both percent-encoded, sorted by name then value, joined by &
    <body digest>                  lowercase hex SM3 of the raw body (SHA-256 with X-ZS-Body-Digest: sha256)
    <timestamp>                    unix seconds, the X-ZS-Timestamp header
    <nonce>                        16–64 characters [A-Za-z0-9_-], the X-ZS-Nonce header, never reused
    <access key>                   the X-ZS-AccessKey header

The signature is lowercase hex HMAC-SM3(secret, string to sign), sent as ``X-ZS-Signature``. This module
depends only on the standard library and ``cryptography``, so a caller may copy it.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from urllib.parse import quote, unquote, urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac

SCHEME = "ZS-HMAC-SM3"
H_ACCESS_KEY = "X-ZS-AccessKey"
H_TIMESTAMP = "X-ZS-Timestamp"
H_NONCE = "X-ZS-Nonce"
H_SIGNATURE = "X-ZS-Signature"
H_BODY_DIGEST = "X-ZS-Body-Digest"
BODY_DIGESTS = ("sm3", "sha256")
_SAFE = "-_.~"


def sm3_hex(data: bytes) -> str:
    digest = hashes.Hash(hashes.SM3())
    digest.update(data)
    return digest.finalize().hex()


EMPTY_SM3 = sm3_hex(b"")
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def body_digest(body: bytes, algorithm: str = "sm3") -> str:
    if algorithm == "sha256":
        return hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256
    if algorithm != "sm3":
        raise ValueError(f"unknown body digest {algorithm!r}")
    return sm3_hex(body) if body else EMPTY_SM3


_PLAIN_PATH = re.compile(r"^[A-Za-z0-9/._~-]*$")


def canonical_path(path: str) -> str:
    """Each segment decoded, then encoded again the one canonical way (so either spelling verifies)."""
    if not path:
        return "/"
    if _PLAIN_PATH.match(path):  # nothing to decode or encode (the usual case): skip the work
        return path
    return "/".join(quote(unquote(segment), safe=_SAFE) for segment in path.split("/"))


def canonical_query(query: str) -> str:
    """``a=1&b=2`` form: pairs decoded (``+`` is a space), encoded again, sorted by name then value."""
    if not query:
        return ""
    pairs = []
    for part in query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append(
            (
                quote(unquote(name.replace("+", " ")), safe=_SAFE),
                quote(unquote(value.replace("+", " ")), safe=_SAFE),
            )
        )
    pairs.sort()
    return "&".join(f"{n}={v}" for n, v in pairs)


def string_to_sign(
    *, method: str, path: str, query: str, body_hex: str, timestamp: str, nonce: str, access_key: str
) -> bytes:
    return "\n".join(
        (SCHEME, method.upper(), canonical_path(path), canonical_query(query), body_hex, timestamp, nonce, access_key)
    ).encode("utf-8")


def signature(secret: str | bytes, message: bytes) -> str:
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    mac = crypto_hmac.HMAC(key, hashes.SM3())
    mac.update(message)
    return mac.finalize().hex()


def new_nonce() -> str:
    return os.urandom(16).hex()


def sign_request(
    *,
    access_key: str,
    secret: str,
    method: str,
    url: str,
    body: bytes = b"",
    timestamp: int | None = None,
    nonce: str | None = None,
    digest: str = "sm3",
) -> dict[str, str]:
    """The headers that sign one call to ``url`` (path and query are taken from it); send the body unchanged."""
    parts = urlsplit(url)
    ts = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or new_nonce()
    message = string_to_sign(
        method=method,
        path=parts.path,
        query=parts.query,
        body_hex=body_digest(body, digest),
        timestamp=ts,
        nonce=nonce,
        access_key=access_key,
    )
    headers = {
        H_ACCESS_KEY: access_key,
        H_TIMESTAMP: ts,
        H_NONCE: nonce,
        H_SIGNATURE: signature(secret, message),
    }
    if digest != "sm3":
        headers[H_BODY_DIGEST] = digest
    return headers
