"""The demo province's synthetic identities, catalog seed and source databases."""

from __future__ import annotations

import csv
import random
import re
import sqlite3
import time
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest
from faker import Faker
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum.cn import ric
from stdnum.cn import uscc as stdnum_uscc

from zhengshu.catalog.enums import RESOURCE_CLASSES, SENSITIVITY_ORDER
from zhengshu.catalog.schemas import EntryIn
from zhengshu.demo import catalog_seed, identities, source_data
from zhengshu.demo.catalog_seed import all_departments, city_departments, provincial_departments, seed_entries
from zhengshu.demo.identities import enterprise, organization_code_check, person, resident_id, uscc
from zhengshu.org.divisions import code_in_force, current_cities, current_division, is_valid_in

SEEDS = st.integers(min_value=0, max_value=2**32 - 1)


def _faker(seed: int) -> Faker:
    faker = Faker("zh_CN")
    faker.seed_instance(seed)
    return faker


def _stdnum_ric_ok(number: str) -> bool:
    try:
        ric.validate(number)
    except KeyError:  # stdnum can raise KeyError on unknown areas
        return False
    return True


# ---- identities ------------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(seed=SEEDS)
def test_person_has_valid_id_in_a_current_jiangxi_county(seed: int) -> None:
    rng = random.Random(seed)
    p = person(rng, _faker(seed))
    number = p["resident_id"]
    assert _stdnum_ric_ok(number)
    assert ric.get_birth_date(number) == p["birth_date"]
    assert (int(number[16]) % 2 == 1) == (p["gender"] == "男")
    county = current_division(p["county_code"])
    assert county is not None and county.level == "county" and county.code.startswith("36")
    # The ID carries the code in force at birth for today's county (today's code whenever stdnum allows).
    assert number[:6] == p["id_area_code"] == code_in_force(p["county_code"], p["birth_date"].year)
    if is_valid_in(p["county_code"], p["birth_date"].year):
        assert number[:6] == p["county_code"]
    city = current_division(county.parent_code or "")
    assert city is not None
    assert p["address"].startswith(f"江西省{city.name}{county.name}")
    assert re.fullmatch(r"1[3-9]\d{9}", p["mobile"])
    assert p["name"] and p["ethnicity"].endswith("族")


@settings(max_examples=60, deadline=None)
@given(seed=SEEDS)
def test_enterprise_codes_are_valid(seed: int) -> None:
    rng = random.Random(seed)
    e = enterprise(rng, _faker(seed))
    assert stdnum_uscc.validate(e["uscc"]) == e["uscc"]
    assert e["uscc"][:2] == "91"
    assert e["uscc"][2:8] == e["county_code"]
    assert current_division(e["county_code"]) is not None
    assert _stdnum_ric_ok(e["legal_rep_id"])
    assert ric.get_birth_date(e["legal_rep_id"]).year + 20 <= e["established_on"].year + 1
    assert e["established_on"] <= identities.AS_OF
    assert e["status"] in {"存续", "在业", "注销"}
    assert re.fullmatch(r"[A-T]\d{4}", e["industry_code"])
    assert e["registered_capital"] > 0
    # Codes issued after the 2015 reform start with MA.
    if e["established_on"] >= date(2015, 10, 1):
        assert e["uscc"][8:10] == "MA"


@settings(max_examples=100, deadline=None)
@given(seed=SEEDS, authority_type=st.sampled_from([("9", "1"), ("9", "2"), ("1", "1"), ("1", "2"), ("5", "1")]))
def test_uscc_passes_stdnum(seed: int, authority_type: tuple[str, str]) -> None:
    authority, org_type = authority_type
    code = uscc(random.Random(seed), region_code="360102", authority=authority, org_type=org_type)
    assert stdnum_uscc.validate(code) == code
    assert code[:8] == f"{authority}{org_type}360102"
    assert organization_code_check(code[8:16]) == code[16]


def test_organization_code_check_matches_a_real_code() -> None:
    # 91110000600037341L is python-stdnum's own real example; its organization code is 60003734-1.
    assert organization_code_check("60003734") == "1"
    assert organization_code_check("12345678") == "8"
    with pytest.raises(ValueError):
        organization_code_check("1234567")


