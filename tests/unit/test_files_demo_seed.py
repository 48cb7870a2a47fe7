"""The demo's file exchange and ferry seed runs through the real services: signed packages, a verified receipt,
a trusted peer, an approved export written to the outbound directory and one waiting for approval."""

from __future__ import annotations

import random

from sqlalchemy import select

from tests.factories import World
from zhengshu.core.config import Settings
from zhengshu.core.db import Database
from zhengshu.demo.files_seed import seed_files
from zhengshu.exchange.files import ferry
from zhengshu.exchange.files import service as files_service
from zhengshu.exchange.files.models import FerryExport, FilePackage
from zhengshu.org.models import Organization, User


def test_seed_files(db: Database, world: World, settings: Settings) -> None:
    with db.session() as s:
        org = {key: s.get(Organization, world.orgs[key]) for key in ("market", "hrss", "nc_police", "jj_authority")}
        orgs = {"prov.scjg": org["market"], "prov.rst": org["hrss"], "prov.mzt": org["jj_authority"]}
        by_name = {u.username: u for u in s.scalars(select(User))}
        users = {
            "officer_scjg": by_name["market_officer"],
            "officer_rst": by_name["hrss_officer"],
            "officer_gat": by_name["nc_police_officer"],
            "reviewer": by_name["reviewer"],
        }
        counts = seed_files(s, orgs=orgs, users=users, settings=settings, rng=random.Random(1))  # type: ignore[arg-type]
        assert counts == {"packages": 2, "ferry_exports": 2}
    with db.session() as s:
        packages = s.scalars(select(FilePackage).order_by(FilePackage.created_at)).all()
        for package in packages:
            files_service.verify_package(s, package, settings)
        assert [len(p.receipts) for p in packages] == [1, 0]
        assert packages[0].receipts[0].verified and packages[0].receipts[0].complete
        states = sorted(e.state for e in s.scalars(select(FerryExport)))
        assert states == ["approved", "submitted"]
        assert len(ferry.pending_bundles(settings, ferry.outbox_dir(settings))) == 1
