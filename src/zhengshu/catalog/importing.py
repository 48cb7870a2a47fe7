"""Excel import of catalog entries: all or nothing unless the officer asks for the valid entries only."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from zhengshu.catalog import excel
from zhengshu.catalog import service as catalog_service
from zhengshu.catalog.models import CatalogEntry
from zhengshu.core.errors import FieldError, ValidationFailed
from zhengshu.security import authz
from zhengshu.security.actor import Actor


@dataclass
class ImportResult:
    created: list[str] = field(default_factory=list)  # codes
    updated: list[str] = field(default_factory=list)
    skipped_entries: int = 0
    errors: list[excel.RowError] = field(default_factory=list)


def import_workbook(
    session: Session,
    *,
    actor: Actor,
    content: bytes,
    valid_only: bool = False,
    provider_org_id: str | None = None,
    progress: object = None,
) -> ImportResult:
    authz.ensure(actor, "catalog.import")
    report = excel.parse_workbook(content)
    if report.errors and not valid_only:
        raise ValidationFailed(
            f"导入文件有 {len(report.errors)} 处错误，未导入任何目录；修正后重新导入，或选择“仅导入无误的目录”",
            code="catalog.import.invalid",
            errors=[FieldError(f"第{e.row}行·{e.column}", e.message) for e in report.errors],
        )
    result = ImportResult(skipped_entries=report.total_entries - len(report.entries), errors=list(report.errors))
    for parsed in report.entries:
        entry_in = parsed.entry
        if provider_org_id and not entry_in.provider_org_id:
            entry_in = entry_in.model_copy(update={"provider_org_id": provider_org_id})
        existing = None
        if parsed.code:
            existing = session.scalars(select(CatalogEntry).where(CatalogEntry.code == parsed.code)).first()
        if existing is not None:
            entry = catalog_service.update(
                session, actor=actor, entry_id=existing.id, entry_in=entry_in, change_note="Excel 导入更新"
            )
            result.updated.append(entry.code)
        else:
            entry = catalog_service.create(session, actor=actor, entry_in=entry_in, change_note="Excel 导入")
            result.created.append(entry.code)
        if callable(progress):
            progress()
    return result
