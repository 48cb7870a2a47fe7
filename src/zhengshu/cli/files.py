"""CLI: file exchange (文件交换) and the secure ferry between networks (安全导入导出通道)."""

from __future__ import annotations

import typer

files_app = typer.Typer(help="文件交换", no_args_is_help=True)
ferry_app = typer.Typer(help="内外网安全导入导出通道（摆渡）", no_args_is_help=True)
