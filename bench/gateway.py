"""Interface gateway benchmark: a bare upstream against the same call through the gateway, and a generated
key lookup on PostgreSQL, at 100 connections and at 1.

    python bench/gateway.py [--duration 10] [--connections 100] [--gateway-workers 2] [--rows 100000]

In one run on one machine it starts: an upstream test service (one Uvicorn worker answering a fixed 1 KB JSON
body from memory), the standalone gateway (``zhengshu gateway``'s app, ``--gateway-workers`` processes) on a
PostgreSQL control database (a schema of its own in ``--pg-url``, dropped at the end) with every check on
(signature, authorization, rate limit and quota, masking, call log), and a load generator in a separate process
(a minimal keep-alive HTTP/1.1 client on uvloop; requests are signed before the clock starts, each with its own
nonce, so the generator measures the gateway rather than its own signing).

Prints one ``name: value`` line per figure on stdout (progress on stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import socket
import subprocess
import sys
import time
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the test factories build the demo organizations and users

PAYLOAD: dict[str, Any] = {
    "id_no": "360102199001011234",
    "name": "李明",
    "mobile": "13812345678",
    "address": "江西省南昌市东湖区八一大道100号",
    "status": "正常参保",
    "card": "6222021234567890123",
    "insured_since": "2012-07-01",
    "employer": "江西省某某科技有限公司",
    "remark": "x" * 700,
}
UPSTREAM_BODY = json.dumps(PAYLOAD, ensure_ascii=False).encode()
PASSWORD_NOTE = "bench"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---- the upstream test service --------------------------------------------------------------------------------


async def upstream_app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(UPSTREAM_BODY)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": UPSTREAM_BODY})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(port: int, path: str, timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}{path}", timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise TimeoutError(f"nothing answers on port {port}")


def _children(pid: int) -> list[int]:
    """Worker processes of a Uvicorn supervisor (not multiprocessing's resource tracker)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in task.read_text().split():
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            if b"resource_tracker" not in cmdline:
                out.append(int(child))
    return out


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of processes so far (Linux ``/proc``; 0 where unavailable). On a shared machine
    CPU time per call is a steadier figure than throughput."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


# ---- the load generator ---------------------------------------------------------------------------------------


def _request(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _connection(port: int, requests: Any, stop_at: float, record_from: float, out: dict[str, Any]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    latencies = out["latencies"]
    completed = 0
    try:
        while True:
            now = time.perf_counter()
            if now >= stop_at:
                break
            request = next(requests, None)
            if request is None:
                out["exhausted"] = True
                break
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            lower = head.lower()
            i = lower.find(b"content-length:")
            if i < 0:
                out["errors"] += 1
                break
            length = int(lower[i + 15 : lower.find(b"\r\n", i)])
            await reader.readexactly(length)
            done = time.perf_counter()
            completed += 1
            if started >= record_from:
                latencies.append(done - started)
                if status != 200:
                    out["errors"] += 1
                    out["statuses"][status] = out["statuses"].get(status, 0) + 1
    except (ConnectionError, asyncio.IncompleteReadError) as exc:
        out["errors"] += 1
        out["failures"].append(repr(exc))
    finally:
        out["completed"] += completed
        writer.close()


def _loadgen(
    port: int, requests: list[bytes] | bytes, connections: int, warmup: float, duration: float, q: Any
) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    import itertools

    source = itertools.repeat(requests) if isinstance(requests, bytes) else iter(requests)
    out: dict[str, Any] = {
        "latencies": [],
        "errors": 0,
        "statuses": {},
        "failures": [],
        "exhausted": False,
        "completed": 0,
    }

    async def main() -> None:
        start = time.perf_counter()
        record_from = start + warmup
        stop_at = record_from + duration
        await asyncio.gather(*(_connection(port, source, stop_at, record_from, out) for _ in range(connections)))

    asyncio.run(main())
    lat = sorted(out["latencies"])
    n = len(lat)
    q.put(
        {
            "requests": n,
            "completed": out["completed"],  # warm-up included: the denominator of the CPU figures
            "rps": n / duration,
            "p50_ms": lat[n // 2] * 1000 if n else None,
            "p99_ms": lat[min(n - 1, int(n * 0.99))] * 1000 if n else None,
            "errors": out["errors"],
            "statuses": out["statuses"],
            "failures": out["failures"][:3],
            "exhausted": out["exhausted"],
        }
    )


def load(port: int, requests: list[bytes] | bytes, connections: int, warmup: float, duration: float) -> dict[str, Any]:
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    proc = ctx.Process(target=_loadgen, args=(port, requests, connections, warmup, duration, q))
    proc.start()
    result = q.get(timeout=warmup + duration + 120)
    proc.join(30)
    return dict(result)


# ---- the world ------------------------------------------------------------------------------------------------


def build(pg_url: str, schema: str, src_schema: str, rows: int, upstream_port: int) -> dict[str, Any]:
    import psycopg
    from sqlalchemy import text
    from tests.factories import build_world, published_entry

    from zhengshu.bootstrap import load_features
    from zhengshu.catalog import mounting
    from zhengshu.core.db import Base, Database, new_id
    from zhengshu.demand.models import Authorization, AuthorizationItem
    from zhengshu.gateway import service as gw_service
    from zhengshu.gateway.schemas import AppIn, ServiceIn
    from zhengshu.lake import service as lake_service
    from zhengshu.lake.schemas import DataSourceIn
    from zhengshu.security import passwords

    load_features()
    from argon2 import PasswordHasher

    passwords._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)  # users are throwaway here
    admin = Database(pg_url)
    with admin.engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    db = Database(pg_url, connect_args={"options": f"-csearch_path={schema}"})
    Base.metadata.create_all(db.engine)
    world = build_world(db)
    items = [
        {"name": "身份证号", "column_name": "sfzh", "data_type": "C", "length": 18},
        {"name": "姓名", "column_name": "xm", "data_type": "C", "length": 50},
        {"name": "手机号", "column_name": "sjhm", "data_type": "C", "length": 11},
        {"name": "住址", "column_name": "zz", "data_type": "C", "length": 200},
        {"name": "参保状态", "column_name": "cbzt", "data_type": "C", "length": 10},
        {"name": "银行卡号", "column_name": "yhkh", "data_type": "C", "length": 19},
    ]
    entry_id = published_entry(db, world, name="个人社保参保信息", items=items)

    log(f"source table: {rows:,} people in {src_schema}.cbxx")
    rng = random.Random(7)
    keys = [f"3601{rng.randrange(10**13, 10**14)}" for _ in range(rows)]
    with psycopg.connect(pg_url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{src_schema}"')
        conn.execute(
            f'CREATE TABLE "{src_schema}".cbxx (sfzh varchar(18) PRIMARY KEY, xm varchar(50), sjhm varchar(11), '
            "zz varchar(200), cbzt varchar(10), yhkh varchar(19))"
        )
        with conn.cursor() as cur, cur.copy(f'COPY "{src_schema}".cbxx FROM STDIN') as copy:
            for i, key in enumerate(keys):
                copy.write_row(
                    (key, f"张{i}", f"138{i:08d}", f"江西省南昌市东湖区八一大道{i}号", "正常参保", f"6222{i:015d}")
                )
        conn.execute(f'ANALYZE "{src_schema}".cbxx')

    from sqlalchemy.engine import make_url

    url = make_url(pg_url)
    with db.session() as s:
        source = lake_service.register_source(
            s,
            actor=world["admin"],
            source_in=DataSourceIn.model_validate(
                {
                    "name": "社保前置库",
                    "kind": "postgresql",
                    "owner_org_id": world.orgs["market"],
                    "host": url.host or "127.0.0.1",
                    "port": url.port or 5432,
                    "database": url.database,
                    "username": url.username or "postgres",
                    "options": {"schema": src_schema},
                }
            ),
        )
        mounting.mount_table(
            s,
            actor=world["market_officer"],
            entry_id=entry_id,
            mount_in=mounting.TableMountIn(source_id=source.id, table="cbxx", schema_name=src_schema),
        )
        unlimited = {"app_rate_per_s": 1_000_000, "app_daily_quota": 1_000_000_000}
        gw_service.register_service(
            s,
            actor=world["market_officer"],
            service_in=ServiceIn.model_validate(
                {
                    "entry_id": entry_id,
                    "code": "bench-proxy",
                    "name": "参保状态（代理）",
                    "kind": "proxy",
                    "proxy": {
                        "upstream_url": f"http://127.0.0.1:{upstream_port}/person/{{sfzh}}",
                        "params": [{"name": "sfzh", "location": "path"}],
                        "fields": {
                            "id_no": "身份证号",
                            "name": "姓名",
                            "mobile": "手机号",
                            "address": "住址",
                            "status": "参保状态",
                            "card": "银行卡号",
                        },
                    },
                    **unlimited,
                }
            ),
        )
        gw_service.register_service(
            s,
            actor=world["market_officer"],
            service_in=ServiceIn.model_validate(
                {
                    "entry_id": entry_id,
                    "code": "bench-lookup",
                    "name": "参保信息（库表生成）",
                    "kind": "table",
                    "table": {"key_items": ["身份证号"], "filter_items": ["参保状态"]},
                    **unlimited,
                }
            ),
        )
        keys_by_name = {
            i.name: i.key
            for i in __import__("zhengshu.catalog.service", fromlist=["x"])
            .display_version(s, s.get(__import__("zhengshu.catalog.models", fromlist=["x"]).CatalogEntry, entry_id))
            .items
        }
        rules = {
            "身份证号": "id_6_4",
            "姓名": "name_first",
            "手机号": "mobile_3_4",
            "住址": "address_county",
            "参保状态": "none",
            "银行卡号": "bank_4_4",
        }
        auth = Authorization(
            id=new_id(),
            consumer_org_id=world.orgs["hrss"],
            consumer_system="社会保险信息系统",
            entry_id=entry_id,
            entry_name="个人社保参保信息",
            provider_org_id=world.orgs["market"],
            delivery_way="接口",
            start_on=date.today() - timedelta(days=1),
            end_on=date.today() + timedelta(days=365),
            status="active",
            grant_basis="provider",
            granted_by="bench",
        )
        for position, (name, rule) in enumerate(rules.items(), start=1):
            auth.items.append(
                AuthorizationItem(
                    id=new_id(), item_key=keys_by_name[name], position=position, name=name, masking_rule=rule
                )
            )
        s.add(auth)
        _, issued = gw_service.create_app(s, actor=world["hrss_officer"], app_in=AppIn(name="社保核查系统"))
    db.dispose()
    return {"access_key": issued["access_key"], "secret": issued["secret"], "keys": keys}


def signed_requests(
    creds: dict[str, Any], paths: list[str], count: int, *, extra: dict[str, str] | None = None
) -> list[bytes]:
    from zhengshu.gateway.signing import sign_request

    out = []
    for i in range(count):
        path = paths[i % len(paths)]
        headers = sign_request(
            access_key=creds["access_key"], secret=creds["secret"], method="GET", url=f"http://127.0.0.1{path}"
        )
        out.append(_request("GET", path, {**headers, **(extra or {})}))
    return out


# ---- the run --------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per scenario")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--gateway-workers", type=int, default=2)
    parser.add_argument("--rows", type=int, default=100_000, help="people in the lookup table")
    parser.add_argument("--max-rps", type=int, default=12_000, help="signed requests prepared per second of load")
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument(
        "--limits-url", help="Redis URL for rate limits, quotas and nonces (default: in memory, per process)"
    )
    parser.add_argument("--only", help="comma-separated scenarios to run (development; the figures need all)")
    parser.add_argument("--serve-upstream", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.serve_upstream:
        import uvicorn

        uvicorn.run(upstream_app, host="127.0.0.1", port=args.serve_upstream, log_level="warning", access_log=False)
        return 0

    suffix = uuid.uuid4().hex[:8]
    schema, src_schema = f"bench_gw_{suffix}", f"bench_gw_src_{suffix}"
    up_port, gw_port = free_port(), free_port()
    procs: list[subprocess.Popen[bytes]] = []
    results: dict[str, dict[str, Any]] = {}
    counters = f"redis ({args.limits_url})" if args.limits_url else "memory"
    try:
        procs.append(subprocess.Popen([sys.executable, __file__, "--serve-upstream", str(up_port)]))
        log("building the control database, the source table, the services, the app and the authorization …")
        world = build(args.pg_url, schema, src_schema, args.rows, up_port)
        secret_key = "bench-gateway-master-key-0123456789"
        env = {
            **os.environ,
            "ZHENGSHU_DATABASE_URL": f"{args.pg_url}?options=-csearch_path%3D{schema}",
            "ZHENGSHU_SECRET_KEY": os.environ.get("ZHENGSHU_SECRET_KEY", ""),
            "ZHENGSHU_EMBEDDED_JOBS": "false",
            # rate limits, quotas and nonces: in process memory (the default) unless --limits-url names a Redis
            "ZHENGSHU_GATEWAY_LIMITS_URL": args.limits_url or "",
            "ZHENGSHU_REDIS_URL": "",
        }
        if not env["ZHENGSHU_SECRET_KEY"]:
            raise SystemExit("internal: the secret key must be set before building")
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "--factory",
                    "zhengshu.gateway.runtime:create_standalone_app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(gw_port),
                    "--workers",
                    str(args.gateway_workers),
                    "--log-level",
                    "warning",
                    "--no-access-log",
                    "--http",  # as ``zhengshu gateway`` runs it: each answer in one write
                    "zhengshu.gateway.server:GatewayHttpProtocol",
                ],
                env=env,
            )
        )
        del secret_key
        wait_http(up_port, "/")
        wait_http(gw_port, "/gw/_health")
        time.sleep(1.0)

        person = "/person/360102199001011234"
        direct = _request("GET", person, {})
        proxied_paths = [f"/gw/bench-proxy/{k}" for k in world["keys"][:1000]]
        lookup_paths = [
            f"/gw/bench-lookup/{k}" for k in random.Random(1).sample(world["keys"], min(5000, len(world["keys"])))
        ]
        span = args.warmup + args.duration

        workers = _children(procs[1].pid)
        if len(workers) != args.gateway_workers:
            log(f"note: {len(workers)} gateway worker processes found (CPU figures count these)")
        only = set(args.only.split(",")) if args.only else None

        def scenario(name: str, port: int, requests: Any, connections: int) -> None:
            if only is not None and name not in only:
                return
            if callable(requests):
                requests = requests()
            log(f"{name}: {connections} connection(s), {args.duration:g} s …")
            server = [procs[0].pid] if port == up_port else workers
            cpu_before = cpu_seconds(server)
            r = load(port, requests, connections, args.warmup, args.duration)
            r["cpu_us"] = (cpu_seconds(server) - cpu_before) / max(1, r["completed"]) * 1e6
            results[name] = r
            log(
                f"  {r['rps']:,.0f} req/s, p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, errors {r['errors']},"
                f" server CPU {r['cpu_us']:.0f} µs/call"
                + (" (ran out of prepared requests)" if r["exhausted"] else "")
                + (f" {r['statuses']} {r['failures']}" if r["errors"] else "")
            )

        many, one = args.connections, 1
        scenario("direct_100", up_port, direct, many)
        scenario("gateway_100", gw_port, lambda: signed_requests(world, proxied_paths, int(args.max_rps * span)), many)
        scenario("lookup_100", gw_port, lambda: signed_requests(world, lookup_paths, int(args.max_rps * span)), many)
        scenario("direct_1", up_port, direct, one)
        scenario("gateway_1", gw_port, lambda: signed_requests(world, proxied_paths, int(4000 * span)), one)
        scenario("lookup_1", gw_port, lambda: signed_requests(world, lookup_paths, int(4000 * span)), one)
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        try:
            import psycopg

            with psycopg.connect(args.pg_url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
                conn.execute(f'DROP SCHEMA IF EXISTS "{src_schema}" CASCADE')
        except Exception as exc:  # report, do not hide the figures
            log(f"cleanup failed: {exc!r}")

    def line(name: str, value: Any) -> None:
        print(f"{name}: {value}")

    line("duration_s", args.duration)
    line("connections", args.connections)
    line("gateway_workers", args.gateway_workers)
    line("gateway_counters", counters)
    r = results.get
    for name, label in (("direct_100", "direct"), ("gateway_100", "gateway"), ("lookup_100", "lookup")):
        if name in results:
            line(f"{label}_rps_100", f"{results[name]['rps']:.0f}")
            line(f"{label}_p50_ms_100", f"{results[name]['p50_ms']:.2f}")
            line(f"{label}_p99_ms_100", f"{results[name]['p99_ms']:.2f}")
            line(f"{label}_cpu_us_per_call_100", f"{results[name]['cpu_us']:.0f}")
    if (d100 := r("direct_100")) and (g100 := r("gateway_100")):
        line("gateway_direct_ratio", f"{g100['rps'] / d100['rps']:.3f}")
    for name, label in (("direct_1", "direct"), ("gateway_1", "gateway"), ("lookup_1", "lookup")):
        if name in results:
            line(f"{label}_p50_ms_1", f"{results[name]['p50_ms']:.3f}")
    if (d1 := r("direct_1")) and (g1 := r("gateway_1")):
        line("gateway_added_ms_1", f"{g1['p50_ms'] - d1['p50_ms']:.3f}")
        line("gateway_rps_1", f"{g1['rps']:.0f}")
    line("errors", sum(x["errors"] for x in results.values()))
    line("prepared_requests_ran_out", any(x["exhausted"] for x in results.values()))
    return 0


if __name__ == "__main__":
    if not os.environ.get("ZHENGSHU_SECRET_KEY"):
        os.environ["ZHENGSHU_SECRET_KEY"] = "bench-gateway-master-key-" + uuid.uuid4().hex
    sys.exit(main())
