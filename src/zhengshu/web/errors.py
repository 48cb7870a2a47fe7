"""The one place that turns exceptions into responses: problem+json for the API, a page for browsers."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Send

from zhengshu.core.errors import Unauthenticated, ZhengshuError

log = logging.getLogger(__name__)

PROBLEM = "application/problem+json"

PYDANTIC_MESSAGES = {
    "missing": "必填项",
    "string_too_short": "长度不足",
    "string_too_long": "超出长度上限",
    "string_pattern_mismatch": "格式不正确",
    "enum": "取值不在可选范围内",
    "literal_error": "取值不在可选范围内",
    "int_parsing": "应为整数",
    "int_type": "应为整数",
    "float_parsing": "应为数字",
    "bool_parsing": "应为是/否",
    "date_from_datetime_parsing": "应为日期（YYYY-MM-DD）",
    "date_parsing": "应为日期（YYYY-MM-DD）",
    "greater_than_equal": "数值过小",
    "less_than_equal": "数值过大",
    "too_short": "至少需要填写一项",
    "json_invalid": "请求体不是有效的 JSON",
    "model_attributes_type": "格式不正确",
    "list_type": "应为列表",
    "string_type": "应为文本",
    "dict_type": "应为对象",
}


def field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [p for p in loc if p not in ("body", "query", "path", "form")]
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "body"


def pydantic_errors(errors: list[dict[str, Any]]) -> list[dict[str, str]]:
    out = []
    for err in errors:
        kind = err.get("type", "")
        message = PYDANTIC_MESSAGES.get(kind)
        if kind == "value_error":
            message = str(err.get("msg", "")).removeprefix("Value error, ")
        elif kind == "enum" and err.get("ctx", {}).get("expected"):
            message = f"取值不在可选范围内（可选：{err['ctx']['expected']}）"
        out.append({"field": field_path(err.get("loc", ())), "message": message or str(err.get("msg"))})
    return out


def wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api/") and "text/html" in request.headers.get("accept", "")


def problem_response(body: dict[str, Any], status: int) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def problem_body(status: int, code: str, title: str, detail: str) -> dict[str, Any]:
    return {
        "type": f"https://zhengshu.org/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }


async def send_problem(send: Send, body: dict[str, Any], *, close: bool = False) -> None:
    """Answer with problem+json from plain ASGI middleware (before any route or exception handler runs)."""
    payload = json.dumps(body, ensure_ascii=False).encode()
    headers = [(b"content-type", PROBLEM.encode()), (b"content-length", str(len(payload)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": body["status"], "headers": headers})
    await send({"type": "http.response.body", "body": payload})


# The open-data portal's public pages sign in registered members of the public, not government users; its
# provider pages (publishing, reviewing applications) belong to the government portal.
PUBLIC_PORTAL = "/open"
GOVERNMENT_PAGES_UNDER_PUBLIC_PORTAL = ("/open/manage", "/open/review")


def _login_page(path: str) -> str:
    public = path == PUBLIC_PORTAL or path.startswith(PUBLIC_PORTAL + "/")
    if public and not path.startswith(GOVERNMENT_PAGES_UNDER_PUBLIC_PORTAL):
        return "/open/login"
    return "/login"


def install(app: FastAPI) -> None:
    @app.exception_handler(ZhengshuError)
    async def _domain(request: Request, exc: ZhengshuError) -> Response:
        if wants_html(request):
            if isinstance(exc, Unauthenticated):
                return RedirectResponse(f"{_login_page(request.url.path)}?next={request.url.path}", status_code=303)
            from zhengshu.web.templating import render

            return render(request, "error.html", {"problem": exc.problem()}, status_code=exc.status)
        return problem_response(exc.problem(), exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        body = {
            "type": "https://zhengshu.org/problems/validation.failed",
            "title": "提交的数据未通过校验",
            "status": 422,
            "detail": "请根据错误提示修改后重新提交",
            "code": "validation.failed",
            "errors": pydantic_errors(list(exc.errors())),
        }
        return problem_response(body, 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        titles = {
            404: "未找到该页面或资源",
            405: "不支持该请求方法",
            401: "请先登录",
            403: "无权访问",
            413: "请求体过大",
        }
        # an HTTP exception may name its own stable code (the body-size ceiling does)
        code = getattr(exc, "problem_code", None)
        body = {
            "type": f"https://zhengshu.org/problems/{code or f'http.{exc.status_code}'}",
            "title": titles.get(exc.status_code, "请求无法处理"),
            "status": exc.status_code,
            "detail": str(exc.detail) if code else titles.get(exc.status_code, str(exc.detail)),
            "code": code or f"http.{exc.status_code}",
        }
        if wants_html(request):
            from zhengshu.web.templating import render

            return render(request, "error.html", {"problem": body}, status_code=exc.status_code)
        return problem_response(body, exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s", request.url.path)
        body = {
            "type": "https://zhengshu.org/problems/internal",
            "title": "系统内部错误",
            "status": 500,
            "detail": "系统内部错误，已记录，请稍后重试或联系平台管理员",
            "code": "internal",
        }
        return problem_response(body, 500)
