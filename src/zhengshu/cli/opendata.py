"""CLI: 数据开放."""

from __future__ import annotations

import typer

opendata_app = typer.Typer(help="数据开放", no_args_is_help=True)