@settings(max_examples=100, deadline=None)
@given(
    seed=SEEDS,
    county=st.sampled_from(["360102", "360121", "360423", "360502", "360982", "361181"]),
    birth=st.dates(min_value=date(2000, 1, 1), max_value=date(2025, 6, 30)),
    male=st.booleans(),
)
def test_resident_id_with_a_current_code(seed: int, county: str, birth: date, male: bool) -> None:
    number = resident_id(random.Random(seed), area_code=county, birth=birth, male=male)
    assert ric.validate(number) == number
    assert number[:6] == county and number[6:14] == birth.strftime("%Y%m%d")
    assert int(number[14:17]) > 0 and (int(number[16]) % 2 == 1) == male


def test_resident_id_rejects_codes_not_in_force() -> None:
    rng = random.Random(1)
    with pytest.raises(ValueError):
        resident_id(rng, area_code="360105", birth=date(2021, 1, 1), male=True)  # 湾里区 abolished 2019
    with pytest.raises(ValueError):
        resident_id(rng, area_code="360704", birth=date(1980, 1, 1), male=True)  # 赣县区 since 2016
    with pytest.raises(ValueError):
        resident_id(rng, area_code="110101", birth=date(1990, 1, 1), male=True)  # not Jiangxi
    with pytest.raises(ValueError):
        uscc(rng, region_code="3601", authority="9")
    with pytest.raises(ValueError):
        uscc(rng, region_code="360100", authority="Z")


def test_identities_are_deterministic() -> None:
    assert person(random.Random(5), _faker(5)) == person(random.Random(5), _faker(5))
    assert enterprise(random.Random(5), _faker(5)) == enterprise(random.Random(5), _faker(5))


# ---- departments and catalog seed --------------------------------------------------------------------------


def test_departments() -> None:
    provincial = provincial_departments()
    names = {d.name for d in provincial}
    for required in (
        "江西省公安厅",
        "江西省市场监督管理局",
        "江西省人力资源和社会保障厅",
        "江西省民政厅",
        "江西省卫生健康委员会",
        "江西省教育厅",
        "江西省自然资源厅",
        "国家税务总局江西省税务局",
        "江西省医疗保障局",
        "江西省住房和城乡建设厅",
        "江西省交通运输厅",
        "江西省生态环境厅",
        "江西省农业农村厅",
        "江西省应急管理厅",
        "江西省司法厅",
        "江西省财政厅",
        "江西省发展和改革委员会",
        "江西省数据局",
        "江西省大数据中心",
    ):
        assert required in names
    numbers = [d.number for d in provincial]
    assert len(set(numbers)) == len(numbers) and all(re.fullmatch(r"\d{2}", n) for n in numbers)
    assert [d.name for d in provincial if d.kind == "data_authority"] == ["江西省数据局"]
    for city in current_cities("36"):
        depts = city_departments(city.code)
        assert len(depts) >= 6
        assert [d.name for d in depts if d.kind == "data_authority"] == [f"{city.name}数据局"]
        assert f"{city.name}公安局" in {d.name for d in depts}
        assert all(d.region_code == city.code for d in depts)
    everyone = all_departments()
    codes = [d.uscc for d in everyone]
    assert len(set(codes)) == len(codes)
    assert len({d.key for d in everyone}) == len(everyone)
    for d in everyone:
        assert stdnum_uscc.validate(d.uscc)
        assert d.uscc[0] == "1" and d.uscc[2:8] == d.region_code
    assert catalog_seed.department("prov.dsj").uscc[:2] == "12"  # 事业单位
    assert catalog_seed.data_authority("360100").name == "南昌市数据局"
    # Stable across calls (codes are derived from keys, not from a shared rng).
    assert catalog_seed._org_uscc("prov.gat", "360000", "1") == catalog_seed.department("prov.gat").uscc


@pytest.fixture(scope="module")
def entries() -> list[dict[str, Any]]:
    return seed_entries(random.Random(20251127))


def test_seed_entries_validate_and_are_unique(entries: list[dict[str, Any]]) -> None:
    assert len(entries) >= 300
    keys = {d.key: d for d in all_departments()}
    for entry in entries:
        EntryIn.model_validate(entry)
        assert entry["provider_key"] in keys
        assert 4 <= len(entry["items"]) <= 15
        columns = [i["column_name"] for i in entry["items"]]
        assert len(set(columns)) == len(columns)
        assert all(re.fullmatch(r"[a-z][a-z0-9_]*", c) for c in columns)
    per_provider = Counter((e["provider_key"], e["name"]) for e in entries)
    assert not [k for k, n in per_provider.items() if n > 1]
    providers = {e["provider_key"] for e in entries}
    assert {d.key for d in provincial_departments()} <= providers
    assert sum(1 for p in providers if not p.startswith("prov.")) >= 11 * 6


