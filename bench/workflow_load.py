"""Workflow load benchmark: concurrent clients create and decide applications and objections over HTTP.

    python bench/workflow_load.py [--clients 200] [--seconds 60] [--workers 2] [--pg-url URL]

Runs the real ASGI app under Uvicorn on PostgreSQL (a schema of its own, dropped at the end), drives it
with client threads in several processes, then checks in the database that no ticket was lost or moved
twice and that the audit chain verifies. Prints one ``name: value`` line per figure on stdout (details on
stderr). See bench/README.md.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import math
import multiprocessing
import os
import pickle
import random
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections import Counter, defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

err = Console(stderr=True)

PASSWORD = "Bench-Passw0rd!2026"
SERVER_APP_NAME = "zhengshu_bench_flow"
SECRET_KEY = "bench-workflow-load-secret-key-0123456789"
API = "/api/v1"

# API call -> the ticket transitions it may write (a decision is one of these calls answered 2xx)
APPLICATION_OPS = {
    "comply": {"comply"},
    "decide": {"approve_all", "decide"},
    "request-supplement": {"request_supplement"},
    "supplement": {"supplement"},
    "accept": {"accept"},
    "withdraw": {"withdraw"},
}
OBJECTION_OPS = {
    "accept": {"accept"},
    "answer": {"answer"},
    "confirm": {"confirm"},
    "dispute": {"dispute"},
    "arbitrate": {"arbitrate"},
}
APPLICATION_FINAL = {"approved", "closed", "rejected", "withdrawn", "expired"}
OBJECTION_FINAL = {"archived", "withdrawn"}


def application_body(entry_id: str, item_keys: list[str], business_system: str, today: date) -> dict[str, Any]:
    """What a client posts to apply for ``item_keys`` of an entry (the load bench and the profile alike)."""
    return {
        "entry_id": entry_id,
        "item_keys": item_keys,
        "purpose": "用于社会保险参保登记时核验企业身份",
        "basis": "《社会保险法》第五十七条",
        "business_system": business_system,
        "start_on": (today + timedelta(days=1)).isoformat(),
        "end_on": (today + timedelta(days=366)).isoformat(),
        "delivery_way": "接口",
        "contact_name": "张三",
        "contact_phone": "0791-86000000",
    }


# ------------------------------------------------------------------------------------ the province


@dataclass
class EntryFixture:
    id: str
    resource_id: str
    provider: int  # index into the provider officers
    unconditional: list[str]  # item keys
    conditional: list[str]


@dataclass
class Province:
    entries: list[EntryFixture]
    reviewer: str  # usernames
    providers: list[str]
    consumers: list[str]


ENTRY_ITEMS: list[dict[str, Any]] = [
    {
        "name": "统一社会信用代码",
        "column_name": "tyshxydm",
        "data_type": "C",
        "length": 18,
        "sharing_type": "无条件共享",
    },
    {"name": "企业名称", "column_name": "qymc", "data_type": "C", "length": 200, "sharing_type": "无条件共享"},
    {"name": "法定代表人", "column_name": "fddbr", "data_type": "C", "length": 50, "sensitivity": "一般3"},
    {"name": "注册资本", "column_name": "zczb", "data_type": "N", "length": 20},
    {"name": "联系电话", "column_name": "lxdh", "data_type": "C", "length": 20, "sensitivity": "一般3"},
]
SUBJECTS = ["企业登记", "食品经营许可", "特种设备", "产品质量抽检", "股权出质", "企业年报", "商标注册", "个体工商户"]


def build_province(database: Any, *, providers: int, consumers: int, entries: int) -> Province:
    """Orgs, users, published entries with conditionally shared items and a mounted API, through the
    services (as the platform would do it), in one transaction."""
    from zhengshu.catalog import mounting
    from zhengshu.catalog import service as catalog_service
    from zhengshu.catalog.schemas import EntryIn
    from zhengshu.demo.identities import uscc
    from zhengshu.org import service as org_service
    from zhengshu.org.schemas import OrganizationIn, RegionIn, UserIn
    from zhengshu.security.actor import SYSTEM_ACTOR, Role

    rng = random.Random(3)
    with database.session() as s:
        org_service.upsert_region(
            s, actor=SYSTEM_ACTOR, region_in=RegionIn(code="360000", name="江西省", level="province", parent_code=None)
        )

        def org(name: str, short: str, number: int, authority: bool = False) -> str:
            o = org_service.create_organization(
                s,
                actor=SYSTEM_ACTOR,
                org_in=OrganizationIn(
                    name=name,
                    short_name=short,
                    uscc=uscc(rng, region_code="360000", authority="1", org_type="1"),
                    region_code="360000",
                    is_data_authority=authority,
                    dept_number=f"{number:02d}",
                ),
            )
            return o.id

        def user(username: str, display: str, org_id: str, role: Role) -> Any:
            u = org_service.create_user(
                s,
                actor=SYSTEM_ACTOR,
                user_in=UserIn(username=username, display_name=display, password=PASSWORD, org_id=org_id, roles=[role]),
            )
            return org_service.actor_for(u)

        authority = org("江西省数据局", "省数据局", 1, authority=True)
        reviewer = user("bench_reviewer", "数据局审核员", authority, Role.REVIEWER)
        provider_actors = []
        for p in range(providers):
            oid = org(f"江西省压测提供部门{p + 1:02d}", f"提供部门{p + 1:02d}", 10 + p)
            provider_actors.append(user(f"bench_provider{p:02d}", f"提供部门{p + 1:02d}数据专员", oid, Role.OFFICER))
        consumer_names = []
        for c in range(consumers):
            oid = org(f"江西省压测使用部门{c + 1:02d}", f"使用部门{c + 1:02d}", 40 + c)
            consumer_names.append(
                user(f"bench_consumer{c:02d}", f"使用部门{c + 1:02d}数据专员", oid, Role.OFFICER).username
            )

        fixtures = []
        for e in range(entries):
            p = e % providers
            officer = provider_actors[p]
            entry_in = EntryIn.model_validate(
                {
                    "name": f"{SUBJECTS[e % len(SUBJECTS)]}信息（压测{e + 1:03d}）",
                    "class_code": "102001",
                    "summary": "全省市场主体登记注册信息，包括企业名称、统一社会信用代码、法定代表人等",
                    "resource_format": "数据库",
                    "sharing_type": "有条件共享",
                    "sharing_condition": "用于市场监管、社会保障等法定职责",
                    "sharing_way": "接口",
                    "opening_type": "不予开放",
                    "update_cycle": "每日",
                    "tags": ["企业", "登记"],
                    "items": ENTRY_ITEMS,
                }
            )
            entry = catalog_service.create(s, actor=officer, entry_in=entry_in)
            catalog_service.submit(s, actor=officer, entry_id=entry.id)
            catalog_service.approve(s, actor=reviewer, entry_id=entry.id)
            resource = mounting.mount_api(
                s,
                actor=officer,
                entry_id=entry.id,
                mount_in=mounting.ApiMountIn.model_validate({"endpoint": f"https://api.example.gov.cn/qy/{e}"}),
            )
            version = catalog_service.display_version(s, entry)
            by_sharing: dict[bool, list[str]] = defaultdict(list)
            for item in version.items:
                by_sharing[item.sharing_type == "无条件共享"].append(item.key)
            fixtures.append(EntryFixture(entry.id, resource.id, p, by_sharing[True], by_sharing[False]))
        return Province(
            entries=fixtures,
            reviewer=reviewer.username,
            providers=[a.username for a in provider_actors],
            consumers=consumer_names,
        )


def prepare_schema(database: Any) -> list[str]:
    """Migrate to head; returns the model tables the migrations lack (there should be none)."""
    from sqlalchemy import inspect

    from zhengshu.core.db import Base
    from zhengshu.core.migrate import upgrade

    upgrade(database)
    existing = set(inspect(database.engine).get_table_names())
    return [t.name for t in Base.metadata.sorted_tables if t.name not in existing]


# ------------------------------------------------------------------------------------ the server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_app() -> Any:
    """The Uvicorn factory: ``create_app(settings, Database(url))`` as ``zhengshu.web.asgi`` builds it, with the
    bench's optional tuning (pool size) when asked for; none by default. The admission limit is the server's own
    setting (``--inflight`` passes ``ZHENGSHU_MAX_INFLIGHT_REQUESTS``)."""
    from zhengshu.bootstrap import load_features
    from zhengshu.core.config import get_settings
    from zhengshu.core.db import Database
    from zhengshu.web.app import create_app

    load_features()
    if os.environ.get("BENCH_SKIP_AUDIT") == "1":  # diagnosis only: what the audit chain costs
        from zhengshu.audit import service as audit_service

        audit_service.record = lambda *a, **kw: None  # type: ignore[assignment]
    settings = get_settings()
    pool = int(os.environ.get("BENCH_POOL_SIZE") or 0)
    engine_kwargs = {"pool_size": pool, "max_overflow": 0} if pool else {}
    app = create_app(settings, Database(settings.resolved_database_url(), **engine_kwargs))
    return app


def start_server(
    *, db_url: str, port: int, workers: int, data_dir: Path, pool: int, inflight: int, skip_audit: bool, outbox: str
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "ZHENGSHU_DATABASE_URL": f"{db_url}&application_name={SERVER_APP_NAME}",
        "ZHENGSHU_SECRET_KEY": SECRET_KEY,
        "ZHENGSHU_EMBEDDED_JOBS": "false",
        "ZHENGSHU_DATA_DIR": str(data_dir),
        "BENCH_POOL_SIZE": str(pool),
        **({"ZHENGSHU_MAX_INFLIGHT_REQUESTS": str(inflight)} if inflight else {}),
        "BENCH_SKIP_AUDIT": "1" if skip_audit else "",
    }
    if outbox != "default":
        env["ZHENGSHU_PROCESS_OUTBOX_INLINE"] = "true" if outbox == "inline" else "false"
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "workflow_load:server_app",
        "--factory",
        "--app-dir",
        str(Path(__file__).resolve().parent),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    # its own directory, so no stray .env is read; its own process group, so it stops as one
    return subprocess.Popen(cmd, env=env, cwd=data_dir, start_new_session=True)


def wait_ready(base: str, server: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    import requests

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {server.returncode}")
        try:
            if requests.get(f"{base}{API}/openapi.json", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise RuntimeError("uvicorn did not answer in time")


def stop_server(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is not None:
        return
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def issue_tokens(base: str, usernames: list[str]) -> dict[str, str]:
    import requests

    tokens = {}
    for username in usernames:
        r = requests.post(f"{base}{API}/auth/token", json={"username": username, "password": PASSWORD}, timeout=30)
        r.raise_for_status()
        tokens[username] = r.json()["token"]
    return tokens


# ------------------------------------------------------------------------------------ CPU accounting

TICK = os.sysconf("SC_CLK_TCK")


def _proc_stat(pid: int) -> tuple[str, int, float] | None:
    """(comm, ppid, cpu seconds) of a live process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    return comm, int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK


