"""An independent caller of the interface services: only httpx, the standard library and ``cryptography``
(for SM3), following the signing scheme documented in README.md — no zhengshu imports.

    python client_script.py --base http://127.0.0.1:8000 --key AK… --secret … GET /gw/person-status/3601…

Prints the JSON answer; exits 0 on 2xx, 1 otherwise (the problem+json is printed too).
"""

from __future__ import annotations

import argparse
import hmac
import json
import os
import sys
import time
from urllib.parse import quote, unquote, urlsplit

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac

SAFE = "-_.~"


def sm3_hex(data: bytes) -> str:
    h = hashes.Hash(hashes.SM3())
    h.update(data)
    return h.finalize().hex()


def hmac_sm3_hex(key: bytes, data: bytes) -> str:
    mac = crypto_hmac.HMAC(key, hashes.SM3())
    mac.update(data)
    return mac.finalize().hex()


def canonical_path(path: str) -> str:
    return "/".join(quote(unquote(seg), safe=SAFE) for seg in (path or "/").split("/"))


def canonical_query(query: str) -> str:
    pairs = []
    for part in query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append(
            (quote(unquote(name.replace("+", " ")), safe=SAFE), quote(unquote(value.replace("+", " ")), safe=SAFE))
        )
    return "&".join(f"{n}={v}" for n, v in sorted(pairs))


def sign(access_key: str, secret: str, method: str, url: str, body: bytes) -> dict[str, str]:
    parts = urlsplit(url)
    timestamp = str(int(time.time()))
    nonce = os.urandom(16).hex()
    string_to_sign = "\n".join(
        [
            "ZS-HMAC-SM3",
            method.upper(),
            canonical_path(parts.path),
            canonical_query(parts.query),
            sm3_hex(body),
            timestamp,
            nonce,
            access_key,
        ]
    )
    return {
        "X-ZS-AccessKey": access_key,
        "X-ZS-Timestamp": timestamp,
        "X-ZS-Nonce": nonce,
        "X-ZS-Signature": hmac_sm3_hex(secret.encode(), string_to_sign.encode()),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--data", default="")
    parser.add_argument("--replay", action="store_true", help="send the same signed request twice")
    parser.add_argument("method")
    parser.add_argument("path")
    args = parser.parse_args(argv)
    url = args.base.rstrip("/") + args.path
    body = args.data.encode()
    headers = sign(args.key, args.secret, args.method, url, body)
    if body:
        headers["Content-Type"] = "application/json"
    with httpx.Client(timeout=30) as client:  # a loaded CI machine may be slow to answer the first call
        response = client.request(args.method, url, content=body or None, headers=headers)
        if args.replay:
            response = client.request(args.method, url, content=body or None, headers=headers)
    print(json.dumps({"status": response.status_code, "body": response.json()}, ensure_ascii=False))
    ok = 200 <= response.status_code < 300
    # a caller checks what it received: the request id echoes in the header
    if ok and not hmac.compare_digest(response.headers.get("x-request-id", ""), response.json().get("request_id", "")):
        return 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
