"""Building blocks of the table exchange tests: real source tables on MariaDB/PostgreSQL/files, an entry with
matching items mounted on them, a 库表 authorization granted by rule, a consumer target, and comparisons of
target and source by key and row hash."""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pymysql

from tests.factories import World, published_entry
from tests.unit.test_applications import DAY, app_in
from zhengshu.catalog import mounting
from zhengshu.catalog import service as catalog_service
from zhengshu.catalog.models import CatalogEntry
from zhengshu.core.config import Settings
from zhengshu.core.db import Database
from zhengshu.demand import applications, authorizations
from zhengshu.exchange.tables import service as sync_service
from zhengshu.exchange.tables.schemas import SyncJobIn, SyncTargetIn
from zhengshu.lake import service as lake_service
from zhengshu.lake.schemas import DataSourceIn, SourceOptions
from zhengshu.security.masking import mask_value

PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
MY = {"host": "127.0.0.1", "port": 3306, "user": "root", "database": "test"}

ITEMS = [
    {"name": "编号", "column_name": "id", "data_type": "I"},
    {"name": "姓名", "column_name": "xm", "data_type": "C", "length": 50},
    {"name": "手机号码", "column_name": "sjhm", "data_type": "C", "length": 20},
    {"name": "金额", "column_name": "je", "data_type": "N", "length": 12},
    {"name": "出生日期", "column_name": "csrq", "data_type": "D"},
    {"name": "更新时间", "column_name": "gxsj", "data_type": "T"},
    {"name": "内部备注", "column_name": "nbbz", "data_type": "C", "length": 200, "sensitivity": "重要"},
]
DELIVERED = ["id", "xm", "sjhm", "je", "csrq", "gxsj"]  # nbbz is suppressed by its grade
RULES = {"xm": "name_first", "sjhm": "mobile_3_4"}
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
BASE_TIME = dt.datetime(2026, 11, 1, 8, 0, 0)


def suffix() -> str:
    return uuid.uuid4().hex[:10]


