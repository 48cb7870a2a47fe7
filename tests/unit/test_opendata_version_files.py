"""A published copy's file lives and dies with its version row: a refresh rolled back leaves no file behind, and
older copies are removed only once the version replacing them is committed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.factories import World
from tests.unit.test_opendata_fixtures import publish_dataset
from zhengshu.core.config import Settings
from zhengshu.core.db import Database
from zhengshu.opendata import service as opendata_service
from zhengshu.opendata.models import OpenDataset


class Boom(Exception):
    pass


def _files(settings: Settings, dataset_id: str) -> list[str]:
    return sorted(p.name for p in opendata_service.dataset_dir(Path(settings.data_dir), dataset_id).glob("v*"))


def _refresh(db: Database, world: World, settings: Settings, dataset_id: str, *, fail: bool = False) -> None:
    with db.session() as s:
        opendata_service.refresh(
            s, actor=world["market_officer"], dataset_id=dataset_id, data_dir=Path(settings.data_dir)
        )
        if fail:
            raise Boom  # the request fails after the copy was written: the session rolls back


def test_a_refresh_rolled_back_leaves_no_file_and_the_next_one_succeeds(
    db: Database, world: World, settings: Settings
) -> None:
    ds = publish_dataset(db, world, settings, n=12)
    assert _files(settings, ds.dataset_id) == ["v1.parquet"]
    with pytest.raises(Boom):
        _refresh(db, world, settings, ds.dataset_id, fail=True)
    assert _files(settings, ds.dataset_id) == ["v1.parquet"]
    with db.session() as s:
        dataset = s.get(OpenDataset, ds.dataset_id)
        assert dataset is not None and dataset.version_number == 1
    _refresh(db, world, settings, ds.dataset_id)
    assert _files(settings, ds.dataset_id) == ["v1.parquet", "v2.parquet"]


def test_older_copies_are_removed_only_when_the_new_version_commits(
    db: Database, world: World, settings: Settings
) -> None:
    ds = publish_dataset(db, world, settings, n=12)
    _refresh(db, world, settings, ds.dataset_id)
    derived = opendata_service.dataset_dir(Path(settings.data_dir), ds.dataset_id) / "v1.csv"
    derived.write_bytes(b"cached download")
    with pytest.raises(Boom):  # v3 would retire v1, but it is rolled back: v1 and its download stay
        _refresh(db, world, settings, ds.dataset_id, fail=True)
    assert _files(settings, ds.dataset_id) == ["v1.csv", "v1.parquet", "v2.parquet"]
    _refresh(db, world, settings, ds.dataset_id)
    assert _files(settings, ds.dataset_id) == ["v2.parquet", "v3.parquet"]
