"""The lake shared service: registered data sources, their tables, and the check behind mounting (挂接).

A department registers its front-end database (前置库) or an uploaded file as a data source; officers then
list its tables, describe one (columns, types, row count, last update) and check a catalog entry's data items
against it before mounting. Credentials are encrypted with SM4 (``zhengshu.security.crypto``) and only
decrypted to build a connector.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from sqlalchemy import ColumnElement, false, select
from sqlalchemy.orm import Session

from zhengshu.catalog.enums import DATA_TYPE_LABELS
from zhengshu.core.db import new_id, utcnow
from zhengshu.core.errors import (
    Conflict,
    ErrorCollector,
    FieldError,
    Forbidden,
    NotFound,
    ValidationFailed,
    ZhengshuError,
)
from zhengshu.core.events import emit
from zhengshu.lake.connectors import (
    FILE_DB_KINDS,
    FILE_KINDS,
    SERVER_KINDS,
    Connector,
    SourceConfig,
    TableDescription,
    TableRef,
    make_connector,
)
from zhengshu.lake.models import DataSource
from zhengshu.lake.schemas import DataSourceIn, DataSourceUpdate, SourceOptions
from zhengshu.lake.typemap import LENGTH_CHECKED, compatible
from zhengshu.security import authz
from zhengshu.security.actor import Actor, Role
from zhengshu.security.crypto import decrypt_secret, encrypt_secret

DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306}
FILE_EXTENSIONS = {
    "csv": {".csv", ".txt"},
    "xlsx": {".xlsx", ".xlsm"},
    "parquet": {".parquet", ".pq"},
}
UPLOAD_EXTENSIONS = {".csv", ".xlsx", ".parquet"}
DEFAULT_UPLOAD_MAX_BYTES = 200 * 1024 * 1024  # (policy) a setting candidate for the lead
_SAFE_ORG = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_UNSAFE_CHARS = re.compile(r"[^\w.-]+")  # \w is Unicode-aware: Chinese file names survive


# --------------------------------------------------------------------------------------------- permissions


def _own_org(actor: Actor, source: Any) -> bool:
    return actor.org_id is not None and source.owner_org_id == actor.org_id


def _own_org_scope(actor: Actor) -> ColumnElement[bool]:
    return DataSource.owner_org_id == actor.org_id if actor.org_id else false()


# Registered here until lake/permissions.py exists (see the report); the registry overwrites by name.
authz.register(
    "lake.view",
    "查看其他部门的数据源",
    roles=set(Role),
    resource="data_source",
    check=_own_org,
    scope=_own_org_scope,
)
authz.register(
    "lake.manage",
    "登记、检测或管理其他部门的数据源",
    roles={Role.OFFICER},
    resource="data_source",
    check=_own_org,
    scope=_own_org_scope,
)


def _ensure_manage(actor: Actor, source: Any) -> None:
    if not authz.allowed(actor, "lake.manage", source):
        raise Forbidden("只有数据源所属部门的数据专员或平台管理员可以执行此操作", code="lake.forbidden")


def visible_sources(actor: Actor) -> ColumnElement[bool]:
    """Default-deny filter: admins see every source, everyone else their own organization's."""
    return authz.scope(actor, "lake.view")


# ------------------------------------------------------------------------------------------------- CRUD


def _upload_root(data_dir: Path | None) -> Path:
    if data_dir is None:
        from zhengshu.core.config import get_settings

        data_dir = get_settings().data_dir
    return Path(data_dir) / "uploads"


def upload_dir(*, data_dir: Path, org_id: str) -> Path:
    """Where an organization's uploaded files live: ``<data_dir>/uploads/<org_id>``."""
    if not _SAFE_ORG.match(org_id):
        raise ValidationFailed("部门标识无效", code="lake.invalid_org")
    return Path(data_dir) / "uploads" / org_id


