"""``zhengshu gateway …`` on the test database: apps and secrets, services, OpenAPI, calls and figures, and
``sign`` producing a curl command the gateway accepts."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.factories import World
from tests.gateway.conftest import PEOPLE, database_url, grant
from zhengshu.cli.main import app
from zhengshu.core.config import reset_settings
from zhengshu.core.db import Database

runner = CliRunner()


@pytest.fixture
def cli_env(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("ZHENGSHU_DATABASE_URL", database_url(db))
    monkeypatch.setenv("ZHENGSHU_DATA_DIR", str(tmp_path))
    reset_settings()
    yield
    reset_settings()


def run(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, ["gateway", *args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


def test_control_plane_commands(
    cli_env: None, gw_client: Any, db: Database, world: World, person_entry: str, upstream: Any, tmp_path: Path
) -> None:
    definition = tmp_path / "svc.json"
    definition.write_text(
        json.dumps(
            {
                "entry_id": person_entry,
                "code": "person-status",
                "name": "个人参保状态查询",
                "kind": "proxy",
                "proxy": {
                    "upstream_url": f"{upstream[0]}/person/{{sfzh}}",
                    "params": [{"name": "sfzh", "location": "path"}],
                    "fields": {"status": "参保状态", "name": "姓名"},
                },
            },
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    assert "已登记接口服务" in run("register-service", str(definition), "--as", "market_officer")
    # the consumer may not register on the provider's entry: exit code 1 and the reason
    assert "无权" in run("register-service", str(definition), "--as", "hrss_officer", code=1)
    services = json.loads(run("services", "--as", "hrss_officer", "--json"))
    assert [s["code"] for s in services] == ["person-status"]
    spec = json.loads(run("openapi", "person-status", "--as", "hrss_officer"))
    assert "/person-status/{sfzh}" in spec["paths"]

    issued = json.loads(run("create-app", "社保核查系统", "--as", "hrss_officer", "--json"))
    assert issued["secret"] and issued["access_key"].startswith("AK")
    listed = run("apps", "--as", "hrss_officer", "--json")
    assert issued["secret"] not in listed and json.loads(listed)[0]["name"] == "社保核查系统"
    human = run("create-app", "另一系统", "--as", "hrss_officer")
    assert "密钥只显示这一次" in human

    grant(db, world, person_entry, {"参保状态": "none"})
    url = f"http://testserver/gw/person-status/{PEOPLE[0][0]}"
    curl = shlex.split(run("sign", "GET", url, f"--key={issued['access_key']}", f"--secret={issued['secret']}"))
    headers = dict(curl[i + 1].split(": ", 1) for i, part in enumerate(curl) if part == "-H")
    r = gw_client.get(url, headers=headers)
    assert r.status_code == 200 and r.json()["items"] == [{"cbzt": "正常参保"}]

    rotated = json.loads(
        run("rotate-secret", issued["app_id"], "--overlap-hours", "0", "--as", "hrss_officer", "--json")
    )
    assert rotated["secret"] != issued["secret"]
    curl = shlex.split(run("sign", "GET", url, f"--key={issued['access_key']}", f"--secret={issued['secret']}"))
    headers = dict(curl[i + 1].split(": ", 1) for i, part in enumerate(curl) if part == "-H")
    assert gw_client.get(url, headers=headers).json()["code"] == "gateway.unknown_key"

    gw_client.portal.call(gw_client.app.state.gateway.calls.flush)
    calls = json.loads(run("calls", "--as", "market_officer", "--json"))
    assert [c["code"] for c in calls] == ["gateway.unknown_key", "ok"]
    figures = json.loads(run("stats", "--as", "hrss_officer", "--json"))
    assert figures["calls"] == 1  # the refused call used a key no app holds any more
    assert "调用" in run("stats", "--as", "market_officer")
    assert "已停用" in run("disable-service", "person-status", "--as", "market_officer")
    assert "已启用" in run("enable-service", "person-status", "--as", "market_officer")
    run("revoke-key", issued["app_id"], rotated["access_key"], "--as", "hrss_officer")


def test_gateway_help_lists_the_commands() -> None:
    out = runner.invoke(app, ["gateway", "--help"]).output
    for command in ("create-app", "rotate-secret", "services", "register-service", "calls", "stats", "sign"):
        assert command in out
