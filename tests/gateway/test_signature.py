"""Call authentication: good signatures pass; a tampered body, query or path, a stale timestamp, a replayed
nonce and a rotated-out secret are refused with stable codes; a secret rotated within its overlap window still
works, and stops when the window closes."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest

from tests.factories import World
from tests.gateway.conftest import AppCreds, consumer_app, grant, proxy_service, signed
from zhengshu.core.db import Database
from zhengshu.gateway import service as gw_service
from zhengshu.gateway import signing
from zhengshu.gateway.models import AppCredential

ID = "360102199001011234"
URL = f"http://testserver/gw/person-status/{ID}"


@pytest.fixture
def setup(db: Database, world: World, person_entry: str, upstream: Any) -> AppCreds:
    base, _ = upstream
    grant(db, world, person_entry, {"身份证号": "id_6_4", "姓名": "name_first", "参保状态": "none"})
    proxy_service(db, world, person_entry, base)
    return consumer_app(db, world)


def call(client: Any, creds: AppCreds, url: str = URL, **kw: Any) -> Any:
    return client.get(url, headers=signed(creds, "GET", url, **kw))


def test_canonical_query_sorts_and_encodes_one_way() -> None:
    # sorted by the encoded name, then the encoded value (byte order: "%" sorts before digits)
    assert signing.canonical_query("b=2&a=%E6%9D%8E&a=1") == "a=%E6%9D%8E&a=1&b=2"
    assert signing.canonical_query("q=a+b&x=") == "q=a%20b&x="
    assert signing.canonical_path("/gw/人口/x y") == "/gw/%E4%BA%BA%E5%8F%A3/x%20y"
    assert signing.canonical_path("/gw/%E4%BA%BA%E5%8F%A3") == signing.canonical_path("/gw/人口")
    assert signing.body_digest(b"") == signing.EMPTY_SM3
    assert len(signing.body_digest(b"{}", "sha256")) == 64


def test_a_good_signature_passes(gw_client: Any, setup: AppCreds) -> None:
    r = call(gw_client, setup)
    assert r.status_code == 200, r.text
    assert r.json()["items"][0]["sfzh"] == "360102********1234"
    assert r.headers["x-request-id"] == r.json()["request_id"]


def test_sha256_body_digest_is_accepted(gw_client: Any, setup: AppCreds) -> None:
    r = call(gw_client, setup, digest="sha256")
    assert r.status_code == 200, r.text


def test_missing_headers_and_unknown_key(gw_client: Any, setup: AppCreds) -> None:
    r = gw_client.get(URL)
    assert r.status_code == 401 and r.json()["code"] == "gateway.unsigned"
    assert r.headers["content-type"] == "application/problem+json"
    other = AppCreds(setup.app_id, "AKNOTAKEY0000000000", setup.secret)
    assert call(gw_client, other).json()["code"] == "gateway.unknown_key"


def test_a_wrong_secret_is_refused(gw_client: Any, setup: AppCreds) -> None:
    forged = AppCreds(setup.app_id, setup.access_key, "not-the-secret")
    r = call(gw_client, forged)
    assert r.status_code == 401 and r.json()["code"] == "gateway.bad_signature"


def test_tampered_body_is_refused(
    gw_client: Any, setup: AppCreds, db: Database, world: World, person_entry: str, upstream: Any
) -> None:
    base, _ = upstream
    proxy_service(
        db,
        world,
        person_entry,
        base,
        code="person-post",
        proxy={
            "upstream_url": f"{base}/person/{{sfzh}}",
            "method": "POST",
            "params": [{"name": "sfzh", "location": "path"}],
            "fields": {"name": "姓名"},
        },
    )
    url = f"http://testserver/gw/person-post/{ID}"
    body = b'{"purpose": "check"}'
    headers = signed(setup, "POST", url, body=body)
    ok = gw_client.post(url, content=body, headers=headers)
    assert ok.status_code == 200, ok.text
    headers = signed(setup, "POST", url, body=body)
    r = gw_client.post(url, content=b'{"purpose": "other"}', headers=headers)
    assert r.status_code == 401 and r.json()["code"] == "gateway.bad_signature"


def test_query_order_is_canonical_but_values_are_bound(gw_client: Any, setup: AppCreds) -> None:
    signed_url = f"{URL}?fields=sfzh,xm&b=2&a=1"
    # the same pairs in another order verify: the canonical query is sorted
    reordered = f"{URL}?a=1&fields=sfzh%2Cxm&b=2"
    r = gw_client.get(reordered, headers=signed(setup, "GET", signed_url))
    assert r.status_code == 200, r.text
    # swapping the values between names changes the request: refused
    swapped = f"{URL}?fields=sfzh,xm&b=1&a=2"
    r = gw_client.get(swapped, headers=signed(setup, "GET", signed_url))
    assert r.status_code == 401 and r.json()["code"] == "gateway.bad_signature"
    # a client that signs the query as written, unsorted, signs the wrong string
    ts, nonce = str(int(time.time())), signing.new_nonce()
    unsorted = "\n".join(
        [
            signing.SCHEME,
            "GET",
            f"/gw/person-status/{ID}",
            "fields=sfzh%2Cxm&b=2&a=1",
            signing.EMPTY_SM3,
            ts,
            nonce,
            setup.access_key,
        ]
    ).encode()
    headers = {
        signing.H_ACCESS_KEY: setup.access_key,
        signing.H_TIMESTAMP: ts,
        signing.H_NONCE: nonce,
        signing.H_SIGNATURE: signing.signature(setup.secret, unsorted),
    }
    r = gw_client.get(signed_url, headers=headers)
    assert r.status_code == 401 and r.json()["code"] == "gateway.bad_signature"


def test_a_tampered_path_is_refused(gw_client: Any, setup: AppCreds) -> None:
    headers = signed(setup, "GET", URL)
    r = gw_client.get("http://testserver/gw/person-status/360102198505052345", headers=headers)
    assert r.status_code == 401 and r.json()["code"] == "gateway.bad_signature"


def test_stale_timestamps_are_refused(gw_client: Any, setup: AppCreds) -> None:
    for skew in (-301, 301):
        r = call(gw_client, setup, timestamp=int(time.time()) + skew)
        assert r.status_code == 401 and r.json()["code"] == "gateway.stale_timestamp"
    assert call(gw_client, setup, timestamp=int(time.time()) - 200).status_code == 200


def test_a_replayed_nonce_is_refused(gw_client: Any, setup: AppCreds) -> None:
    headers = signed(setup, "GET", URL)
    assert gw_client.get(URL, headers=headers).status_code == 200
    r = gw_client.get(URL, headers=headers)
    assert r.status_code == 401 and r.json()["code"] == "gateway.replayed_nonce"
    bad = signed(setup, "GET", URL, nonce="short")
    assert gw_client.get(URL, headers=bad).json()["code"] == "gateway.bad_nonce"


def test_rotated_secret_works_within_the_overlap_window_then_stops(
    gw_client: Any, setup: AppCreds, db: Database, world: World
) -> None:
    with db.session() as s:
        issued = gw_service.rotate_secret(s, actor=world["hrss_officer"], app_id=setup.app_id, overlap_hours=24)
    new = AppCreds(setup.app_id, issued["access_key"], issued["secret"])
    assert issued["previous_valid_until"] is not None
    # both work inside the window
    assert call(gw_client, setup).status_code == 200
    assert call(gw_client, new).status_code == 200
    # the window closes: the old key is refused, the new one keeps working
    with db.session() as s:
        cred = s.query(AppCredential).filter_by(access_key=setup.access_key).one()
        cred.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        gw_service.bump_generation(s)
    r = call(gw_client, setup)
    assert r.status_code == 401 and r.json()["code"] == "gateway.unknown_key"
    assert call(gw_client, new).status_code == 200


def test_rotation_without_overlap_stops_the_old_secret_at_once(
    gw_client: Any, setup: AppCreds, db: Database, world: World
) -> None:
    assert call(gw_client, setup).status_code == 200
    with db.session() as s:
        issued = gw_service.rotate_secret(s, actor=world["hrss_officer"], app_id=setup.app_id, overlap_hours=0)
    assert call(gw_client, setup).json()["code"] == "gateway.unknown_key"
    assert call(gw_client, AppCreds(setup.app_id, issued["access_key"], issued["secret"])).status_code == 200


def test_the_secret_is_stored_encrypted(db: Database, setup: AppCreds) -> None:
    with db.session() as s:
        cred = s.query(AppCredential).filter_by(access_key=setup.access_key).one()
        assert setup.secret not in cred.secret_encrypted
        assert cred.secret_encrypted.startswith(("sm4gcm:", "sm4cbc:"))