def cpu_snapshot(server_pid: int) -> dict[str, dict[int, float]]:
    """CPU seconds so far of the server's processes and of PostgreSQL's, by pid."""
    procs = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (st := _proc_stat(int(name))) is not None:
            procs[int(name)] = st
    server = {server_pid}
    for pid, (_, ppid, _) in procs.items():
        if ppid in server:
            server.add(pid)
    return {
        "server": {pid: procs[pid][2] for pid in server if pid in procs},
        "postgres": {pid: cpu for pid, (comm, _, cpu) in procs.items() if comm.startswith("postgres")},
    }


def calibration_ms(calls: int = 1500) -> float:
    """CPU milliseconds of one call to a FastAPI hello-world route, in-process through httpx: how fast this
    shared machine runs Python right now. Its speed drifts by a third or more within an hour, so figures of
    runs made at different times are compared divided by this (``*_per_change_calibrated``)."""
    import asyncio

    import httpx
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/hello")
    def hello() -> dict[str, int]:
        return {"ok": 1}

    async def run() -> float:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://calibration.local") as client:
            for _ in range(100):
                await client.get("/hello")
            t0 = time.process_time()
            for _ in range(calls):
                await client.get("/hello")
            return (time.process_time() - t0) / calls * 1000

    return asyncio.run(run())


