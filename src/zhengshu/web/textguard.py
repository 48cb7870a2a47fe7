"""Refuse text containing the NUL character before any route sees it.

PostgreSQL cannot store U+0000 in a text column: a NUL that reaches a query fails deep in the driver and
would surface as a server error after part of the work was done. Checking once at the edge (path, query
string, JSON and url-encoded bodies) gives every feature the same clear 422 and keeps the database untouched.
Multipart bodies pass: uploaded files are binary and their checks live in ``security/filecheck.py``.
Plain ASGI, so streaming responses are untouched.
"""

from __future__ import annotations

import json
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

PROBLEM_BODY = json.dumps(
    {
        "type": "https://zhengshu.org/problems/validation.nul_character",
        "title": "提交的数据未通过校验",
        "status": 422,
        "detail": "文本不能包含空字符（\\0）",
        "code": "validation.nul_character",
    },
    ensure_ascii=False,
).encode()

# a JSON string escape \u0000 that is not itself an escaped backslash followed by "u0000"
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_CHECKED_BODIES = ("application/json", "application/x-www-form-urlencoded")


def has_nul_query(query_string: bytes) -> bool:
    return b"%00" in query_string or b"\x00" in query_string


def has_nul_body(content_type: str, body: bytes) -> bool:
    if b"\x00" in body:
        return True
    if content_type.startswith("application/x-www-form-urlencoded"):
        return b"%00" in body
    return b"\\u0000" in body and _JSON_NUL.search(body) is not None


class NulTextGuard:
    def __init__(self, app: ASGIApp, *, max_checked_body: int = 16 * 1024 * 1024) -> None:
        self.app = app
        self.max_checked_body = max_checked_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\x00" in scope["path"] or has_nul_query(scope.get("query_string", b"")):
            await _refuse(send)
            return
        content_type = _header(scope, b"content-type")
        if scope["method"] in ("GET", "HEAD", "OPTIONS") or not content_type.startswith(_CHECKED_BODIES):
            await self.app(scope, receive, send)
            return
        # JSON and form bodies are read whole by the routes anyway; read them here once and replay them
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay(None, message, receive), send)
                return
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            more = bool(message.get("more_body", False))
            if not more or size > self.max_checked_body:
                break
        body = b"".join(chunks)
        if has_nul_body(content_type, body):
            await _refuse(send)
            return
        first = {"type": "http.request", "body": body, "more_body": more}
        await self.app(scope, _replay(first, None, receive), send)


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1").lower()
    return ""


def _replay(first: Message | None, final: Message | None, receive: Receive) -> Receive:
    """Hand out what was already read, then the server's own receive (the rest, or the disconnect)."""
    pending = [m for m in (first, final) if m is not None]

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


async def _refuse(send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 422,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(PROBLEM_BODY)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": PROBLEM_BODY})
