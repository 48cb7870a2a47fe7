"""In-process profile of the workflow load's calls: SQL statements and server CPU per call kind.

    python bench/workflow_profile.py [--db postgresql|sqlite] [--rounds 40] [--cprofile 40]

Builds the province with the load bench's own fixture builder (``workflow_load.build_province``), then drives
the same API calls as its clients (applications: create, comply, request-supplement, supplement, decide,
accept, withdraw; objections: create, accept, answer, confirm, dispute, arbitrate) through the ASGI app
in-process (httpx ``ASGITransport``), one at a time. For each call kind it counts the SQL statements the engine
ran (``before_cursor_execute``) and the CPU time of the process (``time.process_time``; sync routes run in
the thread pool as under Uvicorn, and the in-process client's own cost is included, a few per cent). One
round of warm-up is not counted. Sequential and single-process, so the figures hardly depend on the machine's
load; they say where the server's CPU goes, not how fast it is under concurrency (that is
``workflow_load.py``).

``--cprofile N`` runs the measured rounds again with every thread-pool call made inline (so one profiler
sees the whole request) and prints the N costliest functions by own time and by cumulative time on stderr.

Prints one ``name: value`` line per figure on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

from zhengshu.audit import sealing

sys.path.insert(0, str(Path(__file__).resolve().parent))

from workflow_load import (
    API,
    PASSWORD,
    Province,
    _proc_stat,
    _shanghai_today,
    application_body,
    build_province,
    calibration_ms,
    prepare_schema,
)

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


class Meter:
    """Statements and CPU seconds per call kind."""

    def __init__(self) -> None:
        self.statements = 0
        self.on = False
        self.calls: dict[str, int] = defaultdict(int)
        self.stmts: dict[str, int] = defaultdict(int)
        self.cpu: dict[str, float] = defaultdict(float)
        self.trace_kind: str | None = None  # print the statements of the first measured call of this kind
        self.traced: list[str] = []
        self.pg_cpu: dict[str, float] = defaultdict(float)
        self.backends: set[int] = set()  # PostgreSQL backend pids of the app's connections

    def connected(self, dbapi_connection: Any, _record: Any) -> None:
        if hasattr(dbapi_connection, "info") and hasattr(dbapi_connection.info, "backend_pid"):
            self.backends.add(dbapi_connection.info.backend_pid)

    def backends_cpu(self) -> float:
        """CPU seconds so far of the app's PostgreSQL backends (clock ticks: exact over many calls, not one)."""
        total = 0.0
        for pid in self.backends:
            if (st := _proc_stat(pid)) is not None:
                total += st[2]
        return total

    def count(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        self.statements += 1
        self.traced.append(statement)


class Driver:
    def __init__(self, client: Any, province: Province, tokens: dict[str, str], meter: Meter) -> None:
        self.client = client
        self.p = province
        self.tokens = tokens
        self.meter = meter
        self.n = 0

    async def call(self, kind: str, method: str, path: str, user: str, expect: int = 200, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        self.meter.traced.clear()
        pg0 = self.meter.backends_cpu()
        s0, c0 = self.meter.statements, time.process_time()
        r = await self.client.request(method, API + path, headers=headers, **kw)
        # each call is charged its own audit seal (the sealer thread's pass after the commit), not the next's
        sealing.wait_idle(10)
        c1, s1 = time.process_time(), self.meter.statements
        pg1 = self.meter.backends_cpu()
        if r.status_code != expect:
            raise RuntimeError(f"{kind}: {r.status_code} {r.text[:300]}")
        if self.meter.on:
            self.meter.calls[kind] += 1
            self.meter.stmts[kind] += s1 - s0
            self.meter.cpu[kind] += c1 - c0
            self.meter.pg_cpu[kind] += pg1 - pg0
            if kind == self.meter.trace_kind:
                self.meter.trace_kind = None
                print(f"--- the statements of one {kind}:", file=sys.stderr)
                for statement in self.meter.traced:
                    print("  " + " ".join(statement.split())[:240], file=sys.stderr)
        return r.json()

    async def application(self, i: int) -> None:
        p, e = self.p, self.p.entries[i % len(self.p.entries)]
        consumer = p.consumers[i % len(p.consumers)]
        provider = p.providers[e.provider]
        today = _shanghai_today()
        self.n += 1
        keys = [e.unconditional[0], *e.conditional[:2]]
        body = application_body(e.id, keys, f"画像业务系统-{uuid.uuid4().hex[:8]}", today)
        js = await self.call("application.create", "POST", "/applications", consumer, 201, json=body)
        path = f"/applications/{js['id']}"
        if i % 10 == 9:
            await self.call("application.withdraw", "POST", f"{path}/withdraw", consumer, json={"comment": "撤回"})
            return
        await self.call("application.comply", "POST", f"{path}/comply", p.reviewer, json={"comment": "合规"})
        if i % 4 == 1:
            reason = {"reason": "请补充业务系统等级保护备案证明"}
            await self.call(
                "application.request-supplement", "POST", f"{path}/request-supplement", provider, json=reason
            )
            await self.call(
                "application.supplement", "POST", f"{path}/supplement", consumer, json={"material": "已补充"}
            )
        items = [{"item_key": k, "decision": "approve"} for k in e.conditional[:2]]
        if i % 3 == 0:
            items[-1] = {"item_key": e.conditional[1], "decision": "refuse", "reason": "与申请用途无关"}
        decision = {"items": items, "comment": "按申请用途审核"}
        js = await self.call("application.decide", "POST", f"{path}/decide", provider, json=decision)
        if js["state"] == "decided":
            await self.call("application.accept", "POST", f"{path}/accept", consumer, json={"comment": "接受答复"})

    async def objection(self, i: int) -> None:
        p, e = self.p, self.p.entries[i % len(self.p.entries)]
        consumer = p.consumers[i % len(p.consumers)]
        provider = p.providers[e.provider]
        form = {
            "entry_id": e.id,
            "kind": "wrong",
            "description": "登记地址与实际经营地址不符",
            "resource_id": e.resource_id,
            "record_key": "91360100MA00000HOT" if i % 5 == 0 else f"91360100MA{uuid.uuid4().hex[:8]}",
            "claimed_value": "南昌市红谷滩区丰和中大道1号",
        }
        js = await self.call("objection.create", "POST", "/objections", consumer, 201, data=form)
        path = f"/objections/{js['id']}"
        await self.call("objection.accept", "POST", f"{path}/accept", provider, json={"comment": "受理"})
        if i % 3 == 0:
            answer = {"resolution": "not_error", "note": "经核实与登记档案一致"}
        else:
            answer = {"resolution": "corrected", "corrected_value": "南昌市红谷滩区丰和中大道1号", "note": "已更正"}
        await self.call("objection.answer", "POST", f"{path}/answer", provider, json=answer)
        if i % 5 == 2:
            await self.call("objection.dispute", "POST", f"{path}/dispute", consumer, json={"reason": "与现场不一致"})
            ruling = {"decision": "dismiss", "reason": "以登记档案为准"}
            await self.call("objection.arbitrate", "POST", f"{path}/arbitrate", p.reviewer, json=ruling)
        else:
            await self.call("objection.confirm", "POST", f"{path}/confirm", consumer, json={"comment": "确认"})

    async def floor(self, i: int) -> None:
        """The reference: what the stack costs around almost no work of its own. An authenticated read of one
        row (token, actor, route, session, response) and an audited write of nothing (the same plus the
        request's transaction, audit record and commit)."""
        user = self.p.consumers[i % len(self.p.consumers)]
        await self.call("floor.read", "GET", "/auth/me", user)
        await self.call("floor.write", "POST", "/notifications/read-all", user)

    async def round(self, i: int) -> None:
        await self.application(i)
        await self.objection(i)
        await self.floor(i)


def _inline_threadpool() -> None:
    """Run every thread-pool hop inline, so cProfile (per thread) sees the route and its dependencies."""
    import anyio.to_thread

    async def run_sync(func: Any, *args: Any, **_: Any) -> Any:
        return func(*args)

    anyio.to_thread.run_sync = run_sync  # type: ignore[assignment]


async def drive(app: Any, province: Province, meter: Meter, rounds: int, profile_top: int) -> None:
    import httpx

    transport = httpx.ASGITransport(app=app)
    lifespan = app.router.lifespan_context(app)  # the holiday schedule loaded as under Uvicorn
    async with lifespan, httpx.AsyncClient(transport=transport, base_url="http://bench.local") as client:
        tokens = {}
        for user in [province.reviewer, *province.providers, *province.consumers]:
            r = await client.post(f"{API}/auth/token", json={"username": user, "password": PASSWORD})
            r.raise_for_status()
            tokens[user] = r.json()["token"]
        driver = Driver(client, province, tokens, meter)
        for i in range(2):  # warm-up: imports, caches, the first statements compiled
            await driver.round(i)
        meter.on = True
        for i in range(2, 2 + rounds):
            await driver.round(i)
        meter.on = False
        if profile_top:
            _inline_threadpool()
            profiler = cProfile.Profile(time.process_time)  # CPU, not waits on the database
            profiler.enable()
            for i in range(2 + rounds, 2 + 2 * rounds):
                await driver.round(i)
            profiler.disable()
            for key in ("tottime", "cumulative"):
                out = io.StringIO()
                pstats.Stats(profiler, stream=out).sort_stats(key).print_stats(profile_top)
                if os.environ.get("PROFILE_DUMP"):
                    profiler.dump_stats(os.environ["PROFILE_DUMP"])
                print(out.getvalue(), file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--pg-url", default=os.environ.get("ZHENGSHU_BENCH_PG_URL", PG_URL))
    parser.add_argument("--rounds", type=int, default=40, help="applications and objections measured (each)")
    parser.add_argument("--cprofile", type=int, default=0, metavar="N", help="print the N costliest functions")
    parser.add_argument("--sql", metavar="KIND", help="print the statements of one call, e.g. objection.accept")
    args = parser.parse_args()

    from sqlalchemy import create_engine, event, text

    from zhengshu.bootstrap import load_features
    from zhengshu.core.config import Settings
    from zhengshu.core.db import Database
    from zhengshu.web.app import create_app

    load_features()
    calibration = calibration_ms()
    meter = Meter()
    meter.trace_kind = args.sql
    schema = f"bench_prof_{uuid.uuid4().hex[:8]}"
    admin = None
    with tempfile.TemporaryDirectory(prefix="zhengshu-prof-") as tmp_name:
        tmp = Path(tmp_name)
        if args.db == "postgresql":
            admin = create_engine(args.pg_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            sep = "&" if "?" in args.pg_url else "?"
            database = Database(f"{args.pg_url}{sep}options=-csearch_path%3D{schema}")
        else:
            database = Database(f"sqlite:///{tmp / 'zhengshu.db'}")
        try:
            prepare_schema(database)
            province = build_province(database, providers=2, consumers=4, entries=4)
            settings = Settings(
                data_dir=tmp,
                secret_key="bench-workflow-profile-secret-key-0123456789",
                embedded_jobs=False,
            )
            app = create_app(settings, database)
            event.listen(database.engine, "before_cursor_execute", meter.count)
            event.listen(database.engine, "connect", meter.connected)
            asyncio.run(drive(app, province, meter, args.rounds, args.cprofile))
        finally:
            sealing.wait_idle(30)  # the after-commit sealer may still be at work: not on a dropped schema
            database.dispose()
            if admin is not None:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
                admin.dispose()

    print(f"db: {args.db}")
    total_calls = total_stmts = 0
    total_cpu = total_pg = 0.0
    for kind in sorted(meter.calls):
        n = meter.calls[kind]
        print(f"{kind}.calls: {n}")
        print(f"{kind}.statements_per_call: {meter.stmts[kind] / n:.2f}")
        print(f"{kind}.cpu_ms_per_call: {meter.cpu[kind] / n * 1000:.2f}")
        if args.db == "postgresql":
            print(f"{kind}.postgres_cpu_ms_per_call: {meter.pg_cpu[kind] / n * 1000:.2f}")
        if kind.startswith("floor."):
            continue  # the reference, not a change of the workload
        total_calls += n
        total_stmts += meter.stmts[kind]
        total_cpu += meter.cpu[kind]
        total_pg += meter.pg_cpu[kind]
    print(f"changes: {total_calls}")
    print(f"statements_per_change: {total_stmts / total_calls:.2f}")
    cpu_per_change = total_cpu / total_calls * 1000
    print(f"cpu_ms_per_change: {cpu_per_change:.2f}")
    if args.db == "postgresql":
        print(f"postgres_cpu_ms_per_change: {total_pg / total_calls * 1000:.2f}")
    floor_write = meter.cpu["floor.write"] / meter.calls["floor.write"] * 1000
    print(f"ratio_change_to_floor_write: {cpu_per_change / floor_write:.2f}")
    calibration = (calibration + calibration_ms()) / 2
    print(f"calibration_ms: {calibration:.3f}")
    print(f"cpu_per_change_calibrated: {cpu_per_change / calibration:.2f}")


if __name__ == "__main__":
    main()
