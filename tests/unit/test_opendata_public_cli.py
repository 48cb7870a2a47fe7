"""``zhengshu open-public …`` on a fresh SQLite data directory: approve an application as the provider's officer,
refusals exit 1 with the Chinese message, quotas, the responsibility list and statistics as JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from tests.api.test_opendata_public_support import make_dataset, register
from tests.factories import World, build_world
from zhengshu.cli import main as cli_main
from zhengshu.cli.open_public import open_public_app
from zhengshu.core.config import Settings, get_settings, reset_settings
from zhengshu.core.db import Base, Database
from zhengshu.opendata import conditional
from zhengshu.opendata.public_models import OpenAccessGrant, PublicAccount
from zhengshu.opendata.public_schemas import AccessApplicationIn

runner = CliRunner()
app = typer.Typer()
app.add_typer(open_public_app, name="open-public")


def run(*args: str) -> Any:
    return runner.invoke(app, ["open-public", *args])


@pytest.fixture
def cli_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Database, World, Settings]]:
    monkeypatch.setenv("ZHENGSHU_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ZHENGSHU_SECRET_KEY", "cli-test-secret-0123456789abcdef")
    monkeypatch.delenv("ZHENGSHU_DATABASE_URL", raising=False)
    reset_settings()
    monkeypatch.setattr(cli_main.console, "_width", 400)
    db = Database(get_settings().resolved_database_url())
    Base.metadata.create_all(db.engine)
    yield db, build_world(db), get_settings()
    db.dispose()
    reset_settings()


def test_provider_approves_on_the_command_line(cli_world) -> None:  # type: ignore[no-untyped-def]
    db, world, settings = cli_world
    dataset_id = make_dataset(db, world, settings, opening="有条件开放")
    account_id = register(db)
    with db.session() as s:
        app_id = conditional.apply(
            s,
            account=s.get(PublicAccount, account_id),
            application_in=AccessApplicationIn(dataset_id=dataset_id, items=["qymc", "zczb"], purpose="研究用途说明"),
            settings=settings,
        ).id

    result = run("applications", "--as", "market_officer", "--json")
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in json.loads(result.output)] == [app_id]

    result = run("approve", app_id, "--as", "hrss_officer")
    assert result.exit_code == 1 and "未找到该开放申请" in result.output
    result = run("refuse", app_id, "--as", "market_officer", "--reason", " ")
    assert result.exit_code == 1
    result = run("approve", app_id, "--as", "market_officer", "--item", "qymc", "--days", "7")
    assert result.exit_code == 0, result.output
    with db.session() as s:
        grant = s.query(OpenAccessGrant).one()
        assert grant.items == ["qymc"] and (grant.expires_at - grant.starts_at).days == 7


def test_quota_responsibility_and_stats(cli_world) -> None:  # type: ignore[no-untyped-def]
    db, world, settings = cli_world
    make_dataset(db, world, settings)
    register(db, username="acme")
    assert run("quota", "acme", "5", "--as", "market_officer").exit_code == 1  # administrators only
    result = run("quota", "acme", "5", "--as", "admin")
    assert result.exit_code == 0, result.output
    result = run("accounts", "--as", "admin", "--json")
    assert json.loads(result.output)[0]["daily_quota"] == 5
    assert run("quota", "acme", "lots", "--as", "admin").exit_code == 2
    result = run("disable", "acme", "--as", "admin")
    assert result.exit_code == 0
    with db.session() as s:
        assert s.query(PublicAccount).one().active is False

    result = run("responsibility", "--json")
    assert result.exit_code == 0 and json.loads(result.output)["planned"] == 0
    result = run("stats", "--days", "7", "--json")
    assert result.exit_code == 0
    assert json.loads(result.output)["departments"][0]["datasets"] == 1
