"""The gateway's upstream client: pooled keep-alive HTTP/1.1 on asyncio protocols, responses parsed by ``httptools``.

The hot path makes one short request per call to an upstream it talks to all day. A general client (aiohttp)
spends most of a proxied call's CPU on machinery this use does not need (cookie jars, tracing signals, request
and response objects, stream readers); this one writes the request in one ``write`` and collects the response
body from the parser's callbacks. What it keeps: a pool per (scheme, host, port) bounded by
``ZHENGSHU_GATEWAY_UPSTREAM_CONNECTIONS`` with callers queued when it is full; one deadline per call covering the
wait for a connection, connecting, sending and reading; Content-Length, chunked and read-until-close bodies;
gzip/deflate bodies; a cap on the body size (the call stops reading and drops the connection); TLS for https
upstreams; a GET on a reused connection that the upstream had closed meanwhile is retried once on a new one.
Failures raise :class:`UpstreamError` (or :class:`TimeoutError`), which the gateway counts against the breaker.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import zlib
from collections import deque

import httptools

__all__ = ["UpstreamError", "UpstreamPool"]

_USER_AGENT = b"zhengshu-gateway"


class UpstreamError(Exception):
    """The upstream could not be reached or answered with something that is not HTTP/1.x."""


class _Stale(UpstreamError):
    """A reused connection was found closed before any byte of the answer came (safe to retry a GET)."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection; at most one request in flight."""

    __slots__ = (
        "chunks",
        "closed",
        "encoding",
        "framed",
        "idle_since",
        "keep_alive",
        "key",
        "limit",
        "parser",
        "pool",
        "received",
        "size",
        "status",
        "too_large",
        "transport",
        "waiter",
    )

    def __init__(self, pool: UpstreamPool, key: tuple[str, str, int]) -> None:
        self.pool = pool
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[None] | None = None
        self.closed = False
        self.idle_since = 0.0
        self._reset(0)

    def _reset(self, limit: int) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.limit = limit
        self.status = 0
        self.received = False
        self.framed = False  # Content-Length or chunked: the end of the body is known without a close
        self.encoding = b""
        self.keep_alive = False
        self.too_large = False

    # -- asyncio.Protocol --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.waiter is None or self.waiter.done():  # nothing asked: the connection is out of step, drop it
            self.close()
            return
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError(f"上游响应不是有效的 HTTP：{exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool._forget(self)
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        if self.status and not self.framed and not self.too_large:  # the body ran until the close
            self.keep_alive = False
            waiter.set_result(None)
        elif not self.received:
            waiter.set_exception(_Stale("上游连接已关闭"))
        else:
            waiter.set_exception(UpstreamError("上游在响应完成前关闭了连接"))

    # -- httptools callbacks --

    def on_header(self, name: bytes, value: bytes) -> None:
        lower = name.lower()
        if lower == b"content-length" or (lower == b"transfer-encoding" and b"chunked" in value.lower()):
            self.framed = True
        elif lower == b"content-encoding":
            self.encoding = value.strip().lower()

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        if self.too_large:
            return
        self.size += len(body)
        if self.size > self.limit:
            # stop here: the rest is not read, so the connection cannot be reused
            self.too_large = True
            self.chunks = []
            self.keep_alive = False
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_result(None)
            return
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        if self.status < 200:  # an interim 1xx answer: the real one follows
            self._reset(self.limit)
            self.received = True
            return
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    # -- helpers --

    def _fail(self, exc: Exception) -> None:
        self.keep_alive = False
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)
        self.close()

    def close(self) -> None:
        self.keep_alive = False
        if self.transport is not None and not self.closed:
            self.transport.close()
        self.closed = True


