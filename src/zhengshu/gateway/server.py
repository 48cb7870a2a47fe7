"""The standalone gateway's HTTP/1.1 protocol, run by Uvicorn (``--http zhengshu.gateway.server:GatewayHttpProtocol``).

Uvicorn keeps what it does well: sockets, worker processes, signals, lifespan, graceful shutdown, the proxy
headers middleware. This protocol replaces its per-request path, measured at close to half of the Python time
of a proxied call: Uvicorn's protocol parses and then hands the app a request/response cycle object, a keep-alive
timer per response, flow-control bookkeeping and two writes per answer (head, then body). Here a request is
parsed by ``httptools`` into an ASGI scope, its body is collected, the app runs in one task, and the answer
leaves in a single write; idle keep-alive connections are closed by one sweep a second per process.

Kept from HTTP/1.1: keep-alive and ``Connection: close``, HTTP/1.0, pipelined requests (answered in order),
``Expect: 100-continue``, Content-Length and chunked request bodies (a body over the gateway's request limit is
cut there: the app refuses it with 413 and the connection closes), streamed or unsized answers (chunked),
write back-pressure, a 400 for what is not HTTP, a 500 if the app fails before answering, and
``http.disconnect`` when the caller goes away.
"""

from __future__ import annotations

import asyncio
import http
import logging
from collections import deque
from typing import Any
from urllib.parse import unquote

import httptools

log = logging.getLogger("uvicorn.error")

PROTOCOL = "zhengshu.gateway.server:GatewayHttpProtocol"

_PHRASES = {status.value: status.phrase.encode() for status in http.HTTPStatus}
_STATUS_LINES = {code: b"HTTP/1.1 %d %s\r\n" % (code, _PHRASES.get(code, b"")) for code in range(100, 600)}
_BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 11\r\n"
_BAD_REQUEST += b"connection: close\r\n\r\nBad Request"
_ASGI = {"version": "3.0", "spec_version": "2.3"}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def _body_cap() -> int:
    """Request bodies are collected up to one byte past the gateway's limit (enough for the app to refuse)."""
    from zhengshu.core.config import get_settings

    return get_settings().gateway_max_request_kb * 1024 + 1


