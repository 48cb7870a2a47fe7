"""Schemathesis over the file exchange and ferry operations only: whatever it sends, no server error, and every
error is problem+json with a stable code (the suite-wide fuzz test covers the same, this one runs in seconds)."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.factories import token_for

schema = schemathesis.pytest.from_fixture("api_schema").include(path_regex="^/api/v1/exchange/(packages|ferry)")


@pytest.fixture
def api_schema(app: Any, world: Any) -> Any:
    return schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)


@pytest.fixture
def tokens(client: Any) -> list[dict[str, str]]:
    return [token_for(client, "market_officer"), token_for(client, "admin")]


@schema.parametrize()
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
def test_file_exchange_never_fails_with_a_server_error(case: Any, tokens: list[dict[str, str]]) -> None:
    for headers in tokens:
        response = case.call(headers=headers)
        assert response.status_code < 500, (case.path, response.text)
        if response.status_code >= 400:
            content_type = response.headers["content-type"]
            content_type = content_type[0] if isinstance(content_type, list) else content_type
            assert content_type.startswith("application/problem+json"), (case.path, response.status_code)
            assert response.json()["code"]
