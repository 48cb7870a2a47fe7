"""Text with a NUL character is refused at the edge with one stable code, on every backend, and writes nothing
(PostgreSQL cannot store U+0000; before this guard such input failed deep in the driver)."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from tests.factories import token_for
from zhengshu.demo.identities import uscc
from zhengshu.web.textguard import has_nul_body, has_nul_query

PROBLEM = "application/problem+json"


def _org(name: str, seed: int) -> dict[str, Any]:
    code = uscc(random.Random(seed), region_code="360000")
    return {"name": name, "short_name": "测试", "uscc": code, "region_code": "360000"}


def _count_orgs(client: Any, headers: dict[str, str]) -> int:
    page = client.get("/api/v1/org/organizations", params={"count": "true", "limit": 1}, headers=headers).json()
    return int(page["total"])


def _assert_refused(response: Any) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["code"] == "validation.nul_character" and "空字符" in body["detail"]


def test_json_body_with_nul_is_refused_and_changes_nothing(client: Any, world: Any) -> None:
    headers = token_for(client, "admin")
    before = _count_orgs(client, headers)
    response = client.post("/api/v1/org/organizations", json=_org("测试\x00单位", 11), headers=headers)
    _assert_refused(response)
    # a NUL in a nested list or dict key is caught the same way
    raw = json.dumps({"name": "测试单位", "tags": ["a\x00b"], "extra": {"k\x00": 1}})
    nested = client.post(
        "/api/v1/org/organizations", content=raw, headers={**headers, "content-type": "application/json"}
    )
    _assert_refused(nested)
    assert _count_orgs(client, headers) == before
    ok = client.post("/api/v1/org/organizations", json=_org("测试单位甲", 11), headers=headers)
    assert ok.status_code == 201, ok.text
    assert _count_orgs(client, headers) == before + 1


def test_a_literal_backslash_u0000_is_ordinary_text(client: Any, world: Any) -> None:
    headers = token_for(client, "admin")
    name = "路径\\u0000样例"  # six characters after the backslash, no NUL
    response = client.post("/api/v1/org/organizations", json=_org(name, 12), headers=headers)
    assert response.status_code == 201, response.text
    assert response.json()["name"] == name


@pytest.mark.parametrize("query", ["q=%00", "q=abc%00def", "limit=1&q=%00x"])
def test_query_string_with_nul_is_refused(client: Any, world: Any, query: str) -> None:
    headers = token_for(client, "admin")
    _assert_refused(client.get(f"/api/v1/org/organizations?{query}", headers=headers))


def test_form_post_with_nul_is_refused(client: Any, world: Any) -> None:
    response = client.post(
        "/login",
        content=b"username=admin%00&password=x",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    _assert_refused(response)


def test_detection_rules() -> None:
    assert has_nul_query(b"a=%00") and not has_nul_query(b"a=%2500")
    assert has_nul_body("application/json", b'{"a": "\\u0000"}')
    assert has_nul_body("application/json", b'{"a": "\\\\\\u0000"}')  # escaped backslash, then a NUL escape
    assert not has_nul_body("application/json", b'{"a": "\\\\u0000"}')  # escaped backslash, then text "u0000"
    assert has_nul_body("application/x-www-form-urlencoded", b"a=%00")
    assert not has_nul_body("application/x-www-form-urlencoded", b"a=%2500")
