"""Public accounts, API keys, quotas and conditional access (有条件开放) through the services."""

from __future__ import annotations

import pytest

from tests.api.test_opendata_public_support import PUBLIC_PASSWORD, issue_key, make_dataset, register
from zhengshu.core.db import Database
from zhengshu.core.errors import Conflict, Forbidden, NotFound, Unauthenticated, ValidationFailed
from zhengshu.core.timeutil import local_today
from zhengshu.opendata import access, accounts, conditional
from zhengshu.opendata.models import OpenDataset
from zhengshu.opendata.public_models import PublicAccount
from zhengshu.opendata.public_schemas import AccessApplicationIn, AccountIn, DecisionIn
from zhengshu.security.passwords import MAX_FAILED_LOGINS
from zhengshu.workflow import service as workflow


def _account_in(**overrides: object) -> AccountIn:
    data: dict[str, object] = {
        "kind": "person",
        "username": "li.ming",
        "password": PUBLIC_PASSWORD,
        "display_name": "李明",
        "phone": "13800138000",
    }
    data.update(overrides)
    return AccountIn.model_validate(data)


# ---- registration and login -------------------------------------------------------------------------------


def test_registration_checks_identifiers_and_reports_every_problem_at_once(db: Database) -> None:
    with db.session() as s, pytest.raises(ValidationFailed) as caught:
        accounts.register(s, account_in=_account_in(password="short", id_number="360102199001011235"))
    fields = {e.field for e in caught.value.errors}
    assert fields == {"password", "id_number"}
    with db.session() as s, pytest.raises(ValidationFailed) as caught:
        accounts.register(
            s,
            account_in=_account_in(kind="company", username="acme", company_name="某公司", uscc="91360100MA00000000"),
        )
    assert [e.field for e in caught.value.errors] == ["uscc"]


def test_person_id_is_kept_masked_and_only_once(db: Database) -> None:
    import random
    from datetime import date

    from zhengshu.demo.identities import resident_id

    number = resident_id(random.Random(3), area_code="360102", birth=date(1990, 1, 1), male=True)
    with db.session() as s:
        account = accounts.register(s, account_in=_account_in(id_number=number))
        assert account.id_number_masked == number[:6] + "********" + number[-4:]
        assert number not in (account.id_number_digest or "")
    with db.session() as s, pytest.raises(ValidationFailed) as caught:
        accounts.register(s, account_in=_account_in(username="other", id_number=number))
    assert caught.value.errors[0].field == "id_number"


def test_company_needs_name_and_code_and_duplicates_are_refused(db: Database) -> None:
    with pytest.raises(ValueError):
        _account_in(kind="company")
    register(db, username="acme")
    with db.session() as s, pytest.raises(ValidationFailed) as caught:
        accounts.register(s, account_in=_account_in(username="ACME"))
    assert caught.value.errors[0].field == "username"


def test_login_locks_after_repeated_failures(db: Database) -> None:
    register(db, username="acme")
    for _ in range(MAX_FAILED_LOGINS):
        with db.session() as s, pytest.raises(Unauthenticated):
            try:
                accounts.authenticate(s, username="acme", password="wrong-password1")
            finally:
                s.commit()
    with db.session() as s, pytest.raises(Unauthenticated) as caught:
        accounts.authenticate(s, username="acme", password=PUBLIC_PASSWORD)
    assert caught.value.code == "opendata.locked"


def test_api_key_is_stored_as_digest_and_revocable(db: Database) -> None:
    account_id = register(db)
    raw = issue_key(db, account_id)
    assert raw.startswith("ok_")
    with db.session() as s:
        account = access.account_for_key(s, raw_key=raw)
        assert account.id == account_id
        key = access.api_key_of(account)
        assert key is not None and key.key_digest != raw and raw.startswith(key.prefix)
        accounts.revoke_key(s, account=account, key_id=key.id)
    with db.session() as s, pytest.raises(Unauthenticated):
        access.account_for_key(s, raw_key=raw)


# ---- quotas and grants ------------------------------------------------------------------------------------


def test_quota_per_key_per_day_is_enforced(db: Database, world, settings) -> None:  # type: ignore[no-untyped-def]
    dataset_id = make_dataset(db, world, settings)
    raw = issue_key(db, register(db), quota=2)
    with db.session() as s:
        dataset = s.get(OpenDataset, dataset_id)
        account = access.account_for_key(s, raw_key=raw)
        access.check_download(s, dataset=dataset, account=account, items=["qymc"], settings=settings)
        access.check_download(s, dataset=dataset, account=account, items=["qymc"], settings=settings)
        with pytest.raises(access.QuotaExceeded) as caught:
            access.check_download(s, dataset=dataset, account=account, items=["qymc"], settings=settings)
        assert caught.value.status == 429
        assert access.quota_status(account, key=access.api_key_of(account), settings=settings).remaining == 0
        # anonymous visitors of unconditionally open data have no quota to exhaust
        access.check_download(s, dataset=dataset, account=None, items=["qymc"], settings=settings)


