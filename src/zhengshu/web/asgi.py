"""ASGI entry point for ``uvicorn zhengshu.web.asgi:app`` (one app per worker process)."""

from zhengshu.bootstrap import load_features
from zhengshu.web.app import create_app

load_features()
app = create_app()