class GatewayHttpProtocol(asyncio.Protocol):
    """One client connection. Signature expected by Uvicorn's server (``config``, ``server_state``, …)."""

    body_cap: int | None = None

    def __init__(
        self, config: Any, server_state: Any, app_state: dict[str, Any], _loop: asyncio.AbstractEventLoop | None = None
    ) -> None:
        if not config.loaded:
            config.load()
        self.config = config
        self.app = config.loaded_app
        self.loop = _loop or asyncio.get_event_loop()
        self.server_state = server_state
        self.app_state = app_state
        self.root_path: str = config.root_path
        self.keep_alive_s: float = config.timeout_keep_alive
        if GatewayHttpProtocol.body_cap is None:
            GatewayHttpProtocol.body_cap = _body_cap()
        self.parser = httptools.HttpRequestParser(self)
        # a request after one that says "Connection: close" in the same packet must not fail the earlier ones
        self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
        self.transport: asyncio.Transport | None = None
        self.server: tuple[str, int] | None = None
        self.client: tuple[str, int] | None = None
        self.scheme = "http"
        self.closed = False
        self.must_close = False  # after the answer in progress (shutdown, an upgrade request)
        self.busy = False
        self.idle_since = 0.0
        self.pipeline: deque[tuple[dict[str, Any], bytes, bool]] = deque()
        self.write_paused = False
        self.drain: asyncio.Future[None] | None = None
        self.cycle: _Cycle | None = None
        # the request being parsed
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.body_size = 0
        self.scope: dict[str, Any] | None = None
        self.keep_alive = True  # of the request being parsed
        self.dispatched = False  # the request being parsed was already handed over (body over the cap)

    # -- asyncio.Protocol --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server_state.connections.add(self)
        self.server = _address(transport.get_extra_info("sockname"))
        self.client = _address(transport.get_extra_info("peername"))
        if transport.get_extra_info("sslcontext"):
            self.scheme = "https"
        self.idle_since = self.loop.time()
        _Sweeper.of(self.server_state, self.loop).watch(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server_state.connections.discard(self)
        self.pipeline.clear()
        if self.cycle is not None:
            self.cycle.disconnected()
        if self.drain is not None and not self.drain.done():
            self.drain.set_result(None)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # e.g. h2c: answered as plain HTTP/1.1, then closed
            self.must_close = True
        except httptools.HttpParserError:
            if self.busy:  # answer what came before, then close
                self.must_close = True
                if self.transport is not None:
                    self.transport.pause_reading()
                return
            if self.transport is not None:
                self.transport.write(_BAD_REQUEST)
            self._close()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.drain is not None and not self.drain.done():
            self.drain.set_result(None)

    # -- httptools callbacks --

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.body = []
        self.body_size = 0
        self.scope = None
        self.keep_alive = True
        self.dispatched = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        raw_path, _, query = self.url.partition(b"?")
        path = raw_path.decode("latin-1")
        if "%" in path:
            path = unquote(path)
        parser = self.parser
        self.scope = {
            "type": "http",
            "asgi": _ASGI,
            "http_version": parser.get_http_version(),
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,
            "method": parser.get_method().decode("ascii"),
            "root_path": self.root_path,
            "path": path,
            "raw_path": raw_path,
            "query_string": query,
            "headers": self.headers,
            "state": self.app_state.copy(),
        }
        self.keep_alive = parser.should_keep_alive()
        for name, value in self.headers:
            if name == b"expect" and value.lower() == b"100-continue" and self.transport is not None:
                self.transport.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        if self.dispatched:
            return
        self.body.append(body)
        self.body_size += len(body)
        if self.body_size >= (self.body_cap or 0):
            # enough to refuse: hand it over now, drop the rest, close after the answer
            self.keep_alive = False
            self.dispatched = True
            self._dispatch()

    def on_message_complete(self) -> None:
        if not self.dispatched:
            self._dispatch()

    # -- requests and answers --

    def _dispatch(self) -> None:
        scope = self.scope
        if scope is None:
            return
        body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        keep_alive = self.keep_alive
        if self.busy:
            self.pipeline.append((scope, body, keep_alive))
            if self.transport is not None:
                self.transport.pause_reading()  # answered in order; read more once the queue is done
            return
        self._start(scope, body, keep_alive)

    def _start(self, scope: dict[str, Any], body: bytes, keep_alive: bool) -> None:
        self.busy = True
        self.server_state.total_requests += 1
        cycle = self.cycle = _Cycle(self, scope, body, keep_alive)
        task = self.loop.create_task(cycle.run())
        tasks = self.server_state.tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def _finished(self, keep_alive: bool) -> None:
        self.cycle = None
        self.busy = False
        if self.closed:
            return
        if not keep_alive:
            self._close()
            return
        if self.pipeline:
            scope, body, pipelined_keep_alive = self.pipeline.popleft()
            self._start(scope, body, pipelined_keep_alive)
            if not self.pipeline and not self.must_close and self.transport is not None:
                self.transport.resume_reading()
            return
        if self.must_close:
            self._close()
            return
        self.idle_since = self.loop.time()

    def _close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()
        self.closed = True

    def shutdown(self) -> None:
        """Called by Uvicorn on graceful shutdown: close when idle, else after the answer in progress."""
        if self.busy:
            self.must_close = True
        else:
            self._close()


class _Cycle:
    """One request: the ASGI ``receive`` and ``send`` of the app's call."""

    __slots__ = (
        "body",
        "chunked",
        "conn",
        "done",
        "gone",
        "keep_alive",
        "pending",
        "read",
        "scope",
        "started",
        "waiter",
    )

    def __init__(self, conn: GatewayHttpProtocol, scope: dict[str, Any], body: bytes, keep_alive: bool) -> None:
        self.conn = conn
        self.scope = scope
        self.body = body
        self.keep_alive = keep_alive
        self.read = False
        self.started = False
        self.done = False
        self.gone = False
        self.chunked = False
        self.pending: tuple[int, list[tuple[bytes, bytes]], bool] | None = None  # status, headers, chunked
        self.waiter: asyncio.Future[None] | None = None

    async def run(self) -> None:
        conn = self.conn
        try:
            await conn.app(self.scope, self.receive, self.send)
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError):
                log.exception("Exception in ASGI application", exc_info=exc)
            self.keep_alive = False
            if not self.started and not self.gone:
                await self.send({"type": "http.response.start", "status": 500, "headers": []})
                await self.send({"type": "http.response.body", "body": b"Internal Server Error"})
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            if not self.done:  # the app returned without finishing its answer
                self.keep_alive = False
            conn._finished(self.keep_alive)

    def disconnected(self) -> None:
        self.gone = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def receive(self) -> dict[str, Any]:
        if not self.read:
            self.read = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        if not self.gone and not self.done:  # the body was all given: the next event is the caller leaving
            self.waiter = self.conn.loop.create_future()
            await self.waiter
        return {"type": "http.disconnect"}  # or the answer is complete: nothing more will come either way

    async def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        conn = self.conn
        if kind == "http.response.start":
            if self.started:
                raise RuntimeError("response already started")
            self.started = True
            headers = list(message.get("headers") or ())
            sized = any(name.lower() == b"content-length" for name, _ in headers)
            self.pending = (int(message["status"]), headers, not sized)
            return
        if kind != "http.response.body":
            raise RuntimeError(f"unexpected ASGI message {kind!r}")
        if not self.started or self.done:
            raise RuntimeError("response body outside a started response")
        body: bytes = message.get("body", b"")
        more = bool(message.get("more_body", False))
        if conn.write_paused and not conn.closed:
            conn.drain = conn.loop.create_future()
            await conn.drain
        out: list[bytes] = []
        if self.pending is not None:
            status, headers, chunked = self.pending
            self.pending = None
            if chunked and not more:  # the whole answer is here: give its length
                headers.append((b"content-length", str(len(body)).encode()))
                chunked = False
            out.append(_STATUS_LINES[status] if status in _STATUS_LINES else b"HTTP/1.1 %d \r\n" % status)
            for name, value in (*conn.server_state.default_headers, *headers):
                out += (name, b": ", value, b"\r\n")
            if chunked:
                out.append(b"transfer-encoding: chunked\r\n")
            if not self.keep_alive or conn.must_close:
                out.append(b"connection: close\r\n")
            out.append(b"\r\n")
            self.chunked = chunked
        if self.scope["method"] != "HEAD":
            if self.chunked:
                if body:
                    out += (b"%x\r\n" % len(body), body, b"\r\n")
                if not more:
                    out.append(b"0\r\n\r\n")
            elif body:
                out.append(body)
        if not more:
            self.done = True
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_result(None)
        if out and not conn.closed and conn.transport is not None:
            conn.transport.write(out[0] if len(out) == 1 else b"".join(out))


