"""Refuse text containing the NUL character before any route sees it.

PostgreSQL cannot store U+0000 in a text column: a NUL that reaches a query fails deep in the driver and
would surface as a server error after part of the work was done. Checking once at the edge (path, query
string, JSON and url-encoded bodies) gives every feature the same clear 422 and keeps the database untouched.
Multipart bodies pass: uploaded files are binary and their checks live in ``security/filecheck.py``. The
body is read whole; its size is bounded by the body ceiling outside this guard (``web/bodylimit.py``).
Plain ASGI, so streaming responses are untouched.
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from zhengshu.web.errors import problem_body, send_problem

NUL_PROBLEM = problem_body(422, "validation.nul_character", "提交的数据未通过校验", "文本不能包含空字符（\\0）")

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
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\x00" in scope["path"] or has_nul_query(scope.get("query_string", b"")):
            await send_problem(send, NUL_PROBLEM)
            return
        content_type = _header(scope, b"content-type")
        if scope["method"] in ("GET", "HEAD", "OPTIONS") or not content_type.startswith(_CHECKED_BODIES):
            await self.app(scope, receive, send)
            return
        # JSON and form bodies are read whole by the routes anyway; read them here once and replay them
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay(None, message, receive), send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if has_nul_body(content_type, body):
            await send_problem(send, NUL_PROBLEM)
            return
        first = {"type": "http.request", "body": body, "more_body": False}
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
