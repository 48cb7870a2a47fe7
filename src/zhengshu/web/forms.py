"""Helpers shared by the HTML forms of every feature: field errors, redirects after a change, paging links."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import RedirectResponse
from pydantic import ValidationError

from zhengshu.core.errors import ZhengshuError
from zhengshu.web.errors import pydantic_errors


def form_errors(exc: ValidationError | ZhengshuError) -> dict[str, str]:
    """Field → message for re-rendering a form; a problem without fields lands under ``""``."""
    if isinstance(exc, ValidationError):
        items = pydantic_errors(list(exc.errors()))
    else:
        items = [e.as_dict() for e in exc.errors] or [{"field": "", "message": exc.detail}]
    out: dict[str, str] = {}
    for item in items:
        field = item["field"]
        out[field] = f"{out[field]}；{item['message']}" if field in out else item["message"]
    return out


def safe_local_path(target: str | None) -> str | None:
    """Only same-site paths: no scheme, no ``//host``, no ``/\\host`` (browsers read it as ``//host``)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def blank_to_none(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def page_links(request: Request, next_cursor: str | None) -> str | None:
    if not next_cursor:
        return None
    params = {k: v for k, v in request.query_params.items() if k != "cursor"}
    params["cursor"] = next_cursor
    return f"{request.url.path}?{urlencode(params)}"