def make_rows(n: int, start: int = 1, seed: int = 11) -> list[tuple[Any, ...]]:
    rng = random.Random(seed + start)
    rows = []
    for i in range(start, start + n):
        name = rng.choice(SURNAMES) + rng.choice("明华芳静强磊洋艳勇军杰娟涛")
        phone = f"1{rng.choice('3589')}{rng.randrange(10**9):09d}"
        amount = Decimal(rng.randrange(10**8)) / 100
        birth = dt.date(1960, 1, 1) + dt.timedelta(days=rng.randrange(20000))
        # several rows share each update time: ties on the cursor must neither be lost nor repeated
        updated = BASE_TIME + dt.timedelta(seconds=i // 3)
        rows.append((i, name, phone, amount, birth, updated, f"内部{i}"))
    return rows


# ---- sources ----------------------------------------------------------------------------------------------


def mariadb_create(table: str, rows: list[tuple[Any, ...]]) -> None:
    with pymysql.connect(**MY, autocommit=True, charset="utf8mb4") as conn, conn.cursor() as cur:  # type: ignore[arg-type]
        cur.execute(f"DROP TABLE IF EXISTS `{table}`")
        cur.execute(
            f"CREATE TABLE `{table}` (id BIGINT PRIMARY KEY, xm VARCHAR(50), sjhm VARCHAR(20), je DECIMAL(12,2), "
            "csrq DATE, gxsj DATETIME(6), nbbz VARCHAR(200), KEY (gxsj)) DEFAULT CHARSET=utf8mb4"
        )
        cur.executemany(f"INSERT INTO `{table}` VALUES (%s,%s,%s,%s,%s,%s,%s)", rows)


def mariadb(sql: str, params: Any = None, table: str | None = None) -> list[tuple[Any, ...]]:
    with pymysql.connect(**MY, autocommit=True, charset="utf8mb4") as conn, conn.cursor() as cur:  # type: ignore[arg-type]
        cur.execute(sql, params)
        return list(cur.fetchall())


def mariadb_drop(*tables: str) -> None:
    for table in tables:
        mariadb(f"DROP TABLE IF EXISTS `{table}`")


def pg(sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        cur = conn.execute(sql, params)
        return list(cur.fetchall()) if cur.description else []


def pg_create(schema: str, table: str, rows: list[tuple[Any, ...]]) -> None:
    pg(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    pg(
        f'CREATE TABLE "{schema}"."{table}" (id BIGINT PRIMARY KEY, xm VARCHAR(50), sjhm VARCHAR(20), '
        "je NUMERIC(12,2), csrq DATE, gxsj TIMESTAMP, nbbz VARCHAR(200))"
    )
    with (
        psycopg.connect(PG_DSN) as conn,
        conn.cursor() as cur,
        cur.copy(f'COPY "{schema}"."{table}" FROM STDIN') as copy,
    ):
        for row in rows:
            copy.write_row(row)


def csv_create(path: Path, rows: list[tuple[Any, ...]], bad: dict[int, dict[str, str]] | None = None) -> None:
    """A CSV export of the rows; ``bad`` replaces values of some rows by text that cannot be converted."""
    lines = ["id,xm,sjhm,je,csrq,gxsj,nbbz"]
    for row in rows:
        values = {
            "id": str(row[0]),
            "xm": row[1],
            "sjhm": row[2],
            "je": str(row[3]),
            "csrq": row[4].isoformat(),
            "gxsj": row[5].isoformat(sep=" "),
            "nbbz": row[6],
        }
        values.update((bad or {}).get(row[0], {}))
        lines.append(",".join(values[c] for c in ("id", "xm", "sjhm", "je", "csrq", "gxsj", "nbbz")))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# ---- platform ---------------------------------------------------------------------------------------------


@dataclass
class Setup:
    entry_id: str
    source_id: str
    authorization_id: str
    target_id: str
    keys: dict[str, str]  # item name → key


def register_source(
    db: Database, world: World, kind: str, *, table: str, schema: str | None = None, path: Path | None = None
) -> str:
    with db.session() as s:
        if kind == "mysql":
            source_in = DataSourceIn(
                name=f"前置库-{suffix()}", kind="mysql", host="127.0.0.1", port=3306, database="test", username="root"
            )
            actor = world["market_officer"]
        elif kind == "postgresql":
            source_in = DataSourceIn(
                name=f"前置库-{suffix()}",
                kind="postgresql",
                host="127.0.0.1",
                port=5432,
                database="test",
                username="postgres",
                options=SourceOptions.model_validate({"schema": schema}),
            )
            actor = world["market_officer"]
        else:
            source_in = DataSourceIn(
                name=f"文件-{suffix()}",
                kind=kind,  # type: ignore[arg-type]
                owner_org_id=world.orgs["market"],
                options=SourceOptions(path=str(path)),
            )
            actor = world["admin"]
        return lake_service.register_source(s, actor=actor, source_in=source_in).id


def authorize(
    db: Database,
    world: World,
    *,
    kind: str,
    table: str,
    schema: str | None = None,
    path: Path | None = None,
    consumer: str = "hrss_officer",
    items: list[dict[str, Any]] | None = None,
) -> tuple[str, str, str, dict[str, str]]:
    """An unconditionally shared entry mounted on the table, and a 库表 authorization granted by rule."""
    entry_id = published_entry(
        db,
        world,
        name=f"人员信息-{suffix()}",
        sharing_type="无条件共享",
        sharing_condition="",
        sharing_way="库表",
        items=items or ITEMS,
    )
    source_id = register_source(db, world, kind, table=table, schema=schema, path=path)
    with db.session() as s:
        mounting.mount_table(
            s,
            actor=world["market_officer"],
            entry_id=entry_id,
            mount_in=mounting.TableMountIn(source_id=source_id, table=table, allow_problems=kind == "csv"),
        )
        entry = s.get(CatalogEntry, entry_id)
        assert entry is not None
        keys = {i.name: i.key for i in catalog_service.display_version(s, entry).items}
    with db.session() as s:
        app = applications.create(
            s,
            actor=world[consumer],
            application_in=app_in(entry_id, list(keys.values()), delivery_way="库表"),
            today=DAY,
        )
        app_id = app.id
    with db.session() as s:
        applications.comply(s, actor=world["reviewer"], application_id=app_id, today=DAY)
    with db.session() as s:
        [auth] = authorizations.for_application(s, application_id=app_id)
        return entry_id, source_id, auth.id, keys


def pg_target(db: Database, world: World, schema: str, who: str = "hrss_officer") -> str:
    pg(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    with db.session() as s:
        target_in = SyncTargetIn(
            name=f"目标库-{suffix()}",
            kind="postgresql",
            host="127.0.0.1",
            port=5432,
            database="test",
            username="postgres",
            schema_name=schema,
        )
        return sync_service.create_target(s, actor=world[who], target_in=target_in).id


def file_target(db: Database, world: World, settings: Settings, kind: str, who: str = "hrss_officer") -> str:
    with db.session() as s:
        target_in = SyncTargetIn(name=f"目标-{suffix()}", kind=kind)  # type: ignore[arg-type]
        return sync_service.create_target(s, actor=world[who], target_in=target_in, data_dir=settings.data_dir).id


def mysql_target(db: Database, world: World, who: str = "hrss_officer") -> str:
    with db.session() as s:
        target_in = SyncTargetIn(
            name=f"目标库-{suffix()}", kind="mysql", host="127.0.0.1", port=3306, database="test", username="root"
        )
        return sync_service.create_target(s, actor=world[who], target_in=target_in).id


def create_job(
    db: Database,
    world: World,
    settings: Settings,
    *,
    authorization_id: str,
    target_id: str,
    keys: dict[str, str],
    mode: str,
    table: str,
    batch_size: int = 500,
    who: str = "hrss_officer",
    **extra: Any,
) -> str:
    with db.session() as s:
        job_in = SyncJobIn(
            name=f"同步-{mode}",
            authorization_id=authorization_id,
            target_id=target_id,
            target_table=table,
            mode=mode,  # type: ignore[arg-type]
            key_items=[keys["编号"]],
            cursor_column="gxsj" if mode == "incremental" else None,
            batch_size=batch_size,
            **extra,
        )
        return sync_service.create_job(s, actor=world[who], job_in=job_in, settings=settings).id


# ---- comparisons ------------------------------------------------------------------------------------------


def expected_rows(rows: list[tuple[Any, ...]]) -> dict[int, tuple[Any, ...]]:
    """What the consumer must hold: the delivered items of each source row, masked."""
    result = {}
    for row in rows:
        id_, xm, sjhm, je, csrq, gxsj, _ = row
        result[id_] = (
            id_,
            mask_value("name_first", xm),
            mask_value("mobile_3_4", sjhm),
            Decimal(je).normalize(),
            csrq,
            gxsj,
        )
    return result


def row_hash(row: tuple[Any, ...]) -> str:
    return hashlib.md5(repr(row).encode()).hexdigest()


def by_key_and_hash(rows: dict[int, tuple[Any, ...]]) -> dict[int, str]:
    return {k: row_hash(v) for k, v in rows.items()}


def normalize(row: dict[str, Any]) -> tuple[Any, ...]:
    je = row["je"]
    gxsj = row["gxsj"]
    if isinstance(gxsj, dt.datetime) and gxsj.tzinfo is not None:
        gxsj = gxsj.replace(tzinfo=None)
    return (
        row["id"],
        row["xm"],
        row["sjhm"],
        Decimal(str(je)).normalize() if je is not None else None,
        row["csrq"],
        gxsj,
    )


def pg_target_rows(schema: str, table: str) -> dict[int, tuple[Any, ...]]:
    with psycopg.connect(PG_DSN) as conn:
        cur = conn.execute(f'SELECT id, xm, sjhm, je, csrq, gxsj FROM "{schema}"."{table}"')
        names = [d.name for d in cur.description or []]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    return {r["id"]: normalize(r) for r in rows}


def pg_count(schema: str, table: str) -> int:
    return int(pg(f'SELECT COUNT(*) FROM "{schema}"."{table}"')[0][0])


def mariadb_rows(table: str) -> list[tuple[Any, ...]]:
    return mariadb(f"SELECT id, xm, sjhm, je, csrq, gxsj, nbbz FROM `{table}` ORDER BY id")


def sqlite_create(path: Path, rows: list[tuple[Any, ...]]) -> None:
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        conn.execute(
            "CREATE TABLE ry (id INTEGER PRIMARY KEY, xm VARCHAR(50), sjhm VARCHAR(20), je DECIMAL(12,2), "
            "csrq DATE, gxsj DATETIME, nbbz VARCHAR(200))"
        )
        conn.executemany(
            "INSERT INTO ry VALUES (?,?,?,?,?,?,?)",
            [(r[0], r[1], r[2], float(r[3]), r[4].isoformat(), r[5].isoformat(sep=" "), r[6]) for r in rows],
        )
        conn.commit()
    finally:
        conn.close()


def duckdb_create(path: Path, rows: list[tuple[Any, ...]]) -> None:
    import duckdb

    con = duckdb.connect(str(path))
    try:
        con.execute(
            "CREATE TABLE ry (id BIGINT PRIMARY KEY, xm VARCHAR, sjhm VARCHAR, je DECIMAL(12,2), csrq DATE, "
            "gxsj TIMESTAMP, nbbz VARCHAR)"
        )
        con.executemany("INSERT INTO ry VALUES (?,?,?,?,?,?,?)", [list(r) for r in rows])
    finally:
        con.close()


def xlsx_create(path: Path, rows: list[tuple[Any, ...]]) -> None:
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "ry"
    ws.append(["id", "xm", "sjhm", "je", "csrq", "gxsj", "nbbz"])
    for r in rows:
        ws.append([r[0], r[1], r[2], float(r[3]), r[4], r[5], r[6]])
    wb.save(path)
