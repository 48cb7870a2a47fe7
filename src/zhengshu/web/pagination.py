"""List conventions shared by every API: ``limit`` (default 20, max 200), opaque ``cursor``, ``count``."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from zhengshu.core.errors import ValidationFailed

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None
    total: int | None = None


Limit = Annotated[int, Query(ge=1, le=200, description="每页条数，默认 20，最大 200")]
Cursor = Annotated[str | None, Query(description="上一页返回的 next_cursor")]
Count = Annotated[bool, Query(description="为 true 时返回 total（总数）")]


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        offset = int(json.loads(base64.urlsafe_b64decode(padded))["o"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValidationFailed("分页游标无效", code="pagination.bad_cursor") from exc
    if offset < 0:
        raise ValidationFailed("分页游标无效", code="pagination.bad_cursor")
    return offset


def paginate(
    session: Session, stmt: Select[Any], *, limit: int, cursor: str | None, count: bool
) -> tuple[list[Any], str | None, int | None]:
    offset = decode_cursor(cursor)
    rows = list(session.scalars(stmt.offset(offset).limit(limit + 1)))
    next_cursor = encode_cursor(offset + limit) if len(rows) > limit else None
    total = None
    if count:
        total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    return rows[:limit], next_cursor, total


def page_of(items: Sequence[Any], *, limit: int, cursor: str | None, count: bool) -> dict[str, Any]:
    """The list convention over a list already in memory (short reference lists: regions, orgs, users)."""
    offset = decode_cursor(cursor)
    end = offset + limit
    return {
        "items": list(items[offset:end]),
        "next_cursor": encode_cursor(end) if end < len(items) else None,
        "total": len(items) if count else None,
    }
