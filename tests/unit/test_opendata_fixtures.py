"""Shared set-up of the open-data tests (imported by the other ``test_opendata_*`` modules; holds no tests).

A provider (省市场监管局) has a front-end SQLite database with a table of enterprises. Its catalog entry is
无条件开放 except for one item (密码 ``mm``, 不予开放), and the table has a column no catalog item names
(``bz``). Both hold :data:`MARKER`, which must never leave through any page, download or API.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from tests.factories import World, published_entry
from zhengshu.catalog import mounting
from zhengshu.catalog import service as catalog_service
from zhengshu.core.config import Settings
from zhengshu.core.db import Database
from zhengshu.lake import service as lake_service
from zhengshu.lake.schemas import DataSourceIn
from zhengshu.opendata import service as opendata_service
from zhengshu.opendata.schemas import ItemChoice, PublishIn

MARKER = "PLANTED-7f3a9c-不予开放"
INDUSTRIES = ["制造业", "批发和零售业", "信息技术服务业", "建筑业"]
SURNAMES = "赵钱孙李周吴郑王冯陈褚卫蒋沈韩杨"

ITEMS: list[dict[str, Any]] = [
    {"name": "统一社会信用代码", "column_name": "tyshxydm", "data_type": "C", "length": 18},
    {"name": "企业名称", "column_name": "qymc", "data_type": "C", "length": 200},
    {"name": "法定代表人姓名", "column_name": "fddbr", "data_type": "C", "length": 50, "sensitivity": "一般2"},
    {"name": "联系电话", "column_name": "lxdh", "data_type": "C", "length": 20, "sensitivity": "一般2"},
    {"name": "行业类型", "column_name": "hylx", "data_type": "C", "length": 40},
    {"name": "注册资本", "column_name": "zczb", "data_type": "N", "length": 18},
    {"name": "成立日期", "column_name": "clrq", "data_type": "D"},
    {"name": "登录密码", "column_name": "mm", "data_type": "C", "length": 64, "opening_type": "不予开放"},
]


def source_rows(n: int) -> list[tuple[Any, ...]]:
    rows = []
    for i in range(n):
        name = SURNAMES[i % len(SURNAMES)] + "某" + "甲乙丙丁"[i % 4]
        rows.append(
            (
                f"91360100MA{i:07d}X",
                f"江西{'赣鄱洪都豫章'[i % 6]}测试企业{i:05d}有限公司",
                name,
                f"138{i:08d}",
                INDUSTRIES[i % len(INDUSTRIES)],
                float(100 + (i * 37) % 900),
                date(2020 + i % 5, 1 + i % 12, 1 + i % 28).isoformat(),
                MARKER,
                MARKER,
            )
        )
    return rows


def front_db(path: Path, n: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE od_qy (tyshxydm VARCHAR(18), qymc VARCHAR(200), fddbr VARCHAR(50), lxdh VARCHAR(20), "
        "hylx VARCHAR(40), zczb REAL, clrq DATE, mm VARCHAR(64), bz TEXT)"
    )
    conn.executemany("INSERT INTO od_qy VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", source_rows(n))
    conn.commit()
    conn.close()
    return path


@dataclass
class Published:
    entry_id: str
    dataset_id: str
    slug: str
    source_id: str
    path: Path
    rows: int


def open_entry(db: Database, world: World, settings: Settings, *, n: int = 120, opening: str = "无条件开放") -> str:
    """A published entry with a mounted front-end table; returns the entry id."""
    entry_id = published_entry(
        db,
        world,
        name="市场主体登记信息",
        summary="全省市场主体登记信息，含企业名称、行业类型、注册资本与成立日期",
        opening_type=opening,
        items=ITEMS,
        tags=["企业", "登记", "市场主体"],
        **({"opening_condition": "注册用户申请并经提供部门同意后使用"} if opening == "有条件开放" else {}),
    )
    path = front_db(Path(settings.data_dir) / "uploads" / world.orgs["market"] / "front.sqlite", n)
    officer = world["market_officer"]
    with db.session() as s:
        source = lake_service.register_source(
            s,
            actor=officer,
            source_in=DataSourceIn(name="市场监管前置库", kind="sqlite", options={"path": str(path)}),
            data_dir=Path(settings.data_dir),
        )
        mounting.mount_table(
            s, actor=officer, entry_id=entry_id, mount_in=mounting.TableMountIn(source_id=source.id, table="od_qy")
        )
    return entry_id


def item_keys(db: Database, world: World, entry_id: str) -> dict[str, str]:
    """Column name -> catalog item key."""
    with db.session() as s:
        entry = catalog_service.get(s, actor=world["market_officer"], entry_id=entry_id)
        v = catalog_service.display_version(s, entry)
        return {str(i.column_name): i.key for i in v.items}


def default_choices(keys: dict[str, str]) -> list[ItemChoice]:
    return [
        ItemChoice(item_key=keys["tyshxydm"]),
        ItemChoice(item_key=keys["qymc"]),
        ItemChoice(item_key=keys["fddbr"]),  # name_first by default
        ItemChoice(item_key=keys["lxdh"]),  # mobile_3_4 by default
        ItemChoice(item_key=keys["hylx"]),
        ItemChoice(item_key=keys["zczb"]),
        ItemChoice(item_key=keys["clrq"]),
    ]


def publish_dataset(
    db: Database, world: World, settings: Settings, *, n: int = 120, opening: str = "无条件开放", **extra: Any
) -> Published:
    entry_id = open_entry(db, world, settings, n=n, opening=opening)
    keys = item_keys(db, world, entry_id)
    with db.session() as s:
        dataset = opendata_service.publish(
            s,
            actor=world["market_officer"],
            publish_in=PublishIn(
                entry_id=entry_id,
                field="market",
                items=extra.pop("items", None) or default_choices(keys),
                key_item=extra.pop("key_item", keys["tyshxydm"]),
                **extra,
            ),
            data_dir=Path(settings.data_dir),
        )
        version = opendata_service.current_version(s, dataset)
        return Published(
            entry_id=entry_id,
            dataset_id=dataset.id,
            slug=dataset.slug,
            source_id=str(dataset.resource_id),
            path=Path(settings.data_dir) / version.file_path,
            rows=n,
        )


def expected_rows(n: int) -> list[dict[str, Any]]:
    """The open items of the source, masked as declared (the reference every channel must equal)."""
    out = []
    for row in source_rows(n):
        code, name, person, phone, industry, capital, founded, _, _ = row
        out.append(
            {
                "tyshxydm": code,
                "qymc": name,
                "fddbr": person[0] + "*" * (len(person) - 1),
                "lxdh": phone[:3] + "*" * (len(phone) - 7) + phone[-4:],
                "hylx": industry,
                "zczb": capital,
                "clrq": founded,
            }
        )
    return sorted(out, key=lambda r: r["tyshxydm"])
