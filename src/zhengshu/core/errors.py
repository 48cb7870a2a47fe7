"""The one exception tree of the platform; web/errors.py maps it to problem+json (RFC 9457)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class FieldError:
    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class ZhengshuError(Exception):
    """Base domain error. ``code`` is stable (clients match on it); ``title``/``detail`` are Chinese."""

    status: int = 400
    code: str = "error"
    title: str = "请求无法处理"

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        title: str | None = None,
        errors: list[FieldError] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.detail = detail or self.title
        if code:
            self.code = code
        if title:
            self.title = title
        self.errors: list[FieldError] = errors or []
        self.extra: dict[str, Any] = extra or {}
        super().__init__(f"{self.code}: {self.detail}")

    def problem(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"https://zhengshu.org/problems/{self.code}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        if self.errors:
            body["errors"] = [e.as_dict() for e in self.errors]
        body.update(self.extra)
        return body


class ValidationFailed(ZhengshuError):
    status = 422
    code = "validation.failed"
    title = "提交的数据未通过校验"


class NotFound(ZhengshuError):
    status = 404
    code = "not_found"
    title = "未找到该记录"


class Unauthenticated(ZhengshuError):
    status = 401
    code = "auth.unauthenticated"
    title = "请先登录"


class Forbidden(ZhengshuError):
    status = 403
    code = "auth.forbidden"
    title = "无权执行此操作"


class Conflict(ZhengshuError):
    status = 409
    code = "conflict"
    title = "当前状态下不能执行此操作"


class InvalidTransition(Conflict):
    code = "workflow.invalid_transition"
    title = "当前流程状态不允许此操作"


@dataclass
class ErrorCollector:
    """Collects field errors, then raises them all at once."""

    errors: list[FieldError] = field(default_factory=list)

    def add(self, field_name: str, message: str) -> None:
        self.errors.append(FieldError(field_name, message))

    def raise_if_any(self, detail: str = "提交的数据未通过校验", code: str = "validation.failed") -> None:
        if self.errors:
            raise ValidationFailed(detail, code=code, errors=self.errors)
