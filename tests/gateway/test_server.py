"""The standalone gateway's HTTP/1.1 protocol under a real Uvicorn server: keep-alive, pipelining, request bodies
(sized, chunked, over the cap, ``Expect: 100-continue``), answers (sized, streamed, HEAD), closing rules, bad
requests, app failures and disconnects."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from tests.gateway.conftest import free_port
from zhengshu.gateway.server import PROTOCOL, GatewayHttpProtocol


class App:
    """Echoes the request; ``/stream`` answers in three unsized parts, ``/boom`` fails, ``/wait`` waits for the
    caller to leave."""

    def __init__(self) -> None:
        self.disconnected = threading.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == "/boom":
            raise RuntimeError("boom")
        message = await receive()
        body = message["body"]
        if path == "/wait":  # starts an answer, then waits for the caller to leave before finishing it
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok", "more_body": True})
            if (await receive())["type"] == "http.disconnect":
                self.disconnected.set()
            await send({"type": "http.response.body", "body": b""})
            return
        if path == "/stream":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for part in (b"one,", b"two,", b"three"):
                await send({"type": "http.response.body", "body": part, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            return
        answer = b"%s %s?%s len=%d" % (
            scope["method"].encode(),
            scope["path"].encode(),
            scope["query_string"],
            len(body),
        )
        headers = [(b"content-type", b"text/plain"), (b"x-client", scope["client"][0].encode())]
        await send({"type": "http.response.start", "status": 201, "headers": headers})
        await send({"type": "http.response.body", "body": answer})


@pytest.fixture
def server() -> Iterator[tuple[int, App]]:
    app = App()
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="critical", lifespan="off", http=PROTOCOL, timeout_keep_alive=1
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert srv.started
    yield port, app
    srv.should_exit = True
    thread.join(5)


def raw(port: int, data: bytes, *, until_closed: bool = True, wait: float = 5.0) -> bytes:
    """Send ``data`` on a new connection; everything received until the server closes (or ``wait`` passes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                if not until_closed:
                    break
        except TimeoutError:
            pass
        return b"".join(chunks)


def test_keep_alive_connections_serve_many_requests_with_sized_answers(server: tuple[int, App]) -> None:
    port, _ = server
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        for i in range(3):
            r = client.get(f"/gw/%E4%BA%BA/{i}", params={"a": "1"})
            assert r.status_code == 201 and r.text == f"GET /gw/人/{i}?a=1 len=0"
            assert r.headers["content-length"] == str(len(r.content)) and "date" in r.headers
            assert r.headers["x-client"] == "127.0.0.1"
        r = client.post("/p", content=b"x" * 5000)
        assert r.text == "POST /p? len=5000"
        r = client.head("/h")
        assert r.status_code == 201 and r.content == b"" and r.headers["content-length"] == str(len("HEAD /h? len=0"))


def test_pipelined_requests_are_answered_in_order_and_close_is_honoured(server: tuple[int, App]) -> None:
    port, _ = server
    requests = b"".join(
        b"GET /r%d HTTP/1.1\r\nHost: x\r\n%s\r\n" % (i, b"Connection: close\r\n" if i == 3 else b"") for i in range(4)
    )
    out = raw(port, requests + b"GET /never HTTP/1.1\r\nHost: x\r\n\r\n")
    assert out.count(b"HTTP/1.1 201 Created") == 4 and b"/never" not in out
    assert [out.index(b"GET /r%d?" % i) for i in range(4)] == sorted(out.index(b"GET /r%d?" % i) for i in range(4))
    assert out.rstrip().endswith(b"GET /r3? len=0") and b"connection: close" in out
    # HTTP/1.0 without keep-alive: one answer, then the connection closes
    out = raw(port, b"GET /old HTTP/1.0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 201") and out.endswith(b"GET /old? len=0")


def test_chunked_and_expect_continue_request_bodies(server: tuple[int, App]) -> None:
    port, _ = server
    chunked = b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    chunked += b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    assert raw(port, chunked).endswith(b"POST /c? len=11")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"abc")
        assert sock.recv(1000).endswith(b"POST /e? len=3")


def test_a_body_over_the_cap_is_cut_there_and_the_connection_closes(
    server: tuple[int, App], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, _ = server
    monkeypatch.setattr(GatewayHttpProtocol, "body_cap", 1000)
    head = b"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
    out = raw(port, head + b"y" * 5000)  # the rest never comes: the answer must not wait for it
    assert b"POST /big? len=" in out and b"connection: close" in out
    assert int(out.rsplit(b"len=", 1)[1]) >= 1000


def test_streamed_answers_are_chunked(server: tuple[int, App]) -> None:
    port, _ = server
    r = httpx.get(f"http://127.0.0.1:{port}/stream")
    assert r.status_code == 200 and r.text == "one,two,three" and r.headers["transfer-encoding"] == "chunked"


def test_bad_requests_and_app_failures(server: tuple[int, App]) -> None:
    port, _ = server
    out = raw(port, b"NOT HTTP AT ALL\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400 Bad Request")
    out = raw(port, b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 500 Internal Server Error") and b"connection: close" in out


def test_the_app_hears_the_caller_leave(server: tuple[int, App]) -> None:
    port, app = server
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(1000).endswith(b"2\r\nok\r\n")
        assert not app.disconnected.wait(0.2)  # still there: the app keeps waiting
    assert app.disconnected.wait(5)


def test_idle_keep_alive_connections_are_closed_by_the_sweep(server: tuple[int, App]) -> None:
    port, _ = server
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /idle HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(1000).endswith(b"len=0")
        # timeout_keep_alive is 1 s and the sweep runs every second: closed well within the socket timeout
        assert sock.recv(1000) == b""


def test_the_protocol_runs_the_gateway_app_in_a_loop_of_its_own() -> None:
    """Two servers in one process (two loops) keep their sweepers apart."""
    from zhengshu.gateway.server import _Sweeper

    class State:
        pass

    loop_a, loop_b = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:
        state_a, state_b = State(), State()
        assert _Sweeper.of(state_a, loop_a) is _Sweeper.of(state_a, loop_a)
        assert _Sweeper.of(state_b, loop_b).loop is loop_b and _Sweeper.of(state_a, loop_a).loop is loop_a
    finally:
        loop_a.close()
        loop_b.close()
