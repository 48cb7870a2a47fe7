"""Responsibility lists, showcase and statistics services: their checks and edge cases."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from tests.api.test_opendata_public_support import make_dataset, register
from zhengshu.core.db import Database
from zhengshu.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from zhengshu.opendata import responsibility, showcase, stats
from zhengshu.opendata import service as opendata_service
from zhengshu.opendata.public_models import PublicAccount
from zhengshu.opendata.public_schemas import ResponsibilityIn, ShowcaseIn


def _item(world, **overrides: object) -> ResponsibilityIn:  # type: ignore[no-untyped-def]
    data: dict[str, object] = {
        "year": 2026,
        "org_id": world.orgs["market"],
        "title": "个体工商户登记信息",
        "planned_on": date(2026, 6, 30),
    }
    data.update(overrides)
    return ResponsibilityIn.model_validate(data)


def test_responsibility_items_are_checked(db: Database, world, settings) -> None:  # type: ignore[no-untyped-def]
    dataset_id = make_dataset(db, world, settings)
    with db.session() as s:
        entry_id = opendata_service.get_public(s, ref=dataset_id).entry_id
        with pytest.raises(Forbidden):
            responsibility.add(s, actor=world["market_officer"], item_in=_item(world))
        with pytest.raises(ValidationFailed) as caught:
            responsibility.add(
                s,
                actor=world["reviewer"],
                item_in=_item(world, org_id=world.orgs["hrss"], entry_id=entry_id, planned_on=date(2027, 1, 1)),
            )
        assert {e.field for e in caught.value.errors} == {"entry_id", "planned_on"}
        with pytest.raises(ValidationFailed):
            responsibility.add(s, actor=world["reviewer"], item_in=_item(world, field="no-such-field"))
        item = responsibility.add(s, actor=world["reviewer"], item_in=_item(world))
        with pytest.raises(Conflict):
            responsibility.add(s, actor=world["reviewer"], item_in=_item(world))
        # a plan matched by title when no entry was named
        responsibility.add(
            s, actor=world["reviewer"], item_in=_item(world, title="企业登记信息（开放）", planned_on=date(2026, 3, 1))
        )
        progress = responsibility.progress(s, year=2026, today=date(2026, 7, 15))
        statuses = {i["title"]: i["status"] for i in progress["departments"][0]["items"]}
        assert statuses == {"个体工商户登记信息": "overdue", "企业登记信息（开放）": "done"}
        assert (progress["planned"], progress["done"], progress["overdue"], progress["percent"]) == (2, 1, 1, 50)
        responsibility.delete(s, actor=world["reviewer"], item_id=item.id)
        with pytest.raises(NotFound):
            responsibility.delete(s, actor=world["reviewer"], item_id=item.id)
        assert 2026 in responsibility.years(s)


def test_showcase_screenshot_must_be_an_image_and_rejection_needs_a_reason(
    db: Database, world, settings, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    dataset_id = make_dataset(db, world, settings)
    account_id = register(db)
    body = ShowcaseIn(
        name="企业地图",
        description="基于企业登记数据的地图应用",
        link="https://example.com/x",
        dataset_ids=[dataset_id],
    )
    with db.session() as s:
        account = s.get(PublicAccount, account_id)
        with pytest.raises(ValidationFailed):
            showcase.submit(s, account=account, showcase_in=body, screenshot=b"GIF89a....", data_dir=tmp_path)
        with pytest.raises(ValidationFailed):
            too_big = b"\x89PNG\r\n\x1a\n" + b"0" * showcase.MAX_SCREENSHOT_BYTES
            showcase.submit(s, account=account, showcase_in=body, screenshot=too_big, data_dir=tmp_path)
        app = showcase.submit(
            s, account=account, showcase_in=body, screenshot=b"\xff\xd8\xff\xe0jpeg", data_dir=tmp_path
        )
        assert app.screenshot_path == f"{app.id}.jpg"
        assert (showcase.screenshot_dir(tmp_path) / app.screenshot_path).read_bytes() == b"\xff\xd8\xff\xe0jpeg"
        with pytest.raises(ValidationFailed):
            showcase.reject(s, actor=world["reviewer"], showcase_id=app.id, reason="")
        with pytest.raises(Forbidden):
            showcase.approve(s, actor=world["market_officer"], showcase_id=app.id)
        showcase.approve(s, actor=world["reviewer"], showcase_id=app.id)
        with pytest.raises(Conflict):
            showcase.approve(s, actor=world["reviewer"], showcase_id=app.id)
        showcase.reject(s, actor=world["reviewer"], showcase_id=app.id, reason="链接已失效")
        with pytest.raises(NotFound):
            showcase.get_public(s, showcase_id=app.id)


def test_statistics_periods_and_unpublished_datasets(db: Database, world, settings) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationFailed):
        stats.period(days=0)
    with pytest.raises(ValidationFailed):
        stats.period(start=date(2026, 2, 1), end=date(2026, 1, 1))
    with pytest.raises(ValidationFailed):
        stats.period(start=date(2020, 1, 1), end=date(2026, 1, 1))
    with pytest.raises(ValidationFailed):  # found by the API fuzz test: a 500 (OverflowError) before
        stats.period(days=2, end=date(1, 1, 1))
    assert stats.period(days=7, end=date(2026, 3, 7)).start == date(2026, 3, 1)
    dataset_id = make_dataset(db, world, settings)
    hidden_id = make_dataset(db, world, settings, name="已撤回的数据集")
    today = date(2026, 3, 7)
    with db.session() as s:
        opendata_service.record_usage(s, dataset_id=dataset_id, views=4, day=today)
        opendata_service.record_usage(s, dataset_id=hidden_id, views=99, day=today - timedelta(days=1))
        opendata_service.get_public(s, ref=hidden_id).status = "unpublished"
    with db.session() as s:
        span = stats.period(days=7, end=today)
        assert stats.totals(stats.daily(s, span=span))["views"] == 4  # withdrawn datasets are not counted
        assert [r["dataset_id"] for r in stats.top_datasets(s, span=span)] == [dataset_id]
        with pytest.raises(ValidationFailed):
            stats.top_datasets(s, span=span, metric="rows")
        assert stats.overview(s)["datasets"] == 1
