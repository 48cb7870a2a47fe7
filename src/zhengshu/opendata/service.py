"""Open-data service: publishing open datasets from catalog entries (the published copy), refreshing,
withdrawing, the public list/search/get, and usage counters.

The published copy is the only thing the public ever reads: ``<data dir>/opendata/<dataset id>/v<N>.parquet``,
holding only the open items, masked with the shared masking module before it is written.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import ColumnElement, Select, case, func, select
from sqlalchemy import update as sql_update
from sqlalchemy.orm import Session

from zhengshu.catalog import service as catalog_service
from zhengshu.catalog.enums import EntryStatus, OpeningType, UpdateCycle
from zhengshu.catalog.models import CatalogEntry, DataItem, EntryVersion, MountedResource
from zhengshu.core.db import after_transaction, utcnow
from zhengshu.core.errors import Conflict, ErrorCollector, NotFound, ValidationFailed
from zhengshu.core.events import emit
from zhengshu.core.timeutil import local_today, to_local
from zhengshu.lake import service as lake_service
from zhengshu.lake.connectors import TableRef
from zhengshu.lake.models import DataSource
from zhengshu.opendata import permissions as _permissions  # noqa: F401  (registers the actions)
from zhengshu.opendata import query, vocab
from zhengshu.opendata.models import OpenDataset, OpenDatasetItem, OpenDatasetUsage, OpenDatasetVersion
from zhengshu.opendata.schemas import DatasetUpdate, PublishIn
from zhengshu.org.models import Organization
from zhengshu.search.text import document_terms, query_terms
from zhengshu.security import authz, masking
from zhengshu.security.actor import Actor

BATCH_ROWS = 65_536
ROW_GROUP_ROWS = 20_480  # small groups: filters skip more, and a download holds one group at a time
KEEP_VERSION_FILES = 2  # older copies' files are deleted (their rows stay in the history)
CHART_MAX_CATEGORIES = 30


# ---- paths ------------------------------------------------------------------------------------------------


def dataset_dir(data_dir: Path, dataset_id: str) -> Path:
    return Path(data_dir) / "opendata" / dataset_id


def version_file(data_dir: Path, version: OpenDatasetVersion) -> Path:
    return Path(data_dir) / version.file_path


def current_version(session: Session, dataset: OpenDataset) -> OpenDatasetVersion:
    version = session.get(OpenDatasetVersion, dataset.published_version_id) if dataset.published_version_id else None
    if version is None:
        raise NotFound("该数据集尚无开放副本", code="opendata.no_copy")
    return version


def published_copy(session: Session, dataset: OpenDataset, data_dir: Path) -> query.Published:
    path = version_file(data_dir, current_version(session, dataset))
    if not path.is_file():
        raise NotFound("开放副本文件缺失，请联系提供部门更新", code="opendata.copy_missing")
    return query.open_published(path)


# ---- what may be opened ------------------------------------------------------------------------------------


@dataclass
class ItemOption:
    key: str
    name: str
    column: str | None
    data_type: str
    sensitivity: str
    opening_type: str
    openable: bool
    reason: str
    default_rule: str


@dataclass
class PublishOptions:
    entry: CatalogEntry
    version: EntryVersion
    items: list[ItemOption]
    resources: list[MountedResource]
    existing: OpenDataset | None


def _item_opening(item: DataItem, entry_opening: str) -> str:
    return item.opening_type or entry_opening


def _options_for(entry: CatalogEntry, v: EntryVersion) -> list[ItemOption]:
    options = []
    for item in v.items:
        opening = _item_opening(item, v.opening_type)
        reason = ""
        if opening == OpeningType.NOT_OPEN.value:
            reason = "该信息项不予开放"
        elif not item.column_name:
            reason = "该信息项未对应数据表字段"
        options.append(
            ItemOption(
                key=item.key,
                name=item.name,
                column=item.column_name,
                data_type=item.data_type,
                sensitivity=item.sensitivity,
                opening_type=opening,
                openable=not reason,
                reason=reason,
                default_rule=masking.default_rule(item),
            )
        )
    return options


def publish_options(session: Session, *, actor: Actor, entry_id: str) -> PublishOptions:
    """What the provider may open from this entry: its items (openable or why not) and mounted resources."""
    entry = catalog_service.get(session, actor=actor, entry_id=entry_id)
    authz.ensure(actor, "opendata.publish", entry)
    if entry.status != EntryStatus.PUBLISHED.value or not entry.published_version_id:
        raise Conflict("目录发布后才能开放", code="opendata.entry_not_published")
    v = catalog_service.display_version(session, entry)
    if v.opening_type not in vocab.OPENABLE:
        raise Conflict("该目录的开放属性为“不予开放”，不能开放", code="opendata.entry_not_openable")
    resources = [r for r in entry.resources if r.active and r.kind in ("table", "file") and r.source_id]
    existing = session.scalars(select(OpenDataset).where(OpenDataset.entry_id == entry.id)).first()
    return PublishOptions(entry=entry, version=v, items=_options_for(entry, v), resources=resources, existing=existing)


def openable_entries(session: Session, *, actor: Actor) -> list[CatalogEntry]:
    """Published entries of the actor's organization whose opening attribute allows opening."""
    if actor.org_id is None:
        return []
    stmt = (
        select(CatalogEntry)
        .where(
            CatalogEntry.provider_org_id == actor.org_id,
            CatalogEntry.status == EntryStatus.PUBLISHED.value,
            CatalogEntry.opening_type.in_(vocab.OPENABLE),
        )
        .order_by(CatalogEntry.name)
    )
    return list(session.scalars(stmt))


