"""年度开放责任清单: per year, each department's planned open datasets, and its progress (planned vs published).

A planned item counts as done when the department has a published open dataset from the planned catalog entry
(or, when no entry was named, one whose title equals the planned title); it is overdue when its planned date
has passed without that.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from zhengshu.catalog.models import CatalogEntry
from zhengshu.core.errors import Conflict, ErrorCollector, NotFound
from zhengshu.core.events import emit
from zhengshu.core.timeutil import local_today
from zhengshu.opendata import public_permissions as _permissions  # noqa: F401  (registers actions)
from zhengshu.opendata.models import OpenDataset
from zhengshu.opendata.public_models import ResponsibilityItem
from zhengshu.opendata.public_schemas import ResponsibilityIn
from zhengshu.opendata.vocab import FIELDS
from zhengshu.org.models import Organization
from zhengshu.security import authz
from zhengshu.security.actor import Actor

STATUS_LABELS = {"done": "已开放", "planned": "计划中", "overdue": "已逾期"}


def add(session: Session, *, actor: Actor, item_in: ResponsibilityIn) -> ResponsibilityItem:
    authz.ensure(actor, "opendata.responsibility_manage")
    errors = ErrorCollector()
    org = session.get(Organization, item_in.org_id)
    if org is None:
        errors.add("org_id", "部门不存在")
    if item_in.entry_id:
        entry = session.get(CatalogEntry, item_in.entry_id)
        if entry is None or (org is not None and entry.provider_org_id != org.id):
            errors.add("entry_id", "该目录不存在或不属于该部门")
    if item_in.field and item_in.field not in FIELDS:
        errors.add("field", "领域代码无效")
    if item_in.planned_on.year != item_in.year:
        errors.add("planned_on", "计划开放日期应在清单年度内")
    errors.raise_if_any("责任清单条目未通过校验", code="opendata.responsibility_invalid")
    duplicate = session.scalars(
        select(ResponsibilityItem).where(
            ResponsibilityItem.year == item_in.year,
            ResponsibilityItem.org_id == item_in.org_id,
            ResponsibilityItem.title == item_in.title,
        )
    ).first()
    if duplicate is not None:
        raise Conflict("该部门本年度清单中已有同名数据集", code="opendata.responsibility_duplicate")
    item = ResponsibilityItem(**item_in.model_dump(), created_by=actor.username)
    session.add(item)
    session.flush()
    emit(session, "opendata.responsibility_added", item_id=item.id, year=item.year, org_id=item.org_id)
    return item


def delete(session: Session, *, actor: Actor, item_id: str) -> None:
    authz.ensure(actor, "opendata.responsibility_manage")
    item = session.get(ResponsibilityItem, item_id)
    if item is None:
        raise NotFound("未找到该清单条目", code="opendata.responsibility_not_found")
    session.delete(item)
    session.flush()
    emit(session, "opendata.responsibility_removed", item_id=item_id)


def years(session: Session) -> list[int]:
    found = set(session.scalars(select(ResponsibilityItem.year).distinct()))
    found.add(local_today().year)
    return sorted(found, reverse=True)


def _status(item: ResponsibilityItem, published: dict[str, Any] | None, today: date) -> str:
    if published is not None:
        return "done"
    return "overdue" if item.planned_on < today else "planned"


def progress(session: Session, *, year: int, today: date | None = None) -> dict[str, Any]:
    """The year's list: every department with its planned items, each matched to the published dataset."""
    today = today or local_today()
    items = list(
        session.scalars(
            select(ResponsibilityItem)
            .where(ResponsibilityItem.year == year)
            .order_by(ResponsibilityItem.org_id, ResponsibilityItem.planned_on, ResponsibilityItem.title)
        )
    )
    org_ids = {i.org_id for i in items}
    datasets = list(
        session.scalars(
            select(OpenDataset).where(OpenDataset.status == "published", OpenDataset.provider_org_id.in_(org_ids))
        )
    )
    by_entry = {d.entry_id: d for d in datasets}
    by_title = {(d.provider_org_id, d.title): d for d in datasets}
    orgs = {o.id: o for o in session.scalars(select(Organization).where(Organization.id.in_(org_ids)))}
    departments: dict[str, dict[str, Any]] = {}
    for item in items:
        dataset = by_entry.get(item.entry_id) if item.entry_id else by_title.get((item.org_id, item.title))
        published = {"id": dataset.id, "title": dataset.title, "slug": dataset.slug} if dataset else None
        status = _status(item, published, today)
        org = orgs.get(item.org_id)
        dept = departments.setdefault(
            item.org_id,
            {"org_id": item.org_id, "org_name": org.name if org else "", "items": [], "planned": 0, "done": 0},
        )
        dept["planned"] += 1
        dept["done"] += status == "done"
        dept["items"].append(
            {
                "id": item.id,
                "title": item.title,
                "entry_id": item.entry_id,
                "opening_type": item.opening_type,
                "field": item.field,
                "field_label": FIELDS.get(item.field, ""),
                "planned_on": item.planned_on,
                "note": item.note,
                "status": status,
                "status_label": STATUS_LABELS[status],
                "dataset": published,
            }
        )
    rows = []
    for dept in departments.values():
        dept["overdue"] = sum(1 for i in dept["items"] if i["status"] == "overdue")
        dept["percent"] = round(100 * dept["done"] / dept["planned"]) if dept["planned"] else 0
        rows.append(dept)
    rows.sort(key=lambda d: (-d["percent"], d["org_name"]))
    planned = sum(d["planned"] for d in rows)
    done = sum(d["done"] for d in rows)
    return {
        "year": year,
        "planned": planned,
        "done": done,
        "overdue": sum(d["overdue"] for d in rows),
        "percent": round(100 * done / planned) if planned else 0,
        "departments": rows,
    }


def to_xlsx(progress_data: dict[str, Any]) -> bytes:
    """The year's list as a spreadsheet, the form in which provinces publish it."""
    from io import BytesIO

    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    sheet.title = f"{progress_data['year']}年度开放责任清单"[:31]
    headers = ["序号", "部门", "计划开放的数据集", "领域", "开放属性", "计划开放日期", "状态", "已开放数据集", "备注"]
    sheet.append(headers)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    n = 0
    for dept in progress_data["departments"]:
        for item in dept["items"]:
            n += 1
            sheet.append(
                [
                    n,
                    dept["org_name"],
                    item["title"],
                    item["field_label"],
                    item["opening_type"],
                    item["planned_on"].isoformat(),
                    item["status_label"],
                    item["dataset"]["title"] if item["dataset"] else "",
                    item["note"],
                ]
            )
    for column, width in zip("ABCDEFGHI", (6, 28, 36, 12, 12, 14, 10, 36, 30), strict=True):
        sheet.column_dimensions[column].width = width
    summary = book.create_sheet("各部门进度")
    summary.append(["部门", "计划", "已开放", "逾期", "完成率"])
    for cell in summary[1]:
        cell.font = Font(bold=True)
    for dept in progress_data["departments"]:
        summary.append([dept["org_name"], dept["planned"], dept["done"], dept["overdue"], f"{dept['percent']}%"])
    out = BytesIO()
    book.save(out)
    return out.getvalue()
