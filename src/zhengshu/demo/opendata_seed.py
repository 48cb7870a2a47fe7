"""Demo open datasets: every published catalog entry that may be opened becomes an open dataset.

An entry with a mounted table or file is opened from it; one without gets a generated Parquet file in the
provider's upload area (values shaped by each item's name and type, seeded), registered and mounted like a
real front-end file, then opened. Only the items that may be opened are chosen, each with its default masking;
a few weeks of page views, downloads and API calls are recorded so the statistics have a history.
Called by the demo builder after the catalog and the demo sources exist.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import select
from sqlalchemy.orm import Session

from zhengshu.catalog import mounting
from zhengshu.catalog import service as catalog_service
from zhengshu.catalog.models import CatalogEntry, DataItem
from zhengshu.core.config import Settings
from zhengshu.core.timeutil import local_today
from zhengshu.lake import service as lake_service
from zhengshu.lake.schemas import DataSourceIn
from zhengshu.opendata import service as opendata_service
from zhengshu.opendata import vocab
from zhengshu.opendata.schemas import ItemChoice, PublishIn
from zhengshu.security.actor import SYSTEM_ACTOR, Actor

KEY_WORDS = ("统一社会信用代码", "代码", "编号", "证号", "号码")
# 领域 by words of the entry's name or tags, first match wins.
FIELD_WORDS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("企业", "市场", "个体", "商标", "登记"), "market"),
    (("信用", "失信", "红黑"), "credit"),
    (("税", "财政", "金融", "预算"), "finance"),
    (("交通", "公交", "道路", "车辆", "客运"), "transport"),
    (("学校", "教育", "招生", "培训"), "education"),
    (("医", "卫生", "药", "疾病", "健康"), "health"),
    (("社保", "社会保险", "就业", "养老", "人才"), "social"),
    (("民政", "低保", "养老机构", "婚姻", "救助"), "civil"),
    (("环境", "排污", "空气", "水质", "生态"), "environment"),
    (("土地", "矿", "能源", "电力", "自然资源"), "resources"),
    (("住房", "建筑", "工程", "物业", "城建"), "urban"),
    (("农", "林", "渔", "畜"), "agriculture"),
    (("安全生产", "应急", "消防"), "safety"),
    (("科技", "专利", "高新"), "science"),
    (("旅游", "文化", "体育", "文物"), "tourism"),
)
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高"
PLACES = ["南昌市东湖区", "九江市浔阳区", "赣州市章贡区", "上饶市信州区", "宜春市袁州区", "吉安市吉州区"]


def _field_for(name: str, tags: list[Any]) -> str:
    """The name decides; the tags only when the name says nothing."""
    for text in (name, " ".join(str(t) for t in tags)):
        for words, field in FIELD_WORDS:
            if any(w in text for w in words):
                return field
    return "government"


def _phone(rng: random.Random) -> str:
    return f"0791-86{rng.randint(1, 999999):06d}"


def _key_for(items: list[DataItem]) -> DataItem | None:
    for word in KEY_WORDS:
        for item in items:
            if word in item.name:
                return item
    return None


def _values(item: DataItem, n: int, rng: random.Random, entry_name: str) -> pa.Array:
    name, code = item.name, item.data_type
    if code in ("N", "Y"):  # numbers and money are exact decimals, as the mount check expects of these types
        digits = min(item.length or 18, 18)  # the item's declared length bounds the column's precision
        top = 10 ** min(digits - 2, 8)
        return pa.array([Decimal(rng.randint(100, top * 100 - 1)) / 100 for _ in range(n)], pa.decimal128(digits, 2))
    if code in ("B", "F"):
        return pa.array([round(rng.uniform(1, 10_000), 2) for _ in range(n)], pa.float64())
    if code == "I":
        return pa.array([rng.randint(0, 5000) for _ in range(n)], pa.int64())
    if code == "D":
        start = date(2015, 1, 1)
        return pa.array([start + timedelta(days=rng.randint(0, 3650)) for _ in range(n)], pa.date32())
    if code == "T":
        start = datetime(2020, 1, 1)
        return pa.array([start + timedelta(minutes=rng.randint(0, 2_000_000)) for _ in range(n)], pa.timestamp("s"))
    if code == "L":
        return pa.array([rng.random() < 0.7 for _ in range(n)], pa.bool_())
    if "代码" in name or "编号" in name or "证号" in name:
        return pa.array([f"91360{rng.randint(100, 999)}MA{i:07d}{rng.choice('0123456789X')}" for i in range(n)])
    if "名称" in name:
        return pa.array([f"江西{rng.choice('赣鄱洪都豫章庐山井冈')}{entry_name[:4]}样例单位{i:04d}" for i in range(n)])
    if "姓名" in name or "负责人" in name or "代表人" in name:
        return pa.array([rng.choice(SURNAMES) + rng.choice("伟芳娜敏静丽强磊军洋") for _ in range(n)])
    if "地址" in name or "住所" in name:
        return pa.array([f"江西省{rng.choice(PLACES)}{rng.randint(1, 300)}号" for _ in range(n)])
    if "电话" in name:
        return pa.array([f"0791-8{rng.randint(1_000_000, 9_999_999)}" for _ in range(n)])
    categories = [f"{name}{k}类" for k in "甲乙丙丁"]
    return pa.array([rng.choice(categories) for _ in range(n)])


def _generated_source(
    session: Session,
    entry: CatalogEntry,
    items: list[DataItem],
    *,
    settings: Settings,
    rng: random.Random,
    actor: Actor,
) -> None:
    """A Parquet file of the entry's items in the provider's upload area, registered and mounted."""
    rows = rng.randint(300, 3000)
    columns = [i for i in items if i.column_name]
    table = pa.table({str(i.column_name): _values(i, rows, rng, entry.name) for i in columns})
    directory = lake_service.upload_dir(data_dir=Path(settings.data_dir), org_id=entry.provider_org_id)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"open-{entry.code.replace('/', '-')}.parquet"
    pq.write_table(table, path)
    source = lake_service.register_source(
        session,
        actor=actor,
        data_dir=Path(settings.data_dir),
        source_in=DataSourceIn.model_validate(
            {
                "name": f"开放数据文件：{entry.name}（{entry.code}）"[:100],
                "kind": "parquet",
                "owner_org_id": entry.provider_org_id,
                "options": {"path": str(path)},
            }
        ),
    )
    mounting.mount_table(
        session,
        actor=actor,
        entry_id=entry.id,
        mount_in=mounting.TableMountIn(source_id=source.id, table=path.name, allow_problems=True),
    )


def seed(
    session: Session,
    *,
    settings: Settings,
    rng: random.Random,
    actor: Actor = SYSTEM_ACTOR,
    max_datasets: int = 40,
    usage_days: int = 45,
    today: date | None = None,
) -> dict[str, Any]:
    """Open up to ``max_datasets`` published entries; returns counts."""
    today = today or local_today()
    entries = list(
        session.scalars(
            select(CatalogEntry)
            .where(CatalogEntry.status == "published", CatalogEntry.opening_type.in_(vocab.OPENABLE))
            .order_by(CatalogEntry.code)
        )
    )
    opened: list[str] = []
    for entry in entries:
        if len(opened) >= max_datasets:
            break
        options = opendata_service.publish_options(session, actor=actor, entry_id=entry.id)
        if options.existing is not None:
            continue
        openable = [o for o in options.items if o.openable and o.default_rule != "suppress"]
        if not openable:
            continue
        if not options.resources:
            v = catalog_service.display_version(session, entry)
            _generated_source(session, entry, list(v.items), settings=settings, rng=rng, actor=actor)
            options = opendata_service.publish_options(session, actor=actor, entry_id=entry.id)
        v = options.version
        key = _key_for([i for i in v.items if i.key in {o.key for o in openable}])
        dataset = opendata_service.publish(
            session,
            actor=actor,
            publish_in=PublishIn(
                entry_id=entry.id,
                resource_id=options.resources[0].id,
                field=_field_for(v.name, list(v.tags or [])),
                licence=rng.choice([vocab.DEFAULT_LICENCE, vocab.DEFAULT_LICENCE, "CC-BY-4.0"]),
                items=[ItemChoice(item_key=o.key) for o in openable],
                key_item=key.key if key else None,
                contact=f"{entry.provider.short_name or entry.provider.name}数据管理处 {_phone(rng)}",
            ),
            data_dir=Path(settings.data_dir),
        )
        popularity = rng.random() ** 2
        for back in range(usage_days):
            views = int(rng.randint(0, 60) * popularity)
            if views:
                opendata_service.record_usage(
                    session,
                    dataset_id=dataset.id,
                    views=views,
                    downloads=views // rng.randint(3, 8),
                    api_calls=int(views * rng.random() * 3),
                    bytes_sent=views * rng.randint(20_000, 400_000),
                    day=today - timedelta(days=back),
                )
        opened.append(dataset.id)
    return {"datasets": len(opened), "candidates": len(entries)}
