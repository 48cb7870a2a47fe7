"""Keeps the search index in step with the catalog (a consumer of catalog events) and searches it with the
actor's visibility applied."""

from __future__ import annotations

from sqlalchemy import ColumnElement, false, or_
from sqlalchemy.orm import Session

from zhengshu.catalog.enums import EntryStatus
from zhengshu.catalog.models import CatalogEntry, EntryVersion
from zhengshu.catalog.permissions import reviewer_region_clause
from zhengshu.core.events import OutboxEvent, consumer
from zhengshu.search import service as search_service
from zhengshu.search.models import SearchDoc
from zhengshu.search.service import IndexDoc, SearchResult
from zhengshu.security.actor import Actor

DOC_TYPE = "catalog_entry"
FACETS = ["org_id", "region_code", "class_code", "sharing_type", "opening_type", "status"]


def index_doc(entry: CatalogEntry, v: EntryVersion) -> IndexDoc:
    return IndexDoc(
        doc_type=DOC_TYPE,
        doc_id=entry.id,
        title=v.name,
        fields={
            "title": v.name,
            "summary": v.summary,
            "items": [i.name for i in v.items],
            "tags": list(v.tags or []),
            "provider": [entry.provider.name, entry.provider.short_name],
        },
        facets={
            "org_id": entry.provider_org_id,
            "region_code": entry.region_code,
            "class_code": v.class_code,
            "sharing_type": v.sharing_type,
            "opening_type": v.opening_type,
            "status": entry.status,
        },
        boost=1.2 if entry.status == EntryStatus.PUBLISHED.value else 1.0,
        summary=v.summary[:300],
        extra={
            "code": entry.code,
            "provider": entry.provider.short_name or entry.provider.name,
            "update_cycle": v.update_cycle,
            "published_on": entry.published_on.isoformat() if entry.published_on else None,
        },
        updated_at=entry.updated_at,
    )


def reindex(session: Session, entry_id: str) -> None:
    entry = session.get(CatalogEntry, entry_id)
    if entry is None:
        search_service.remove_document(session, doc_type=DOC_TYPE, doc_id=entry_id)
        return
    version_id = entry.published_version_id or entry.working_version_id
    v = session.get(EntryVersion, version_id) if version_id else None
    if v is None:
        search_service.remove_document(session, doc_type=DOC_TYPE, doc_id=entry_id)
        return
    search_service.index_document(session, **_as_kwargs(index_doc(entry, v)))


def _as_kwargs(doc: IndexDoc) -> dict[str, object]:
    return {
        "doc_type": doc.doc_type,
        "doc_id": doc.doc_id,
        "title": doc.title,
        "fields": doc.fields,
        "facets": doc.facets,
        "boost": doc.boost,
        "extra": doc.extra,
        "summary": doc.summary,
        "updated_at": doc.updated_at,
    }


@consumer("catalog.entry.changed", "search.catalog_entry")
def _on_entry_changed(session: Session, event: OutboxEvent) -> None:
    reindex(session, str(event.payload["entry_id"]))


def visibility(actor: Actor) -> ColumnElement[bool]:
    """The same rule as the ``catalog.view`` action, on search documents."""
    if actor.is_admin:
        return SearchDoc.status.is_not(None)
    clauses: list[ColumnElement[bool]] = [SearchDoc.status == EntryStatus.PUBLISHED.value]
    if actor.org_id:
        clauses.append(SearchDoc.org_id == actor.org_id)
    clauses.append(reviewer_region_clause(actor, SearchDoc.region_code))
    return or_(*clauses) if clauses else false()


def search(
    session: Session,
    *,
    actor: Actor,
    q: str | None,
    filters: dict[str, list[str]] | None = None,
    limit: int = 20,
    offset: int = 0,
    facets: list[str] | None = None,
) -> SearchResult:
    return search_service.search(
        session,
        doc_type=DOC_TYPE,
        q=q,
        filters=filters,
        facets=FACETS if facets is None else facets,
        limit=limit,
        offset=offset,
        extra_where=visibility(actor),
    )