def _validate_fields(
    *,
    actor: Actor,
    kind: str,
    owner_org_id: str,
    host: str | None,
    database: str | None,
    username: str | None,
    options: dict[str, Any],
    data_dir: Path | None,
) -> dict[str, Any]:
    """Kind-specific required fields; returns the options with the file path made absolute."""
    errors = ErrorCollector()
    options = dict(options)
    if kind in SERVER_KINDS:
        if not (host or "").strip():
            errors.add("host", "请填写数据库服务器地址")
        if not (database or "").strip():
            errors.add("database", "请填写数据库名")
        if not (username or "").strip():
            errors.add("username", "请填写数据库用户名")
    elif kind in FILE_DB_KINDS | FILE_KINDS:
        raw = str(options.get("path") or "").strip()
        if not raw:
            errors.add("options.path", "请填写文件路径或先上传文件")
        else:
            path = Path(raw).expanduser().resolve()
            options["path"] = str(path)
            allowed_root = (_upload_root(data_dir) / owner_org_id).resolve()
            # Officers reach only their own upload area: a free path would expose any file on the server,
            # including the platform's own database. Administrators may register server paths (demo, 前置库).
            if not actor.is_admin and not path.is_relative_to(allowed_root):
                errors.add("options.path", "文件须位于本部门的上传区，请先上传文件")
            elif not path.is_file():
                errors.add("options.path", "文件不存在")
            elif kind in FILE_EXTENSIONS and path.suffix.lower() not in FILE_EXTENSIONS[kind]:
                allowed = "、".join(sorted(FILE_EXTENSIONS[kind]))
                errors.add("options.path", f"文件扩展名与类型不符，应为 {allowed}")
    else:
        errors.add("kind", f"不支持的数据源类型：{kind}")
    if options.get("sheet") and kind != "xlsx":
        errors.add("options.sheet", "只有 Excel 数据源可以指定工作表")
    errors.raise_if_any()
    return options


def _ensure_unique_name(session: Session, *, owner_org_id: str, name: str, exclude_id: str | None = None) -> None:
    stmt = select(DataSource.id).where(DataSource.owner_org_id == owner_org_id, DataSource.name == name)
    if exclude_id:
        stmt = stmt.where(DataSource.id != exclude_id)
    if session.scalar(stmt) is not None:
        raise Conflict(f"本部门已有名为“{name}”的数据源", code="lake.duplicate_name")


def register_source(
    session: Session, *, actor: Actor, source_in: DataSourceIn, data_dir: Path | None = None
) -> DataSource:
    """Register a data source for ``source_in.owner_org_id`` (default: the actor's organization)."""
    owner_org_id = source_in.owner_org_id or actor.org_id
    if not owner_org_id:
        raise ValidationFailed(code="lake.validation_failed", errors=[FieldError("owner_org_id", "请指定所属部门")])
    source = DataSource(
        name=source_in.name.strip(),
        kind=source_in.kind,
        owner_org_id=owner_org_id,
        host=(source_in.host or "").strip() or None,
        port=source_in.port or DEFAULT_PORTS.get(source_in.kind),
        database=source_in.database,
        username=source_in.username,
        description=source_in.description,
        options={},
    )
    _ensure_manage(actor, source)
    source.options = _validate_fields(
        actor=actor,
        kind=source.kind,
        owner_org_id=owner_org_id,
        host=source.host,
        database=source.database,
        username=source.username,
        options=source_in.options.stored(),
        data_dir=data_dir,
    )
    _ensure_unique_name(session, owner_org_id=owner_org_id, name=source.name)
    password = source_in.password.get_secret_value() if source_in.password else ""
    source.secret_encrypted = encrypt_secret(password) if password else None
    session.add(source)
    session.flush()
    emit(session, "lake.source_registered", source_id=source.id, org_id=owner_org_id, kind=source.kind)
    return source


def get_source(session: Session, *, actor: Actor, source_id: str) -> DataSource:
    """The source if the actor may see it; otherwise the same "not found" as a missing id."""
    source = session.get(DataSource, source_id)
    if source is None or not authz.allowed(actor, "lake.view", source):
        raise NotFound("未找到该数据源", code="lake.source_not_found")
    return source


def _get_managed(session: Session, *, actor: Actor, source_id: str) -> DataSource:
    source = get_source(session, actor=actor, source_id=source_id)
    _ensure_manage(actor, source)
    return source


def list_sources(session: Session, *, actor: Actor, kind: str | None = None) -> list[DataSource]:
    stmt = select(DataSource).where(visible_sources(actor))
    if kind:
        stmt = stmt.where(DataSource.kind == kind)
    return list(session.scalars(stmt.order_by(DataSource.owner_org_id, DataSource.name)))


_CONNECTION_FIELDS = ("host", "port", "database", "username")