def total_cpu() -> float:
    with open("/proc/stat") as f:
        parts = f.readline().split()[1:]
    idle = int(parts[3]) + int(parts[4])
    return (sum(int(p) for p in parts[:8]) - idle) / TICK


class PgActivity:
    """Samples what the server's PostgreSQL sessions are doing (5 times a second) during the measured window:
    on CPU, waiting for a lock (and on which statement), waiting for the WAL flush, or idle in a transaction
    (waiting for Python)."""

    def __init__(self, engine: Any, window: tuple[float, float]) -> None:
        self.engine = engine
        self.window = window
        self.samples = 0
        self.tally: Counter[str] = Counter()
        self.pids: set[int] = set()  # the backends of the server's connections
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from sqlalchemy import text

        query = text(
            "SELECT pid, state, wait_event_type, wait_event, left(regexp_replace(query, '\\s+', ' ', 'g'), 60) "
            "FROM pg_stat_activity WHERE application_name = :name"
        )
        time.sleep(max(0.0, self.window[0] - time.monotonic()))
        with self.engine.connect() as conn:
            while time.monotonic() < self.window[1]:
                for pid, state, wtype, wevent, q in conn.execute(query, {"name": SERVER_APP_NAME}):
                    self.pids.add(pid)
                    if state == "active" and wtype is None:
                        key = "active, on CPU"
                    elif state == "active" and wtype == "Lock":
                        key = f"active, waiting Lock:{wevent} — {q}"
                    elif state == "active":
                        key = f"active, waiting {wtype}:{wevent}"
                    else:
                        key = f"{state}" + (f" ({wtype}:{wevent})" if wtype and wtype != "Client" else "")
                    self.tally[key] += 1
                self.samples += 1
                conn.rollback()
                time.sleep(0.2)

    def report(self) -> None:
        if not self.samples:
            return
        err.print(
            f"[bold]server's PostgreSQL sessions[/] (mean count over {self.samples} samples of pg_stat_activity):"
        )
        for key, n in self.tally.most_common(12):
            err.print(f"  {n / self.samples:6.2f}  {key}")


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    # processes started during the run count from zero; those that ended are lost (pooled backends stay)
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


# ------------------------------------------------------------------------------------ the clients