# ---- publishing --------------------------------------------------------------------------------------------


def _slug_for(session: Session, entry: CatalogEntry) -> str:
    base = "od-" + re.sub(r"[^a-z0-9_-]+", "-", entry.code.lower()).strip("-")
    slug, n = base[:90], 1
    while session.scalars(select(OpenDataset.id).where(OpenDataset.slug == slug)).first():
        n += 1
        slug = f"{base[:90]}-{n}"
    return slug


def _check_vocab(errors: ErrorCollector, *, field: str | None, licence: str | None, cycle: str | None) -> None:
    if field is not None and field not in vocab.FIELDS:
        errors.add("field", "领域代码无效")
    if licence is not None and licence not in vocab.LICENCES:
        errors.add("licence", "开放许可代码无效")
    if cycle is not None and cycle not in {c.value for c in UpdateCycle}:
        errors.add("update_cycle", "更新周期无效")


def publish(session: Session, *, actor: Actor, publish_in: PublishIn, data_dir: Path) -> OpenDataset:
    """Open a catalog entry: choose items and masking, write the first published copy, list it publicly."""
    options = publish_options(session, actor=actor, entry_id=publish_in.entry_id)
    entry, v = options.entry, options.version
    if options.existing is not None:
        raise Conflict(
            "该目录已开放为数据集，请在该数据集上更新或重新开放",
            code="opendata.already_published",
            extra={"dataset_id": options.existing.id},
        )
    errors = ErrorCollector()
    _check_vocab(errors, field=publish_in.field, licence=publish_in.licence, cycle=publish_in.update_cycle)
    by_key = {o.key: o for o in options.items}
    chosen: list[tuple[ItemOption, str]] = []
    for i, choice in enumerate(publish_in.items):
        option = by_key.get(choice.item_key)
        if option is None:
            errors.add(f"items.{i}.item_key", "该目录没有这个信息项")
            continue
        if not option.openable:
            errors.add(f"items.{i}.item_key", f"“{option.name}”不能开放：{option.reason}")
            continue
        rule = choice.masking_rule or option.default_rule
        if not masking.is_rule(rule):
            errors.add(f"items.{i}.masking_rule", "脱敏规则无效")
            continue
        if rule == "suppress":
            continue  # a suppressed item is simply not opened
        chosen.append((option, rule))
    if len({o.key for o, _ in chosen}) != len(chosen):
        errors.add("items", "信息项重复")
    if not chosen and not errors.errors:
        errors.add("items", "请至少选择一个可开放且不屏蔽的信息项")
    if publish_in.key_item and publish_in.key_item not in {o.key for o, _ in chosen}:
        errors.add("key_item", "主键信息项必须是开放的信息项")
    resource = _resource(options, publish_in.resource_id, errors)
    errors.raise_if_any(code="opendata.validation_failed")
    assert resource is not None

    dataset = OpenDataset(
        slug=_slug_for(session, entry),
        entry_id=entry.id,
        entry_code=entry.code,
        resource_id=resource.id,
        provider_org_id=entry.provider_org_id,
        region_code=entry.region_code,
        title=(publish_in.title or v.name).strip(),
        description=(publish_in.description if publish_in.description is not None else v.summary).strip(),
        field=publish_in.field,
        tags=list(dict.fromkeys(t.strip() for t in (publish_in.tags or list(v.tags or [])) if t.strip())),
        licence=publish_in.licence or vocab.DEFAULT_LICENCE,
        update_cycle=publish_in.update_cycle or v.update_cycle,
        opening_type=v.opening_type,
        opening_condition=v.opening_condition or "",
        contact=publish_in.contact,
        status="published",
        created_by=actor.username,
    )
    # items keep the catalog's order
    order = {item.key: n for n, item in enumerate(v.items)}
    for position, (option, rule) in enumerate(sorted(chosen, key=lambda c: order[c[0].key])):
        assert option.column is not None
        dataset.items.append(
            OpenDatasetItem(
                item_key=option.key,
                position=position,
                name=option.name,
                column_name=option.column,
                data_type=option.data_type,
                description=next((i.description for i in v.items if i.key == option.key), ""),
                masking_rule=rule,
                is_key=option.key == publish_in.key_item,
            )
        )
    session.add(dataset)
    session.flush()
    version = _write_version(session, actor=actor, dataset=dataset, data_dir=data_dir, note="首次开放")
    dataset.published_at = version.created_at
    _reindex(session, dataset)
    session.flush()
    emit(
        session,
        "opendata.dataset.published",
        dataset_id=dataset.id,
        entry_id=entry.id,
        org_id=dataset.provider_org_id,
        version=version.number,
    )
    return dataset


