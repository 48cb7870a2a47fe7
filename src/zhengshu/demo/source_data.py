"""The demo departments' front-end databases (前置库) and file areas, filled with synthetic but valid data.

Five sources, one per mounted catalog entry (see ``MOUNTS``); their columns are the ``column_name``s and
types of that entry's data items, so mounting checks pass. Rows are linked the way real data is: legal
representatives are residents from the population table, social insurance enrolments point at registered
enterprises, taxpayers are the registered enterprises. About 2 % of taxpayers carry a different legal
representative than the market regulator has (stale tax records), which is what the 一企一档 cross-source
check in the end-to-end story is meant to find.
"""

from __future__ import annotations

import csv
import random
import sqlite3
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from faker import Faker

from zhengshu.demo.catalog_seed import find_template, template_items
from zhengshu.demo.identities import AS_OF, enterprise, person
from zhengshu.org.divisions import current_division

# (catalog entry name, source key, table). For file sources the "table" is the file's stem.
MOUNTS: list[tuple[str, str, str]] = [
    ("企业登记信息", "market_frontend", "qy_djxx"),
    ("社会保险参保信息", "hrss_frontend", "sb_cbxx"),
    ("人口基本信息", "police_frontend", "rk_jbxx"),
    ("纳税人登记信息", "tax_nsr", "tax_nsr"),
    ("最低生活保障对象信息", "civil_affairs_dibao", "civil_affairs_dibao"),
]
# Which department provides each mounted entry (keys of catalog_seed.all_departments()).
MOUNT_PROVIDERS: dict[str, str] = {
    "企业登记信息": "prov.scjg",
    "社会保险参保信息": "prov.rst",
    "人口基本信息": "prov.gat",
    "纳税人登记信息": "prov.sw",
    "最低生活保障对象信息": "prov.mzt",
}
SOURCE_FILES: dict[str, str] = {
    "market_frontend": "market_frontend.db",  # SQLite, 省市场监管局前置库
    "hrss_frontend": "hrss_frontend.duckdb",  # DuckDB, 省人社厅前置库
    "police_frontend": "police_frontend.db",  # SQLite, 省公安厅前置库
    "tax_nsr": "tax_nsr.csv",  # CSV, 省税务局文件交换区
    "civil_affairs_dibao": "civil_affairs_dibao.parquet",  # Parquet, 省民政厅文件交换区
}
SOURCE_KINDS: dict[str, str] = {
    "market_frontend": "sqlite",
    "hrss_frontend": "duckdb",
    "police_frontend": "sqlite",
    "tax_nsr": "csv",
    "civil_affairs_dibao": "parquet",
}

TAX_LEGAL_REP_CONFLICT_RATE = 0.02


def sql_type(data_type: str, length: int | None) -> str:
    """Column type for a catalog data type code in SQLite/DuckDB DDL."""
    match data_type:
        case "C":
            return f"VARCHAR({length or 255})"
        case "M":
            return "TEXT"
        case "D":
            return "DATE"
        case "T":
            return "TIMESTAMP"
        case "Y":
            return "DECIMAL(18,2)"
        case "N":
            return f"DECIMAL({min(max(length or 18, 4), 38)},2)"
        case "I":
            return "BIGINT" if (length or 0) > 9 else "INTEGER"
        case "L":
            return "BOOLEAN"
        case "F" | "B":
            return "DOUBLE"
        case "G":
            return "BLOB"
    raise ValueError(f"未知的数据类型代码：{data_type}")


def arrow_type(data_type: str, length: int | None) -> pa.DataType:
    """Arrow type for a catalog data type code (what DuckDB, Parquet and exchanges carry)."""
    match data_type:
        case "C" | "M":
            return pa.string()
        case "D":
            return pa.date32()
        case "T":
            return pa.timestamp("s")
        case "Y":
            return pa.decimal128(18, 2)
        case "N":
            return pa.decimal128(min(max(length or 18, 4), 38), 2)
        case "I":
            return pa.int64() if (length or 0) > 9 else pa.int32()
        case "L":
            return pa.bool_()
        case "F" | "B":
            return pa.float64()
        case "G":
            return pa.binary()
    raise ValueError(f"未知的数据类型代码：{data_type}")


def mount_items(entry_name: str) -> list[dict[str, Any]]:
    """The data items (as in ``seed_entries``) of a mounted entry."""
    return template_items(find_template(entry_name, MOUNT_PROVIDERS[entry_name]))


def _schema(entry_name: str) -> pa.Schema:
    return pa.schema(
        [pa.field(i["column_name"], arrow_type(i["data_type"], i["length"])) for i in mount_items(entry_name)]
    )


