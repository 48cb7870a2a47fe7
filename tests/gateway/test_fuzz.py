"""Schemathesis over the gateway's control-plane operations only (the whole-API fuzz test covers them too, at
fewer examples each): whatever it sends, no server error, and errors are problem+json with a stable code."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.factories import token_for

schema = schemathesis.pytest.from_fixture("gateway_schema").include(path_regex="^/api/v1/gateway")


@pytest.fixture
def gateway_schema(app: Any, world: Any) -> Any:
    return schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)


@pytest.fixture
def officer_headers(client: Any) -> dict[str, str]:
    return token_for(client, "market_officer")


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_gateway_api_has_no_server_errors(case: Any, officer_headers: dict[str, str]) -> None:
    response = case.call(headers=officer_headers)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        content_type = response.headers["content-type"]
        content_type = content_type[0] if isinstance(content_type, list) else content_type
        assert content_type.startswith("application/problem+json"), (case.path, response.text)
        assert response.json()["code"]