def test_seed_entry_classes_and_attributes(entries: list[dict[str, Any]]) -> None:
    keys = {d.key: d for d in all_departments()}
    for entry in entries:
        code = entry["class_code"]
        category, item = code[0], code[1:3]
        if category == "3":
            assert code[1:3] == keys[entry["provider_key"]].number
        else:
            assert item in RESOURCE_CLASSES[category][1]
        if entry["sharing_type"] == "有条件共享":
            assert entry["sharing_condition"].strip()
        if entry["sharing_type"] == "不予共享":
            assert "《" in entry["not_shared_basis"]
    sharing = Counter(e["sharing_type"] for e in entries)
    assert sharing["有条件共享"] > sharing["无条件共享"] > sharing["不予共享"] > 0
    assert len(Counter(e["opening_type"] for e in entries)) == 3
    assert len(Counter(e["update_cycle"] for e in entries)) >= 6
    assert len(Counter(e["sharing_way"] for e in entries)) >= 3
    assert len({e["class_code"][0] for e in entries}) == 3


def test_seed_item_sensitivity(entries: list[dict[str, Any]]) -> None:
    rank = SENSITIVITY_ORDER.index
    for entry in entries:
        for item in entry["items"]:
            if item["name"] in {"身份证号", "手机号", "法定代表人身份证号"}:
                assert rank(item["sensitivity"]) >= rank("一般4")
            if item["name"] in {"疾病诊断", "银行账号", "学生身份证号", "罪名", "保障类型", "人像照片"}:
                assert item["sensitivity"] == "重要"
            # Personal identifiers never leave an unconditionally shared entry unconditionally.
            if entry["sharing_type"] == "无条件共享" and rank(item["sensitivity"]) >= rank("一般4"):
                assert item["sharing_type"] == "有条件共享"


def test_story_entry(entries: list[dict[str, Any]]) -> None:
    (entry,) = [e for e in entries if e["name"] == "企业登记信息"]
    assert entry["provider_key"] == "prov.scjg"
    assert entry["class_code"] == "102001"
    names = {i["name"] for i in entry["items"]}
    assert {
        "统一社会信用代码",
        "企业名称",
        "法定代表人",
        "注册资本",
        "成立日期",
        "登记机关",
        "住所",
        "经营范围",
        "登记状态",
    } <= names
    assert entry["sharing_type"] == "有条件共享"


def test_seed_is_deterministic() -> None:
    assert seed_entries(random.Random(3)) == seed_entries(random.Random(3))
    assert seed_entries(random.Random(3)) != seed_entries(random.Random(4))


def test_mounted_entries_are_in_the_seed(entries: list[dict[str, Any]]) -> None:
    by_name = Counter(e["name"] for e in entries)
    for entry_name, source_key, _table in source_data.MOUNTS:
        assert by_name[entry_name] == 1, entry_name  # unambiguous by name alone
        (entry,) = [e for e in entries if e["name"] == entry_name]
        assert entry["provider_key"] == source_data.MOUNT_PROVIDERS[entry_name]
        assert entry["items"] == source_data.mount_items(entry_name)
        assert source_key in source_data.SOURCE_FILES


# ---- source databases --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Path], float]:
    target = tmp_path_factory.mktemp("demo_sources")
    started = time.perf_counter()
    paths = source_data.build_source_databases(target, rng=random.Random(42))
    return paths, time.perf_counter() - started


def _table_columns(key: str, path: Path, table: str) -> list[tuple[str, str]]:
    """(column, declared type) as the source reports them."""
    kind = source_data.SOURCE_KINDS[key]
    if kind == "sqlite":
        con = sqlite3.connect(path)
        try:
            return [(row[1], row[2]) for row in con.execute(f"PRAGMA table_info({table})")]
        finally:
            con.close()
    if kind == "duckdb":
        dcon = duckdb.connect(str(path), read_only=True)
        try:
            return [(row[0], row[1]) for row in dcon.execute(f"DESCRIBE {table}").fetchall()]
        finally:
            dcon.close()
    if kind == "csv":
        with path.open(encoding="utf-8") as fh:
            return [(name, "") for name in next(csv.reader(fh))]
    schema = pq.read_schema(path)
    return [(f.name, str(f.type)) for f in schema]


