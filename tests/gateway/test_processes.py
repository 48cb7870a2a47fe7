"""Standalone gateway processes (``zhengshu gateway``): an independent httpx client calls one end to end with
the documented scheme, and two processes sharing Redis enforce one rate limit and one nonce store."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.factories import World
from tests.gateway.conftest import PEOPLE, GatewayProcess, consumer_app, database_url, grant, proxy_service, signed
from zhengshu.core.db import Database

CLIENT = Path(__file__).with_name("client_script.py")
REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture
def processes(db: Database) -> Iterator[Any]:
    started: list[GatewayProcess] = []

    def start(count: int, **env: str) -> list[GatewayProcess]:
        base = {
            "ZHENGSHU_DATABASE_URL": database_url(db),
            "ZHENGSHU_EMBEDDED_JOBS": "false",
            "ZHENGSHU_GATEWAY_REFRESH_MS": "100",
            **env,
        }
        procs = [GatewayProcess(base) for _ in range(count)]
        started.extend(procs)
        for p in procs:
            p.wait_ready()
        return procs

    yield start
    for p in started:
        p.stop()


def test_an_independent_httpx_client_calls_the_gateway_end_to_end(
    processes: Any, db: Database, world: World, person_entry: str, upstream: Any
) -> None:
    grant(db, world, person_entry, {"身份证号": "id_6_4", "参保状态": "none"})
    proxy_service(db, world, person_entry, upstream[0])
    creds = consumer_app(db, world)
    [gw] = processes(1)

    def run(*args: str) -> tuple[int, dict[str, Any]]:
        out = subprocess.run(
            # "--opt=value": a generated key or secret may start with "-", which argparse would take for an option
            [
                sys.executable,
                str(CLIENT),
                f"--base={gw.url}",
                f"--key={creds.access_key}",
                f"--secret={creds.secret}",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.stdout.strip(), f"the client script printed nothing (exit {out.returncode}): {out.stderr[-2000:]}"
        return out.returncode, json.loads(out.stdout)

    code, answer = run("GET", f"/gw/person-status/{PEOPLE[0][0]}")
    assert code == 0, answer
    assert answer["body"]["items"] == [{"sfzh": "360102********1234", "cbzt": "正常参保"}]
    code, answer = run("GET", f"/gw/person-status/{PEOPLE[0][0]}?fields=cbzt")
    assert code == 0 and answer["body"]["items"] == [{"cbzt": "正常参保"}]
    code, answer = run("--replay", "GET", f"/gw/person-status/{PEOPLE[0][0]}")
    assert code == 1 and answer["body"]["code"] == "gateway.replayed_nonce"
    code, answer = run("GET", f"/gw/person-status/{PEOPLE[0][0]}?fields=sjhm")
    assert code == 1 and answer["status"] == 403


def test_two_processes_sharing_redis_share_rate_limits_quotas_and_nonces(
    processes: Any, db: Database, world: World, person_entry: str, upstream: Any
) -> None:
    grant(db, world, person_entry, {"参保状态": "none"})
    proxy_service(db, world, person_entry, upstream[0], app_rate_per_s=10, app_daily_quota=12)
    creds = consumer_app(db, world)
    prefix = f"zs:gwtest:{uuid.uuid4().hex[:8]}"
    a, b = processes(2, ZHENGSHU_REDIS_URL=REDIS, ZHENGSHU_GATEWAY_KEY_PREFIX=prefix)
    path = f"/gw/person-status/{PEOPLE[0][0]}"

    def burst(gateways: list[GatewayProcess], n: int) -> list[str]:
        async def one(client: httpx.AsyncClient, gw: GatewayProcess) -> str:
            r = await client.get(gw.url + path, headers=signed(creds, "GET", gw.url + path))
            return "ok" if r.status_code == 200 else r.json()["code"]

        async def run() -> list[str]:
            async with httpx.AsyncClient(timeout=10) as client:
                return list(await asyncio.gather(*(one(client, gateways[i % len(gateways)]) for i in range(n))))

        return asyncio.run(run())

    # a nonce spent at one process is refused at the other
    headers = signed(creds, "GET", a.url + path)
    assert httpx.get(a.url + path, headers=headers).status_code == 200
    r = httpx.get(b.url + path, headers=headers)
    assert r.status_code == 401 and r.json()["code"] == "gateway.replayed_nonce"

    # 10 calls a second in total, whichever process takes them (a burst spans at most two windows)
    results = burst([a, b], 40)
    assert results.count("gateway.rate_limited") >= 20, results
    assert results.count("ok") <= 11, results  # one already spent above; the quota caps the rest

    # the daily quota (12) is one counter for both processes: exactly 12 calls are served in all
    time.sleep(1.1)
    more = burst([a, b], 8)
    assert 1 + results.count("ok") + more.count("ok") == 12, (results, more)
    assert more.count("gateway.quota_exceeded") >= 1, more

    # without Redis each process counts alone: together they let more through than the quota
    c, d = processes(2)
    alone = burst([c, d], 20)
    assert alone.count("ok") == 20 or alone.count("ok") > 12, alone


def test_the_readme_shell_example_signs_correctly(
    processes: Any, db: Database, world: World, person_entry: str, upstream: Any
) -> None:
    """The curl + openssl snippet of README.md, run as written (host and credentials substituted)."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Calling the interface services", 1)[1]
    script = section.split("```sh\n", 1)[1].split("```", 1)[0]
    grant(db, world, person_entry, {"参保状态": "none"})
    proxy_service(db, world, person_entry, upstream[0])
    creds = consumer_app(db, world)
    [gw] = processes(1)
    script = script.replace("AK=AK…; SK=…;", f"AK={creds.access_key}; SK='{creds.secret}';")
    script = script.replace("http://127.0.0.1:8000", gw.url)
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["items"] == [{"cbzt": "正常参保"}], out.stdout
