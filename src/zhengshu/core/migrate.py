"""Programmatic Alembic: ``zhengshu db upgrade`` and the tests use these."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect

from zhengshu.core.db import Database

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(database: Database, revision: str = "head") -> None:
    with database.engine.begin() as connection:
        cfg = alembic_config(database.url)
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


def downgrade(database: Database, revision: str) -> None:
    with database.engine.begin() as connection:
        cfg = alembic_config(database.url)
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, revision)


def current(database: Database) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with database.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head() -> str | None:
    """The newest revision the code ships."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def is_empty(database: Database) -> bool:
    return not inspect(database.engine).get_table_names()