def update_source(
    session: Session,
    *,
    actor: Actor,
    source_id: str,
    source_in: DataSourceUpdate,
    data_dir: Path | None = None,
) -> DataSource:
    """Change the fields given in ``source_in``; the kind and the owning organization do not change."""
    source = _get_managed(session, actor=actor, source_id=source_id)
    given = source_in.model_fields_set
    # Work out and validate the new values first, so a refused update changes nothing.
    name = source_in.name.strip() if "name" in given and source_in.name is not None else source.name
    connection: dict[str, Any] = {}
    for field_name in _CONNECTION_FIELDS:
        value = getattr(source_in, field_name) if field_name in given else getattr(source, field_name)
        connection[field_name] = (value.strip() or None) if isinstance(value, str) else value
    options = (source_in.options or SourceOptions()).stored() if "options" in given else source.options
    options = _validate_fields(
        actor=actor,
        kind=source.kind,
        owner_org_id=source.owner_org_id,
        host=connection["host"],
        database=connection["database"],
        username=connection["username"],
        options=options,
        data_dir=data_dir,
    )
    _ensure_unique_name(session, owner_org_id=source.owner_org_id, name=name, exclude_id=source.id)

    changed_connection = options != source.options or any(getattr(source, k) != v for k, v in connection.items())
    source.name = name
    if "description" in given and source_in.description is not None:
        source.description = source_in.description
    for field_name, value in connection.items():
        setattr(source, field_name, value)
    source.options = options
    if source_in.clear_password:
        source.secret_encrypted = None
        changed_connection = True
    elif source_in.password is not None and source_in.password.get_secret_value():
        source.secret_encrypted = encrypt_secret(source_in.password.get_secret_value())
        changed_connection = True
    if source.port is None:
        source.port = DEFAULT_PORTS.get(source.kind)
    if changed_connection:  # an earlier check says nothing about the new settings
        source.last_check_ok = None
        source.last_check_message = None
        source.last_checked_at = None
    session.flush()
    emit(session, "lake.source_updated", source_id=source.id, org_id=source.owner_org_id)
    return source


def delete_source(session: Session, *, actor: Actor, source_id: str) -> None:
    source = _get_managed(session, actor=actor, source_id=source_id)
    org_id = source.owner_org_id
    session.delete(source)
    session.flush()
    emit(session, "lake.source_deleted", source_id=source_id, org_id=org_id)


# ------------------------------------------------------------------------------------ reaching the source


def connector_for(source: DataSource) -> Connector:
    """A read-only connector for ``source``; the only place the stored secret is decrypted."""
    password = decrypt_secret(source.secret_encrypted) if source.secret_encrypted else None
    config = SourceConfig(
        kind=source.kind,
        name=source.name,
        host=source.host,
        port=source.port,
        database=source.database,
        username=source.username,
        password=password,
        options=dict(source.options or {}),
    )
    return make_connector(config)


def test_source(session: Session, *, actor: Actor, source_id: str) -> DataSource:
    """Try to connect and record the outcome in ``last_check_*``; a failure is recorded, not raised."""
    source = _get_managed(session, actor=actor, source_id=source_id)
    try:
        connector_for(source).test()
    except ZhengshuError as exc:
        source.last_check_ok = False
        source.last_check_message = exc.detail[:2000]
    else:
        source.last_check_ok = True
        source.last_check_message = "连接正常"
    source.last_checked_at = utcnow()
    session.flush()
    return source


def list_source_tables(session: Session, *, actor: Actor, source_id: str) -> list[TableRef]:
    source = _get_managed(session, actor=actor, source_id=source_id)
    return connector_for(source).list_tables()


def describe_table(session: Session, *, actor: Actor, source_id: str, table: TableRef | str) -> TableDescription:
    source = _get_managed(session, actor=actor, source_id=source_id)
    return connector_for(source).describe(table)


# ------------------------------------------------------------------------------------------ mount check


class ItemLike(Protocol):
    """What the check needs of a data item; catalog items and :class:`ItemSpec` both fit."""

    name: str
    column_name: str | None
    data_type: str
    length: int | None


@dataclass(frozen=True)
class ItemSpec:
    name: str
    column_name: str | None = None
    data_type: str = "C"
    length: int | None = None


ProblemKind = Literal["missing_column", "type_mismatch", "length_exceeded", "extra_column"]


@dataclass(frozen=True)
class MountMatch:
    item: str
    column: str
    item_type: str
    column_type: str


@dataclass(frozen=True)
class MountProblem:
    item: str | None
    kind: ProblemKind
    message: str
    column: str | None = None
    # Extra columns are reported but do not block: only the catalog's items are ever shared.
    blocking: bool = True


@dataclass
class MountCheck:
    ok: bool
    matched: list[MountMatch] = field(default_factory=list)
    problems: list[MountProblem] = field(default_factory=list)


def _label(code: str) -> str:
    return f"{DATA_TYPE_LABELS.get(code, code)}（{code}）"


