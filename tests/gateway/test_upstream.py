"""The gateway's pooled upstream client against a scripted HTTP server on a real port: body framings, reuse of
keep-alive connections, size caps, timeouts, connection failures, stale connections and the pool limit."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from zhengshu.gateway.upstream import UpstreamError, UpstreamPool

Handler = Callable[[bytes, bytes, asyncio.StreamWriter], Awaitable[bool]]


class Script:
    """A TCP server answering each request head (and Content-Length body) with ``handler``; the handler returns
    False to close the connection. Counts connections and requests."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []
        self.bodies: list[bytes] = []
        self.open_now = 0
        self.open_max = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc: Any) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_now += 1
        self.open_max = max(self.open_max, self.open_now)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                body = b""
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        body = await reader.readexactly(int(line.split(b":", 1)[1]))
                self.requests.append(head)
                self.bodies.append(body)
                if not await self.handler(head, body, writer):
                    return
        finally:
            self.open_now -= 1
            writer.close()


def response(body: bytes, *, status: str = "200 OK", extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 " + status.encode() + b"\r\nContent-Length: %d\r\n" % len(body) + extra + b"\r\n" + body


async def ok(head: bytes, body: bytes, writer: asyncio.StreamWriter) -> bool:
    path = head.split(b" ", 2)[1]
    writer.write(response(b'{"path": "' + path + b'"}', extra=b"Content-Type: application/json\r\n"))
    await writer.drain()
    return True


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_content_length_bodies_reuse_one_keep_alive_connection() -> None:
    async def main() -> None:
        script = Script(ok)
        async with script as base:
            pool = UpstreamPool(limit_per_host=10)
            for i in range(3):
                status, raw = await pool.request("GET", f"{base}/person/{i}?a=1", headers={"X-Request-Id": "r"})
                assert status == 200 and raw == b'{"path": "/person/%d?a=1"}' % i
            await pool.close()
        assert script.connections == 1 and len(script.requests) == 3
        head = script.requests[0]
        assert head.startswith(b"GET /person/0?a=1 HTTP/1.1\r\n") and b"\r\nX-Request-Id: r\r\n" in head
        assert b"\r\nHost: 127.0.0.1:" in head

    run(main())


def test_chunked_gzip_and_read_until_close_bodies() -> None:
    payload = b'{"items": [' + b",".join(b'{"n": %d}' % i for i in range(200)) + b"]}"

    async def chunked(head: bytes, body: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for start in range(0, len(payload), 500):
            part = payload[start : start + 500]
            writer.write(b"%x\r\n" % len(part) + part + b"\r\n")
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True

    async def gzipped(head: bytes, body: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(response(gzip.compress(payload), extra=b"Content-Encoding: gzip\r\n"))
        await writer.drain()
        return True

    async def until_close(head: bytes, body: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.0 200 OK\r\n\r\n" + payload)
        await writer.drain()
        return False

    async def main() -> None:
        for handler, connections in ((chunked, 1), (gzipped, 1), (until_close, 2)):
            script = Script(handler)
            async with script as base:
                pool = UpstreamPool()
                for _ in range(2):
                    assert await pool.request("GET", f"{base}/x") == (200, payload)
                await pool.close()
            assert script.connections == connections, handler.__name__

    run(main())


def test_post_sends_the_body_with_its_length() -> None:
    async def main() -> None:
        script = Script(ok)
        async with script as base:
            pool = UpstreamPool()
            status, _ = await pool.request(
                "POST", f"{base}/q", headers={"Content-Type": "application/json"}, body=b'{"k": "v"}'
            )
            await pool.close()
        assert status == 200 and script.bodies == [b'{"k": "v"}']
        assert b"\r\nContent-Length: 10\r\n" in script.requests[0]

    run(main())


def test_an_oversized_body_is_none_and_its_connection_is_dropped() -> None:
    async def big(head: bytes, body: bytes, writer: asyncio.StreamWriter) -> bool:
        if b"chunked" in head:
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for _ in range(10):
                writer.write(b"64\r\n" + b"x" * 100 + b"\r\n")
            writer.write(b"0\r\n\r\n")
        else:
            writer.write(response(b"y" * 1000))
        await writer.drain()
        return True

    async def main() -> None:
        script = Script(big)
        async with script as base:
            pool = UpstreamPool()
            assert await pool.request("GET", f"{base}/a", max_body=999) == (200, None)
            assert await pool.request("GET", f"{base}/chunked", max_body=999) == (200, None)
            assert await pool.request("GET", f"{base}/a", max_body=1000) == (200, b"y" * 1000)
            await pool.close()
        assert script.connections == 3  # each refused answer cost its connection

    run(main())


def test_a_slow_upstream_times_out_and_the_pool_recovers() -> None:
    delay = {"s": 1.0}

    async def slow(head: bytes, body: bytes, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(delay["s"])
        return await ok(head, body, writer)

    async def main() -> None:
        script = Script(slow)
        async with script as base:
            pool = UpstreamPool(limit_per_host=1)
            with pytest.raises(TimeoutError):
                await pool.request("GET", f"{base}/a", timeout=0.2)
            delay["s"] = 0
            assert (await pool.request("GET", f"{base}/b", timeout=5))[0] == 200
            assert pool.open_connections() == 1
            await pool.close()

    run(main())


def test_refused_connections_and_garbage_answers_are_upstream_errors() -> None:
    async def garbage(head: bytes, body: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"SSH-2.0-OpenSSH\r\n\r\n")
        await writer.drain()
        return True

    async def main() -> None:
        script = Script(garbage)
        async with script as base:
            pool = UpstreamPool()
            with pytest.raises(UpstreamError):
                await pool.request("GET", f"{base}/a")
            await pool.close()
        pool = UpstreamPool()  # the server is gone now: its port refuses
        with pytest.raises(UpstreamError):
            await pool.request("GET", f"{base}/a")
        assert pool.open_connections() == 0
        with pytest.raises(UpstreamError):
            await pool.request("GET", "ftp://127.0.0.1/x")
        await pool.close()

    run(main())


def test_a_get_on_a_connection_the_upstream_dropped_is_retried_once_a_post_is_not() -> None:
    async def drop_second(head: bytes, body: bytes, writer: asyncio.StreamWriter) -> bool:
        if b"/again" in head:
            return False  # closes the kept-alive connection without answering
        return await ok(head, body, writer)

    async def main() -> None:
        script = Script(drop_second)
        async with script as base:
            pool = UpstreamPool()
            assert (await pool.request("GET", f"{base}/first"))[0] == 200
            # the reused connection is dropped; the retry on a new connection is dropped too (same path)
            with pytest.raises(UpstreamError):
                await pool.request("GET", f"{base}/again")
            assert script.connections == 2
            assert (await pool.request("GET", f"{base}/first"))[0] == 200
            assert script.connections == 3
            with pytest.raises(UpstreamError):
                await pool.request("POST", f"{base}/again", body=b"{}")
            assert script.connections == 3  # no retry for a POST
            assert pool.open_connections() == 0
            await pool.close()

    run(main())


def test_a_reused_connection_found_closed_is_replaced_transparently() -> None:
    seen: list[int] = []

    async def close_after_each(head: bytes, body: bytes, writer: asyncio.StreamWriter) -> bool:
        seen.append(1)
        await ok(head, body, writer)
        return len(seen) != 1  # the first connection closes right after its answer (no Connection: close)

    async def main() -> None:
        script = Script(close_after_each)
        async with script as base:
            pool = UpstreamPool()
            assert (await pool.request("GET", f"{base}/1"))[0] == 200
            await asyncio.sleep(0.05)  # the close reaches the idle connection
            assert (await pool.request("GET", f"{base}/2"))[0] == 200
            await pool.close()
        assert script.connections == 2

    run(main())


def test_the_pool_never_opens_more_than_its_limit_and_queues_the_rest() -> None:
    async def slowish(head: bytes, body: bytes, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(0.05)
        return await ok(head, body, writer)

    async def main() -> None:
        script = Script(slowish)
        async with script as base:
            pool = UpstreamPool(limit_per_host=2)
            results = await asyncio.gather(*(pool.request("GET", f"{base}/{i}") for i in range(7)))
            await pool.close()
        assert [status for status, _ in results] == [200] * 7
        assert script.open_max <= 2 and script.connections == 2

    run(main())


def test_header_values_cannot_inject_lines() -> None:
    async def main() -> None:
        pool = UpstreamPool()
        with pytest.raises(UpstreamError):
            await pool.request("GET", "http://127.0.0.1:9/x", headers={"Content-Type": "a\r\nX-Evil: 1"})
        await pool.close()

    run(main())
