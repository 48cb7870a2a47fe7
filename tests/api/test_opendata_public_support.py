"""Shared helpers of the open-data public-side tests (accounts, conditional access, CKAN, DCAT): published
datasets with a planted marker in a not-open item, the public routers on the test app, registered accounts.

No tests here; the test modules import these helpers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from fastapi import FastAPI

from tests.factories import World, published_entry
from zhengshu.catalog import service as catalog_service
from zhengshu.core.config import Settings
from zhengshu.core.db import Database, new_id, utcnow
from zhengshu.opendata import accounts
from zhengshu.opendata import service as opendata_service
from zhengshu.opendata.models import OpenDataset, OpenDatasetItem, OpenDatasetVersion
from zhengshu.opendata.public_schemas import AccountIn
from zhengshu.security.masking import mask_table

MARKER = "ZZMARKER-NOT-OPEN-9F3A"
PUBLIC_PASSWORD = "Open2026pass"

# (catalog item name, column, type code, open?, masking rule)
ITEMS = [
    ("统一社会信用代码", "tyshxydm", "C", True, "none"),
    ("企业名称", "qymc", "C", True, "none"),
    ("法定代表人", "fddbr", "C", True, "name_first"),
    ("注册资本", "zczb", "N", True, "none"),
    ("内部核查意见", "nbhcyj", "C", False, "suppress"),
]


def source_rows(n: int = 30) -> pa.Table:
    return pa.table(
        {
            "tyshxydm": [f"91360100MA{i:07d}X" for i in range(n)],
            "qymc": [f"南昌市第{i}号测试企业有限公司" for i in range(n)],
            "fddbr": [f"王{'小大'[i % 2]}明" for i in range(n)],
            "zczb": [float(100 + i) for i in range(n)],
            "nbhcyj": [f"{MARKER}-{i}" for i in range(n)],
        }
    )


def make_dataset(
    db: Database,
    world: World,
    settings: Settings,
    *,
    opening: str = "无条件开放",
    name: str = "企业登记信息",
    title: str | None = None,
    slug: str | None = None,
    field: str = "market",
    rows: int = 30,
    tags: list[str] | None = None,
) -> str:
    """A published open dataset whose copy was filtered and masked the way the portal publishes it."""
    items = [
        {"name": item, "column_name": col, "data_type": code, "length": 200, "sensitivity": "一般2"}
        for item, col, code, _open, _rule in ITEMS
    ]
    condition = "注册用户说明用途并经提供部门同意后使用" if opening == "有条件开放" else ""
    entry_id = published_entry(db, world, name=name, opening_type=opening, opening_condition=condition, items=items)
    rules = {col: rule for _n, col, _c, _o, rule in ITEMS}
    table = mask_table(source_rows(rows), rules)
    dataset_id = new_id()
    rel = Path("opendata") / dataset_id / "v1.parquet"
    path = settings.data_dir / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    checksum = hashlib.sha256(path.read_bytes()).hexdigest()
    now = utcnow()
    with db.session() as s:
        entry = catalog_service.get(s, actor=world["admin"], entry_id=entry_id)
        keys = {i.column_name: i.key for i in catalog_service.display_version(s, entry).items}
        dataset = OpenDataset(
            id=dataset_id,
            slug=slug or f"ds-{dataset_id[-8:]}",
            entry_id=entry.id,
            entry_code=entry.code,
            provider_org_id=entry.provider_org_id,
            region_code=entry.region_code,
            title=title or f"{name}（开放）",
            description=f"{name}的开放数据",
            field=field,
            tags=tags or ["企业", "登记"],
            licence="CC-BY-4.0",
            update_cycle="每月",
            opening_type=opening,
            opening_condition=condition,
            contact="0791-88888888",
            status="published",
            version_number=1,
            published_at=now,
            refreshed_at=now,
            row_count=rows,
            byte_size=path.stat().st_size,
            created_by="market_officer",
        )
        s.add(dataset)
        position = 0
        for item, col, code, is_open, rule in ITEMS:
            if not is_open:
                continue
            s.add(
                OpenDatasetItem(
                    dataset_id=dataset_id,
                    item_key=keys[col],
                    position=position,
                    name=item,
                    column_name=col,
                    data_type=code,
                    masking_rule=rule,
                    is_key=col == "tyshxydm",
                )
            )
            position += 1
        version = OpenDatasetVersion(
            dataset_id=dataset_id,
            number=1,
            row_count=rows,
            byte_size=path.stat().st_size,
            file_path=str(rel),
            checksum=checksum,
            columns=[{"column": c, "name": n, "masking_rule": r} for n, c, _t, o, r in ITEMS if o],
            created_by="market_officer",
        )
        s.add(version)
        s.flush()
        dataset.published_version_id = version.id
        s.flush()
        s.refresh(dataset)
        opendata_service._reindex(s, dataset)  # the portal's search terms, as its publish computes them
    return dataset_id


def register(db: Database, *, username: str = "acme", kind: str = "company", **extra: Any) -> str:
    data: dict[str, Any] = {
        "kind": kind,
        "username": username,
        "password": PUBLIC_PASSWORD,
        "display_name": "张经办",
        "email": f"{username}@example.com",
    }
    if kind == "company":
        data.update(company_name="江西某某数据科技有限公司", uscc=_uscc(username))
    data.update(extra)
    with db.session() as s:
        return accounts.register(s, account_in=AccountIn.model_validate(data)).id


def _uscc(seed: str) -> str:
    import random

    from zhengshu.demo.identities import uscc

    return str(uscc(random.Random(seed), region_code="360100", authority="9", org_type="1"))


def issue_key(db: Database, account_id: str, *, quota: int | None = None) -> str:
    with db.session() as s:
        account = accounts.get(s, account_id=account_id)
        raw, key = accounts.issue_key(s, account=account, name="测试脚本")
        key.daily_quota = quota
        return raw


def public_client(app: FastAPI) -> Iterator[Any]:
    """A test client of ``app`` with the public routers mounted (test modules wrap it in an ``open_client``
    fixture)."""
    from fastapi.testclient import TestClient

    from zhengshu.opendata import access, report

    # in-memory quota and report counters start empty for each test (all tests report from "testclient")
    access._limiter.cache_clear()
    report._limiter.cache_clear()
    with TestClient(app) as c:
        yield c


def scan_for_marker(text: str) -> None:
    assert MARKER not in text, "a not-open item's value left the portal"
    assert "nbhcyj" not in text, "a not-open item's column name left the portal"
    assert "内部核查意见" not in text, "a not-open item's name left the portal"