def _columns(entry_name: str, rows: Sequence[dict[str, Any]]) -> pa.Table:
    """Rows keyed by item name -> Arrow table with the entry's column names and types."""
    items = mount_items(entry_name)
    schema = _schema(entry_name)
    arrays = [pa.array([row[i["name"]] for row in rows], type=f.type) for i, f in zip(items, schema, strict=True)]
    return pa.Table.from_arrays(arrays, schema=schema)


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _write_sqlite(path: Path, table: str, entry_name: str, rows: Sequence[dict[str, Any]], key: str) -> None:
    items = mount_items(entry_name)
    columns = ", ".join(
        f"{i['column_name']} {sql_type(i['data_type'], i['length'])}" + (" PRIMARY KEY" if i["name"] == key else "")
        for i in items
    )
    con = sqlite3.connect(path)
    try:
        con.execute(f"CREATE TABLE {table} ({columns})")
        placeholders = ", ".join("?" for _ in items)
        con.executemany(
            f"INSERT INTO {table} VALUES ({placeholders})",
            [tuple(_sqlite_value(row[i["name"]]) for i in items) for row in rows],
        )
        con.commit()
    finally:
        con.close()


def _write_duckdb(path: Path, table: str, entry_name: str, rows: Sequence[dict[str, Any]]) -> None:
    items = mount_items(entry_name)
    arrow = _columns(entry_name, rows)
    columns = ", ".join(f"{i['column_name']} {sql_type(i['data_type'], i['length'])}" for i in items)
    con = duckdb.connect(str(path))
    try:
        con.execute(f"CREATE TABLE {table} ({columns})")
        con.register("incoming", arrow)
        con.execute(f"INSERT INTO {table} SELECT * FROM incoming")
        con.unregister("incoming")
    finally:
        con.close()


def _write_csv(path: Path, entry_name: str, rows: Sequence[dict[str, Any]]) -> None:
    items = mount_items(entry_name)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([i["column_name"] for i in items])
        writer.writerows([[_sqlite_value(row[i["name"]]) for i in items] for row in rows])


# ---- generation -------------------------------------------------------------------------------------------


def _age(birth: date, on: date = AS_OF) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def generate_people(rng: random.Random, faker: Faker, n: int) -> list[dict[str, Any]]:
    """``n`` residents with distinct resident IDs."""
    people: list[dict[str, Any]] = []
    seen: set[str] = set()
    while len(people) < n:
        p = person(rng, faker)
        if p["resident_id"] in seen:
            continue
        seen.add(p["resident_id"])
        people.append(p)
    return people


def generate_enterprises(
    rng: random.Random, faker: Faker, people: Sequence[dict[str, Any]], n: int
) -> list[dict[str, Any]]:
    """``n`` enterprises with distinct codes and names, legal representatives drawn from ``people``."""
    adults = [p for p in people if _age(p["birth_date"]) >= 25]
    if not adults:
        raise ValueError("人口数据中没有可担任法定代表人的成年人")
    enterprises: list[dict[str, Any]] = []
    codes: set[str] = set()
    names: set[str] = set()
    while len(enterprises) < n:
        e = enterprise(rng, faker, legal_representative=rng.choice(adults))
        if e["uscc"] in codes or e["name"] in names:
            continue
        codes.add(e["uscc"])
        names.add(e["name"])
        enterprises.append(e)
    return enterprises


