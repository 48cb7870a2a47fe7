"""Jinja2 set-up: templates looked up most-specific first (an operator's override directory, then each
feature's ``templates/``), and the filters every page uses."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape

from zhengshu.core.timeutil import SHANGHAI, format_date_cn

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
FEATURE_TEMPLATE_DIRS = [p for p in sorted(PACKAGE_ROOT.glob("*/templates")) if p.is_dir()]


def _date(value: date | datetime | None, style: str = "table") -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value.astimezone(SHANGHAI)
        if style == "time":
            return value.strftime("%Y-%m-%d %H:%M")
        value = value.date()
    return format_date_cn(value) if style == "prose" else value.isoformat()


def _thousands(value: int | float | None) -> str:
    if value is None:
        return ""
    return f"{value:,}"


def _ticket_kind_label(kind: str) -> str:
    from zhengshu.workflow.machine import MACHINES

    machine = MACHINES.get(kind)
    return machine.label if machine else kind


def build_environment(override_dir: Path | None = None) -> Environment:
    loaders = []
    if override_dir is not None and override_dir.is_dir():
        loaders.append(FileSystemLoader(str(override_dir)))
    loaders.append(FileSystemLoader([str(p) for p in FEATURE_TEMPLATE_DIRS]))
    env = Environment(loader=ChoiceLoader(loaders), autoescape=select_autoescape(["html"]))
    env.filters["date"] = _date
    env.filters["thousands"] = _thousands
    env.globals["ticket_kind_label"] = _ticket_kind_label
    return env


def render(
    request: Request, name: str, context: dict[str, Any] | None = None, *, status_code: int = 200
) -> HTMLResponse:
    env: Environment = request.app.state.templates
    from zhengshu.web.deps import csrf_token

    ctx: dict[str, Any] = {
        "request": request,
        "actor": getattr(request.state, "actor", None),
        "csrf_token": csrf_token(request) if "session" in request.scope else "",
        "settings": request.app.state.settings,
        "flash": request.session.pop("flash", None) if "session" in request.scope else None,
    }
    ctx.update(context or {})
    return HTMLResponse(env.get_template(name).render(ctx), status_code=status_code)


def flash(request: Request, message: str, kind: str = "success", link: str | None = None) -> None:
    request.session["flash"] = {"message": message, "kind": kind, "link": link}
