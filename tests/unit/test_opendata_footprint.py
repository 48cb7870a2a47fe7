"""The server's memory footprint: libraries that cost tens of MB once loaded (pypinyin's phrase dictionary,
jieba's dictionary, pandas) stay out of a server process until a feature needs them, and a whole-file download
never pulls pandas in (pyarrow imports it as soon as an array is built from Python values)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

HEAVY = ("pypinyin", "jieba", "pandas")


def _run(script: str, tmp_path: Path) -> str:
    env = {
        **os.environ,
        "ZHENGSHU_DATA_DIR": str(tmp_path),
        "ZHENGSHU_DATABASE_URL": f"sqlite:///{tmp_path / 'zhengshu.db'}",
        "ZHENGSHU_SECRET_KEY": "footprint-test-secret-0123456789abcdef",
        "ZHENGSHU_EMBEDDED_JOBS": "false",
    }
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_asgi_app_starts_without_the_heavy_libraries(tmp_path: Path) -> None:
    script = f"import sys\nimport zhengshu.web.asgi\nprint([m for m in {HEAVY!r} if m in sys.modules])\n"
    assert _run(script, tmp_path) == "[]"


def test_a_whole_file_download_does_not_import_pandas(tmp_path: Path) -> None:
    path = tmp_path / "v1.parquet"
    table = pa.table({"k": [f"K{i}" for i in range(50)], "v": list(range(50)), "t": ["甲,乙"] * 50})
    pq.write_table(table, path, row_group_size=7)
    script = (
        "import pathlib, sys\n"
        "from zhengshu.opendata import downloads\n"
        f"path = pathlib.Path({str(path)!r})\n"
        "assert b''.join(downloads.csv_file_stream(path, ['k', 'v', 't'])).count(b'\\r\\n') == 51\n"
        "assert b''.join(downloads.json_file_stream(path, ['k', 'v']))\n"
        "assert b''.join(downloads.jsonl_file_stream(path, ['t']))\n"
        "print('pandas' in sys.modules)\n"
    )
    assert _run(script, tmp_path) == "False"