def _market_rows(rng: random.Random, enterprises: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for e in enterprises:
        approved = e["established_on"] + timedelta(days=rng.randrange(max((AS_OF - e["established_on"]).days, 1)))
        rows.append(
            {
                "统一社会信用代码": e["uscc"],
                "企业名称": e["name"],
                "企业类型": e["enterprise_type"],
                "法定代表人": e["legal_rep_name"],
                "法定代表人身份证号": e["legal_rep_id"],
                "注册资本": e["registered_capital"],
                "成立日期": e["established_on"],
                "登记机关": e["registration_authority"],
                "住所": e["address"],
                "经营范围": e["business_scope"],
                "登记状态": e["status"],
                "行业代码": e["industry_code"],
                "核准日期": approved,
            }
        )
    return rows


def _police_rows(rng: random.Random, people: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    statuses = ("正常", "死亡", "迁出")
    return [
        {
            "身份证号": p["resident_id"],
            "姓名": p["name"],
            "性别": p["gender"],
            "民族": p["ethnicity"],
            "出生日期": p["birth_date"],
            "户籍地址": p["address"],
            "户籍地行政区划代码": p["county_code"],
            "人员状态": rng.choices(statuses, weights=(96, 3 if _age(p["birth_date"]) > 60 else 0.5, 1))[0],
        }
        for p in people
    ]


def _hrss_rows(
    rng: random.Random, people: Sequence[dict[str, Any]], enterprises: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    employers = [e for e in enterprises if e["status"] != "注销"] or list(enterprises)
    rows: list[dict[str, Any]] = []
    for index, p in enumerate(people):
        age = _age(p["birth_date"])
        if age < 16:
            continue
        number = f"36{index + 1:010d}"
        base = {"身份证号": p["resident_id"], "姓名": p["name"], "个人编号": number}
        if 18 <= age <= 60 and rng.random() < 0.6:
            employer = rng.choice(employers)
            start = max(p["birth_date"].replace(year=p["birth_date"].year + 18, day=1), employer["established_on"])
            start = start + timedelta(days=rng.randrange(max((AS_OF - start).days, 1)))
            wage = Decimal(rng.randrange(4000, 16000, 10)).quantize(Decimal("0.01"))  # 江西 2025 缴费基数下限约 4,100
            for insurance, probability in (
                ("企业职工基本养老保险", 1.0),
                ("失业保险", 0.7),
                ("工伤保险", 0.6),
            ):
                if rng.random() < probability:
                    rows.append(
                        base
                        | {
                            "险种类型": insurance,
                            "参保单位名称": employer["name"],
                            "单位统一社会信用代码": employer["uscc"],
                            "参保状态": "参保缴费" if rng.random() < 0.93 else "暂停缴费",
                            "参保日期": start,
                            "缴费基数": wage,
                            "参保地行政区划代码": employer["county_code"],
                        }
                    )
        elif rng.random() < 0.6:
            start = max(date(2011, 7, 1), p["birth_date"].replace(year=p["birth_date"].year + 16, day=1))
            start = start + timedelta(days=rng.randrange(max((AS_OF - start).days, 1)))
            rows.append(
                base
                | {
                    "险种类型": "城乡居民基本养老保险",
                    "参保单位名称": None,
                    "单位统一社会信用代码": None,
                    "参保状态": "参保缴费" if age < 60 else "待遇领取",
                    "参保日期": start,
                    "缴费基数": None,
                    "参保地行政区划代码": p["county_code"],
                }
            )
    return rows


def _tax_rows(
    rng: random.Random, enterprises: Sequence[dict[str, Any]], people: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    rows = []
    for e in enterprises:
        county = current_division(e["county_code"])
        city = current_division(county.parent_code) if county and county.parent_code else None
        place = f"{city.name if city else ''}{county.name if county else ''}"
        legal_rep = e["legal_rep_name"]
        if rng.random() < TAX_LEGAL_REP_CONFLICT_RATE:
            legal_rep = rng.choice(people)["name"]
        status = "注销" if e["status"] == "注销" else ("非正常" if rng.random() < 0.04 else "正常")
        rows.append(
            {
                "纳税人识别号": e["uscc"],
                "纳税人名称": e["name"],
                "法定代表人": legal_rep,
                "登记注册类型": e["enterprise_type"],
                "主管税务机关": f"国家税务总局{place}税务局",
                "纳税人状态": status,
                "纳税信用等级": rng.choices("ABMCD", weights=(12, 45, 30, 9, 4))[0],
                "税务登记日期": e["established_on"] + timedelta(days=rng.randrange(0, 30)),
                "生产经营地址": e["address"],
            }
        )
    return rows


def _dibao_rows(rng: random.Random, people: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for p in people:
        age = _age(p["birth_date"])
        if age < 18 or rng.random() > (0.07 if age >= 60 else 0.02):
            continue
        county = current_division(p["county_code"])
        urban = bool(county and county.name.endswith("区"))
        household = rng.choices((1, 2, 3, 4), weights=(45, 30, 15, 10))[0]
        per_head = rng.randrange(350, 955 if urban else 720, 5)  # 江西 2025 城市/农村低保标准约 955/720 元
        started = date(2012, 1, 1) + timedelta(days=rng.randrange((AS_OF - date(2012, 1, 1)).days))
        rows.append(
            {
                "身份证号": p["resident_id"],
                "姓名": p["name"],
                "保障类型": "城市低保" if urban else "农村低保",
                "保障人数": household,
                "月保障金额": Decimal(per_head * household).quantize(Decimal("0.01")),
                "开始保障日期": started,
                "所在地行政区划代码": p["county_code"],
                "保障状态": "在保" if rng.random() < 0.9 else "停保",
            }
        )
    return rows


def build_source_databases(
    target_dir: Path, *, rng: random.Random, people: int = 5000, enterprises: int = 2000
) -> dict[str, Path]:
    """Write the five demo sources into ``target_dir`` (replacing earlier ones); return source key -> path."""
    target_dir.mkdir(parents=True, exist_ok=True)
    faker = Faker("zh_CN")
    faker.seed_instance(rng.getrandbits(64))
    residents = generate_people(rng, faker, people)
    firms = generate_enterprises(rng, faker, residents, enterprises)

    paths = {key: target_dir / filename for key, filename in SOURCE_FILES.items()}
    for path in paths.values():
        path.unlink(missing_ok=True)
        Path(f"{path}.wal").unlink(missing_ok=True)

    _write_sqlite(paths["market_frontend"], "qy_djxx", "企业登记信息", _market_rows(rng, firms), "统一社会信用代码")
    _write_duckdb(paths["hrss_frontend"], "sb_cbxx", "社会保险参保信息", _hrss_rows(rng, residents, firms))
    _write_sqlite(paths["police_frontend"], "rk_jbxx", "人口基本信息", _police_rows(rng, residents), "身份证号")
    _write_csv(paths["tax_nsr"], "纳税人登记信息", _tax_rows(rng, firms, residents))
    pq.write_table(_columns("最低生活保障对象信息", _dibao_rows(rng, residents)), paths["civil_affairs_dibao"])
    return paths
