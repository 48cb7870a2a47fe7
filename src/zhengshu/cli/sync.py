"""CLI: 库表交换."""

from __future__ import annotations

import typer

sync_app = typer.Typer(help="库表交换", no_args_is_help=True)