class KeepAlive:
    """One keep-alive HTTP/1.1 connection (``http.client``). The clients share the server's 2 cores: requests'
    Session cost ~2 ms of client CPU per call, which at the goal's rate would take a third of a core from the
    server being measured; this costs a fraction of that."""

    def __init__(self, base: str, timeout: float) -> None:
        parsed = urllib.parse.urlsplit(base)
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def _connection(self) -> http.client.HTTPConnection:
        """The open connection, or a new one when the server has closed it (Uvicorn closes keep-alive
        connections idle for 5 s; a readable idle socket means it did)."""
        if self.conn is not None and self.conn.sock is not None:
            readable, _, _ = select.select([self.conn.sock], [], [], 0)
            if readable:
                self.close()
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self.conn

    def request(
        self, method: str, path: str, token: str, *, json_body: Any = None, form: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"}
        payload: bytes | None = None
        if json_body is not None:
            payload = json.dumps(json_body, ensure_ascii=False).encode()
            headers["Content-Type"] = "application/json"
        elif form is not None:
            payload = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn = self._connection()
        try:
            conn.request(method, path, body=payload, headers=headers)
        except (BrokenPipeError, ConnectionResetError):
            # closed by the server between the check and the send: it never read the request, so send it again
            self.close()
            conn = self._connection()
            conn.request(method, path, body=payload, headers=headers)
        response = conn.getresponse()
        raw = response.read()
        if response.will_close:
            self.close()
        body = json.loads(raw) if raw and (response.getheader("content-type") or "").endswith("json") else None
        return response.status, body


@dataclass
class ClientPlan:
    index: int
    base: str
    consumer: str  # tokens
    provider: str
    reviewer: str
    entry_id: str
    resource_id: str
    unconditional: list[str]
    conditional: list[str]
    hot_key: str
    seed: int
    start_at: float  # time.monotonic() (system-wide on Linux, so every process agrees)
    stop_at: float
    objection_share: float
    race_rate: float
    hot_rate: float
    timeout: float


@dataclass
class ClientResult:
    # (op, category, status, t0, t1); category: create | decision | read
    calls: list[tuple[str, str, int, float, float]] = field(default_factory=list)
    created: list[tuple[str, str]] = field(default_factory=list)  # (kind, subject id)
    successes: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, subject id, op)
    double_successes: list[tuple[str, str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    unfinished: int = 0


class Client:
    """One department worker: applies and objects as the consumer, and plays the reviewer and the provider
    for its own tickets, so clients mostly work on their own tickets. Racing (expected 409) comes from
    sending a step twice at once now and then, and from objections on a record other clients also object
    to (they form one group that the provider handles together)."""

    def __init__(self, plan: ClientPlan, twins: ThreadPoolExecutor, local: threading.local) -> None:
        self.plan = plan
        self.rng = random.Random(plan.seed)
        self.http = KeepAlive(plan.base, plan.timeout)
        self.twins = twins
        self.local = local
        self.result = ClientResult()
        self.n = 0

    def _twin_session(self) -> KeepAlive:
        if not hasattr(self.local, "http"):
            self.local.http = KeepAlive(self.plan.base, self.plan.timeout)
        http: KeepAlive = self.local.http
        return http

    def _send(
        self, http: KeepAlive, method: str, path: str, token: str, *, json: Any = None, data: Any = None
    ) -> tuple[int, Any, float, float]:
        t0 = time.monotonic()
        try:
            status, body = http.request(method, API + path, token, json_body=json, form=data)
        except Exception as exc:  # a timeout or a dropped connection: recorded as status 0
            http.close()
            status, body = 0, {"code": type(exc).__name__, "detail": str(exc)[:200]}
        return status, body, t0, time.monotonic()

    def call(self, op: str, category: str, method: str, path: str, token: str, **kw: Any) -> tuple[int, Any]:
        status, body, t0, t1 = self._send(self.http, method, path, token, **kw)
        self._record(op, category, status, body, t0, t1)
        return status, body

    def _record(self, op: str, category: str, status: int, body: Any, t0: float, t1: float) -> None:
        self.result.calls.append((op, category, status, t0, t1))
        if status != 409 and not 200 <= status < 300 and len(self.result.errors) < 20:
            code = body.get("code") if isinstance(body, dict) else None
            detail = body.get("detail") if isinstance(body, dict) else None
            self.result.errors.append(f"{op} → {status} {code}: {str(detail)[:160]}")

    def act(self, kind: str, subject: str, op: str, token: str, body: Any) -> tuple[int, Any]:
        """A state-changing step; sometimes sent twice at once (only one may win)."""
        path = f"/{'applications' if kind == 'application' else 'objections'}/{subject}/{op}"
        name = f"{kind}.{op}"
        twin: Future[tuple[int, Any, float, float]] | None = None
        if self.rng.random() < self.plan.race_rate:
            twin = self.twins.submit(lambda: self._send(self._twin_session(), "POST", path, token, json=body))
        answers = [self.call(name, "decision", "POST", path, token, json=body)]
        if twin is not None:
            t_status, t_js, t0, t1 = twin.result()
            self._record(name, "decision", t_status, t_js, t0, t1)
            answers.append((t_status, t_js))
        won = [a for a in answers if 200 <= a[0] < 300]
        for _ in won:
            self.result.successes.append((kind, subject, op))
        if len(won) > 1:
            self.result.double_successes.append((kind, subject, op))
        return won[0] if won else answers[0]

    def time_left(self) -> bool:
        return time.monotonic() < self.plan.stop_at

    def run(self) -> ClientResult:
        delay = self.plan.start_at - time.monotonic() + self.rng.random() * 0.5
        if delay > 0:
            time.sleep(delay)
        while self.time_left():
            self.n += 1
            done = self.objection() if self.rng.random() < self.plan.objection_share else self.application()
            if not done:
                self.result.unfinished += 1
        return self.result

    # ---- an application ----------------------------------------------------------------------------------

    def application(self) -> bool:
        p, rng = self.plan, self.rng
        today = _shanghai_today()
        all_unconditional = rng.random() < 0.1
        keys = p.unconditional if all_unconditional else [p.unconditional[0], *p.conditional[:2]]
        body = application_body(p.entry_id, keys, f"压测业务系统{p.index:03d}-{self.n}", today)
        status, js = self.call("application.create", "create", "POST", "/applications", p.consumer, json=body)
        if status != 201:
            return False
        app_id = js["id"]
        self.result.created.append(("application", app_id))
        state = js["state"]
        withdraw = rng.random() < 0.05
        ask_supplement = rng.random() < 0.1
        partial = rng.random() < 0.3
        for _ in range(10):
            if state in APPLICATION_FINAL:
                return True
            if not self.time_left():
                return False
            if state == "compliance" and withdraw:
                op, token, payload = "withdraw", p.consumer, {"comment": "业务调整，撤回申请"}
            elif state == "compliance":
                op, token, payload = "comply", p.reviewer, {"comment": "依据充分，合规"}
            elif state == "provider_review" and ask_supplement:
                ask_supplement = False
                op, token, payload = "request-supplement", p.provider, {"reason": "请补充业务系统等级保护备案证明"}
            elif state == "provider_review":
                items = [{"item_key": k, "decision": "approve"} for k in p.conditional[:2]]
                if partial:
                    items[-1] = {"item_key": p.conditional[1], "decision": "refuse", "reason": "与申请用途无关"}
                op, token, payload = "decide", p.provider, {"items": items, "comment": "按申请用途审核"}
            elif state == "supplement":
                op, token, payload = "supplement", p.consumer, {"material": "已上传等级保护备案证明（第三级）"}
            elif state == "decided":
                op, token, payload = "accept", p.consumer, {"comment": "接受答复"}
            else:
                return False
            status, js = self.act("application", app_id, op, token, payload)
            if 200 <= status < 300:
                state = js["state"]
            elif status == 409:
                status, js = self.call("application.get", "read", "GET", f"/applications/{app_id}", p.consumer)
                if status != 200:
                    return False
                state = js["state"]
            else:
                return False
        return state in APPLICATION_FINAL

    # ---- an objection ------------------------------------------------------------------------------------

    def objection(self) -> bool:
        p, rng = self.plan, self.rng
        hot = rng.random() < p.hot_rate
        form = {
            "entry_id": p.entry_id,
            "kind": "wrong",
            "description": "登记地址与实际经营地址不符",
            "resource_id": p.resource_id,
            "record_key": p.hot_key if hot else f"91360100MA{p.index:03d}{self.n:05d}",
            "claimed_value": "南昌市红谷滩区丰和中大道1号",
        }
        status, js = self.call("objection.create", "create", "POST", "/objections", p.consumer, data=form)
        if status != 201:
            return False
        obj_id = js["id"]
        self.result.created.append(("objection", obj_id))
        state = js["state"]
        corrected = rng.random() < 0.6
        dispute = rng.random() < 0.1
        for _ in range(12):
            if state in OBJECTION_FINAL:
                return True
            if not self.time_left():
                return False
            if state == "raised":
                op, token, payload = "accept", p.provider, {"comment": "受理"}
            elif state == "verifying" and corrected:
                op, token, payload = (
                    "answer",
                    p.provider,
                    {"resolution": "corrected", "corrected_value": "南昌市红谷滩区丰和中大道1号", "note": "已核实更正"},
                )
            elif state == "verifying":
                op, token, payload = "answer", p.provider, {"resolution": "not_error", "note": "经核实与登记档案一致"}
            elif state == "answered" and dispute:
                op, token, payload = "dispute", p.consumer, {"reason": "与现场核查结果不一致"}
            elif state == "answered":
                op, token, payload = "confirm", p.consumer, {"comment": "确认"}
            elif state == "arbitrating":
                op, token, payload = "arbitrate", p.reviewer, {"decision": "dismiss", "reason": "以登记档案为准"}
            else:
                return False
            status, js = self.act("objection", obj_id, op, token, payload)
            if 200 <= status < 300:
                state = js["state"]
            elif status == 409:
                status, js = self.call("objection.get", "read", "GET", f"/objections/{obj_id}", p.consumer)
                if status != 200:
                    return False
                state = js["state"]
            else:
                return False
        return state in OBJECTION_FINAL


def _shanghai_today() -> Any:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return datetime.now(ZoneInfo("Asia/Shanghai")).date()


def run_client_process(plans: list[ClientPlan], out_path: str) -> None:
    """One load-generator process: a thread per client; results pickled to ``out_path``."""
    results: list[ClientResult] = []
    lock = threading.Lock()
    local = threading.local()
    cpu0 = time.process_time()
    wall0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=16, thread_name_prefix="twin") as twins:

        def work(plan: ClientPlan) -> None:
            try:
                res = Client(plan, twins, local).run()
            except Exception as exc:  # a bug in the client must show, not hang the run
                res = ClientResult(errors=[f"client {plan.index} crashed: {exc!r}"])
            with lock:
                results.append(res)

        threads = [threading.Thread(target=work, args=(p,), daemon=True) for p in plans]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    with open(out_path, "wb") as f:
        pickle.dump({"results": results, "cpu_s": time.process_time() - cpu0, "wall_s": time.monotonic() - wall0}, f)


# ------------------------------------------------------------------------------------ verification


def _valid_path(machine: Any, events: list[Any]) -> list[str]:
    """Problems of one ticket's history read in this order (empty = a valid path of its machine)."""
    problems: list[str] = []
    state: str | None = None
    previous: Any = None
    for ev in events:
        if ev.action == "open":
            if state is not None:
                problems.append("opened twice")
            elif ev.from_state is not None or ev.to_state not in machine.states:
                problems.append(f"opened into {ev.to_state!r}")
            state = ev.to_state
        elif ev.action in ("comment", "due_recomputed"):
            if not (ev.from_state == ev.to_state == state):
                problems.append(f"{ev.action} at {ev.from_state}→{ev.to_state} while in {state}")
        else:
            t = machine.transitions.get(ev.action)
            if t is None:
                problems.append(f"unknown transition {ev.action!r}")
            elif state is None:
                problems.append(f"{ev.action} before open")
            elif machine.states[state].final:
                problems.append(f"{ev.action} after final state {state}")
            elif ev.from_state != state:
                problems.append(f"{ev.action} from {ev.from_state} but ticket was in {state}")
            elif state not in t.sources or ev.to_state != t.target:
                problems.append(f"{ev.action} {ev.from_state}→{ev.to_state} not allowed")
            elif previous is not None and previous.action == ev.action and ev.from_state == ev.to_state:
                problems.append(f"{ev.action} repeated at {state}")
            state = ev.to_state
        previous = ev
    return problems


def history_problems(machine: Any, events: list[Any]) -> list[str]:
    """Events are ordered by time; events with the same timestamp may be in either order."""
    events = sorted(events, key=lambda e: e.at)
    problems = _valid_path(machine, events)
    if not problems:
        return []
    groups = [list(g) for _, g in itertools.groupby(events, key=lambda e: e.at)]
    if any(len(g) > 1 for g in groups) and all(len(g) <= 4 for g in groups):
        for order in itertools.product(*(itertools.permutations(g) for g in groups)):
            if not _valid_path(machine, [e for g in order for e in g]):
                return []
    return problems


@dataclass
class Verification:
    anomalies: list[str]
    tickets: int
    events: int
    audit_records: int
    audit_ok: bool
    records_per_seal_pass: float


def verify(database: Any, results: list[ClientResult], failed_creates: int, client_posts_ok: int) -> Verification:
    from sqlalchemy import func, select

    from zhengshu.audit import service as audit_service
    from zhengshu.audit.models import AuditChain, AuditRecord
    from zhengshu.demand.models import Authorization, DataApplication
    from zhengshu.objection.models import Objection
    from zhengshu.workflow.machine import get_machine
    from zhengshu.workflow.models import Ticket, TicketEvent

    anomalies: list[str] = []
    created = {
        kind: {sid for r in results for k, sid in r.created if k == kind} for kind in ("application", "objection")
    }
    with database.session() as s:
        subjects = {
            "application": {a.id: a for a in s.scalars(select(DataApplication))},
            "objection": {o.id: o for o in s.scalars(select(Objection))},
        }
        tickets = {t.id: t for t in s.scalars(select(Ticket))}
        events: dict[str, list[Any]] = defaultdict(list)
        n_events = 0
        for ev in s.execute(select(TicketEvent)).scalars():
            events[ev.ticket_id].append(ev)
            n_events += 1

        # lost: a client was told its ticket was created, but it (or its ticket) is not there
        for kind, ids in created.items():
            for sid in sorted(ids):
                subject = subjects[kind].get(sid)
                if subject is None:
                    anomalies.append(f"{kind} {sid}: created (2xx) but not in the database")
                elif subject.ticket_id not in tickets:
                    anomalies.append(f"{kind} {sid}: its ticket {subject.ticket_id} is missing")
        unknown = sum(len(set(subjects[k]) - created[k]) for k in created)
        if unknown > failed_creates:
            anomalies.append(f"{unknown} tickets no client was told about, only {failed_creates} creates failed")

        # every history a valid path; the ticket and its subject agree with the history's end
        for kind, by_id in subjects.items():
            for sid, subject in by_id.items():
                ticket = tickets.get(subject.ticket_id or "")
                if ticket is None:
                    continue
                machine = get_machine(ticket.kind)
                evs = events.get(ticket.id, [])
                for problem in history_problems(machine, evs):
                    anomalies.append(f"{kind} {sid}: {problem}")
                last = max(evs, key=lambda e: e.at).to_state if evs else None
                if ticket.state != last:
                    anomalies.append(f"{kind} {sid}: ticket in {ticket.state}, history ends in {last}")
                if subject.state != ticket.state:
                    anomalies.append(f"{kind} {sid}: {kind} in {subject.state}, ticket in {ticket.state}")
                if (ticket.closed_at is not None) != machine.states[ticket.state].final:
                    anomalies.append(f"{kind} {sid}: closed_at does not match state {ticket.state}")

        # every step a client saw succeed is in the history, as often as it was seen
        seen: Counter[tuple[str, str, str]] = Counter(x for r in results for x in r.successes)
        for (kind, sid, op), n in seen.items():
            subject = subjects[kind].get(sid)
            actions = (APPLICATION_OPS if kind == "application" else OBJECTION_OPS)[op]
            written = sum(1 for ev in events.get(subject.ticket_id if subject else "", []) if ev.action in actions)
            if written < n:
                anomalies.append(f"{kind} {sid}: {op} answered 2xx {n}× but written {written}×")
        for kind, sid, op in (x for r in results for x in r.double_successes):
            anomalies.append(f"{kind} {sid}: {op} sent twice at once and both answered 2xx")

        # an authorization is granted once per application and basis
        dup = s.execute(
            select(Authorization.application_id, Authorization.grant_basis, func.count())
            .group_by(Authorization.application_id, Authorization.grant_basis)
            .having(func.count() > 1)
        ).all()
        for app_id, basis, n in dup:
            anomalies.append(f"application {app_id}: {n} authorizations granted by {basis}")

        # the audit trail: the chain verifies and holds a record of every 2xx change a client saw. Records are
        # sealed into the chain after their commit (the server's sealer thread); seal what is left first.
        # A pass of the server's sealers writes one sealed_at: records per pass say how well they batch.
        sealed = s.execute(select(func.count(), func.count(AuditChain.sealed_at.distinct()))).one()
        per_pass = sealed[0] / sealed[1] if sealed[1] else 0.0
        audit_service.seal(database.engine, wait=True)
        report = audit_service.verify(s)
        if not report.ok:
            anomalies.append(f"audit chain broken at {report.first_bad_seq}: {report.reason}")
        audited = s.scalar(
            select(func.count())
            .select_from(AuditRecord)
            .where(AuditRecord.outcome == "success", AuditRecord.via == "api", AuditRecord.action != "auth.token")
        )
        if (audited or 0) < client_posts_ok:
            anomalies.append(f"{client_posts_ok} changes answered 2xx but only {audited} success audit records")
    return Verification(anomalies, len(tickets), n_events, report.checked, report.ok, per_pass)


# ------------------------------------------------------------------------------------ running


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))
    return ordered[k]


