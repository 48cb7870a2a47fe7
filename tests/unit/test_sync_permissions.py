"""Allow/deny table of the table exchange actions: who may see, manage and run a job, and manage targets
(the list filters are exercised end to end in tests/api/test_sync_api.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tests.factories import World
from zhengshu.core.db import Database
from zhengshu.security import authz

ACTIONS = ["sync.view", "sync.manage", "sync.run", "sync.target"]
# actor → the actions it is allowed on a job consumed by 人社厅 from 市场监管局 (and a target of 人社厅)
TABLE = {
    "admin": {"sync.view", "sync.manage", "sync.run", "sync.target"},
    "hrss_officer": {"sync.view", "sync.manage", "sync.run", "sync.target"},  # the consumer's data officer
    "market_officer": {"sync.view"},  # the provider sees who takes its data
    "market_user": {"sync.view"},
    "reviewer": set(),  # the data authority follows authorizations, not the consumer's jobs
    "nc_police_officer": set(),
}


@pytest.mark.parametrize("who", sorted(TABLE))
def test_allow_deny_table(db: Database, world: World, who: str) -> None:
    job = SimpleNamespace(consumer_org_id=world.orgs["hrss"], provider_org_id=world.orgs["market"])
    target = SimpleNamespace(owner_org_id=world.orgs["hrss"])
    actor = world[who]
    allowed = {a for a in ACTIONS if authz.allowed(actor, a, target if a == "sync.target" else job)}
    assert allowed == TABLE[who]
