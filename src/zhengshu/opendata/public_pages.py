"""Pages of the open portal's public side (no government login, ``/open/…``): registration and login of public
accounts, "my account" (API keys, applications, grants), applying for conditionally open data, the showcase,
the annual responsibility list, statistics with charts and the problem-report form. Government pages
(``/open/review/…``): the provider's review of applications, showcase moderation, editing responsibility lists.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from zhengshu.core.errors import Unauthenticated, ValidationFailed, ZhengshuError
from zhengshu.core.timeutil import local_today
from zhengshu.objection.schemas import KIND_LABELS
from zhengshu.opendata import access, accounts, conditional, report, responsibility, showcase, stats, vocab
from zhengshu.opendata import service as opendata_service
from zhengshu.opendata.models import OpenDataset
from zhengshu.opendata.public_models import OpenAccessApplication, PublicAccount
from zhengshu.opendata.public_schemas import (
    ACCOUNT_KIND_LABELS,
    AccessApplicationIn,
    AccountIn,
    DecisionIn,
    ReportIn,
    ResponsibilityIn,
    ShowcaseIn,
)
from zhengshu.org.models import Organization
from zhengshu.security import authz
from zhengshu.web.deps import Csrf, CurrentActor, DbSession, client_ip
from zhengshu.web.forms import form_errors, redirect, safe_local_path
from zhengshu.web.templating import flash, render

public_pages_router = APIRouter(include_in_schema=False)


def _account(session: Session, request: Request) -> PublicAccount | None:
    try:
        account = access.account_from_request(session, request)
    except ZhengshuError:
        return None
    if account is not None and request.method == "POST" and getattr(request.state, "actor", None) is None:
        # the audit record of the change names the public account
        request.state.actor = conditional.account_actor(account, source_ip=client_ip(request))
    return account


def _page(request: Request, session: Session, name: str, context: dict[str, Any], status_code: int = 200) -> Response:
    context.setdefault("open_account", _account(session, request))
    context.setdefault("field_label", vocab.field_label)
    return render(request, name, context, status_code=status_code)


def _login_redirect(request: Request) -> Response:
    return redirect(f"/open/login?next={request.url.path}")


async def _form(request: Request) -> dict[str, Any]:
    form = await request.form()
    return {k: v for k, v in form.multi_items() if isinstance(v, str) and k != "csrf_token"}


# ---- registration and login -------------------------------------------------------------------------------


@public_pages_router.get("/open/register", response_class=HTMLResponse)
def register_form(request: Request, session: DbSession) -> Response:
    return _page(request, session, "opendata/public/register.html", {"values": {"kind": "person"}, "errors": {}})


@public_pages_router.post("/open/register", response_class=HTMLResponse, dependencies=[Csrf])
async def register(request: Request, session: DbSession) -> Response:
    values = await _form(request)
    try:
        account = accounts.register(session, account_in=AccountIn.model_validate(values))
    except (ValidationError, ZhengshuError) as exc:
        values.pop("password", None)
        context = {"values": values, "errors": form_errors(exc)}
        return _page(request, session, "opendata/public/register.html", context, status_code=422)
    _log_in(request, account)
    flash(request, "注册成功，已为您登录。可以在本页签发 API Key。")
    return redirect("/open/account")


def _log_in(request: Request, account: PublicAccount) -> None:
    request.session[access.SESSION_KEY] = account.id
    request.session[access.SESSION_EPOCH] = access.session_epoch(
        request.app.state.settings.resolved_secret_key(), account
    )
    request.state.open_account = account


@public_pages_router.get("/open/login", response_class=HTMLResponse)
def login_form(request: Request, session: DbSession, next: str | None = None) -> Response:
    return _page(request, session, "opendata/public/login.html", {"next": safe_local_path(next) or "", "error": ""})


@public_pages_router.post("/open/login", response_class=HTMLResponse, dependencies=[Csrf])
async def login(request: Request, session: DbSession) -> Response:
    values = await _form(request)
    target = safe_local_path(values.get("next")) or "/open/account"
    try:
        account = accounts.authenticate(
            session, username=values.get("username", ""), password=values.get("password", "")
        )
    except Unauthenticated as exc:
        session.commit()  # keep the failed-login count (the lock-out)
        context = {"next": target, "error": exc.detail, "username": values.get("username", "")}
        return _page(request, session, "opendata/public/login.html", context, status_code=401)
    _log_in(request, account)
    return redirect(target)


@public_pages_router.post("/open/logout", dependencies=[Csrf])
def logout(request: Request) -> Response:
    request.session.pop(access.SESSION_KEY, None)
    request.session.pop(access.SESSION_EPOCH, None)
    return redirect("/open")


# ---- my account -------------------------------------------------------------------------------------------


@public_pages_router.get("/open/account", response_class=HTMLResponse)
def my_account(request: Request, session: DbSession) -> Response:
    account = _account(session, request)
    if account is None:
        return _login_redirect(request)
    settings = request.app.state.settings
    keys = accounts.list_keys(session, account=account)
    applications = [conditional.to_read(session, a) for a in conditional.list_for_account(session, account=account)]
    grants = conditional.grants_for_account(session, account=account)
    titles = dict(
        session.execute(
            select(OpenDataset.id, OpenDataset.title).where(OpenDataset.id.in_([g.dataset_id for g in grants]))
        ).all()
    )
    context = {
        "account": account,
        "kind_label": ACCOUNT_KIND_LABELS.get(account.kind, account.kind),
        "quota": access.quota_status(account, settings=settings),
        "keys": keys,
        "key_quota": {k.id: access.quota_status(account, key=k, settings=settings) for k in keys if not k.revoked},
        "new_key": request.session.pop("open_new_key", None),
        "applications": applications,
        "grants": grants,
        "titles": titles,
        "showcase": [showcase.to_read(session, a) for a in showcase.list_for_account(session, account=account)],
        "now": local_today(),
    }
    return _page(request, session, "opendata/public/account.html", context)


@public_pages_router.post("/open/account/keys", dependencies=[Csrf])
async def issue_key(request: Request, session: DbSession) -> Response:
    account = _account(session, request)
    if account is None:
        return _login_redirect(request)
    values = await _form(request)
    try:
        raw, _key = accounts.issue_key(session, account=account, name=(values.get("name") or "API Key")[:60])
    except ZhengshuError as exc:
        flash(request, exc.detail, "error")
        return redirect("/open/account")
    # shown once on the next page, never stored in clear
    request.session["open_new_key"] = raw
    return redirect("/open/account#keys")


@public_pages_router.post("/open/account/password", dependencies=[Csrf])
async def change_password(request: Request, session: DbSession) -> Response:
    account = _account(session, request)
    if account is None:
        return _login_redirect(request)
    values = await _form(request)
    try:
        accounts.change_password(
            session,
            account=account,
            old_password=values.get("old_password", ""),
            new_password=values.get("new_password", ""),
        )
    except ZhengshuError as exc:
        flash(request, "；".join(e.message for e in exc.errors) or exc.detail, "error")
        return redirect("/open/account#password")
    _log_in(request, account)  # this session stays; the others end with the old epoch
    flash(request, "密码已修改，其他设备上的登录已失效。")
    return redirect("/open/account")


@public_pages_router.post("/open/account/keys/{key_id}/revoke", dependencies=[Csrf])
def revoke_key(request: Request, session: DbSession, key_id: str) -> Response:
    account = _account(session, request)
    if account is None:
        return _login_redirect(request)
    accounts.revoke_key(session, account=account, key_id=key_id)
    flash(request, "API Key 已吊销，使用它的调用将被拒绝。")
    return redirect("/open/account#keys")


@public_pages_router.post("/open/account/applications/{application_id}/withdraw", dependencies=[Csrf])
def withdraw(request: Request, session: DbSession, application_id: str) -> Response:
    account = _account(session, request)
    if account is None:
        return _login_redirect(request)
    conditional.withdraw(session, account=account, application_id=application_id)
    flash(request, "申请已撤回。")
    return redirect("/open/account#applications")


# ---- applying for conditionally open data -----------------------------------------------------------------


def _apply_context(dataset: OpenDataset, values: dict[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    return {"dataset": dataset, "values": values, "errors": errors}


@public_pages_router.get("/open/datasets/{ref}/apply", response_class=HTMLResponse)
def apply_form(request: Request, session: DbSession, ref: str) -> Response:
    dataset = opendata_service.get_public(session, ref=ref)
    if _account(session, request) is None:
        return _login_redirect(request)
    values = {"items": [i.column_name for i in dataset.items], "requested_days": 365}
    return _page(request, session, "opendata/public/apply.html", _apply_context(dataset, values, {}))


@public_pages_router.post("/open/datasets/{ref}/apply", response_class=HTMLResponse, dependencies=[Csrf])
async def apply(request: Request, session: DbSession, ref: str) -> Response:
    dataset = opendata_service.get_public(session, ref=ref)
    account = _account(session, request)
    if account is None:
        return _login_redirect(request)
    form = await request.form()
    values: dict[str, Any] = {
        "dataset_id": dataset.id,
        "items": [v for v in form.getlist("items") if isinstance(v, str)],
        "purpose": str(form.get("purpose") or ""),
        "scenario": str(form.get("scenario") or ""),
        "requested_days": str(form.get("requested_days") or "365"),
    }
    try:
        app = conditional.apply(
            session,
            account=account,
            application_in=AccessApplicationIn.model_validate(values),
            settings=request.app.state.settings,
        )
    except (ValidationError, ZhengshuError) as exc:
        context = _apply_context(dataset, values, form_errors(exc))
        return _page(request, session, "opendata/public/apply.html", context, status_code=422)
    ticket = conditional.ticket_of(session, app)
    due = f"，提供部门应于 {ticket.due_on.isoformat()} 前答复" if ticket is not None and ticket.due_on else ""
    flash(request, f"申请已提交{due}。获批后即可下载和调用。")
    return redirect("/open/account#applications")


# ---- showcase ---------------------------------------------------------------------------------------------


@public_pages_router.get("/open/showcase", response_class=HTMLResponse)
def showcase_list(request: Request, session: DbSession) -> Response:
    apps = [showcase.to_read(session, a) for a in session.scalars(showcase.public_query().limit(200))]
    return _page(request, session, "opendata/public/showcase.html", {"apps": apps})


def _datasets_for_choice(session: Session) -> list[OpenDataset]:
    return list(
        session.scalars(select(OpenDataset).where(OpenDataset.status == "published").order_by(OpenDataset.title))
    )


@public_pages_router.get("/open/showcase/new", response_class=HTMLResponse)
def showcase_form(request: Request, session: DbSession) -> Response:
    if _account(session, request) is None:
        return _login_redirect(request)
    context = {"values": {"dataset_ids": []}, "errors": {}, "datasets": _datasets_for_choice(session)}
    return _page(request, session, "opendata/public/showcase_form.html", context)


@public_pages_router.post("/open/showcase/new", response_class=HTMLResponse, dependencies=[Csrf])
async def showcase_submit(request: Request, session: DbSession) -> Response:
    account = _account(session, request)
    if account is None:
        return _login_redirect(request)
    form = await request.form()
    values: dict[str, Any] = {
        "name": str(form.get("name") or ""),
        "description": str(form.get("description") or ""),
        "link": str(form.get("link") or ""),
        "dataset_ids": [v for v in form.getlist("dataset_ids") if isinstance(v, str)],
    }
    upload = form.get("screenshot")
    data = await upload.read() if upload is not None and not isinstance(upload, str) else b""
    try:
        showcase.submit(
            session,
            account=account,
            showcase_in=ShowcaseIn.model_validate(values),
            screenshot=data or None,
            data_dir=Path(request.app.state.settings.data_dir),
        )
    except (ValidationError, ZhengshuError) as exc:
        context = {"values": values, "errors": form_errors(exc), "datasets": _datasets_for_choice(session)}
        return _page(request, session, "opendata/public/showcase_form.html", context, status_code=422)
    flash(request, "应用已提交，审核通过后将在“优秀应用”中展示。")
    return redirect("/open/account#showcase")


# ---- responsibility list ----------------------------------------------------------------------------------


@public_pages_router.get("/open/responsibility", response_class=HTMLResponse)
def responsibility_page(request: Request, session: DbSession, year: int | None = None) -> Response:
    year = year if year is not None and 2000 <= year <= 2100 else local_today().year
    context = {"progress": responsibility.progress(session, year=year), "years": responsibility.years(session)}
    return _page(request, session, "opendata/public/responsibility.html", context)


# ---- statistics -------------------------------------------------------------------------------------------

PERIODS = {7: "近 7 天", 30: "近 30 天", 90: "近 90 天", 365: "近一年"}


@public_pages_router.get("/open/stats", response_class=HTMLResponse)
def stats_page(request: Request, session: DbSession, days: int = 30, org_id: str | None = None) -> Response:
    span = stats.period(days=days if days in PERIODS else 30)
    rows = stats.daily(session, span=span, provider_org_id=org_id or None)
    departments = stats.by_department(session, span=span)
    context = {
        "days": span.days,
        "periods": PERIODS,
        "org_id": org_id or "",
        "overview": stats.overview(session),
        "totals": stats.totals(rows),
        "daily": stats.as_json(rows),
        "departments": departments,
        "top": stats.top_datasets(session, span=span, provider_org_id=org_id or None, limit=10),
        "span": span,
    }
    return _page(request, session, "opendata/public/stats.html", context)


# ---- problem reports --------------------------------------------------------------------------------------


def _feedback_context(session: Session, values: dict[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    dataset = None
    if values.get("dataset_id"):
        try:
            dataset = opendata_service.get_public(session, ref=str(values["dataset_id"]))
        except ZhengshuError:
            dataset = None
    return {
        "values": values,
        "errors": errors,
        "dataset": dataset,
        "datasets": _datasets_for_choice(session) if dataset is None else [],
        "kinds": KIND_LABELS,
    }


@public_pages_router.get("/open/feedback", response_class=HTMLResponse)
def feedback_form(request: Request, session: DbSession, dataset: str | None = None) -> Response:
    context = _feedback_context(session, {"dataset_id": dataset or "", "kind": "wrong"}, {})
    return _page(request, session, "opendata/public/feedback.html", context)


@public_pages_router.post("/open/feedback", response_class=HTMLResponse, dependencies=[Csrf])
async def feedback_submit(request: Request, session: DbSession) -> Response:
    values = await _form(request)
    values["item"] = values.get("item") or None
    try:
        report.submit(
            session,
            report_in=ReportIn.model_validate(values),
            account=_account(session, request),
            source_ip=client_ip(request),
            settings=request.app.state.settings,
        )
    except (ValidationError, ZhengshuError) as exc:
        context = _feedback_context(session, values, form_errors(exc))
        return _page(request, session, "opendata/public/feedback.html", context, status_code=422)
    flash(request, "感谢反馈，问题已转数据提供部门核实处理。")
    dataset = opendata_service.get_public(session, ref=str(values["dataset_id"]))
    return redirect(f"/open/datasets/{dataset.slug}")


# ---- government side: review, moderation, lists -----------------------------------------------------------


@public_pages_router.get("/open/review/applications", response_class=HTMLResponse)
def review_list(request: Request, session: DbSession, actor: CurrentActor, state: str | None = "pending") -> Response:
    stmt = conditional.list_query(actor, state=state or None).limit(200)
    rows = [conditional.to_read(session, a) for a in session.scalars(stmt)]
    context = {"rows": rows, "state": state or "", "states": conditional.STATE_LABELS, "today": local_today()}
    return render(request, "opendata/public/review_list.html", context)


@public_pages_router.get("/open/review/applications/{application_id}", response_class=HTMLResponse)
def review_detail(request: Request, session: DbSession, actor: CurrentActor, application_id: str) -> Response:
    app = conditional.get(session, actor=actor, application_id=application_id)
    return render(request, "opendata/public/review_detail.html", _review_context(session, actor, app, {}))


def _review_context(session: Session, actor: Any, app: OpenAccessApplication, errors: dict[str, str]) -> dict[str, Any]:
    ticket = conditional.ticket_of(session, app)
    dataset = session.get(OpenDataset, app.dataset_id)
    names = {i.column_name: i.name for i in dataset.items} if dataset is not None else {}
    return {
        "app": conditional.to_read(session, app),
        "account": app.account,
        "kind_label": ACCOUNT_KIND_LABELS.get(app.account.kind, app.account.kind),
        "item_names": names,
        "events": ticket.events if ticket is not None else [],
        "may_decide": app.state == conditional.PENDING and authz.allowed(actor, "opendata.access_decide", app),
        "errors": errors,
    }


@public_pages_router.post("/open/review/applications/{application_id}/{verb}", dependencies=[Csrf])
async def review_decide(
    request: Request, session: DbSession, actor: CurrentActor, application_id: str, verb: str
) -> Response:
    form = await request.form()
    try:
        if verb == "approve":
            decision = DecisionIn.model_validate(
                {
                    "reason": str(form.get("reason") or ""),
                    "days": str(form.get("days") or "") or None,
                    "items": [v for v in form.getlist("items") if isinstance(v, str)] or None,
                }
            )
            conditional.approve(
                session,
                actor=actor,
                application_id=application_id,
                decision_in=decision,
                settings=request.app.state.settings,
            )
            flash(request, "已同意，申请人即可在授权范围和期限内下载、调用。")
        elif verb == "refuse":
            conditional.refuse(
                session, actor=actor, application_id=application_id, reason=str(form.get("reason") or "")
            )
            flash(request, "已答复不同意，理由已告知申请人。")
        else:
            return redirect(f"/open/review/applications/{application_id}")
    except (ValidationError, ZhengshuError) as exc:
        app = conditional.get(session, actor=actor, application_id=application_id)
        context = _review_context(session, actor, app, form_errors(exc))
        return render(request, "opendata/public/review_detail.html", context, status_code=422)
    return redirect(f"/open/review/applications/{application_id}")


@public_pages_router.get("/open/review/showcase", response_class=HTMLResponse)
def moderation_page(request: Request, session: DbSession, actor: CurrentActor, status: str = "pending") -> Response:
    apps = [
        showcase.to_read(session, a) for a in session.scalars(showcase.moderation_query(actor, status=status or None))
    ]
    return render(
        request,
        "opendata/public/moderation.html",
        {"apps": apps, "status": status, "labels": showcase.STATUS_LABELS},
    )


@public_pages_router.post("/open/review/showcase/{showcase_id}/{verb}", dependencies=[Csrf])
async def moderate(request: Request, session: DbSession, actor: CurrentActor, showcase_id: str, verb: str) -> Response:
    form = await request.form()
    reason = str(form.get("reason") or "")
    try:
        if verb == "approve":
            showcase.approve(session, actor=actor, showcase_id=showcase_id, reason=reason)
            flash(request, "已通过，应用已在“优秀应用”中展示。", link="/open/showcase")
        elif verb == "reject":
            showcase.reject(session, actor=actor, showcase_id=showcase_id, reason=reason)
            flash(request, "已退回，理由已告知提交人。")
    except ZhengshuError as exc:
        session.rollback()
        flash(request, exc.detail, "error")
    return redirect("/open/review/showcase")


@public_pages_router.get("/open/review/responsibility", response_class=HTMLResponse)
def responsibility_manage(
    request: Request, session: DbSession, actor: CurrentActor, year: int | None = None
) -> Response:
    authz.ensure(actor, "opendata.responsibility_manage")
    year = year if year is not None and 2000 <= year <= 2100 else local_today().year
    return render(request, "opendata/public/responsibility_manage.html", _manage_context(session, year, {}, {}))


def _manage_context(session: Session, year: int, values: dict[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    orgs = list(session.scalars(select(Organization).where(Organization.active.is_(True)).order_by(Organization.name)))
    return {
        "year": year,
        "progress": responsibility.progress(session, year=year),
        "orgs": orgs,
        "fields": vocab.FIELDS,
        "values": values or {"planned_on": date(year, 12, 31).isoformat(), "opening_type": "无条件开放"},
        "errors": errors,
    }


@public_pages_router.post("/open/review/responsibility", response_class=HTMLResponse, dependencies=[Csrf])
async def responsibility_add(request: Request, session: DbSession, actor: CurrentActor) -> Response:
    values = await _form(request)
    values["entry_id"] = values.get("entry_id") or None
    try:
        item_in = ResponsibilityIn.model_validate(values)
        responsibility.add(session, actor=actor, item_in=item_in)
    except (ValidationError, ZhengshuError) as exc:
        year = int(values.get("year") or local_today().year) if str(values.get("year", "")).isdigit() else 0
        context = _manage_context(session, year or local_today().year, values, form_errors(exc))
        return render(request, "opendata/public/responsibility_manage.html", context, status_code=422)
    flash(request, f"已加入 {item_in.year} 年度开放责任清单。", link=f"/open/responsibility?year={item_in.year}")
    return redirect(f"/open/review/responsibility?year={item_in.year}")


@public_pages_router.post("/open/review/responsibility/{item_id}/delete", dependencies=[Csrf])
def responsibility_delete(request: Request, session: DbSession, actor: CurrentActor, item_id: str) -> Response:
    responsibility.delete(session, actor=actor, item_id=item_id)
    flash(request, "已从清单中删除。")
    return redirect("/open/review/responsibility")


@public_pages_router.get("/open/review/accounts", response_class=HTMLResponse)
def accounts_page(request: Request, session: DbSession, actor: CurrentActor, q: str | None = None) -> Response:
    rows = accounts.list_accounts(session, actor=actor, q=q or None)
    context = {
        "rows": rows,
        "q": q or "",
        "kind_labels": ACCOUNT_KIND_LABELS,
        "default_quota": request.app.state.settings.open_quota_per_day,
    }
    return render(request, "opendata/public/accounts_admin.html", context)


@public_pages_router.post("/open/review/accounts/{account_id}/{verb}", dependencies=[Csrf])
async def account_action(
    request: Request, session: DbSession, actor: CurrentActor, account_id: str, verb: str
) -> Response:
    form = await request.form()
    try:
        if verb == "quota":
            raw = str(form.get("daily_quota") or "").strip()
            if raw and not raw.isdigit():
                raise ValidationFailed("每日额度应为非负整数，留空恢复平台默认", code="opendata.bad_quota")
            accounts.set_quota(session, actor=actor, account_id=account_id, daily_quota=int(raw) if raw else None)
            flash(request, "每日额度已更新。")
        elif verb in ("disable", "enable"):
            accounts.set_active(session, actor=actor, account_id=account_id, active=verb == "enable")
            flash(request, "账号已启用。" if verb == "enable" else "账号已停用，其登录与 API Key 立即失效。")
    except ZhengshuError as exc:
        session.rollback()
        flash(request, exc.detail, "error")
    return redirect("/open/review/accounts")
