"""Fixtures of the gateway tests: a published person entry, authorizations, a consumer app, an upstream HTTP
service on a real port, and the main app with the gateway mounted."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn

from tests.factories import World, published_entry
from zhengshu.core.config import Settings, reset_settings
from zhengshu.core.db import Database, new_id
from zhengshu.core.timeutil import local_today
from zhengshu.demand.models import Authorization, AuthorizationItem
from zhengshu.gateway import service as gw_service
from zhengshu.gateway import signing
from zhengshu.gateway.schemas import AppIn, ServiceIn

SECRET_KEY = "gateway-tests-master-key-0123456789"

PERSON_ITEMS: list[dict[str, Any]] = [
    {"name": "身份证号", "column_name": "sfzh", "data_type": "C", "length": 18},
    {"name": "姓名", "column_name": "xm", "data_type": "C", "length": 50},
    {"name": "手机号", "column_name": "sjhm", "data_type": "C", "length": 11},
    {"name": "住址", "column_name": "zz", "data_type": "C", "length": 200},
    {"name": "参保状态", "column_name": "cbzt", "data_type": "C", "length": 10},
    {"name": "银行卡号", "column_name": "yhkh", "data_type": "C", "length": 19},
]

PEOPLE = [
    ("360102199001011234", "李明", "13812345678", "江西省南昌市东湖区八一大道100号", "正常参保", "6222021234567890123"),
    ("360102198505052345", "王芳", "13987654321", "江西省南昌市西湖区孺子路8号", "暂停参保", "6222029876543210987"),
    ("360402197712123456", "张伟", "13700001111", "江西省九江市浔阳区庐山路1号", "正常参保", "6222020000111122223"),
]


@pytest.fixture(autouse=True)
def _master_key(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """One master key for this process and the gateway subprocesses (app secrets are encrypted with it)."""
    monkeypatch.setenv("ZHENGSHU_SECRET_KEY", SECRET_KEY)
    reset_settings()
    yield
    reset_settings()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path,
        secret_key=SECRET_KEY,
        node_code="360000",
        node_name="江西省政务数据共享平台",
        embedded_jobs=False,
        gateway_refresh_ms=100,
    )


@pytest.fixture
def person_entry(db: Database, world: World) -> str:
    return published_entry(
        db,
        world,
        name="个人社保参保信息",
        summary="个人参保状态，供各部门按身份证号核查",
        items=PERSON_ITEMS,
        sharing_type="有条件共享",
        sharing_condition="用于法定职责",
    )


def item_keys(db: Database, entry_id: str) -> dict[str, str]:
    from tests.unit.test_applications import keys_of

    return keys_of(db, entry_id)


def grant(
    db: Database,
    world: World,
    entry_id: str,
    rules: dict[str, str],
    *,
    org: str = "hrss",
    start_on: dt.date | None = None,
    end_on: dt.date | None = None,
    status: str = "active",
    delivery_way: str = "接口",
) -> str:
    """An authorization for ``org`` of the named items with their masking rules (test data, written directly)."""
    keys = item_keys(db, entry_id)
    today = local_today()  # the gateway's today is Beijing's
    with db.session() as s:
        auth = Authorization(
            id=new_id(),
            consumer_org_id=world.orgs[org],
            consumer_system="社会保险信息系统",
            entry_id=entry_id,
            entry_name="个人社保参保信息",
            provider_org_id=world.orgs["market"],
            delivery_way=delivery_way,
            start_on=start_on or today - dt.timedelta(days=30),
            end_on=end_on or today + dt.timedelta(days=365),
            status=status,
            grant_basis="provider",
            granted_by="测试",
        )
        for position, (name, rule) in enumerate(rules.items(), start=1):
            auth.items.append(
                AuthorizationItem(id=new_id(), item_key=keys[name], position=position, name=name, masking_rule=rule)
            )
        s.add(auth)
        gw_service.bump_generation(s)
        return auth.id


@dataclass
class AppCreds:
    app_id: str
    access_key: str
    secret: str


def consumer_app(db: Database, world: World, who: str = "hrss_officer", name: str = "社保核查系统") -> AppCreds:
    with db.session() as s:
        _, issued = gw_service.create_app(s, actor=world[who], app_in=AppIn(name=name))
    return AppCreds(issued["app_id"], issued["access_key"], issued["secret"])


def proxy_service(db: Database, world: World, entry_id: str, upstream: str, **over: Any) -> str:
    data: dict[str, Any] = {
        "entry_id": entry_id,
        "code": "person-status",
        "name": "个人参保状态查询",
        "kind": "proxy",
        "proxy": {
            "upstream_url": f"{upstream}/person/{{sfzh}}",
            "params": [{"name": "sfzh", "location": "path", "required": True}],
            "fields": {
                "id_no": "身份证号",
                "name": "姓名",
                "mobile": "手机号",
                "address": "住址",
                "status": "参保状态",
                "card": "银行卡号",
            },
            "timeout_s": 1.0,
        },
    }
    data.update(over)
    with db.session() as s:
        return gw_service.register_service(
            s, actor=world["market_officer"], service_in=ServiceIn.model_validate(data)
        ).id


def signed(creds: AppCreds, method: str, url: str, body: bytes = b"", **kw: Any) -> dict[str, str]:
    return signing.sign_request(
        access_key=creds.access_key, secret=creds.secret, method=method, url=url, body=body, **kw
    )


# ---- an upstream service on a real port --------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Upstream:
    """A tiny ASGI upstream: ``/person/{id}`` answers the person, ``/slow`` sleeps, ``/fail`` answers 500."""

    def __init__(self) -> None:
        self.calls = 0
        self.fail = False
        self.delay = 0.0
        self.people = {p[0]: p for p in PEOPLE}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.calls += 1
        path = scope["path"]
        if self.delay:
            await asyncio.sleep(self.delay)
        status, payload = 200, None
        if self.fail or path.startswith("/fail"):
            status, payload = 500, {"error": "boom"}
        elif path.startswith("/person/"):
            p = self.people.get(path.rsplit("/", 1)[1])
            if p is None:
                status, payload = 404, {"error": "not found"}
            else:
                payload = {
                    "id_no": p[0],
                    "name": p[1],
                    "mobile": p[2],
                    "address": p[3],
                    "status": p[4],
                    "card": p[5],
                    "internal_note": "不应外泄",
                }
        else:
            status, payload = 404, {}
        body = orjson.dumps(payload)
        await send(
            {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]}
        )
        await send({"type": "http.response.body", "body": body})


@pytest.fixture
def upstream() -> Iterator[tuple[str, Upstream]]:
    app = Upstream()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}", app
    server.should_exit = True
    thread.join(5)


@pytest.fixture
def gw(app: Any) -> Any:
    return app.state.gateway  # create_app mounts the gateway


@pytest.fixture
def gw_client(app: Any, gw: Any) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        yield c
        c.portal.call(gw.aclose)  # type: ignore[union-attr]


# ---- standalone gateway processes ----------------------------------------------------------------------------


def database_url(db: Database) -> str:
    """A URL another process can open on the same database (on PostgreSQL: the test worker's schema)."""
    url = db.engine.url
    if url.get_backend_name() == "postgresql":
        with db.engine.connect() as conn:
            schema = conn.exec_driver_sql("SELECT current_schema()").scalar()
        return url.render_as_string(hide_password=False) + f"?options=-csearch_path%3D{schema}"
    return url.render_as_string(hide_password=False)


class GatewayProcess:
    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "zhengshu.gateway.runtime:create_standalone_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
                "--http",  # as ``zhengshu gateway`` runs it
                "zhengshu.gateway.server:GatewayHttpProtocol",
            ],
            env={**os.environ, **env},
        )

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway process exited with {self.proc.returncode}")
            try:
                if httpx.get(f"{self.url}/gw/_health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise TimeoutError("gateway process did not start")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
