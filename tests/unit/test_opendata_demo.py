"""The demo's open datasets: built from published, openable entries (generated front-end files where nothing is
mounted), searchable, and their copies hold only open items."""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow.parquet as pq

from tests.factories import World, published_entry
from tests.unit.test_opendata_fixtures import ITEMS, open_entry
from zhengshu.core.config import Settings
from zhengshu.core.db import Database
from zhengshu.demo import opendata_seed
from zhengshu.opendata import service as opendata_service
from zhengshu.opendata.models import OpenDataset, OpenDatasetUsage


def test_demo_opens_every_openable_entry_with_usage_history(db: Database, world: World, settings: Settings) -> None:
    open_entry(db, world, settings, n=25)  # mounted
    published_entry(db, world, name="公共场所卫生许可信息", opening_type="无条件开放", items=ITEMS[:2] + ITEMS[4:7])
    published_entry(db, world, name="内部考核信息", items=ITEMS)  # 不予开放: stays closed
    with db.session() as s:
        result = opendata_seed.seed(s, settings=settings, rng=random.Random(3), max_datasets=10)
    assert result == {"datasets": 2, "candidates": 2}
    with db.session() as s:
        datasets = {d.title: d for d in s.query(OpenDataset).all()}
        assert set(datasets) == {"市场主体登记信息", "公共场所卫生许可信息"}
        generated = datasets["公共场所卫生许可信息"]
        assert generated.field == "health" and generated.row_count >= 300
        copy = Path(settings.data_dir) / opendata_service.current_version(s, generated).file_path
        assert pq.read_schema(copy).names == ["tyshxydm", "qymc", "hylx", "zczb", "clrq"]
        mounted = datasets["市场主体登记信息"]
        assert (
            "mm"
            not in pq.read_schema(
                Path(settings.data_dir) / opendata_service.current_version(s, mounted).file_path
            ).names
        )
        assert s.query(OpenDatasetUsage).count() > 0
        hits = list(s.scalars(opendata_service.public_query(opendata_service.PublicFilters(q="卫生许可"))))
        assert [d.title for d in hits] == ["公共场所卫生许可信息"]
