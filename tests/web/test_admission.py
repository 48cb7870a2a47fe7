"""Admission control: a cap on requests at work per process; a slot is given back when the response starts,
and uploads (large bodies) are not counted."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from zhengshu.web.admission import LARGE_BODY_BYTES, AdmissionLimit


def _scope(path: str = "/api/v1/things", length: int | None = None) -> dict[str, Any]:
    headers = [(b"content-length", str(length).encode())] if length is not None else []
    return {"type": "http", "method": "POST", "path": path, "headers": headers}


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _sent(_message: Any) -> None:
    """The client's side of ``send``: nothing to keep."""


async def _start(send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})


async def _body(send: Any) -> None:
    await send({"type": "http.response.body", "body": b"ok"})


def test_at_most_n_requests_at_work() -> None:
    at_work, most = 0, 0

    async def app(scope: Any, receive: Any, send: Any) -> None:
        nonlocal at_work, most
        at_work += 1
        most = max(most, at_work)
        await asyncio.sleep(0.01)
        at_work -= 1
        await _start(send)
        await _body(send)

    limited = AdmissionLimit(app, max_inflight=2)

    async def main() -> None:
        await asyncio.gather(*(limited(_scope(), _receive, _sent) for _ in range(10)))

    asyncio.run(main())
    assert most == 2


def test_a_streaming_answer_gives_its_slot_back_when_it_starts() -> None:
    async def main() -> list[str]:
        order: list[str] = []
        stream_may_end = asyncio.Event()

        async def app(scope: Any, receive: Any, send: Any) -> None:
            await _start(send)
            if scope["path"] == "/download":
                order.append("download started")
                await stream_may_end.wait()  # the client is still reading the body
                order.append("download ended")
            else:
                order.append("api answered")
            await _body(send)

        limited = AdmissionLimit(app, max_inflight=1)

        download = asyncio.create_task(limited(_scope("/download"), _receive, _sent))
        await asyncio.sleep(0.01)
        await asyncio.wait_for(limited(_scope(), _receive, _sent), timeout=2)  # not blocked by the download
        stream_may_end.set()
        await download
        return order

    assert asyncio.run(main()) == ["download started", "api answered", "download ended"]


def test_an_upload_is_not_counted_and_an_error_gives_the_slot_back() -> None:
    async def main() -> None:
        busy = asyncio.Event()

        async def app(scope: Any, receive: Any, send: Any) -> None:
            if scope["path"] == "/busy":
                await busy.wait()
            if scope["path"] == "/crash":
                raise RuntimeError("boom")
            await _start(send)
            await _body(send)

        limited = AdmissionLimit(app, max_inflight=1)

        holder = asyncio.create_task(limited(_scope("/busy"), _receive, _sent))
        await asyncio.sleep(0.01)
        upload = _scope("/api/v1/exchange/packages", length=LARGE_BODY_BYTES + 1)
        await asyncio.wait_for(limited(upload, _receive, _sent), timeout=2)  # passes the full cap
        small = asyncio.create_task(limited(_scope(length=100), _receive, _sent))
        await asyncio.sleep(0.01)
        assert not small.done()  # a small body waits for the slot
        busy.set()
        await holder
        await asyncio.wait_for(small, timeout=2)
        with pytest.raises(RuntimeError):
            await limited(_scope("/crash"), _receive, _sent)
        await asyncio.wait_for(limited(_scope(), _receive, _sent), timeout=2)  # the crashed one gave it back

    asyncio.run(main())
