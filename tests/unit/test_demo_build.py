"""The demo province is built through the real services and holds what a newcomer should see."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from stdnum.cn import ric

from zhengshu.catalog.models import CatalogEntry, MountedResource
from zhengshu.core.config import Settings
from zhengshu.core.db import Database
from zhengshu.core.timeutil import local_today, to_local
from zhengshu.demand.models import Authorization, DataApplication, DataRequest
from zhengshu.demo import source_data
from zhengshu.demo.builder import build_demo
from zhengshu.exchange.files.models import FerryExport, FilePackage
from zhengshu.exchange.tables.models import SyncJob, SyncRun
from zhengshu.gateway.models import GatewayApp, GatewayService
from zhengshu.lake.connectors import TableRef
from zhengshu.lake.models import DataSource
from zhengshu.lake.service import connector_for
from zhengshu.objection.models import Correction, Objection
from zhengshu.opendata.models import OpenDataset
from zhengshu.opendata.public_models import PublicAccount
from zhengshu.org.models import Organization, Region, User
from zhengshu.search.models import SearchDoc
from zhengshu.workflow import service as workflow
from zhengshu.workflow.models import Ticket

APPLICATION_STATES = {
    "compliance",
    "provider_review",
    "supplement",
    "coordination",
    "decided",
    "approved",
    "closed",
    "rejected",
    "withdrawn",
}
REQUEST_STATES = {"submitted", "compiling", "not_held", "refused", "coordination", "fulfilled", "withdrawn"}
OBJECTION_STATES = {"raised", "verifying", "escalated", "answered", "arbitrating", "archived", "withdrawn"}


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
        source_mounts = {(e.name, m.table_name) for m in mounts for e in [s.get(CatalogEntry, m.entry_id)] if e}
        assert {(name, table) for name, _, table in source_data.MOUNTS} <= source_mounts
        assert all(m.check_ok and m.row_count for m in mounts)
        police = next(src for src in s.scalars(select(DataSource)) if src.name.startswith("省公安厅"))
        people = connector_for(police).read_arrow(TableRef(None, "rk_jbxx"), ["sfzh"], 500)
        resident_ids = people.column("sfzh").to_pylist()
        assert len(resident_ids) == 500 and all(ric.is_valid(v) for v in resident_ids)
        _assert_workflows(s)
        _assert_exchange_and_open_data(s)
    database.dispose()


def _assert_exchange_and_open_data(s: Session) -> None:
    """Every delivery channel and the open-data portal have something to show on first run."""
    assert s.scalar(select(func.count()).select_from(GatewayService)) and s.scalar(
        select(func.count()).select_from(GatewayApp)
    )
    # the story's nightly table sync has run once, from 市场监管局's source into 人社厅's target
    (job,) = s.scalars(select(SyncJob)).all()
    runs = s.scalars(select(SyncRun).where(SyncRun.job_id == job.id)).all()
    assert [r.status for r in runs] == ["succeeded"] and runs[0].rows_written > 0
    assert s.scalar(select(func.count()).select_from(FilePackage)) and s.scalar(
        select(func.count()).select_from(FerryExport)
    )
    datasets = s.scalars(select(OpenDataset)).all()
    assert len(datasets) >= 10 and any(d.published_version_id for d in datasets)
    assert s.scalar(select(func.count()).select_from(PublicAccount)) >= 2


def _org(s: Session, short_name: str) -> Organization:
    return s.scalars(select(Organization).where(Organization.short_name == short_name)).one()


def _assert_workflows(s: Session) -> None:
    """Applications, authorizations, data requests and objections in every state, and the story."""
    today = local_today()
    states = {(t.kind, t.state) for t in s.scalars(select(Ticket))}
    for kind, expected in (
        ("data_application", APPLICATION_STATES),
        ("data_request", REQUEST_STATES),
        ("data_objection", OBJECTION_STATES),
    ):
        assert {(kind, st) for st in expected} <= states, kind

    apps = s.scalars(select(DataApplication)).all()
    assert any(a.escalated and a.state == "coordination" and a.decided_on is None for a in apps), "escalated review"
    assert any(a.state == "coordination" and a.decided_on is not None for a in apps), "appealed refusal"
    assert any(a.state == "decided" and a.outcome == "partial" for a in apps)
    assert any(i.status == "granted" for a in apps for i in a.items), "items granted by rule"
    overdue_kinds = {t.kind for t in workflow.overdue(s, as_of=today)}
    assert {"data_application", "data_request"} <= overdue_kinds

    auths = s.scalars(select(Authorization)).all()
    assert {"active", "suspended", "revoked"} <= {a.status for a in auths}
    assert any(a.status == "active" and today <= a.end_on <= today + timedelta(days=30) for a in auths)
    # a partial approval authorizes exactly the approved items
    for a in apps:
        granted = {i.item_key for i in a.items if i.status in ("approved", "granted")}
        authorized = {i.item_key for auth in auths if auth.application_id == a.id for i in auth.items}
        assert granted == authorized, a.entry_name

    reqs = s.scalars(select(DataRequest)).all()
    assert any(r.escalated and r.state == "coordination" for r in reqs)
    assert any(r.state == "fulfilled" and r.entry_id for r in reqs)
    assert any(r.state == "refused" and r.legal_basis for r in reqs)

    # the story: 人社厅 applies for three items of 市场监管局's 企业登记信息 and is authorized
    hrss, market = _org(s, "省人社厅"), _org(s, "省市场监管局")
    story = next(
        a
        for a in apps
        if a.consumer_org_id == hrss.id and a.provider_org_id == market.id and a.entry_name == "企业登记信息"
    )
    assert story.state == "approved" and len(story.items) == 3
    (auth,) = [a for a in auths if a.application_id == story.id]
    assert auth.status == "active" and {i.name for i in auth.items} == {i.name for i in story.items}
    # …then objects to a wrong address on a real record of the mounted table, and 市场监管局 corrects it
    objection = s.scalars(
        select(Objection).where(
            Objection.objector_org_id == hrss.id,
            Objection.provider_org_id == market.id,
            Objection.target_type == "record",
        )
    ).one()
    assert objection.state == "archived" and objection.resolution == "corrected" and objection.attachments
    correction = s.scalars(select(Correction).where(Correction.objection_id == objection.id)).one()
    assert correction.corrected_by_org_id == market.id and correction.item_name == "住所"
    resource = s.get(MountedResource, objection.resource_id)
    assert resource is not None and resource.table_name == "qy_djxx"
    source = s.get(DataSource, resource.source_id)
    assert source is not None
    rows = connector_for(source).read_arrow(TableRef(None, "qy_djxx"), ["tyshxydm", "zs"], 5000).to_pylist()
    assert {"tyshxydm": objection.record_key, "zs": correction.old_value} in rows
    assert correction.corrected_value != correction.old_value
    # objections on one record are grouped; history happened on past days, not all "just now"
    groups = Counter(o.group_id for o in s.scalars(select(Objection)))
    assert max(groups.values()) >= 2
    story_ticket = s.get(Ticket, story.ticket_id)
    assert story_ticket is not None
    assert all(to_local(e.at).date() < today for e in story_ticket.events)
