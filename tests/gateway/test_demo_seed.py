"""The demo seed makes a generated service on an entry with a mounted table and an app per authorized system,
and the seeded app can call the seeded service."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from tests.factories import World
from tests.gateway.conftest import PEOPLE, AppCreds, grant, signed
from zhengshu.catalog import mounting
from zhengshu.core.db import Database
from zhengshu.demo import gateway_seed
from zhengshu.lake import service as lake_service
from zhengshu.lake.schemas import DataSourceIn


def test_seed_makes_services_and_apps_that_work(
    gw_client: Any, db: Database, world: World, person_entry: str, tmp_path: Path
) -> None:
    path = tmp_path / "cb.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE cbxx (sfzh, xm, sjhm, zz, cbzt, yhkh)")
        conn.executemany("INSERT INTO cbxx VALUES (?, ?, ?, ?, ?, ?)", PEOPLE)
    with db.session() as s:
        src = lake_service.register_source(
            s,
            actor=world["admin"],
            source_in=DataSourceIn.model_validate(
                {
                    "name": "社保前置库",
                    "owner_org_id": world.orgs["market"],
                    "kind": "sqlite",
                    "options": {"path": str(path)},
                }
            ),
        )
        mounting.mount_table(
            s,
            actor=world["market_officer"],
            entry_id=person_entry,
            mount_in=mounting.TableMountIn(source_id=src.id, table="cbxx", allow_problems=True),
        )
    grant(db, world, person_entry, {"身份证号": "id_6_4", "参保状态": "none"})
    with db.session() as s:
        made = gateway_seed.seed(s)
    with db.session() as s:
        again = gateway_seed.seed(s)  # idempotent
    assert len(made["services"]) == 1 and again == {"services": [], "apps": []}
    [app] = made["apps"]
    assert app["org_id"] == world.orgs["hrss"] and app["name"] == "社会保险信息系统"
    creds = AppCreds(app["app_id"], app["access_key"], app["secret"])
    url = f"http://testserver/gw/{made['services'][0]}/{PEOPLE[0][0]}"
    r = gw_client.get(url, headers=signed(creds, "GET", url))
    assert r.status_code == 200, r.text
    assert r.json()["items"] == [{"sfzh": "360102********1234", "cbzt": "正常参保"}]
