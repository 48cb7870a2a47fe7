"""Request bodies have a ceiling checked before anything is spooled: a declared Content-Length over it is
refused before a byte is read, a chunked body when it passes it; both as problem+json 413 with one code, and
nothing is written. Bodies under the ceiling pass untouched."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.factories import token_for
from zhengshu.core.config import Settings
from zhengshu.core.db import Database
from zhengshu.web.app import create_app
from zhengshu.web.bodylimit import BodySizeLimit

MB = 1024 * 1024


@pytest.fixture
def small_client(db: Database, settings: Settings, world: Any) -> Iterator[TestClient]:
    tight = settings.model_copy(update={"files_max_package_mb": 1, "max_request_body_mb": 1})
    with TestClient(create_app(tight, db)) as client:
        yield client


def _assert_too_large(response: Any) -> None:
    assert response.status_code == 413, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == "request.too_large" and "MB" in body["detail"]


def _count_packages(client: TestClient, headers: dict[str, str]) -> int:
    page = client.get("/api/v1/exchange/packages", params={"count": "true"}, headers=headers)
    assert page.status_code == 200, page.text
    return int(page.json()["total"])


def test_an_upload_over_the_ceiling_is_refused_and_nothing_is_written(small_client: TestClient, world: Any) -> None:
    headers = token_for(small_client, "market_officer")
    before = _count_packages(small_client, headers)
    form = {"title": "部门间文件包", "recipient_org_ids": world.orgs["hrss"]}
    big = b"x" * (17 * MB + 1)  # over 1 MB + the 16 MB multipart allowance
    response = small_client.post(
        "/api/v1/exchange/packages", data=form, files={"files": ("big.txt", big, "text/plain")}, headers=headers
    )
    _assert_too_large(response)
    assert _count_packages(small_client, headers) == before
    # the same request under the ceiling is sent: the refusal was about the size alone
    small = small_client.post(
        "/api/v1/exchange/packages", data=form, files={"files": ("ok.txt", b"x" * 1024, "text/plain")}, headers=headers
    )
    assert small.status_code == 201, small.text
    assert _count_packages(small_client, headers) == before + 1


def test_a_json_body_over_the_ceiling_is_refused(small_client: TestClient, world: Any) -> None:
    headers = token_for(small_client, "admin")
    payload = b'{"name": "' + b"x" * (2 * MB) + b'"}'
    response = small_client.post(
        "/api/v1/org/organizations", content=payload, headers={**headers, "content-type": "application/json"}
    )
    _assert_too_large(response)
    # under the ceiling: the route answers as usual (here: the validation error of a too-long name)
    ok = small_client.post("/api/v1/org/organizations", json={"name": "x" * 1000}, headers=headers)
    assert ok.status_code == 422 and ok.json()["code"] == "validation.failed"


def _call(middleware: BodySizeLimit, chunks: list[bytes], headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    """Drive the middleware like a server does: the body arrives in chunks; record what the app read."""
    read: list[int] = []
    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            read.append(len(message.get("body", b"")))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    middleware.app = app
    queue = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]

    async def receive() -> dict[str, Any]:
        return queue.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/x", "headers": headers}
    asyncio.run(middleware(scope, receive, send))
    return {"read": read, "status": sent[0]["status"], "left": len(queue)}


def test_declared_and_streamed_sizes() -> None:
    guard = BodySizeLimit(lambda *a: None, upload_limit=100, other_limit=10)  # type: ignore[arg-type]
    # declared over the limit: refused before the app reads anything
    out = _call(guard, [b"x" * 5], [(b"content-length", b"11"), (b"content-type", b"application/json")])
    assert out == {"read": [], "status": 413, "left": 1}
    # chunked, no length: refused at the chunk that passes the limit, the rest is never read
    out = _call(guard, [b"x" * 6, b"x" * 6, b"x" * 6], [(b"content-type", b"application/json")])
    assert out["status"] == 413 and out["read"] == [6] and out["left"] == 1
    # multipart has the larger limit
    out = _call(guard, [b"x" * 60, b"x" * 30], [(b"content-type", b"multipart/form-data; boundary=b")])
    assert out == {"read": [60, 30], "status": 200, "left": 0}