def _resource(options: PublishOptions, resource_id: str | None, errors: ErrorCollector) -> MountedResource | None:
    if resource_id:
        resource = next((r for r in options.resources if r.id == resource_id), None)
        if resource is None:
            errors.add("resource_id", "该目录没有这个可用的库表或文件挂接资源")
        return resource
    if not options.resources:
        errors.add("resource_id", "该目录尚未挂接库表或文件资源，请先挂接")
        return None
    if len(options.resources) > 1:
        errors.add("resource_id", "该目录挂接了多个资源，请指定一个")
        return None
    return options.resources[0]


def _streamed_read(connector: Any, ref: TableRef, columns: list[str]) -> Iterator[pa.RecordBatch] | None:
    """Record batches straight from a Parquet file or a DuckDB database (the lake's own formats), so a copy of
    any size is written with bounded memory; None for the other kinds (they are read whole, within the source's
    row limit)."""
    if connector.config.max_rows:
        return None  # the connector applies the limit
    if connector.config.kind == "parquet":
        import pyarrow.parquet as pq

        describe = connector.describe(ref)  # checks the file and its name the connector's way
        missing = set(columns) - {c.name for c in describe.columns}
        if missing:
            return None  # let the connector raise its own error
        return pq.ParquetFile(connector.config.path).iter_batches(batch_size=BATCH_ROWS, columns=columns)
    if connector.config.kind == "duckdb":
        import duckdb

        connector.describe(ref)  # the table exists and the file opens
        sql = f"SELECT {', '.join(connector.quote(c) for c in columns)} FROM {connector.qualified(ref)}"

        def batches() -> Iterator[pa.RecordBatch]:
            # its own read-only connection: writing a copy is a batch job, not held to the interactive timeout
            conn = duckdb.connect(str(connector.config.path), read_only=True)
            try:
                yield from conn.sql(sql).to_arrow_reader(BATCH_ROWS)
            finally:
                conn.close()

        return batches()
    return None


def _source_batches(session: Session, dataset: OpenDataset) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """The open items of the mounted resource, masked as declared, in batches."""
    resource = session.get(MountedResource, dataset.resource_id) if dataset.resource_id else None
    if resource is None or not resource.active or resource.source_id is None:
        raise Conflict("数据集的挂接资源已不可用，请重新挂接后更新", code="opendata.resource_unavailable")
    source = session.get(DataSource, resource.source_id)
    if source is None:
        raise Conflict("数据集的数据源已删除", code="opendata.resource_unavailable")
    connector = lake_service.connector_for(source)
    columns = [i.column_name for i in dataset.items]
    rules = {i.column_name: i.masking_rule for i in dataset.items}
    ref = TableRef(schema=resource.table_schema, name=resource.table_name or "")
    raw = _streamed_read(connector, ref, columns)
    if raw is None:
        # SQL servers, SQLite, CSV, XLSX: read whole, bounded by the source's row limit
        raw = iter(connector.read_arrow(ref, columns).select(columns).to_batches(max_chunksize=BATCH_ROWS))
    first = next(raw, None)
    if first is None:
        empty = connector.read_arrow(ref, columns, limit=0).select(columns)
        masked_schema = masking.mask_table(empty, rules).schema
        return masked_schema, iter(())
    first = first.select(columns) if isinstance(first, pa.RecordBatch) else first
    masked_schema = masking.mask_table(first.slice(0, 0), rules).schema

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in itertools.chain([first], raw):
            yield masking.mask_table(batch.select(columns), rules).cast(masked_schema)

    return masked_schema, batches()


