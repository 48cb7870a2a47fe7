"""Notifications: every ticket move notifies whoever must act next (catalog review here, any machine
tomorrow), read state is per user, and a registered channel receives notifications after commit."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.factories import World, entry_in
from tests.statements import starting, statements
from zhengshu.catalog import service as catalog_service
from zhengshu.core.db import Database
from zhengshu.core.events import process_pending
from zhengshu.notify import service as notify_service
from zhengshu.notify.channels import channels, register_channel, unregister_channel
from zhengshu.notify.models import Notification
from zhengshu.org.models import User
from zhengshu.security.actor import Role


def deliver(db: Database) -> None:
    """Run the outbox consumers as the worker would (twice: notifications emit their own event)."""
    process_pending(db.session_factory)
    process_pending(db.session_factory)


def mine(db: Database, world: World, who: str, **kwargs: Any) -> list[Notification]:
    with db.session() as s:
        return list(s.scalars(notify_service.list_query(world[who], **kwargs)))


def unread(db: Database, world: World, who: str) -> int:
    with db.session() as s:
        return notify_service.unread_count(s, actor=world[who])


def submitted_entry(db: Database, world: World) -> str:
    with db.session() as s:
        entry = catalog_service.create(s, actor=world["market_officer"], entry_in=entry_in())
        catalog_service.submit(s, actor=world["market_officer"], entry_id=entry.id)
        return entry.id


def test_submission_notifies_the_authoritys_reviewers_only(db: Database, world: World) -> None:
    entry_id = submitted_entry(db, world)
    assert unread(db, world, "reviewer") == 0  # nothing before the outbox runs (after commit)
    deliver(db)
    [n] = mine(db, world, "reviewer")
    assert n.title == "新的待办：目录审核：企业登记信息"
    assert n.link == f"/catalog/{entry_id}" and n.kind == "ticket.todo"
    assert n.org_id == world.orgs["authority"] and n.role_list == [Role.REVIEWER.value]
    assert "待审核" in n.body and "前办理" in n.body
    # the submitter's organization did the move itself; the admin of the authority is not a reviewer
    for who in ("market_officer", "market_user", "admin", "hrss_officer", "nc_reviewer"):
        assert mine(db, world, who) == [], who


def test_approval_notifies_the_whole_provider_organization(db: Database, world: World) -> None:
    entry_id = submitted_entry(db, world)
    deliver(db)
    with db.session() as s:
        catalog_service.approve(s, actor=world["reviewer"], entry_id=entry_id, comment="同意发布")
    deliver(db)
    for who in ("market_officer", "market_user"):
        [n] = mine(db, world, who)
        assert n.title == "办理结果：目录审核：企业登记信息" and n.kind == "ticket.result"
        assert "审核通过并发布" in n.body and "同意发布" in n.body
    assert len(mine(db, world, "reviewer")) == 1  # only the earlier to-do: the approver is not told


def test_return_notifies_the_providers_officers_with_the_reason(db: Database, world: World) -> None:
    entry_id = submitted_entry(db, world)
    with db.session() as s:
        catalog_service.return_for_revision(s, actor=world["reviewer"], entry_id=entry_id, reason="摘要过于简略")
    deliver(db)
    [n] = mine(db, world, "market_officer")
    assert n.title == "退回修改：目录审核：企业登记信息" and n.kind == "ticket.returned"
    assert "摘要过于简略" in n.body
    assert mine(db, world, "market_user") == []  # the returned state is handled by officers
    # submitted and returned before delivery: the submission's to-do is stale and not sent
    assert mine(db, world, "reviewer") == []


def test_read_state_is_per_user(db: Database, world: World) -> None:
    with db.session() as s:
        org_wide = notify_service.notify(s, org_id=world.orgs["market"], title="全单位通知", link="/catalog").id
        personal = notify_service.notify(s, user_id=world["market_user"].user_id, title="个人通知").id
    assert unread(db, world, "market_officer") == 1 and unread(db, world, "market_user") == 2
    with db.session() as s:
        n, read_at = notify_service.mark_read(s, actor=world["market_officer"], notification_id=org_wide)
        assert n.id == org_wide and read_at is not None
        # reading again keeps the first time
        assert notify_service.mark_read(s, actor=world["market_officer"], notification_id=org_wide)[1] == read_at
    assert unread(db, world, "market_officer") == 0
    assert unread(db, world, "market_user") == 2  # the colleague has not read it
    # unread first: the user's list puts the read one last once they read the personal one
    with db.session() as s:
        notify_service.mark_read(s, actor=world["market_user"], notification_id=personal)
    assert [n.id for n in mine(db, world, "market_user")] == [org_wide, personal]
    assert [n.id for n in mine(db, world, "market_user", unread_only=True)] == [org_wide]
    with db.session() as s:
        assert notify_service.mark_all_read(s, actor=world["market_user"]) == 1
        assert notify_service.mark_all_read(s, actor=world["market_user"]) == 0
    assert unread(db, world, "market_user") == 0
    # someone else's notification looks missing
    with db.session() as s, pytest.raises(Exception) as exc:
        notify_service.mark_read(s, actor=world["hrss_officer"], notification_id=personal)
    assert getattr(exc.value, "code", "") == "notify.not_found"


def test_role_filter_and_recipients(db: Database, world: World) -> None:
    with db.session() as s:
        n = notify_service.notify(s, org_id=world.orgs["market"], roles=[Role.OFFICER], title="仅数据专员")
        assert [u.username for u in notify_service.recipients(s, n)] == ["market_officer"]
        everyone = notify_service.notify(s, org_id=world.orgs["market"], title="全体")
        assert [u.username for u in notify_service.recipients(s, everyone)] == ["market_officer", "market_user"]
    assert [x.title for x in mine(db, world, "market_officer")] == ["全体", "仅数据专员"]
    assert [x.title for x in mine(db, world, "market_user")] == ["全体"]
    with pytest.raises(ValueError), db.session() as s:
        notify_service.notify(s, title="无收件人")


class Collecting:
    name = "test-collect"

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, list[str]]] = []

    def send(self, notification: Notification, recipients: list[User]) -> None:
        self.calls.append((notification.id, notification.title, [u.username for u in recipients]))


class Broken:
    name = "test-broken"

    def send(self, notification: Notification, recipients: list[User]) -> None:
        raise RuntimeError("gateway down")


@pytest.fixture
def collecting() -> Iterator[Collecting]:
    broken = register_channel(Broken())
    channel = register_channel(Collecting())
    yield channel  # type: ignore[misc]
    unregister_channel(channel.name)
    unregister_channel(broken.name)


def test_registered_channels_receive_notifications_after_commit(
    db: Database, world: World, collecting: Collecting
) -> None:
    assert "page" in [c.name for c in channels()]
    with db.session() as s:
        nid = notify_service.notify(s, org_id=world.orgs["market"], roles=["officer"], title="渠道测试").id
        assert collecting.calls == []  # never inside the transaction
    process_pending(db.session_factory)
    # a failing channel registered before it did not stop this one
    assert collecting.calls == [(nid, "渠道测试", ["market_officer"])]
    process_pending(db.session_factory)
    assert len(collecting.calls) == 1  # delivered once

    # ticket notifications reach the channel too
    submitted_entry(db, world)
    deliver(db)
    assert collecting.calls[-1][1:] == ("新的待办：目录审核：企业登记信息", ["reviewer"])


def test_a_failed_change_sends_nothing(db: Database, world: World, collecting: Collecting) -> None:
    with pytest.raises(RuntimeError), db.session() as s:
        notify_service.notify(s, org_id=world.orgs["market"], title="回滚")
        raise RuntimeError("the change failed")
    deliver(db)
    assert collecting.calls == [] and unread(db, world, "market_officer") == 0


def test_notifications_are_written_together_with_their_events(
    db: Database, world: World, collecting: Collecting
) -> None:
    """``notify`` names the row and leaves the insert to the next flush: several notifications of one step go
    out in one statement, each with its ``notification.created`` event (a channel besides the page is
    registered); a rollback leaves neither."""
    from sqlalchemy import func, select

    from zhengshu.core.events import OutboxEvent

    with db.session() as s:
        with statements(db) as seen:
            sent = [
                notify_service.notify(s, org_id=world.orgs[org], title=f"通知{n}", kind="ticket.todo")
                for n, org in enumerate(("market", "hrss", "authority"))
            ]
            assert seen == [], "nothing is written before the flush"
            s.flush()
        assert len(starting(seen, "INSERT INTO notification ")) == 1
        events = list(s.scalars(select(OutboxEvent).where(OutboxEvent.name == "notification.created")))
        assert sorted(e.payload["notification_id"] for e in events) == sorted(n.id for n in sent)
        s.rollback()
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Notification)) == 0
        assert s.scalar(select(func.count()).select_from(OutboxEvent)) == 0


def test_with_the_page_alone_no_event_is_written(db: Database, world: World) -> None:
    """The page shows the stored row; an event nobody would send anything for is not written."""
    from sqlalchemy import func, select

    from zhengshu.core.events import OutboxEvent

    assert [c.name for c in channels()] == ["page"]
    with db.session() as s:
        with statements(db) as seen:
            notify_service.notify(s, org_id=world.orgs["market"], title="仅页面")
            s.flush()
        assert starting(seen, "INSERT INTO outbox_event") == []
        s.commit()
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(OutboxEvent)) == 0
    assert unread(db, world, "market_officer") == 1