def make_plans(
    args: argparse.Namespace, province: Province, tokens: dict[str, str], base: str, start_at: float, stop_at: float
) -> list[ClientPlan]:
    consumers = len(province.consumers)
    plans = []
    for i in range(args.clients):
        # each client is one (consumer, entry) pair: a consumer may not have two pending applications for the
        # same items, so clients never block each other on that rule
        entry = province.entries[(i // consumers) % len(province.entries)]
        plans.append(
            ClientPlan(
                index=i,
                base=base,
                consumer=tokens[province.consumers[i % consumers]],
                provider=tokens[province.providers[entry.provider]],
                reviewer=tokens[province.reviewer],
                entry_id=entry.id,
                resource_id=entry.resource_id,
                unconditional=entry.unconditional,
                conditional=entry.conditional,
                hot_key=f"91360100HOT{province.entries.index(entry):05d}",
                seed=args.seed * 100_003 + i,
                start_at=start_at,
                stop_at=stop_at,
                objection_share=args.objection_share,
                race_rate=args.race_rate,
                hot_rate=args.hot_rate,
                timeout=args.timeout,
            )
        )
    return plans


def drive(plans: list[ClientPlan], procs: int, tmp: Path) -> tuple[list[ClientResult], float]:
    """Run the clients in ``procs`` processes; returns their results and the CPU seconds they used."""
    ctx = multiprocessing.get_context("spawn")
    chunks = [plans[k::procs] for k in range(procs)]
    workers = []
    for k, chunk in enumerate(chunks):
        out = tmp / f"clients-{k}.pickle"
        proc = ctx.Process(target=run_client_process, args=(chunk, str(out)), daemon=True)
        proc.start()
        workers.append((proc, out))
    start, stop = plans[0].start_at, plans[0].stop_at
    with Progress(
        TextColumn("load"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(), console=err
    ) as progress:
        task = progress.add_task("load", total=stop - start)
        while any(p.is_alive() for p, _ in workers):
            progress.update(task, completed=min(stop - start, max(0.0, time.monotonic() - start)))
            time.sleep(0.5)
    results: list[ClientResult] = []
    cpu = 0.0
    for proc, out in workers:
        if proc.exitcode != 0 or not out.exists():
            raise RuntimeError(f"a client process failed (exit code {proc.exitcode})")
        data = pickle.loads(out.read_bytes())
        results.extend(data["results"])
        cpu += data["cpu_s"]
    return results, cpu


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=200, help="concurrent clients")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured duration")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of load before measuring")
    parser.add_argument("--workers", type=int, default=2, help="Uvicorn worker processes")
    parser.add_argument("--client-procs", type=int, default=4, help="load-generator processes")
    parser.add_argument("--providers", type=int, default=4)
    parser.add_argument("--consumers", type=int, default=10)
    parser.add_argument("--objection-share", type=float, default=0.5, help="share of pipelines that are objections")
    parser.add_argument("--race-rate", type=float, default=0.05, help="share of steps sent twice at once")
    parser.add_argument("--hot-rate", type=float, default=0.05, help="share of objections on a shared record")
    parser.add_argument(
        "--inflight",
        type=int,
        default=0,
        help="tuning: the server's ZHENGSHU_MAX_INFLIGHT_REQUESTS, requests at work per worker (0: its default)",
    )
    parser.add_argument("--pool-size", type=int, default=0, help="tuning: connection pool per worker (0: default)")
    parser.add_argument(
        "--outbox",
        choices=["default", "inline", "worker"],
        default="default",
        help="deliver domain events right after each request (inline) or leave them to a worker",
    )
    parser.add_argument("--skip-audit", action="store_true", help="diagnosis only: the server writes no audit records")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds a client waits for an answer")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep-schema", action="store_true", help="do not drop the schema (to inspect it)")
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args(argv)

    from sqlalchemy import create_engine, text

    from zhengshu.bootstrap import load_features
    from zhengshu.core.db import Database

    load_features()
    err.print(f"load average before the run: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)")
    calibration_before = calibration_ms()
    schema = f"bench_flow_{uuid.uuid4().hex[:8]}"
    sep = "&" if "?" in args.pg_url else "?"
    db_url = f"{args.pg_url}{sep}options=-csearch_path%3D{schema}"
    admin = create_engine(args.pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    database = Database(db_url)
    server: subprocess.Popen[bytes] | None = None
    figures: dict[str, float | int | str] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="zhengshu-flow-") as tmp_name:
            tmp = Path(tmp_name)
            with err.status("migrating and building the province"):
                t0 = time.perf_counter()
                extra = prepare_schema(database)
                if extra:
                    raise SystemExit(f"tables missing from the migrations: {', '.join(extra)}")
                n_entries = math.ceil(args.clients / args.consumers)
                province = build_province(
                    database, providers=args.providers, consumers=args.consumers, entries=n_entries
                )
                err.print(
                    f"province: {args.providers} providers, {args.consumers} consumers, {n_entries} entries "
                    f"({time.perf_counter() - t0:.1f} s)"
                )
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            with err.status(f"starting uvicorn ({args.workers} workers) on {base}"):
                server = start_server(
                    db_url=db_url,
                    port=port,
                    workers=args.workers,
                    data_dir=tmp,
                    pool=args.pool_size,
                    inflight=args.inflight,
                    skip_audit=args.skip_audit,
                    outbox=args.outbox,
                )
                wait_ready(base, server)
                tokens = issue_tokens(base, [province.reviewer, *province.providers, *province.consumers])

            start_at = time.monotonic() + 3.0  # the client processes need a moment to start
            window = (start_at + args.warmup, start_at + args.warmup + args.seconds)
            plans = make_plans(args, province, tokens, base, start_at, window[1])
            cpu_wait = threading.Event()
            cpu_marks: dict[str, Any] = {}

            def mark_cpu() -> None:  # CPU of server and PostgreSQL over the measured window only
                time.sleep(max(0.0, window[0] - time.monotonic()))
                cpu_marks["before"], cpu_marks["total_before"] = cpu_snapshot(server.pid), total_cpu()
                time.sleep(max(0.0, window[1] - time.monotonic()))
                cpu_marks["after"], cpu_marks["total_after"] = cpu_snapshot(server.pid), total_cpu()
                cpu_wait.set()

            threading.Thread(target=mark_cpu, daemon=True).start()
            activity = PgActivity(admin, window)
            activity.thread.start()
            results, loadgen_cpu = drive(plans, args.client_procs, tmp)
            cpu_wait.wait(timeout=30)
            activity.thread.join(timeout=5)
            stop_server(server)
            server = None

            calls = [c for r in results for c in r.calls]
            in_window = [c for c in calls if window[0] <= c[4] <= window[1]]
            ok = [c for c in in_window if 200 <= c[2] < 300]
            by_cat = Counter(c[1] for c in ok)
            latencies = [(c[4] - c[3]) * 1000 for c in in_window]
            figures["clients"] = args.clients
            figures["workers"] = args.workers
            from zhengshu.core.config import Settings

            figures["inflight_limit"] = args.inflight or Settings.model_fields["max_inflight_requests"].default
            figures["pool_size"] = args.pool_size
            figures["outbox"] = args.outbox
            if args.skip_audit:
                figures["skip_audit"] = 1
            figures["seconds"] = args.seconds
            figures["requests_per_s"] = len(in_window) / args.seconds
            figures["decisions_per_s"] = by_cat["decision"] / args.seconds
            figures["creations_per_s"] = by_cat["create"] / args.seconds
            figures["changes_per_s"] = (by_cat["decision"] + by_cat["create"]) / args.seconds
            figures["p50_ms"] = pct(latencies, 50)
            figures["p95_ms"] = pct(latencies, 95)
            figures["p99_ms"] = pct(latencies, 99)
            figures["conflicts_409"] = sum(1 for c in calls if c[2] == 409)
            figures["errors"] = sum(1 for c in calls if c[2] != 409 and not 200 <= c[2] < 300)

            err.print("[bold]per operation[/] (measured window): n, ok, 409, other, p50/p95 ms")
            by_op: dict[str, list[tuple[str, str, int, float, float]]] = defaultdict(list)
            for c in in_window:
                by_op[c[0]].append(c)
            for op, cs in sorted(by_op.items()):
                lat = [(c[4] - c[3]) * 1000 for c in cs]
                n409 = sum(1 for c in cs if c[2] == 409)
                nok = sum(1 for c in cs if 200 <= c[2] < 300)
                err.print(
                    f"  {op:32s} {len(cs):6d} {nok:6d} {n409:5d} {len(cs) - nok - n409:5d}  "
                    f"{pct(lat, 50):7.1f} / {pct(lat, 95):7.1f}"
                )
            for line in sorted({e for r in results for e in r.errors})[:20]:
                err.print(f"  [red]error[/] {line}")
            activity.report()

            window_s = window[1] - window[0]
            # the client processes ran from start to stop plus their start-up; a fair upper bound
            loadgen_cores = loadgen_cpu / (window[1] - start_at)
            if "after" in cpu_marks:
                b, a = cpu_marks["before"], cpu_marks["after"]
                ours = {pid: cpu for pid, cpu in a["postgres"].items() if pid in activity.pids}
                server_cores = cpu_delta(b["server"], a["server"]) / window_s
                pg_cores = cpu_delta(b["postgres"], ours) / window_s
                machine_cores = (cpu_marks["total_after"] - cpu_marks["total_before"]) / window_s
                figures["cpu_server_cores"] = server_cores
                figures["cpu_postgres_cores"] = pg_cores
                figures["cpu_loadgen_cores"] = loadgen_cores
                figures["cpu_machine_cores"] = machine_cores
                # whatever else ran on the machine meanwhile (other people's tests on a shared machine)
                figures["cpu_other_cores"] = max(0.0, machine_cores - server_cores - pg_cores - loadgen_cores)
                changes = by_cat["decision"] + by_cat["create"]
                if changes:
                    figures["server_cpu_ms_per_change"] = server_cores * args.seconds / changes * 1000
                    figures["postgres_cpu_ms_per_change"] = pg_cores * args.seconds / changes * 1000
            calibration_after = calibration_ms()
            calibration = (calibration_before + calibration_after) / 2
            figures["calibration_ms_before"] = calibration_before
            figures["calibration_ms_after"] = calibration_after
            if "server_cpu_ms_per_change" in figures:
                for side in ("server", "postgres"):
                    per_change = float(figures[f"{side}_cpu_ms_per_change"])
                    figures[f"{side}_cpu_per_change_calibrated"] = per_change / calibration

            with err.status("verifying tickets, histories and the audit chain"):
                failed_creates = sum(1 for c in calls if c[1] == "create" and not 200 <= c[2] < 300)
                posts_ok = sum(1 for c in calls if c[1] in ("create", "decision") and 200 <= c[2] < 300)
                check = verify(database, results, failed_creates, 0 if args.skip_audit else posts_ok)
            figures["tickets"] = check.tickets
            figures["ticket_events"] = check.events
            figures["audit_records"] = check.audit_records
            figures["audit_chain_ok"] = int(check.audit_ok)
            figures["audit_records_per_seal_pass"] = round(check.records_per_seal_pass, 2)
            figures["unfinished_pipelines"] = sum(r.unfinished for r in results)
            figures["anomalies"] = len(check.anomalies)
            for line in check.anomalies[:50]:
                err.print(f"  [red]anomaly[/] {line}")
            if len(check.anomalies) > 50:
                err.print(f"  … and {len(check.anomalies) - 50} more")
    finally:
        if server is not None:
            stop_server(server)
        database.dispose()
        if args.keep_schema:
            err.print(f"schema kept: {schema}")
        else:
            with admin.connect() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    for name, value in figures.items():
        print(f"{name}: {value:.2f}" if isinstance(value, float) else f"{name}: {value}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
