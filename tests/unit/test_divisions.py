"""GB/T 2260 table read from python-stdnum's loc.dat."""

from __future__ import annotations

import pytest
from stdnum.cn import ric

from zhengshu.org import divisions
from zhengshu.org.divisions import (
    code_in_force,
    current_cities,
    current_counties,
    current_division,
    division_rows,
    divisions_by_code,
    is_valid_in,
    province_divisions,
)

CITIES = {
    "360100": "南昌市",
    "360200": "景德镇市",
    "360300": "萍乡市",
    "360400": "九江市",
    "360500": "新余市",
    "360600": "鹰潭市",
    "360700": "赣州市",
    "360800": "吉安市",
    "360900": "宜春市",
    "361000": "抚州市",
    "361100": "上饶市",
}


def _id_for(area: str, year: int) -> str:
    body = f"{area}{year}0615123"
    return body + ric.calc_check_digit(body + "0")


def test_province_and_its_eleven_current_cities() -> None:
    rows = province_divisions("36")
    province = [r for r in rows if r.level == "province"]
    assert [(r.code, r.name, r.parent_code) for r in province] == [("360000", "江西省", None)]
    cities = current_cities("36")
    assert {c.code: c.name for c in cities} == CITIES
    assert all(c.parent_code == "360000" for c in cities)


def test_known_counties_current_and_historical() -> None:
    donghu = current_division("360102")
    assert donghu is not None
    assert (donghu.name, donghu.level, donghu.parent_code, donghu.valid_to) == (
        "东湖区",
        "county",
        "360100",
        None,
    )

    (wanli,) = division_rows("360105")
    assert (wanli.name, wanli.valid_from, wanli.valid_to) == ("湾里区", 1983, 2019)
    assert current_division("360105") is None
    assert is_valid_in("360105", 2019) and not is_valid_in("360105", 2020)

    # One code, two names over time.
    assert [(r.name, r.valid_from, r.valid_to) for r in division_rows("360111")] == [
        ("郊区", 1983, 2001),
        ("青山湖区", 2002, None),
    ]
    # Abolished prefecture and its counties stay in the table.
    (ganzhou_prefecture,) = division_rows("362100")
    assert (ganzhou_prefecture.level, ganzhou_prefecture.valid_to) == ("city", 1998)
    assert division_rows("362121")[0].parent_code == "362100"


def test_current_counties_of_nanchang() -> None:
    names = [r.name for r in current_counties("360100")]
    assert names == [
        "东湖区",
        "西湖区",
        "青云谱区",
        "青山湖区",
        "新建区",
        "红谷滩区",
        "南昌县",
        "安义县",
        "进贤县",
    ]
    assert "湾里区" not in names and "市辖区" not in names


def test_jiangxi_has_one_hundred_county_level_divisions() -> None:
    counties = [r for c in current_cities("36") for r in current_counties(c.code)]
    assert len(counties) == 100
    assert len({r.code for r in counties}) == 100
    assert all(r.code[:4] == r.parent_code[:4] for r in counties if r.parent_code)


def test_no_placeholder_rows() -> None:
    assert not [r for r in province_divisions("36") if r.name == "市辖区"]


def test_rows_agree_with_stdnum_lookup() -> None:
    # For every county row and a year inside its period, stdnum names the same county.
    for row in province_divisions("36"):
        if row.level != "county":
            continue
        year = row.valid_to if row.valid_to is not None else (row.valid_from or 1990)
        assert ric.get_birth_place(_id_for(row.code, year))["county"] == row.name


def test_code_in_force_always_gives_an_id_stdnum_accepts() -> None:
    counties = [r for r in province_divisions("36") if r.level == "county" and r.is_current]
    for county in counties:
        for year in range(1930, 2026, 3):
            code = code_in_force(county.code, year)
            assert code is not None, (county, year)
            assert ric.is_valid(_id_for(code, year)), (county, year, code)


def test_code_in_force_follows_lineage() -> None:
    assert code_in_force("360102", 2000) == "360102"
    assert code_in_force("360704", 1970) == "362121"  # 赣县区 <- 赣县 (赣州地区)
    assert code_in_force("360704", 2005) == "360721"  # 赣县区 <- 赣县 (赣州市)
    assert code_in_force("360483", 1990) == "360427"  # 庐山市 <- 星子县, not the old 庐山区
    assert code_in_force("361003", 2010) == "361029"  # 东乡区 <- 东乡县
    assert code_in_force("360102", 1970) == "360100"  # no district code before 1983: the city's


def test_divisions_by_code_has_one_row_per_code() -> None:
    rows = divisions_by_code("36")
    codes = [r.code for r in rows]
    assert len(codes) == len(set(codes)) == len({r.code for r in province_divisions("36")})
    merged = next(r for r in rows if r.code == "360111")
    assert (merged.name, merged.valid_from, merged.valid_to) == ("青山湖区", 1983, None)


def test_bad_input() -> None:
    with pytest.raises(ValueError):
        current_counties("3601")
    with pytest.raises(ValueError):
        province_divisions("3")
    with pytest.raises(ValueError):
        province_divisions("99")
    assert division_rows("abc") == ()


def test_parse_is_cached() -> None:
    assert province_divisions("36") is province_divisions("36")
    assert divisions.province_divisions.cache_info().hits >= 1