def test_conditional_data_needs_an_approved_application(db: Database, world, settings) -> None:  # type: ignore[no-untyped-def]
    dataset_id = make_dataset(db, world, settings, opening="有条件开放")
    account_id = register(db)
    with db.session() as s:
        dataset = s.get(OpenDataset, dataset_id)
        account = s.get(PublicAccount, account_id)
        with pytest.raises(Unauthenticated):
            access.check_download(s, dataset=dataset, account=None, items=["qymc"], settings=settings)
        with pytest.raises(access.GrantRequired):
            access.check_download(s, dataset=dataset, account=account, items=["qymc"], settings=settings)
        app = conditional.apply(
            s,
            account=account,
            application_in=AccessApplicationIn(
                dataset_id=dataset.slug, items=["qymc", "zczb"], purpose="用于企业信用评估模型的研究", requested_days=30
            ),
            settings=settings,
        )
        with pytest.raises(Conflict):  # one pending application per dataset
            conditional.apply(
                s,
                account=account,
                application_in=AccessApplicationIn(dataset_id=dataset.id, purpose="再次申请同一数据集"),
                settings=settings,
            )
        # the provider's officer has it on the to-do list, with a due date
        todo = workflow.todo(s, actor=world["market_officer"], kinds=[conditional.KIND])
        assert [t.subject_id for t in todo] == [app.id]
        assert todo[0].due_on is not None
        with pytest.raises(access.GrantRequired):  # still pending
            access.check_download(s, dataset=dataset, account=account, items=["qymc"], settings=settings)
        with pytest.raises(NotFound):  # another department's officer cannot even see it
            conditional.approve(s, actor=world["hrss_officer"], application_id=app.id, settings=settings)
        with pytest.raises(Forbidden):  # the provider's plain user may see it but not decide
            conditional.approve(s, actor=world["market_user"], application_id=app.id, settings=settings)
        conditional.approve(
            s, actor=world["market_officer"], application_id=app.id, decision_in=DecisionIn(days=10), settings=settings
        )
        assert app.state == "approved" and app.grant_id
        access.check_download(s, dataset=dataset, account=account, items=["qymc", "zczb"], settings=settings)
        with pytest.raises(access.GrantRequired) as caught:
            access.check_download(s, dataset=dataset, account=account, items=["fddbr"], settings=settings)
        assert "fddbr" in caught.value.detail
        assert workflow.todo(s, actor=world["market_officer"], kinds=[conditional.KIND]) == []


def test_refusal_needs_a_reason_and_closes_the_ticket(db: Database, world, settings) -> None:  # type: ignore[no-untyped-def]
    dataset_id = make_dataset(db, world, settings, opening="有条件开放")
    account_id = register(db)
    with db.session() as s:
        account = s.get(PublicAccount, account_id)
        app = conditional.apply(
            s,
            account=account,
            application_in=AccessApplicationIn(dataset_id=dataset_id, purpose="学术研究使用，不对外提供"),
            settings=settings,
        )
        assert app.items == ["tyshxydm", "qymc", "fddbr", "zczb"]  # all open items, never the closed one
        with pytest.raises(ValidationFailed):
            conditional.refuse(s, actor=world["market_officer"], application_id=app.id, reason=" ")
        conditional.refuse(s, actor=world["market_officer"], application_id=app.id, reason="用途与开放条件不符")
        ticket = conditional.ticket_of(s, app)
        assert ticket is not None and ticket.state == "refused" and ticket.closed_at is not None
        with pytest.raises(Conflict):
            conditional.approve(s, actor=world["market_officer"], application_id=app.id, settings=settings)


def test_application_items_must_be_open_and_unconditional_data_needs_none(db: Database, world, settings) -> None:  # type: ignore[no-untyped-def]
    conditional_id = make_dataset(db, world, settings, opening="有条件开放")
    open_id = make_dataset(db, world, settings, name="企业年报信息")
    account_id = register(db)
    with db.session() as s:
        account = s.get(PublicAccount, account_id)
        with pytest.raises(ValidationFailed) as caught:
            conditional.apply(
                s,
                account=account,
                application_in=AccessApplicationIn(dataset_id=conditional_id, items=["nbhcyj"], purpose="想要内部数据"),
                settings=settings,
            )
        assert caught.value.errors[0].field == "items"
        with pytest.raises(Conflict):
            conditional.apply(
                s,
                account=account,
                application_in=AccessApplicationIn(dataset_id=open_id, purpose="无条件开放无需申请"),
                settings=settings,
            )


def test_withdrawn_application_leaves_no_grant(db: Database, world, settings) -> None:  # type: ignore[no-untyped-def]
    dataset_id = make_dataset(db, world, settings, opening="有条件开放")
    account_id = register(db)
    with db.session() as s:
        account = s.get(PublicAccount, account_id)
        app = conditional.apply(
            s,
            account=account,
            application_in=AccessApplicationIn(dataset_id=dataset_id, purpose="课程作业中的数据分析"),
            settings=settings,
        )
        conditional.withdraw(s, account=account, application_id=app.id)
        assert app.state == "withdrawn"
        assert conditional.grants_for_account(s, account=account) == []


def test_demo_seed_builds_the_public_side_through_the_services(db: Database, world, settings) -> None:  # type: ignore[no-untyped-def]
    from zhengshu.demo import open_public_seed as public_seed
    from zhengshu.opendata import responsibility

    make_dataset(db, world, settings, opening="有条件开放")
    make_dataset(db, world, settings, name="企业年报信息")
    with db.session() as s:
        result = public_seed.seed(
            s,
            password=PUBLIC_PASSWORD,
            reviewer=world["reviewer"],
            officer_of=lambda org_id: world["market_officer"] if org_id == world.orgs["market"] else None,
            data_dir=settings.data_dir,
        )
        assert result == {"accounts": 3, "applications": 1, "showcase": 2, "responsibility_items": 3}
        ganpo = accounts.get_by_username(s, username="ganpo-data")
        assert [a.state for a in conditional.list_for_account(s, account=ganpo)] == ["approved"]
        progress = responsibility.progress(s, year=local_today().year)
        assert progress["planned"] == 3 and progress["done"] == 2
    with db.session() as s:
        assert public_seed.seed(
            s, password="x", reviewer=world["reviewer"], officer_of=lambda _o: None, data_dir=settings.data_dir
        ) == {"accounts": 0}