def test_build_is_fast_and_complete(built: tuple[dict[str, Path], float]) -> None:
    paths, seconds = built
    assert seconds < 10
    assert set(paths) == set(source_data.SOURCE_FILES)
    for key, path in paths.items():
        assert path.name == source_data.SOURCE_FILES[key] and path.stat().st_size > 0


def test_source_columns_match_mounted_items(built: tuple[dict[str, Path], float]) -> None:
    paths, _ = built
    for entry_name, key, table in source_data.MOUNTS:
        items = source_data.mount_items(entry_name)
        columns = _table_columns(key, paths[key], table)
        assert [c for c, _ in columns] == [i["column_name"] for i in items], entry_name
        kind = source_data.SOURCE_KINDS[key]
        for (_, declared), item in zip(columns, items, strict=True):
            if kind == "sqlite":
                assert declared == source_data.sql_type(item["data_type"], item["length"])
            elif kind == "duckdb":
                expected = source_data.sql_type(item["data_type"], item["length"])
                assert declared == re.sub(r"^VARCHAR\(\d+\)$", "VARCHAR", expected)
            elif kind == "parquet":
                assert declared == str(source_data.arrow_type(item["data_type"], item["length"]))


def _sqlite_rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(path)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_source_contents_are_valid_and_linked(built: tuple[dict[str, Path], float]) -> None:
    paths, _ = built
    population = _sqlite_rows(paths["police_frontend"], "SELECT sfzh, xm, hjdxzqhdm FROM rk_jbxx")
    assert len(population) == 5000
    ids = {row[0] for row in population}
    assert len(ids) == 5000
    assert all(_stdnum_ric_ok(i) for i in ids)
    assert all(current_division(row[2]) is not None for row in population)

    firms = _sqlite_rows(paths["market_frontend"], "SELECT tyshxydm, fddbr, fddbrsfzh, qymc FROM qy_djxx")
    assert len(firms) == 2000
    codes = {row[0] for row in firms}
    assert len(codes) == 2000 and len({row[3] for row in firms}) == 2000
    assert all(stdnum_uscc.validate(c) for c in codes)
    assert {row[2] for row in firms} <= ids  # legal representatives are residents

    dcon = duckdb.connect(str(paths["hrss_frontend"]), read_only=True)
    try:
        enrolled = dcon.execute("SELECT DISTINCT sfzh FROM sb_cbxx").fetchall()
        employers = dcon.execute("SELECT DISTINCT dwtyshxydm FROM sb_cbxx WHERE dwtyshxydm IS NOT NULL").fetchall()
    finally:
        dcon.close()
    assert len(enrolled) > 1000 and {r[0] for r in enrolled} <= ids
    assert employers and {r[0] for r in employers} <= codes

    with paths["tax_nsr"].open(encoding="utf-8") as fh:
        taxpayers = list(csv.DictReader(fh))
    assert {t["nsrsbh"] for t in taxpayers} == codes
    rep_by_code = {row[0]: row[1] for row in firms}
    conflicts = sum(1 for t in taxpayers if t["fddbr"] != rep_by_code[t["nsrsbh"]])
    assert 0 < conflicts < 0.05 * len(taxpayers)

    dibao = pq.read_table(paths["civil_affairs_dibao"]).to_pylist()
    assert 20 < len(dibao) < 500
    assert {r["sfzh"] for r in dibao} <= ids
    assert all(r["bzlx"] in {"城市低保", "农村低保"} and r["ybzje"] > 0 for r in dibao)


def test_build_is_deterministic(tmp_path: Path) -> None:
    first = source_data.build_source_databases(tmp_path / "a", rng=random.Random(9), people=300, enterprises=80)
    second = source_data.build_source_databases(tmp_path / "b", rng=random.Random(9), people=300, enterprises=80)
    sql = "SELECT * FROM qy_djxx ORDER BY tyshxydm"
    assert _sqlite_rows(first["market_frontend"], sql) == _sqlite_rows(second["market_frontend"], sql)
    assert first["tax_nsr"].read_bytes() == second["tax_nsr"].read_bytes()
    # Building again into the same place replaces the old files instead of failing.
    again = source_data.build_source_databases(tmp_path / "a", rng=random.Random(9), people=300, enterprises=80)
    assert len(_sqlite_rows(again["market_frontend"], "SELECT 1 FROM qy_djxx")) == 80