def _write_parquet(reader: pa.RecordBatchReader, target: Path, *, sort_column: str | None, memory_mb: int) -> None:
    """Write ``reader`` to ``target`` with DuckDB (sorted by the key item when there is one, spilling to disk
    past ``memory_mb``) in row groups small enough to skip on a filter."""
    import duckdb

    tmp = target.with_suffix(".tmp")
    con = duckdb.connect(
        ":memory:",
        config={"memory_limit": f"{memory_mb}MB", "temp_directory": str(target.parent / ".spill"), "threads": 2},
    )
    try:
        tmp.unlink(missing_ok=True)
        con.register("masked_source", reader)
        order = f" ORDER BY {query.quote(sort_column)} NULLS LAST" if sort_column else ""
        con.execute(
            f"COPY (SELECT * FROM masked_source{order}) TO {query._path_literal(tmp)} "
            f"(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {ROW_GROUP_ROWS})"
        )
    except BaseException:
        tmp.unlink(missing_ok=True)  # no half-written copy is left behind
        raise
    finally:
        con.close()
        shutil.rmtree(target.parent / ".spill", ignore_errors=True)
    tmp.replace(target)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _completeness(path: Path) -> tuple[int, float | None]:
    """Rows and the share of non-null cells (GB/T 36344 完整性), from the Parquet statistics alone."""
    meta = pq.ParquetFile(path).metadata
    rows, cells, nulls = meta.num_rows, meta.num_rows * meta.num_columns, 0
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for c in range(group.num_columns):
            stats = group.column(c).statistics
            if stats is not None and stats.has_null_count:
                nulls += stats.null_count
    return rows, (round(100.0 * (1 - nulls / cells), 1) if cells else None)


