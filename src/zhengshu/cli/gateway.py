"""CLI: 接口服务."""

from __future__ import annotations

import typer

gateway_app = typer.Typer(help="接口服务", no_args_is_help=True)
