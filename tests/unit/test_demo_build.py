"""The demo province is built through the real services and holds what a newcomer should see."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select
from stdnum.cn import ric

from zhengshu.catalog.models import CatalogEntry, MountedResource
from zhengshu.core.config import Settings
from zhengshu.core.db import Database
from zhengshu.demo.builder import build_demo
from zhengshu.lake.connectors import TableRef
from zhengshu.lake.models import DataSource
from zhengshu.lake.service import connector_for
from zhengshu.org.models import Organization, Region, User
from zhengshu.search.models import SearchDoc
from zhengshu.workflow import service as workflow
from zhengshu.workflow.models import Ticket


def test_demo_province(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, secret_key="demo-test-secret-0123456789abcdef", embedded_jobs=False)
    database = Database(settings.resolved_database_url())
    summary = build_demo(database, settings=settings, seed=7)
    assert summary["entries"] >= 300
    with database.session() as s:
        cities = s.scalars(select(Region).where(Region.level == "city", Region.valid_to.is_(None))).all()
        assert len(cities) == 11
        provincial = s.scalars(select(Organization).where(Organization.region_code == "360000")).all()
        assert len(provincial) >= 15
        city_depts = s.scalars(select(Organization).where(Organization.region_code != "360000")).all()
        assert city_depts and all(o.parent_id for o in city_depts if not o.is_data_authority)
        roles = {r for u in s.scalars(select(User)) for r in u.roles}
        assert roles == {"admin", "reviewer", "officer", "user"}
        statuses = dict(s.execute(select(CatalogEntry.status, func.count()).group_by(CatalogEntry.status)).all())
        assert set(statuses) == {"draft", "submitted", "returned", "published", "withdrawn"}
        states = {(t.kind, t.state) for t in s.scalars(select(Ticket))}
        assert {("catalog_review", st) for st in ("draft", "submitted", "returned", "published")} <= states
        assert ("catalog_duty_update", "open") in states and ("catalog_recheck", "open") in states
        assert workflow.overdue(s), "some tickets are overdue"
        # every entry is searchable and every mounted table passes its column check
        assert s.scalar(select(func.count()).select_from(SearchDoc)) == summary["entries"]
        mounts = s.scalars(select(MountedResource)).all()
        assert len(mounts) == 5 and all(m.check_ok and m.row_count for m in mounts)
        police = next(src for src in s.scalars(select(DataSource)) if src.name.startswith("省公安厅"))
        people = connector_for(police).read_arrow(TableRef(None, "rk_jbxx"), ["sfzh"], 500)
        resident_ids = people.column("sfzh").to_pylist()
        assert len(resident_ids) == 500 and all(ric.is_valid(v) for v in resident_ids)
    database.dispose()