def _chart_hint(dataset: OpenDataset, published: query.Published) -> dict[str, Any]:
    """An automatic chart where the data fits: counts by a low-cardinality unmasked text item, else a numeric
    item summed per month of a date item."""
    items = [i for i in dataset.items if i.column_name in published.columns]
    texts = [
        i.column_name
        for i in items
        if i.masking_rule == "none" and not i.is_key and query.is_text(published.type_of(i.column_name))
    ]
    distinct = query.distinct_counts(published, texts[:12])
    rows = pq.ParquetFile(published.path).metadata.num_rows
    for column in texts:
        # a category: few values, each shared by several rows (not an identifier of a small table)
        if 2 <= distinct.get(column, 0) <= min(CHART_MAX_CATEGORIES, rows // 2):
            return {"kind": "bar", "x": column}
    dates = [i.column_name for i in items if pa.types.is_date(published.type_of(i.column_name))]
    dates += [i.column_name for i in items if pa.types.is_timestamp(published.type_of(i.column_name))]
    numbers = [
        i.column_name
        for i in items
        if i.masking_rule == "none"
        and not i.is_key
        and (
            pa.types.is_floating(published.type_of(i.column_name))
            or pa.types.is_decimal(published.type_of(i.column_name))
        )
    ]
    numbers += [
        i.column_name
        for i in items
        if i.masking_rule == "none" and not i.is_key and pa.types.is_integer(published.type_of(i.column_name))
    ]
    if dates and numbers:
        return {"kind": "line", "x": dates[0], "y": numbers[0]}
    return {}


def _write_version(
    session: Session, *, actor: Actor, dataset: OpenDataset, data_dir: Path, note: str
) -> OpenDatasetVersion:
    from zhengshu.core.config import get_settings

    number = dataset.version_number + 1
    directory = dataset_dir(data_dir, dataset.id)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"v{number}.parquet"
    schema, batches = _source_batches(session, dataset)
    key = next((i.column_name for i in dataset.items if i.is_key), None)
    memory_mb = get_settings().opendata_duckdb_memory_mb
    _write_parquet(pa.RecordBatchReader.from_batches(schema, batches), target, sort_column=key, memory_mb=memory_mb)
    # a copy whose version is not committed is no copy: its file (and any derived from it) goes with the rollback
    after_transaction(session, rolled_back=lambda: _remove_version_files(directory, number))
    rows, score = _completeness(target)
    version = OpenDatasetVersion(
        dataset_id=dataset.id,
        number=number,
        row_count=rows,
        byte_size=target.stat().st_size,
        file_path=str(target.relative_to(Path(data_dir))),
        checksum=_sha256(target),
        columns=[{"column": i.column_name, "name": i.name, "masking_rule": i.masking_rule} for i in dataset.items],
        quality_score=score,
        note=note,
        created_by=actor.username,
        created_at=utcnow(),
    )
    session.add(version)
    session.flush()
    dataset.version_number = number
    dataset.published_version_id = version.id
    dataset.row_count = rows
    dataset.byte_size = version.byte_size
    dataset.quality_score = score
    dataset.refreshed_at = version.created_at
    dataset.chart_hint = _chart_hint(dataset, query.open_published(target))
    _prune_files(session, dataset, data_dir)
    return version


def _prune_files(session: Session, dataset: OpenDataset, data_dir: Path) -> None:
    """Older copies' files go once the new version is committed (a rollback keeps the copies it still names)."""
    numbers = session.scalars(
        select(OpenDatasetVersion.number)
        .where(OpenDatasetVersion.dataset_id == dataset.id)
        .order_by(OpenDatasetVersion.number)
    ).all()
    directory = dataset_dir(data_dir, dataset.id)
    old = list(numbers)[:-KEEP_VERSION_FILES]
    if old:
        after_transaction(session, committed=lambda: [_remove_version_files(directory, n) for n in old])


def _remove_version_files(directory: Path, number: int) -> None:
    """Version ``number``'s copy and the downloads derived from it (``v<N>.parquet``, ``v<N>.csv`` …)."""
    for path in directory.glob(f"v{number}.*"):
        path.unlink(missing_ok=True)


def get_managed(session: Session, *, actor: Actor, dataset_id: str) -> OpenDataset:
    dataset = session.get(OpenDataset, dataset_id)
    if dataset is None or not authz.allowed(actor, "opendata.view_manage", dataset):
        raise NotFound("未找到该开放数据集", code="opendata.not_found")
    return dataset


def refresh(session: Session, *, actor: Actor, dataset_id: str, data_dir: Path, note: str = "") -> OpenDatasetVersion:
    """Write a new published copy from the mounted resource (the update cycle's job, or a provider by hand)."""
    dataset = get_managed(session, actor=actor, dataset_id=dataset_id)
    authz.ensure(actor, "opendata.manage", dataset)
    version = _write_version(session, actor=actor, dataset=dataset, data_dir=data_dir, note=note or "数据更新")
    _reindex(session, dataset)
    session.flush()
    emit(
        session,
        "opendata.dataset.refreshed",
        dataset_id=dataset.id,
        org_id=dataset.provider_org_id,
        version=version.number,
        rows=version.row_count,
    )
    return version


def due_for_refresh(session: Session, *, today: date | None = None) -> list[str]:
    """Ids of published datasets whose update cycle says a new copy is due (for the scheduled job)."""
    today = today or local_today()
    days = {"实时": 0, "每日": 1, "每周": 7, "每月": 30, "每季度": 91, "每半年": 182, "每年": 365}
    due = []
    for dataset in session.scalars(select(OpenDataset).where(OpenDataset.status == "published")):
        period = days.get(dataset.update_cycle)
        if period is None or dataset.refreshed_at is None:
            continue
        # both dates in Beijing time: the UTC date of a copy written after 16:00 UTC is the day before
        if (today - to_local(dataset.refreshed_at).date()).days >= period:
            due.append(dataset.id)
    return due


def refresh_due(session: Session, *, actor: Actor, data_dir: Path, today: date | None = None) -> dict[str, Any]:
    """The scheduled job: refresh every dataset whose update cycle has elapsed, each in its own savepoint so
    one failing source does not stop (or undo) the others."""
    done: list[str] = []
    failed: list[dict[str, str]] = []
    for dataset_id in due_for_refresh(session, today=today):
        try:
            with session.begin_nested():
                refresh(session, actor=actor, dataset_id=dataset_id, data_dir=data_dir, note="按更新周期自动更新")
            done.append(dataset_id)
        except Exception as exc:  # reported, retried at the next run
            failed.append({"dataset_id": dataset_id, "error": str(exc)[:300]})
    return {"refreshed": done, "failed": failed}


def update(session: Session, *, actor: Actor, dataset_id: str, update_in: DatasetUpdate) -> OpenDataset:
    dataset = get_managed(session, actor=actor, dataset_id=dataset_id)
    authz.ensure(actor, "opendata.manage", dataset)
    errors = ErrorCollector()
    _check_vocab(errors, field=update_in.field, licence=update_in.licence, cycle=update_in.update_cycle)
    errors.raise_if_any(code="opendata.validation_failed")
    for name in ("title", "description", "field", "licence", "update_cycle", "contact"):
        value = getattr(update_in, name)
        if value is not None:
            setattr(dataset, name, value.strip() if isinstance(value, str) else value)
    if update_in.tags is not None:
        dataset.tags = list(dict.fromkeys(t.strip() for t in update_in.tags if t.strip()))
    _reindex(session, dataset)
    session.flush()
    emit(session, "opendata.dataset.updated", dataset_id=dataset.id, org_id=dataset.provider_org_id)
    return dataset


def unpublish(session: Session, *, actor: Actor, dataset_id: str, reason: str) -> OpenDataset:
    dataset = get_managed(session, actor=actor, dataset_id=dataset_id)
    authz.ensure(actor, "opendata.manage", dataset)
    if dataset.status != "published":
        raise Conflict("该数据集已撤回", code="opendata.not_published")
    dataset.status = "unpublished"
    dataset.unpublished_at = utcnow()
    session.flush()
    emit(session, "opendata.dataset.unpublished", dataset_id=dataset.id, org_id=dataset.provider_org_id, reason=reason)
    return dataset


def republish(session: Session, *, actor: Actor, dataset_id: str, data_dir: Path) -> OpenDataset:
    """Open a withdrawn dataset again, with a fresh copy (the entry must still allow opening)."""
    dataset = get_managed(session, actor=actor, dataset_id=dataset_id)
    authz.ensure(actor, "opendata.manage", dataset)
    if dataset.status == "published":
        raise Conflict("该数据集已处于开放状态", code="opendata.already_published")
    entry = session.get(CatalogEntry, dataset.entry_id)
    if entry is None or entry.status != EntryStatus.PUBLISHED.value or entry.opening_type not in vocab.OPENABLE:
        raise Conflict("对应目录已下架或不再允许开放", code="opendata.entry_not_openable")
    dataset.opening_type = entry.opening_type
    _write_version(session, actor=actor, dataset=dataset, data_dir=data_dir, note="重新开放")
    dataset.status = "published"
    dataset.unpublished_at = None
    session.flush()
    emit(
        session, "opendata.dataset.published", dataset_id=dataset.id, entry_id=entry.id, org_id=dataset.provider_org_id
    )
    return dataset


# ---- the public side ------------------------------------------------------------------------------------------


def get_public(session: Session, *, ref: str) -> OpenDataset:
    """A published dataset by id or slug; anything else looks missing."""
    dataset = session.get(OpenDataset, ref)
    if dataset is None:
        dataset = session.scalars(select(OpenDataset).where(OpenDataset.slug == ref)).first()
    if dataset is None or dataset.status != "published":
        raise NotFound("未找到该开放数据集", code="opendata.not_found")
    return dataset


def _reindex(session: Session, dataset: OpenDataset) -> None:
    provider = session.get(Organization, dataset.provider_org_id)
    terms = document_terms(
        {
            "title": dataset.title,
            "summary": dataset.description,
            "tags": [*list(dataset.tags or []), vocab.field_label(dataset.field)],
            "items": [i.name for i in dataset.items],
            "provider": [provider.name, provider.short_name] if provider else [],
        }
    )
    # one space-separated string with a leading and trailing space: a word is " w ", a prefix " w"
    dataset.search_text = " " + " ".join(sorted(terms)) + " "


@dataclass
class PublicFilters:
    q: str | None = None
    field: str | None = None
    provider_org_id: str | None = None
    opening_type: str | None = None
    sort: str | None = None  # relevance (with q) | newest | popular | downloads | title | rows


SORTS: dict[str, tuple[Any, ...]] = {
    "newest": (OpenDataset.refreshed_at.desc(), OpenDataset.id.desc()),
    "published": (OpenDataset.published_at.desc(), OpenDataset.id.desc()),
    "popular": (OpenDataset.view_count.desc(), OpenDataset.download_count.desc(), OpenDataset.id.desc()),
    "downloads": (OpenDataset.download_count.desc(), OpenDataset.id.desc()),
    "title": (OpenDataset.title, OpenDataset.id),
    "rows": (OpenDataset.row_count.desc(), OpenDataset.id.desc()),
}
SORT_LABELS = {
    "relevance": "相关度",
    "newest": "最近更新",
    "popular": "访问最多",
    "downloads": "下载最多",
    "title": "名称",
    "rows": "数据量",
}


def _text_conditions(q: str | None) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    for token in query_terms(q):
        needle = f" {token.term}" if token.prefix else f" {token.term} "
        conditions.append(OpenDataset.search_text.contains(needle, autoescape=True))
    return conditions


def _public_conditions(filters: PublicFilters, *, skip: str | None = None) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [OpenDataset.status == "published", *_text_conditions(filters.q)]
    if filters.q and filters.q.strip() and not query_terms(filters.q):
        conditions.append(OpenDataset.id.is_(None))  # only stopwords or punctuation
    if filters.field and skip != "field":
        conditions.append(OpenDataset.field == filters.field)
    if filters.provider_org_id and skip != "provider_org_id":
        conditions.append(OpenDataset.provider_org_id == filters.provider_org_id)
    if filters.opening_type and skip != "opening_type":
        conditions.append(OpenDataset.opening_type == filters.opening_type)
    return conditions


def public_query(filters: PublicFilters) -> Select[tuple[OpenDataset]]:
    stmt = select(OpenDataset).where(*_public_conditions(filters))
    sort = filters.sort or ("relevance" if filters.q else "newest")
    if sort == "relevance":
        words = [t.term for t in query_terms(filters.q)]
        title_hits = [case((OpenDataset.title.contains(w, autoescape=True), 1), else_=0) for w in words]
        score = sum(title_hits[1:], title_hits[0]) if title_hits else None
        if score is not None:
            stmt = stmt.order_by(score.desc(), OpenDataset.view_count.desc(), OpenDataset.id.desc())
        else:
            stmt = stmt.order_by(*SORTS["newest"])
    elif sort in SORTS:
        stmt = stmt.order_by(*SORTS[sort])
    else:
        raise ValidationFailed("排序方式无效", code="opendata.bad_sort")
    return stmt


def public_facets(session: Session, filters: PublicFilters) -> dict[str, list[tuple[str, str, int]]]:
    """Counts per field, department and opening attribute (each without its own filter): (value, label, n)."""
    facets: dict[str, list[tuple[str, str, int]]] = {}
    for name, column in (
        ("field", OpenDataset.field),
        ("provider_org_id", OpenDataset.provider_org_id),
        ("opening_type", OpenDataset.opening_type),
    ):
        rows = session.execute(
            select(column, func.count())
            .where(*_public_conditions(filters, skip=name))
            .group_by(column)
            .order_by(func.count().desc(), column)
        ).all()
        facets[name] = [(str(value), str(value), int(n)) for value, n in rows]
    orgs = {
        o.id: o
        for o in session.scalars(
            select(Organization).where(Organization.id.in_([v for v, _, _ in facets["provider_org_id"]]))
        )
    }
    facets["provider_org_id"] = [
        (v, (orgs[v].short_name or orgs[v].name) if v in orgs else v, n) for v, _, n in facets["provider_org_id"]
    ]
    facets["field"] = [(v, vocab.field_label(v), n) for v, _, n in facets["field"]]
    return facets


def departments(session: Session) -> list[tuple[Organization, int, int]]:
    """Departments with published datasets: (organization, datasets, downloads), most datasets first."""
    rows = session.execute(
        select(OpenDataset.provider_org_id, func.count(), func.coalesce(func.sum(OpenDataset.download_count), 0))
        .where(OpenDataset.status == "published")
        .group_by(OpenDataset.provider_org_id)
        .order_by(func.count().desc())
    ).all()
    orgs = {o.id: o for o in session.scalars(select(Organization).where(Organization.id.in_([r[0] for r in rows])))}
    return [(orgs[r[0]], int(r[1]), int(r[2])) for r in rows if r[0] in orgs]


def list_managed(session: Session, *, actor: Actor, status: str | None = None) -> Select[tuple[OpenDataset]]:
    stmt = select(OpenDataset).where(authz.scope(actor, "opendata.view_manage"))
    if status:
        stmt = stmt.where(OpenDataset.status == status)
    return stmt.order_by(OpenDataset.updated_at.desc(), OpenDataset.id.desc())


def versions(session: Session, dataset: OpenDataset) -> list[OpenDatasetVersion]:
    return list(
        session.scalars(
            select(OpenDatasetVersion)
            .where(OpenDatasetVersion.dataset_id == dataset.id)
            .order_by(OpenDatasetVersion.number.desc())
        )
    )


# ---- usage ------------------------------------------------------------------------------------------------


def record_usage(
    session: Session,
    *,
    dataset_id: str,
    views: int = 0,
    downloads: int = 0,
    api_calls: int = 0,
    bytes_sent: int = 0,
    day: date | None = None,
) -> None:
    """Add to a dataset's counters for the day (Asia/Shanghai) and to its totals; safe under concurrency."""
    dataset = session.get(OpenDataset, dataset_id)
    if dataset is None:
        return
    day = day or local_today()
    values = {"views": views, "downloads": downloads, "api_calls": api_calls, "bytes": bytes_sent}
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as upsert_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as upsert_insert  # type: ignore[assignment]
    table = OpenDatasetUsage.__table__
    stmt = upsert_insert(table).values(
        id=_new_id(), dataset_id=dataset_id, provider_org_id=dataset.provider_org_id, day=day, **values
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.dataset_id, table.c.day],
        set_={name: getattr(table.c, name) + getattr(stmt.excluded, name) for name in values},
    )
    session.execute(stmt)
    session.execute(
        sql_update(OpenDataset)
        .where(OpenDataset.id == dataset_id)
        .values(
            view_count=OpenDataset.view_count + views,
            download_count=OpenDataset.download_count + downloads,
            api_call_count=OpenDataset.api_call_count + api_calls,
        )
        .execution_options(synchronize_session=False)
    )