class _Sweeper:
    """Closes keep-alive connections idle past Uvicorn's ``timeout_keep_alive``: one timer a second for the
    event loop instead of one per answer."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.conns: set[GatewayHttpProtocol] = set()
        self.handle: asyncio.TimerHandle | None = None

    @classmethod
    def of(cls, server_state: Any, loop: asyncio.AbstractEventLoop) -> _Sweeper:
        """The sweeper of a Uvicorn server (kept on its shared state: one server, one loop)."""
        sweeper: _Sweeper | None = getattr(server_state, "zhengshu_sweeper", None)
        if sweeper is None or sweeper.loop is not loop:
            sweeper = cls(loop)
            server_state.zhengshu_sweeper = sweeper
        return sweeper

    def watch(self, conn: GatewayHttpProtocol) -> None:
        self.conns.add(conn)
        if self.handle is None:
            self.handle = self.loop.call_later(1.0, self.sweep)

    def sweep(self) -> None:
        now = self.loop.time()
        for conn in list(self.conns):
            if conn.closed:
                self.conns.discard(conn)
            elif not conn.busy and now - conn.idle_since > conn.keep_alive_s:
                conn._close()
                self.conns.discard(conn)
        self.handle = self.loop.call_later(1.0, self.sweep) if self.conns else None


def _address(info: Any) -> tuple[str, int] | None:
    if isinstance(info, tuple) and len(info) >= 2:
        return (str(info[0]), int(info[1]))
    return None
