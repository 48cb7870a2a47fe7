"""Admission control: at most N requests of a worker process are at work at once; the rest wait before touching
anything.

Sync routes and dependencies run in a thread pool and take a pooled database connection early (the actor is
loaded first). Without a cap, a burst fills every thread with requests that each hold a connection while they
wait for another one, and the worker stalls until the pool times out. Waiting here holds nothing. The cap is
also what keeps a worker fast under load: its threads share one interpreter lock, so a few requests at work
finish sooner than many taking turns (``bench/workflow_load.py --inflight``).

A slot is held while a request is at work, not while its answer travels: it is given back when the response
starts (the unit of work has committed by then), so a long download does not hold one. A request with a
large body (an upload) is not counted: reading it waits on the client's network, not on this process.
Plain ASGI (not BaseHTTPMiddleware), so streaming and exceptions pass through untouched.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

LARGE_BODY_BYTES = 1024 * 1024


class AdmissionLimit:
    def __init__(self, app: ASGIApp, *, max_inflight: int, exempt_prefixes: tuple[str, ...] = ("/static/",)) -> None:
        self.app = app
        self.max_inflight = max_inflight
        self.exempt_prefixes = exempt_prefixes
        self._semaphore: asyncio.Semaphore | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt_prefixes) or _large_body(scope):
            await self.app(scope, receive, send)
            return
        if self._semaphore is None:  # created inside the server's event loop
            self._semaphore = asyncio.Semaphore(self.max_inflight)
        semaphore = self._semaphore
        await semaphore.acquire()
        held = True

        def give_back() -> None:
            nonlocal held
            if held:
                held = False
                semaphore.release()

        async def send_and_give_back(message: Message) -> None:
            if message["type"] == "http.response.start":
                give_back()  # the work is done; the body may stream for as long as the client takes
            await send(message)

        try:
            await self.app(scope, receive, send_and_give_back)
        finally:
            give_back()


def _large_body(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return value.isdigit() and int(value) > LARGE_BODY_BYTES
    return False