def _new_id() -> str:
    from zhengshu.core.db import new_id

    return new_id()


def usage_by_day(session: Session, *, dataset_id: str, days: int = 30) -> list[OpenDatasetUsage]:
    since = date.fromordinal(local_today().toordinal() - days + 1)
    return list(
        session.scalars(
            select(OpenDatasetUsage)
            .where(OpenDatasetUsage.dataset_id == dataset_id, OpenDatasetUsage.day >= since)
            .order_by(OpenDatasetUsage.day)
        )
    )


# ---- read shapes ---------------------------------------------------------------------------------------------


def to_summary(dataset: OpenDataset) -> dict[str, Any]:
    return {
        "id": dataset.id,
        "slug": dataset.slug,
        "title": dataset.title,
        "description": dataset.description,
        "provider_org_id": dataset.provider_org_id,
        "provider": dataset.provider.short_name or dataset.provider.name,
        "field": dataset.field,
        "field_label": vocab.field_label(dataset.field),
        "opening_type": dataset.opening_type,
        "update_cycle": dataset.update_cycle,
        "licence": dataset.licence,
        "row_count": dataset.row_count,
        "status": dataset.status,
        "published_at": dataset.published_at,
        "refreshed_at": dataset.refreshed_at,
        "view_count": dataset.view_count,
        "download_count": dataset.download_count,
        "api_call_count": dataset.api_call_count,
    }


