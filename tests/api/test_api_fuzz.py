"""Schemathesis drives every operation of our OpenAPI document with generated input: whatever it sends,
the API answers without a server error, and every error is problem+json with a stable code."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.factories import token_for

schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture
def api_schema(app: Any, world: Any) -> Any:
    return schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)


@pytest.fixture
def admin_headers(client: Any) -> dict[str, str]:
    return token_for(client, "admin")


@schema.parametrize()
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_problem_json(case: Any, admin_headers: dict[str, str]) -> None:
    response = case.call(headers=admin_headers)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        content_type = response.headers["content-type"]
        content_type = content_type[0] if isinstance(content_type, list) else content_type
        assert content_type.startswith("application/problem+json"), (case.path, response.status_code)
        body = response.json()
        assert body["code"] and body["title"] and body["status"] == response.status_code
