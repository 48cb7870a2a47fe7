"""Administrative division codes (GB/T 2260) for one province, read from python-stdnum's ``cn/loc.dat``.

loc.dat lists, under each two-digit province line, four-digit codes with one or more names, each optionally
prefixed by its years of validity: ``0111 county="[1983-2001]郊区,[2002-]青山湖区"``. A missing start year
means "since before records", a missing end year means "still in force". We turn every (code, name, period)
into one ``DivisionRow`` so the table is versioned the way DOMAIN.md asks.
"""

from __future__ import annotations

import importlib.resources
import re
from dataclasses import dataclass
from functools import cache
from typing import Literal

Level = Literal["province", "city", "county"]

# The official current names of Jiangxi's province and prefecture-level cities (民政部 list). loc.dat agrees
# today; keeping them here means a data refresh that drops a suffix cannot rename a city silently.
OFFICIAL_NAMES: dict[str, str] = {
    "360000": "江西省",
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

# Codes of the form xxxx01 "市辖区" are statistical placeholders, not divisions anyone lives in.
_PLACEHOLDER_NAMES = frozenset({"市辖区"})

_PROVINCE_RE = re.compile(r'^(\d{2}) province="([^"]*)"')
_COUNTY_RE = re.compile(r'^\s+(\d{4}) county="([^"]*)"')
_PERIOD_RE = re.compile(r"^\[(\d*)-(\d*)\](.+)$")

# Renamed or re-carved counties whose predecessors do not share their name (checked against loc.dat):
# current code -> earlier codes of the same place, newest first.
_PREDECESSORS: dict[str, tuple[str, ...]] = {
    "360404": ("360421", "362621"),  # 柴桑区 <- 九江县
    "360483": ("360427", "362627"),  # 庐山市 <- 星子县 (not the old 庐山区, which is 濂溪区)
    "360502": ("362224",),  # 渝水区 <- 新余县
    "360602": ("362327",),  # 月湖区: 鹰潭 was a town of 贵溪县 before loc.dat has a code for it
    "360881": ("362402", "362433", "362432"),  # 井冈山市 <- 井冈山县 / 宁冈县 (merged in 2000)
    "360982": ("362203", "362223"),  # 樟树市 <- 清江县
    "360603": ("360622", "362328"),  # 余江区 <- 余江县
    "360702": ("362101",),  # 章贡区 <- 赣州市 (county-level)
    "360802": ("362401",),  # 吉州区 <- 吉安市 (county-level)
    "360803": ("362401",),  # 青原区 was carved out of the county-level 吉安市
    "360902": ("362201", "362225"),  # 袁州区 <- 宜春市 <- 宜春县
    "361002": ("362502", "362501", "362521"),  # 临川区 <- 临川市 <- 抚州市 / 临川县
    "361102": ("362301",),  # 信州区 <- 上饶市 (county-level)
    "361104": ("361121", "362321"),  # 广信区 <- 上饶县
    "360681": ("360621", "362327"),  # 贵溪市 <- 贵溪县
    "360281": ("360221", "362332"),  # 乐平市 <- 乐平县
}


@dataclass(frozen=True, slots=True)
class DivisionRow:
    """One name of one division code over one period (years inclusive; None = open-ended)."""

    code: str
    name: str
    level: Level
    parent_code: str | None
    valid_from: int | None
    valid_to: int | None

    @property
    def is_current(self) -> bool:
        return self.valid_to is None

    def valid_in(self, year: int) -> bool:
        """Same rule as ``stdnum.cn.ric``: a code is valid in every year of its period, both ends included."""
        if self.valid_from is not None and year < self.valid_from:
            return False
        return not (self.valid_to is not None and year > self.valid_to)


def _read_loc_dat() -> list[str]:
    return importlib.resources.files("stdnum").joinpath("cn/loc.dat").read_text(encoding="utf-8").splitlines()


def _split_names(raw: str) -> list[tuple[int | None, int | None, str]]:
    periods: list[tuple[int | None, int | None, str]] = []
    for part in raw.split(","):
        match = _PERIOD_RE.match(part)
        if match is None:
            periods.append((None, None, part))
            continue
        start, end, name = match.groups()
        periods.append((int(start) if start else None, int(end) if end else None, name))
    return periods


@cache
def province_divisions(province_prefix: str = "36") -> list[DivisionRow]:
    """Province, prefecture-level units (current cities and abolished 地区) and counties, every period.

    Rows are ordered by code, then by start year. Abolished prefectures (e.g. 362100 赣州地区, to 1998) are
    included as ``level="city"`` rows with ``valid_to`` set, because old resident IDs still carry their codes.
    """
    if not re.fullmatch(r"\d{2}", province_prefix):
        raise ValueError(f"省级代码前缀应为两位数字：{province_prefix!r}")
    lines = _read_loc_dat()
    province_name: str | None = None
    raw_counties: list[tuple[str, str]] = []
    inside = False
    for line in lines:
        if line.startswith("#") or not line.strip():
            continue
        province = _PROVINCE_RE.match(line)
        if province is not None:
            inside = province.group(1) == province_prefix
            if inside:
                province_name = province.group(2)
            continue
        if inside:
            county = _COUNTY_RE.match(line)
            if county is not None:
                raw_counties.append((county.group(1), county.group(2)))
    if province_name is None:
        raise ValueError(f"loc.dat 中没有省级代码 {province_prefix}")

    province_code = f"{province_prefix}0000"
    rows = [DivisionRow(province_code, OFFICIAL_NAMES.get(province_code, province_name), "province", None, None, None)]
    city_codes = {f"{province_prefix}{sub}" for sub, _ in raw_counties if sub.endswith("00") and sub != "0000"}
    for sub, raw in raw_counties:
        code = f"{province_prefix}{sub}"
        if sub == "0000":
            continue
        level: Level = "city" if code in city_codes else "county"
        parent = province_code if level == "city" else f"{code[:4]}00"
        if level == "county" and parent not in city_codes:
            parent = province_code  # 省直辖县级行政单位 (none in Jiangxi today)
        periods = _split_names(raw)
        for start, end, name in periods:
            if name in _PLACEHOLDER_NAMES:
                continue
            if level == "city" and end is None and code in OFFICIAL_NAMES:
                name = OFFICIAL_NAMES[code]
            rows.append(DivisionRow(code, name, level, parent, start, end))
    rows.sort(key=lambda r: (r.code, r.valid_from or 0))
    return rows


@cache
def _by_code(province_prefix: str) -> dict[str, tuple[DivisionRow, ...]]:
    index: dict[str, list[DivisionRow]] = {}
    for row in province_divisions(province_prefix):
        index.setdefault(row.code, []).append(row)
    return {code: tuple(rows) for code, rows in index.items()}


def division_rows(code: str) -> tuple[DivisionRow, ...]:
    """Every period of ``code`` (empty if the code was never used)."""
    if not re.fullmatch(r"\d{6}", code):
        return ()
    return _by_code(code[:2]).get(code, ())


def current_division(code: str) -> DivisionRow | None:
    """The row of ``code`` in force today, or None if abolished or unknown."""
    return next((r for r in division_rows(code) if r.is_current), None)


def is_valid_in(code: str, year: int) -> bool:
    """Whether ``code`` named a division in ``year`` (the test ``stdnum.cn.ric`` applies to birth years)."""
    return any(r.valid_in(year) for r in division_rows(code))


def current_cities(province_prefix: str = "36") -> list[DivisionRow]:
    return [r for r in province_divisions(province_prefix) if r.level == "city" and r.is_current]


def current_counties(city_code: str) -> list[DivisionRow]:
    """Counties (区, 县, 县级市) of a prefecture-level city in force today, ordered by code."""
    if not re.fullmatch(r"\d{4}00", city_code):
        raise ValueError(f"地级行政区划代码应为六位且以00结尾：{city_code!r}")
    return [
        r
        for r in province_divisions(city_code[:2])
        if r.level == "county" and r.parent_code == city_code and r.is_current
    ]


def all_current_counties(province_prefix: str = "36") -> list[DivisionRow]:
    return [r for r in province_divisions(province_prefix) if r.level == "county" and r.is_current]


def _stem(name: str) -> str:
    """Name without its 区/县/市 suffixes: 赣县区 -> 赣, 南康市 -> 南康 (one place across re-designations)."""
    stem = name
    while len(stem) > 1 and stem[-1] in "区县市":
        stem = stem[:-1]
    return stem


def code_in_force(current_code: str, year: int) -> str | None:
    """The code the place now coded ``current_code`` had in ``year``, or None if none is on record.

    Resident ID numbers keep the area code of first registration, and ``stdnum.cn.ric`` checks it against the
    birth year; so an ID for someone born in 1970 in today's 赣县区 (360704, since 2016) carries 362121 赣县.
    Lookup order: the code itself, known renames, a same-named predecessor, then the city's own code.
    """
    if is_valid_in(current_code, year):
        return current_code
    for code in _PREDECESSORS.get(current_code, ()):
        if is_valid_in(code, year):
            return code
    rows = division_rows(current_code)
    if not rows:
        return None
    stems = {_stem(r.name) for r in rows}
    candidates = [
        r
        for r in province_divisions(current_code[:2])
        if r.level == "county" and r.valid_in(year) and _stem(r.name) in stems
    ]
    if candidates:
        # Prefer the same name, then the same prefecture; both break ties between e.g. 吉安县 and 吉安市.
        names = {r.name for r in rows}
        candidates.sort(key=lambda r: (r.name not in names, r.code[:4] != current_code[:4], r.code))
        return candidates[0].code
    city_code = f"{current_code[:4]}00"
    if is_valid_in(city_code, year):
        return city_code
    return None


@cache
def divisions_by_code(province_prefix: str = "36") -> list[DivisionRow]:
    """One row per code, for tables keyed by code: the newest name, the widest validity over its periods.

    E.g. 360111 (郊区 1983–2001, then 青山湖区 from 2002) becomes 青山湖区 valid from 1983, still current.
    """
    merged: list[DivisionRow] = []
    for code, rows in _by_code(province_prefix).items():
        newest = max(rows, key=lambda r: r.valid_from or 0)
        starts = [r.valid_from for r in rows]
        ends = [r.valid_to for r in rows]
        merged.append(
            DivisionRow(
                code=code,
                name=newest.name,
                level=newest.level,
                parent_code=newest.parent_code,
                valid_from=None if None in starts else min(s for s in starts if s is not None),
                valid_to=None if None in ends else max(e for e in ends if e is not None),
            )
        )
    return sorted(merged, key=lambda r: r.code)
