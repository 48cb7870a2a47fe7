"""Generated data APIs over a mounted table: key lookup and filtered listing with cursor pagination on
PostgreSQL, MariaDB, SQLite and DuckDB sources; only authorized columns are selected, masked per item."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pymysql
import pytest

from tests.factories import World
from tests.gateway.conftest import PEOPLE, AppCreds, consumer_app, grant, signed
from zhengshu.catalog import mounting
from zhengshu.core.db import Database
from zhengshu.core.errors import ValidationFailed
from zhengshu.gateway import service as gw_service
from zhengshu.gateway.schemas import ServiceIn
from zhengshu.lake import service as lake_service
from zhengshu.lake.schemas import DataSourceIn

COLUMNS = "sfzh, xm, sjhm, zz, cbzt, yhkh"
# many rows for paging: the three people plus generated ones in 九江
ROWS = list(PEOPLE) + [
    (f"3604021980010{i:05d}", f"赵{i}", f"1390000{i:04d}", f"江西省九江市濂溪区{i}号", "正常参保", f"62220200{i:011d}")
    for i in range(1, 26)
]


def _uid() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture
def pg_source() -> Iterator[dict[str, Any]]:
    schema = f"gw_src_{_uid()}"
    with psycopg.connect(host="127.0.0.1", user="postgres", dbname="test", autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        conn.execute(
            f'CREATE TABLE "{schema}".cbxx (sfzh varchar(18) PRIMARY KEY, xm varchar(50), sjhm varchar(11), '
            "zz varchar(200), cbzt varchar(10), yhkh varchar(19))"
        )
        with conn.cursor() as cur:
            cur.executemany(f'INSERT INTO "{schema}".cbxx VALUES (%s, %s, %s, %s, %s, %s)', ROWS)
    yield {
        "kind": "postgresql",
        "host": "127.0.0.1",
        "port": 5432,
        "database": "test",
        "username": "postgres",
        "options": {"schema": schema},
        "_table": ("cbxx", schema),
    }
    with psycopg.connect(host="127.0.0.1", user="postgres", dbname="test", autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def my_source() -> Iterator[dict[str, Any]]:
    name = f"gw_src_{_uid()}"
    conn = pymysql.connect(host="127.0.0.1", user="root", autocommit=True, charset="utf8mb4")
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        cur.execute(
            f"CREATE TABLE `{name}`.cbxx (sfzh varchar(18) PRIMARY KEY, xm varchar(50), sjhm varchar(11), "
            "zz varchar(200), cbzt varchar(10), yhkh varchar(19))"
        )
        cur.executemany(f"INSERT INTO `{name}`.cbxx VALUES (%s, %s, %s, %s, %s, %s)", ROWS)
    yield {
        "kind": "mysql",
        "host": "127.0.0.1",
        "port": 3306,
        "database": name,
        "username": "root",
        "_table": ("cbxx", None),
    }
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE `{name}`")
    conn.close()


@pytest.fixture
def sqlite_source(tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "cb.sqlite"
    conn = sqlite3.connect(path)
    conn.execute(f"CREATE TABLE cbxx ({COLUMNS})")
    conn.executemany("INSERT INTO cbxx VALUES (?, ?, ?, ?, ?, ?)", ROWS)
    conn.commit()
    conn.close()
    return {"kind": "sqlite", "options": {"path": str(path)}, "_table": ("cbxx", None)}


@pytest.fixture
def duckdb_source(tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "cb.duckdb"
    conn = duckdb.connect(str(path))
    conn.execute("CREATE TABLE cbxx (sfzh VARCHAR, xm VARCHAR, sjhm VARCHAR, zz VARCHAR, cbzt VARCHAR, yhkh VARCHAR)")
    conn.executemany("INSERT INTO cbxx VALUES (?, ?, ?, ?, ?, ?)", ROWS)
    conn.close()
    return {"kind": "duckdb", "options": {"path": str(path)}, "_table": ("cbxx", "main")}


def table_service(db: Database, world: World, entry_id: str, source: dict[str, Any], code: str = "cb-lookup") -> str:
    table, schema = source["_table"]
    fields = {k: v for k, v in source.items() if not k.startswith("_")}
    with db.session() as s:
        src = lake_service.register_source(
            s,
            actor=world["admin"],
            source_in=DataSourceIn.model_validate(
                {"name": f"社保前置库{_uid()}", "owner_org_id": world.orgs["market"], **fields}
            ),
        )
        mounting.mount_table(
            s,
            actor=world["market_officer"],
            entry_id=entry_id,
            mount_in=mounting.TableMountIn(source_id=src.id, table=table, schema_name=schema, allow_problems=True),
        )
        service = gw_service.register_service(
            s,
            actor=world["market_officer"],
            service_in=ServiceIn.model_validate(
                {
                    "entry_id": entry_id,
                    "code": code,
                    "name": "参保信息查询",
                    "kind": "table",
                    "table": {"key_items": ["身份证号"], "filter_items": ["参保状态", "姓名"]},
                }
            ),
        )
        return service.id


def get(client: Any, creds: AppCreds, url: str) -> Any:
    return client.get(url, headers=signed(creds, "GET", url))


@pytest.fixture(params=["pg_source", "my_source", "sqlite_source", "duckdb_source"])
def source(request: pytest.FixtureRequest) -> dict[str, Any]:
    return dict(request.getfixturevalue(request.param))


def test_key_lookup_and_paged_listing(
    gw_client: Any, db: Database, world: World, person_entry: str, source: dict[str, Any]
) -> None:
    grant(
        db,
        world,
        person_entry,
        {"身份证号": "id_6_4", "姓名": "name_first", "参保状态": "none", "银行卡号": "suppress"},
    )
    table_service(db, world, person_entry, source)
    creds = consumer_app(db, world)

    r = get(gw_client, creds, f"http://testserver/gw/cb-lookup/{PEOPLE[1][0]}")
    assert r.status_code == 200, r.text
    assert r.json()["items"] == [{"sfzh": "360102********2345", "xm": "王*", "cbzt": "暂停参保"}]
    # an unknown key: empty answer
    assert get(gw_client, creds, "http://testserver/gw/cb-lookup/360102200001010000").json()["items"] == []
    # lookup through a query parameter named after the key item (its column or its Chinese name)
    r = get(gw_client, creds, f"http://testserver/gw/cb-lookup?身份证号={PEOPLE[0][0]}")
    assert r.json()["items"][0]["xm"] == "李*"

    # filtered listing, paged with the opaque cursor
    url = "http://testserver/gw/cb-lookup?cbzt=%E6%AD%A3%E5%B8%B8%E5%8F%82%E4%BF%9D&limit=10"
    seen: list[str] = []
    pages = 0
    while url:
        body = get(gw_client, creds, url).json()
        assert len(body["items"]) <= 10
        seen += [row["sfzh"] for row in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        url = f"http://testserver/gw/cb-lookup?cbzt=正常参保&limit=10&cursor={cursor}" if cursor else ""
    assert pages == 3 and len(seen) == 27 == len(set(seen))
    assert all("*" in s for s in seen)

    r = get(gw_client, creds, "http://testserver/gw/cb-lookup?sjhm=13812345678")
    assert r.status_code == 400 and r.json()["code"] == "gateway.bad_filter"
    r = get(gw_client, creds, f"http://testserver/gw/cb-lookup/{PEOPLE[0][0]}?fields=yhkh")
    assert r.status_code == 403 and r.json()["code"] == "gateway.item_not_authorized"
    r = get(gw_client, creds, "http://testserver/gw/cb-lookup?limit=1000")
    assert r.json()["code"] == "gateway.bad_limit"


def test_only_authorized_columns_are_selected(
    gw_client: Any, gw: Any, db: Database, world: World, person_entry: str, sqlite_source: dict[str, Any]
) -> None:
    grant(db, world, person_entry, {"参保状态": "none"})
    table_service(db, world, person_entry, sqlite_source)
    creds = consumer_app(db, world)
    r = get(gw_client, creds, f"http://testserver/gw/cb-lookup/{PEOPLE[0][0]}")
    assert r.json()["items"] == [{"cbzt": "正常参保"}]
    snap = gw.snapshot
    [sql] = snap.services["cb-lookup"].versions[1].sql_cache.values()
    assert sql.startswith('SELECT "cbzt" FROM') and "sfzh" in sql.split("WHERE")[1]


def test_a_table_service_needs_a_mounted_table_and_known_items(db: Database, world: World, person_entry: str) -> None:
    with db.session() as s, pytest.raises(ValidationFailed) as exc:
        gw_service.register_service(
            s,
            actor=world["market_officer"],
            service_in=ServiceIn.model_validate(
                {
                    "entry_id": person_entry,
                    "code": "cb-x",
                    "name": "x",
                    "kind": "table",
                    "table": {"key_items": ["不存在"]},
                }
            ),
        )
    fields = {e.field for e in exc.value.errors}
    assert fields == {"table.resource_id", "table.key_items"}


@pytest.mark.parametrize("url_tail", ["/3601%00", "?sfzh=3601%00", "?cbzt=%E6%AD%A3%00"])
def test_text_with_a_nul_character_is_a_clear_error_on_postgresql(
    gw_client: Any, db: Database, world: World, person_entry: str, pg_source: dict[str, Any], url_tail: str
) -> None:
    grant(db, world, person_entry, {"身份证号": "none", "参保状态": "none"})
    table_service(db, world, person_entry, pg_source)
    creds = consumer_app(db, world)
    r = get(gw_client, creds, f"http://testserver/gw/cb-lookup{url_tail}")
    assert r.status_code == 400, r.text  # PostgreSQL cannot take U+0000: refused before the query, not a 502
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "gateway.bad_parameter"
