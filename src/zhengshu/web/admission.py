"""Admission control: at most N requests of a worker process run at once; the rest wait before touching
anything.

Sync routes and dependencies run in a thread pool and take a pooled database connection early (the actor is
loaded first). Without a cap, a burst fills every thread with requests that each hold a connection while they
wait for another one, and the worker stalls until the pool times out. Waiting here holds nothing.
Plain ASGI (not BaseHTTPMiddleware), so streaming and exceptions pass through untouched.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Receive, Scope, Send


class AdmissionLimit:
    def __init__(self, app: ASGIApp, *, max_inflight: int, exempt_prefixes: tuple[str, ...] = ("/static/",)) -> None:
        self.app = app
        self.max_inflight = max_inflight
        self.exempt_prefixes = exempt_prefixes
        self._semaphore: asyncio.Semaphore | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt_prefixes):
            await self.app(scope, receive, send)
            return
        if self._semaphore is None:  # created inside the server's event loop
            self._semaphore = asyncio.Semaphore(self.max_inflight)
        async with self._semaphore:
            await self.app(scope, receive, send)
