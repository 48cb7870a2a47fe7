"""MariaDB → PostgreSQL in every mode on the real servers: full (with deletes), incremental by update time
(ties on the cursor), change detection (inserts, updates, deletes), masking per the authorization, and the
next run refused once the authorization is revoked."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from tests.factories import World
from tests.sync.helpers import (
    DELIVERED,
    authorize,
    by_key_and_hash,
    create_job,
    expected_rows,
    make_rows,
    mariadb,
    mariadb_create,
    mariadb_rows,
    pg,
    pg_count,
    pg_target,
    pg_target_rows,
)
from zhengshu.core.config import Settings
from zhengshu.core.db import Database
from zhengshu.demand import authorizations
from zhengshu.exchange.tables import runner
from zhengshu.exchange.tables.models import SyncRun

pytestmark = [pytest.mark.mariadb, pytest.mark.postgres]


def run(db: Database, world: World, settings: Settings, job_id: str) -> SyncRun:
    return runner.run_job(db, actor=world["hrss_officer"], job_id=job_id, settings=settings)


def assert_equal_to_source(my_table: str, schema: str, table: str) -> None:
    source = expected_rows(mariadb_rows(my_table))
    target = pg_target_rows(schema, table)
    assert by_key_and_hash(target) == by_key_and_hash(source)


@pytest.mark.parametrize("mode", ["full", "incremental", "cdc"])
def test_every_mode_delivers_the_masked_authorized_items(
    db: Database, world: World, settings: Settings, my_table: str, pg_schema: str, mode: str
) -> None:
    mariadb_create(my_table, make_rows(1_200))
    _, _, auth_id, keys = authorize(db, world, kind="mysql", table=my_table)
    target_id = pg_target(db, world, pg_schema)
    job_id = create_job(
        db, world, settings, authorization_id=auth_id, target_id=target_id, keys=keys, mode=mode, table="ry"
    )

    first = run(db, world, settings, job_id)
    assert first.status == "succeeded", first.error
    assert (first.rows_read, first.rows_written, first.rows_quarantined) == (1_200, 1_200, 0)
    assert first.batches >= 3 and first.bytes > 0
    assert_equal_to_source(my_table, pg_schema, "ry")
    # only the authorized items leave the source; the suppressed one never reaches the target
    columns = [
        r[0]
        for r in pg(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = 'ry' "
            "ORDER BY ordinal_position",
            (pg_schema,),
        )
    ]
    assert columns == DELIVERED
    [(xm, sjhm)] = pg(f'SELECT xm, sjhm FROM "{pg_schema}".ry WHERE id = 1')
    [(raw_xm, raw_sjhm)] = mariadb(f"SELECT xm, sjhm FROM `{my_table}` WHERE id = 1")
    assert xm == raw_xm[0] + "*" and sjhm == raw_sjhm[:3] + "****" + raw_sjhm[-4:]

    # changes at the source: an update, new rows sharing the last update time, and (except incremental) a delete
    mariadb(f"UPDATE `{my_table}` SET xm = '欧阳娜娜', je = 1.50, gxsj = '2026-11-02 09:00:00' WHERE id = 7")
    last = mariadb(f"SELECT MAX(gxsj) FROM `{my_table}`")[0][0]
    mariadb(
        f"INSERT INTO `{my_table}` VALUES (5000, '新人', '13900000000', 3.00, '1990-01-01', '2026-11-02 09:00:00', ''),"
        f"(5001, '新人二', '13900000001', 4.00, '1990-01-02', %s, '')",
        (last,),
    )
    mariadb(f"DELETE FROM `{my_table}` WHERE id = 9")
    second = run(db, world, settings, job_id)
    assert second.status == "succeeded", second.error
    if mode == "incremental":
        # only what changed is read: the update and the two new rows (deletes need change detection)
        assert second.rows_read == 3 and second.rows_written == 3
        assert pg_count(pg_schema, "ry") == 1_202
        # row 9, deleted at the source, stays in the consumer's copy
        target = pg_target_rows(pg_schema, "ry")
        assert 9 in target
        del target[9]
        assert by_key_and_hash(target) == by_key_and_hash(expected_rows(mariadb_rows(my_table)))
    else:
        assert_equal_to_source(my_table, pg_schema, "ry")
        assert pg_count(pg_schema, "ry") == 1_201
        if mode == "cdc":
            assert (second.rows_written, second.rows_deleted) == (3, 1)
    [(xm, je)] = pg(f'SELECT xm, je FROM "{pg_schema}".ry WHERE id = 7')
    assert (xm, je) == ("欧***", Decimal("1.50"))

    third = run(db, world, settings, job_id)
    assert third.status == "succeeded"
    if mode != "full":
        assert third.rows_written == 0  # nothing changed: nothing moves


def test_a_revoked_authorization_stops_the_next_run(
    db: Database, world: World, settings: Settings, my_table: str, pg_schema: str
) -> None:
    mariadb_create(my_table, make_rows(50))
    _, _, auth_id, keys = authorize(db, world, kind="mysql", table=my_table)
    target_id = pg_target(db, world, pg_schema)
    job_id = create_job(
        db, world, settings, authorization_id=auth_id, target_id=target_id, keys=keys, mode="incremental", table="ry"
    )
    assert run(db, world, settings, job_id).status == "succeeded"
    with db.session() as s:
        authorizations.revoke(s, actor=world["market_officer"], authorization_id=auth_id, reason="申请方违规转供数据")
    mariadb(f"UPDATE `{my_table}` SET xm = '改名', gxsj = '2026-12-01 00:00:00' WHERE id = 1")
    refused = run(db, world, settings, job_id)
    assert refused.status == "refused" and refused.error_code == "sync.authorization_inactive"
    assert refused.error is not None and "已撤销" in refused.error and "违规转供" in refused.error
    assert refused.rows_written == 0
    [(xm,)] = pg(f'SELECT xm FROM "{pg_schema}".ry WHERE id = 1')
    assert xm != "改*"  # nothing left the source after the revocation
    with db.session() as s:
        runs = list(s.scalars(select(SyncRun).where(SyncRun.job_id == job_id).order_by(SyncRun.started_at)))
        assert [r.status for r in runs] == ["succeeded", "refused"]