def download_urls(dataset: OpenDataset) -> dict[str, str]:
    return {fmt: f"/api/v1/open/datasets/{dataset.slug}/download.{fmt}" for fmt in vocab.FORMATS}


def to_read(session: Session, dataset: OpenDataset) -> dict[str, Any]:
    licence = vocab.LICENCES.get(dataset.licence, {})
    return {
        **to_summary(dataset),
        "entry_id": dataset.entry_id,
        "entry_code": dataset.entry_code,
        "tags": list(dataset.tags or []),
        "opening_condition": dataset.opening_condition,
        "licence_label": licence.get("label", dataset.licence),
        "licence_url": licence.get("url", ""),
        "contact": dataset.contact,
        "version": dataset.version_number,
        "byte_size": dataset.byte_size,
        "quality_score": dataset.quality_score,
        "items": [
            {
                "column": i.column_name,
                "name": i.name,
                "data_type": i.data_type,
                "description": i.description,
                "masking_rule": i.masking_rule,
                "masking_label": masking.rule_label(i.masking_rule),
                "is_key": i.is_key,
            }
            for i in dataset.items
        ],
        "versions": [
            {
                "number": v.number,
                "row_count": v.row_count,
                "byte_size": v.byte_size,
                "checksum": v.checksum,
                "quality_score": v.quality_score,
                "note": v.note,
                "created_at": v.created_at,
            }
            for v in versions(session, dataset)
        ],
        "downloads": download_urls(dataset),
        "api": {
            "data": f"/api/v1/open/datasets/{dataset.slug}/data",
            "datastore_search": f"/api/3/action/datastore_search?resource_id={dataset.id}",
        },
    }