class UpstreamPool:
    """Keep-alive connections per upstream (scheme, host, port), at most ``limit_per_host`` open at a time each."""

    def __init__(self, *, limit_per_host: int = 100, idle_timeout_s: float = 15.0) -> None:
        self.limit = max(1, limit_per_host)
        self.idle_timeout_s = idle_timeout_s
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._open: dict[tuple[str, str, int], int] = {}
        self._waiters: dict[tuple[str, str, int], deque[asyncio.Future[None]]] = {}
        self._busy: set[_Connection] = set()
        self._targets: dict[str, tuple[tuple[str, str, int], bytes]] = {}
        self._ssl: ssl.SSLContext | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        timeout: float = 5.0,
        max_body: int = 4 * 1024 * 1024,
    ) -> tuple[int, bytes | None]:
        """Send one request; the status and the (decoded) body, or ``None`` as the body when it exceeds
        ``max_body``. Raises :class:`TimeoutError` past ``timeout`` seconds, :class:`UpstreamError` otherwise."""
        if self._closed:
            raise UpstreamError("网关正在关闭")
        key, host, target = self._target(url)
        head = [method.encode("ascii"), b" ", target, b" HTTP/1.1\r\nHost: ", host, b"\r\nUser-Agent: "]
        head.append(_USER_AGENT)
        head.append(b"\r\nAccept-Encoding: gzip, deflate\r\n")
        for name, value in (headers or {}).items():
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
                raise UpstreamError("请求头含有换行符")
            head += (name.encode("latin-1"), b": ", value.encode("latin-1"), b"\r\n")
        if body is not None or method in ("POST", "PUT", "PATCH"):
            head += (b"Content-Length: ", str(len(body or b"")).encode(), b"\r\n\r\n")
            if body:
                head.append(body)
        else:
            head.append(b"\r\n")
        payload = b"".join(head)
        loop = self._loop
        if loop is None:  # the pool lives on the loop of its first call (asking each time costs a getpid)
            loop = self._loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        retry = method == "GET"
        while True:
            conn = self._take_idle(key) or await self._acquire(key, deadline)
            waiter: asyncio.Future[None] = loop.create_future()
            conn._reset(max_body)
            conn.waiter = waiter
            timer = loop.call_at(deadline, _expire, waiter)
            try:
                transport = conn.transport
                if transport is None or transport.is_closing():  # the upstream's close is on its way
                    raise _Stale("上游连接已关闭")
                transport.write(payload)
                await waiter
            except _Stale:
                self._release(conn)
                if not retry:
                    raise UpstreamError("上游连接已关闭") from None
                retry = False
                continue
            except BaseException:
                conn.close()
                self._release(conn)
                raise
            finally:
                timer.cancel()
                conn.waiter = None
            self._release(conn)
            if conn.too_large:
                return conn.status, None
            chunks = conn.chunks
            raw = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            if conn.encoding and conn.encoding != b"identity":
                return conn.status, _decode(raw, conn.encoding, max_body)
            return conn.status, raw

    def _target(self, url: str) -> tuple[tuple[str, str, int], bytes, bytes]:
        """(pool key, Host header, request target) of an absolute http(s) URL; the part before the path is
        parsed once and cached (only the path and query change from call to call)."""
        scheme, sep, rest = url.partition("://")
        if not sep:
            raise UpstreamError(f"上游地址不是绝对地址：{url[:100]}")
        end = len(rest)
        for mark in ("/", "?"):
            i = rest.find(mark)
            if 0 <= i < end:
                end = i
        authority, target = rest[:end], rest[end:]
        if not target.startswith("/"):
            target = "/" + target
        prefix = scheme + "://" + authority
        cached = self._targets.get(prefix)
        if cached is None:
            cached = _parse_authority(scheme, authority, url)
            if len(self._targets) < 1024:
                self._targets[prefix] = cached
        return cached[0], cached[1], target.encode("latin-1")

    def _take_idle(self, key: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(key)
        if not idle:
            return None
        now = time.monotonic()
        while idle:
            conn = idle.pop()  # the most recently used: the least likely to have been closed by the upstream
            if not conn.closed and now - conn.idle_since < self.idle_timeout_s:
                self._busy.add(conn)
                return conn
            conn.close()
            self._drop(key)
        return None

    async def _acquire(self, key: tuple[str, str, int], deadline: float) -> _Connection:
        """A new connection, after waiting for a free place in the pool if it is full."""
        loop = asyncio.get_running_loop()
        while self._open.get(key, 0) >= self.limit:
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.setdefault(key, deque()).append(waiter)
            try:
                async with asyncio.timeout_at(deadline):
                    await waiter
            except BaseException:
                if not waiter.done():
                    waiter.cancel()
                elif not waiter.cancelled():  # woken but leaving: pass the turn on
                    self._wake(key)
                raise
            idle = self._idle.get(key)
            if idle:
                conn = idle.pop()
                if not conn.closed:
                    self._busy.add(conn)
                    return conn
                self._drop(key)
        self._open[key] = self._open.get(key, 0) + 1
        scheme, hostname, port = key
        try:
            async with asyncio.timeout_at(deadline):
                _, conn = await loop.create_connection(
                    lambda: _Connection(self, key),
                    hostname,
                    port,
                    ssl=self._ssl_context() if scheme == "https" else None,
                )
        except TimeoutError:
            self._drop(key)
            raise
        except (OSError, ssl.SSLError) as exc:
            self._drop(key)
            raise UpstreamError(f"无法连接上游（{type(exc).__name__}）") from exc
        except BaseException:
            self._drop(key)
            raise
        self._busy.add(conn)
        return conn

    def _release(self, conn: _Connection) -> None:
        self._busy.discard(conn)
        key = conn.key
        if conn.keep_alive and not conn.closed and not self._closed:
            conn.idle_since = time.monotonic()
            self._idle.setdefault(key, []).append(conn)
        else:
            conn.close()
            self._drop(key)
            return
        self._wake(key)

    def _forget(self, conn: _Connection) -> None:
        """An idle connection closed by the upstream leaves the pool at once."""
        idle = self._idle.get(conn.key)
        if idle and conn in idle and conn not in self._busy:
            idle.remove(conn)
            self._drop(conn.key)

    def _drop(self, key: tuple[str, str, int]) -> None:
        """One connection fewer: a queued caller may open another."""
        self._open[key] = max(0, self._open.get(key, 0) - 1)
        self._wake(key)

    def _wake(self, key: tuple[str, str, int]) -> None:
        waiters = self._waiters.get(key)
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    def open_connections(self) -> int:
        return sum(self._open.values())

    async def close(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
        for conn in list(self._busy):
            conn.close()
        self._open.clear()
        for waiters in self._waiters.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(UpstreamError("网关正在关闭"))
        self._waiters.clear()
        await asyncio.sleep(0)  # let the transports run their close callbacks


def _parse_authority(scheme: str, authority: str, url: str) -> tuple[tuple[str, str, int], bytes]:
    scheme = scheme.lower()
    if scheme not in ("http", "https") or not authority or "@" in authority:
        raise UpstreamError(f"不支持的上游地址：{url[:100]}")
    host, port = authority, 443 if scheme == "https" else 80
    try:
        if authority.startswith("["):  # [IPv6]:port
            end = authority.index("]")
            host = authority[1:end]
            if authority[end + 1 : end + 2] == ":":
                port = int(authority[end + 2 :])
        elif ":" in authority:
            host, _, port_text = authority.rpartition(":")
            port = int(port_text)
        host_header = authority.encode("idna")
    except (ValueError, UnicodeError):
        raise UpstreamError(f"上游地址无效：{url[:100]}") from None
    return (scheme, host, port), host_header


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


def _decode(raw: bytes, encoding: bytes, limit: int) -> bytes | None:
    """A gzip or deflate body, decompressed up to ``limit`` bytes (``None`` past it)."""
    if encoding in (b"gzip", b"x-gzip"):
        wbits = 16 + zlib.MAX_WBITS
    elif encoding == b"deflate":
        wbits = zlib.MAX_WBITS if raw[:1] == b"\x78" else -zlib.MAX_WBITS  # zlib-wrapped or raw deflate
    else:
        raise UpstreamError(f"不支持的上游响应编码：{encoding.decode('latin-1')}")
    try:
        inflater = zlib.decompressobj(wbits)
        out = inflater.decompress(raw, limit + 1)
    except zlib.error as exc:
        raise UpstreamError("上游响应无法解压") from exc
    return None if len(out) > limit else out
