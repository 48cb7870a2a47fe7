"""Test data built through the real services."""

from __future__ import annotations

import random
from typing import Any

from zhengshu.catalog import service as catalog_service
from zhengshu.catalog.schemas import EntryIn
from zhengshu.core.db import Database
from zhengshu.demo.identities import uscc
from zhengshu.org import service as org_service
from zhengshu.org.schemas import OrganizationIn, RegionIn, UserIn
from zhengshu.security.actor import SYSTEM_ACTOR, Actor, Role

PASSWORD = "Passw0rd!2026"

REGIONS = [
    ("360000", "江西省", "province", None),
    ("360100", "南昌市", "city", "360000"),
    ("360102", "东湖区", "county", "360100"),
    ("360400", "九江市", "city", "360000"),
]

ORGS = {
    # key: (name, short name, region, is data authority, dept number)
    "authority": ("江西省数据局", "省数据局", "360000", True, "01"),
    "market": ("江西省市场监督管理局", "省市场监管局", "360000", False, "12"),
    "hrss": ("江西省人力资源和社会保障厅", "省人社厅", "360000", False, "13"),
    "nc_authority": ("南昌市数据局", "南昌市数据局", "360100", True, "01"),
    "nc_police": ("南昌市公安局", "南昌市公安局", "360100", False, "02"),
    "jj_authority": ("九江市数据局", "九江市数据局", "360400", True, "01"),
}

USERS = {
    # key: (username, display name, org key, roles)
    "admin": ("admin", "平台管理员", "authority", [Role.ADMIN]),
    "reviewer": ("reviewer", "省数据局审核员", "authority", [Role.REVIEWER]),
    "market_officer": ("market_officer", "市场监管数据专员", "market", [Role.OFFICER]),
    "market_user": ("market_user", "市场监管普通用户", "market", [Role.USER]),
    "hrss_officer": ("hrss_officer", "人社数据专员", "hrss", [Role.OFFICER]),
    "nc_reviewer": ("nc_reviewer", "南昌市审核员", "nc_authority", [Role.REVIEWER]),
    "nc_police_officer": ("nc_police_officer", "南昌公安数据专员", "nc_police", [Role.OFFICER]),
    "jj_reviewer": ("jj_reviewer", "九江市审核员", "jj_authority", [Role.REVIEWER]),
}


class World:
    def __init__(self) -> None:
        self.actors: dict[str, Actor] = {}
        self.orgs: dict[str, str] = {}
        self.password = PASSWORD

    def __getitem__(self, key: str) -> Actor:
        return self.actors[key]


def build_world(db: Database) -> World:
    world = World()
    rng = random.Random(7)
    with db.session() as s:
        for code, name, level, parent in REGIONS:
            org_service.upsert_region(
                s, actor=SYSTEM_ACTOR, region_in=RegionIn(code=code, name=name, level=level, parent_code=parent)
            )
        for key, (name, short, region, authority, number) in ORGS.items():
            org = org_service.create_organization(
                s,
                actor=SYSTEM_ACTOR,
                org_in=OrganizationIn(
                    name=name,
                    short_name=short,
                    uscc=uscc(rng, region_code=region, authority="1", org_type="1"),
                    region_code=region,
                    is_data_authority=authority,
                    dept_number=number,
                ),
            )
            world.orgs[key] = org.id
        for key, (username, display, org_key, roles) in USERS.items():
            user = org_service.create_user(
                s,
                actor=SYSTEM_ACTOR,
                user_in=UserIn(
                    username=username, display_name=display, password=PASSWORD, org_id=world.orgs[org_key], roles=roles
                ),
            )
            world.actors[key] = org_service.actor_for(user)
    return world


def entry_in(**overrides: Any) -> EntryIn:
    data: dict[str, Any] = {
        "name": "企业登记信息",
        "class_code": "102001",
        "summary": "全省市场主体登记注册信息，包括企业名称、统一社会信用代码、法定代表人等",
        "resource_format": "数据库",
        "sharing_type": "有条件共享",
        "sharing_condition": "用于市场监管、社会保障等法定职责",
        "sharing_way": "接口",
        "opening_type": "不予开放",
        "update_cycle": "每日",
        "tags": ["企业", "登记"],
        "items": [
            {"name": "统一社会信用代码", "column_name": "tyshxydm", "data_type": "C", "length": 18},
            {"name": "企业名称", "column_name": "qymc", "data_type": "C", "length": 200},
            {"name": "法定代表人", "column_name": "fddbr", "data_type": "C", "length": 50, "sensitivity": "一般3"},
        ],
    }
    data.update(overrides)
    return EntryIn.model_validate(data)


def published_entry(db: Database, world: World, **overrides: Any) -> str:
    with db.session() as s:
        entry = catalog_service.create(s, actor=world["market_officer"], entry_in=entry_in(**overrides))
        catalog_service.submit(s, actor=world["market_officer"], entry_id=entry.id)
        catalog_service.approve(s, actor=world["reviewer"], entry_id=entry.id)
        return entry.id


def token_for(client: Any, username: str) -> dict[str, str]:
    response = client.post("/api/v1/auth/token", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}