def check_items_against_table(items: Sequence[ItemLike], description: TableDescription) -> MountCheck:
    """Check a catalog entry's data items against a described table.

    An item is matched by its ``column_name`` when given (exact, then ignoring case); otherwise by its name
    equal to a column name or to a column comment. Matched items must have a compatible type
    (:func:`zhengshu.lake.typemap.compatible`) and, for C/N/Y items with a length, a column whose declared
    (or, for files, longest observed) length does not exceed it. Columns no item uses are reported as
    ``extra_column`` without blocking the mount.
    """
    columns = description.columns
    exact = {c.name: c for c in columns}
    folded: dict[str, Any] = {}
    by_comment: dict[str, Any] = {}
    for c in columns:
        folded.setdefault(c.name.casefold(), c)
        if c.comment and c.comment.strip():
            by_comment.setdefault(c.comment.strip(), c)

    matched: list[MountMatch] = []
    problems: list[MountProblem] = []
    used: set[str] = set()
    for item in items:
        item_type = str(item.data_type).upper()
        wanted = (item.column_name or "").strip()
        if wanted:
            column = exact.get(wanted) or folded.get(wanted.casefold())
        else:
            column = exact.get(item.name) or folded.get(item.name.casefold()) or by_comment.get(item.name.strip())
        if column is None:
            message = (
                f"信息项“{item.name}”对应的字段“{wanted}”在表中不存在"
                if wanted
                else f"表中没有名称或注释为“{item.name}”的字段，请填写信息项对应的字段名"
            )
            problems.append(MountProblem(item.name, "missing_column", message, column=wanted or None))
            continue
        used.add(column.name)
        matched.append(MountMatch(item.name, column.name, item_type, column.type_code))
        if not compatible(item_type, column.type_code):
            problems.append(
                MountProblem(
                    item.name,
                    "type_mismatch",
                    f"信息项“{item.name}”为{_label(item_type)}，字段“{column.name}”为 {column.native_type}"
                    f"（{_label(column.type_code)}），类型不符",
                    column=column.name,
                )
            )
        elif item_type in LENGTH_CHECKED and item.length and column.length and column.length > item.length:
            problems.append(
                MountProblem(
                    item.name,
                    "length_exceeded",
                    f"字段“{column.name}”的长度 {column.length} 超过信息项“{item.name}”的长度 {item.length}",
                    column=column.name,
                )
            )
    for column in columns:
        if column.name not in used:
            problems.append(
                MountProblem(
                    None,
                    "extra_column",
                    f"字段“{column.name}”未对应任何信息项，挂接后不会共享",
                    column=column.name,
                    blocking=False,
                )
            )
    return MountCheck(ok=not any(p.blocking for p in problems), matched=matched, problems=problems)


# ------------------------------------------------------------------------------------------------ uploads


def save_upload(
    *,
    data_dir: Path,
    org_id: str,
    filename: str,
    content: bytes,
    max_bytes: int = DEFAULT_UPLOAD_MAX_BYTES,
) -> Path:
    """Store an uploaded CSV/XLSX/Parquet file under ``<data_dir>/uploads/<org_id>/``, safely renamed."""
    errors = ErrorCollector()
    base = Path(filename.replace("\\", "/")).name
    suffix = Path(base).suffix.lower()
    if suffix not in UPLOAD_EXTENSIONS:
        errors.add("file", f"只能上传 {'、'.join(sorted(UPLOAD_EXTENSIONS))} 文件")
    elif not content:
        errors.add("file", "文件为空")
    elif len(content) > max_bytes:
        errors.add("file", f"文件超过 {max_bytes // (1024 * 1024)} MB 的上限")
    elif suffix == ".xlsx" and not content.startswith(b"PK\x03\x04"):
        errors.add("file", "文件内容不是有效的 XLSX 工作簿")
    elif suffix == ".parquet" and not (content.startswith(b"PAR1") and content.endswith(b"PAR1")):
        errors.add("file", "文件内容不是有效的 Parquet 文件")
    elif suffix == ".csv" and b"\x00" in content[:8192]:
        errors.add("file", "文件内容不是文本格式的 CSV")
    errors.raise_if_any(code="lake.invalid_upload")

    target_dir = upload_dir(data_dir=data_dir, org_id=org_id)
    target_dir.mkdir(parents=True, exist_ok=True)
    stem = _UNSAFE_CHARS.sub("_", Path(base).stem).strip("._")[:80] or "upload"
    target = target_dir / f"{new_id()}-{stem}{suffix}"
    partial = target.with_name(target.name + ".part")
    partial.write_bytes(content)
    os.replace(partial, target)  # readers never see a half-written file
    return target
