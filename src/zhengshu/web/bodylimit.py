"""A ceiling on request bodies, checked before anything is spooled to disk.

FastAPI reads (and spools) a multipart body before the route's dependencies run, so without a ceiling anyone
could make a server write an unbounded upload to its temporary directory before being told they may not
upload at all. The features keep their own, smaller limits (an objection's attachment, a package's file);
this is the outer bound: uploads up to the file-exchange package limit plus the multipart overhead, other
bodies up to ``ZHENGSHU_MAX_REQUEST_BODY_MB``. A declared ``Content-Length`` over the limit is refused before a
byte is read; a chunked body is counted as it arrives.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from zhengshu.web.errors import problem_body, send_problem

MULTIPART_OVERHEAD = 16 * 1024 * 1024
CODE = "request.too_large"


class BodyTooLarge(HTTPException):
    """Raised inside ``receive``; FastAPI passes HTTP exceptions from body parsing through unchanged."""

    problem_code = CODE

    def __init__(self, limit: int) -> None:
        super().__init__(413, detail=f"请求体超过上限（{limit // (1024 * 1024)} MB）")
        self.limit = limit


def too_large(limit: int) -> dict[str, object]:
    return problem_body(413, CODE, "请求体过大", f"请求体超过上限（{limit // (1024 * 1024)} MB）")


class BodySizeLimit:
    def __init__(self, app: ASGIApp, *, upload_limit: int, other_limit: int) -> None:
        self.app = app
        self.upload_limit = upload_limit
        self.other_limit = other_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        content_type = b""
        declared: int | None = None
        for key, value in scope.get("headers", ()):
            if key == b"content-type":
                content_type = value
            elif key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = None
        limit = self.upload_limit if content_type.lower().startswith(b"multipart/") else self.other_limit
        if declared is not None and declared > limit:
            await send_problem(send, too_large(limit), close=True)
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except BodyTooLarge as exc:
            if started:
                raise
            await send_problem(send, too_large(exc.limit), close=True)
