"""Catalog search benchmark: the search index against a naive LIKE scan, on SQLite and PostgreSQL.

    python bench/catalog_search.py [--entries 100000] [--skip-pg] [--pg-url URL]

Prints one ``name: value`` line per figure on stdout (details on stderr). See bench/README.md.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    create_engine,
    event,
    insert,
    or_,
    select,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from zhengshu.core.db import make_engine
from zhengshu.search import service
from zhengshu.search.models import SearchDoc, SearchPosting
from zhengshu.search.service import IndexDoc
from zhengshu.search.text import initials

err = Console(stderr=True)
DOC_TYPE = "catalog_entry"

# ------------------------------------------------------------------------------------ vocabularies
# department -> (subjects, department-specific data items)
DEPARTMENTS: dict[str, tuple[list[str], list[str]]] = {
    "市场监督管理局": (
        [
            "企业",
            "个体工商户",
            "农民专业合作社",
            "食品经营许可",
            "特种设备",
            "产品质量抽检",
            "商标",
            "企业年报",
            "股权出质",
        ],
        [
            "企业名称",
            "统一社会信用代码",
            "法定代表人",
            "注册资本",
            "成立日期",
            "经营范围",
            "登记机关",
            "企业类型",
        ],
    ),
    "人力资源和社会保障厅": (
        [
            "社会保险参保",
            "养老保险缴费",
            "失业保险",
            "工伤保险",
            "职业技能培训",
            "就业登记",
            "劳动合同",
            "人才引进",
        ],
        ["公民身份号码", "姓名", "参保单位", "缴费基数", "缴费月份", "参保状态", "险种类型", "社会保障卡号"],
    ),
    "公安厅": (
        ["户籍人口", "居住证", "机动车", "驾驶人", "出入境证件", "流动人口", "治安处罚"],
        ["公民身份号码", "姓名", "性别", "出生日期", "户籍地址", "号牌号码", "车辆类型", "准驾车型"],
    ),
    "民政厅": (
        ["婚姻登记", "社会组织", "最低生活保障", "特困人员供养", "养老机构", "殡葬服务", "地名"],
        ["登记类型", "登记日期", "男方姓名", "女方姓名", "保障金额", "救助对象", "机构名称", "床位数"],
    ),
    "卫生健康委员会": (
        ["医疗机构执业", "医师执业注册", "出生医学证明", "预防接种", "传染病报告", "家庭医生签约"],
        ["医疗机构名称", "执业范围", "医师姓名", "执业类别", "出生日期", "疫苗名称", "接种日期", "诊断结果"],
    ),
    "教育厅": (
        ["学校", "学籍", "教师资格", "学位证书", "招生录取", "学生资助"],
        ["学校名称", "学校代码", "学生姓名", "学籍号", "入学年份", "专业名称", "资助金额", "教师资格证号"],
    ),
    "自然资源厅": (
        ["不动产登记", "土地利用", "矿业权", "国土空间规划", "测绘资质", "耕地保护"],
        ["不动产单元号", "权利人", "坐落", "宗地面积", "用途", "矿区名称", "规划用途", "登记时间"],
    ),
    "生态环境厅": (
        ["排污许可", "环境影响评价", "空气质量监测", "水质监测", "危险废物转移", "环境行政处罚"],
        ["排污单位名称", "许可证编号", "监测点位", "监测时间", "污染物名称", "排放浓度", "处罚金额"],
    ),
    "住房和城乡建设厅": (
        ["建筑业企业资质", "商品房预售许可", "住房公积金缴存", "建设工程施工许可", "物业服务企业"],
        ["项目名称", "建设单位", "资质等级", "预售许可证号", "缴存基数", "缴存比例", "施工单位"],
    ),
    "交通运输厅": (
        ["道路运输经营许可", "营运车辆", "公路建设项目", "网约车平台", "出租汽车驾驶员"],
        ["经营许可证号", "车牌号码", "道路运输证号", "项目名称", "从业资格证号", "车辆类型"],
    ),
    "农业农村厅": (
        ["农村土地承包经营权", "农药经营许可", "兽药生产许可", "家庭农场", "农产品质量安全检测"],
        ["承包方姓名", "地块编码", "承包面积", "许可证编号", "农场名称", "检测项目", "检测结果"],
    ),
    "税务局": (
        ["纳税人登记", "增值税发票", "纳税信用等级", "欠税公告", "个人所得税"],
        ["纳税人识别号", "纳税人名称", "税款所属期", "应纳税额", "信用等级", "发票代码", "发票号码"],
    ),
    "医疗保障局": (
        ["医疗保险参保", "医保定点医药机构", "医疗费用结算", "异地就医备案", "医保药品目录"],
        ["参保人姓名", "医保卡号", "定点机构编码", "结算金额", "就医地", "药品名称", "报销比例"],
    ),
    "应急管理厅": (
        ["安全生产许可", "危险化学品经营许可", "生产安全事故", "应急救援队伍", "自然灾害灾情"],
        ["企业名称", "许可证编号", "事故类型", "死亡人数", "队伍名称", "受灾人口", "直接经济损失"],
    ),
    "文化和旅游厅": (
        ["A级旅游景区", "旅行社", "文物保护单位", "网络文化经营许可", "星级饭店"],
        ["景区名称", "景区等级", "旅行社名称", "许可证号", "文物名称", "保护级别", "客房数"],
    ),
    "司法厅": (
        ["律师执业", "公证机构", "法律援助", "人民调解", "司法鉴定机构"],
        ["律师姓名", "执业证号", "律师事务所", "援助对象", "调解结果", "鉴定类别"],
    ),
    "统计局": (
        ["国民经济核算", "规模以上工业", "人口抽样调查", "居民消费价格", "固定资产投资"],
        ["指标名称", "统计期", "指标值", "计量单位", "行业代码", "调查单位"],
    ),
    "财政厅": (
        ["政府采购", "财政预算", "非税收入", "政府债务", "国有资产"],
        ["项目名称", "预算金额", "采购单位", "中标供应商", "合同金额", "资产编号"],
    ),
    "水利厅": (
        ["取水许可", "河长制", "水库", "水土保持", "水文监测"],
        ["取水单位", "取水量", "河流名称", "河长姓名", "水库名称", "库容", "水位"],
    ),
    "商务厅": (
        ["对外贸易经营者备案", "外商投资企业", "单用途商业预付卡", "成品油经营", "拍卖企业"],
        ["企业名称", "备案登记表编号", "投资总额", "外方投资者", "发卡企业", "经营地址"],
    ),
}
DEPARTMENT_NAMES = list(DEPARTMENTS)
SUFFIXES = [
    "登记信息",
    "基本信息",
    "变更信息",
    "注销信息",
    "许可信息",
    "年报信息",
    "名录",
    "统计数据",
    "监测数据",
    "台账",
    "备案信息",
    "检查记录",
    "处罚信息",
    "明细",
    "汇总表",
    "清单",
    "证照信息",
    "办件信息",
]
GENERIC_ITEMS = [
    "名称",
    "地址",
    "联系电话",
    "行政区划代码",
    "经办机构",
    "办理日期",
    "更新时间",
    "数据来源",
    "状态",
    "备注",
    "证件类型",
    "证件号码",
    "有效期起",
    "有效期止",
    "发证机关",
    "所属行业",
    "经度",
    "纬度",
]
USAGES = [
    "政务服务",
    "市场监管",
    "社会治理",
    "统计分析",
    "信用评价",
    "应急管理",
    "行政审批",
    "民生保障",
    "决策支持",
]
CYCLES = ["实时", "每日", "每周", "每月", "每季度", "每年", "不定期"]
TAGS = [
    "市场主体",
    "营商环境",
    "民生服务",
    "社会保障",
    "公共安全",
    "生态环境",
    "一网通办",
    "乡村振兴",
    "医疗健康",
    "教育",
    "交通出行",
    "信用",
    "电子证照",
    "高频事项",
    "跨省通办",
    "基层治理",
]
# 江西省 and its cities: (code, name)
REGIONS = [
    ("360000", "省"),
    ("360100", "南昌市"),
    ("360200", "景德镇市"),
    ("360300", "萍乡市"),
    ("360400", "九江市"),
    ("360500", "新余市"),
    ("360600", "鹰潭市"),
    ("360700", "赣州市"),
    ("360800", "吉安市"),
    ("360900", "宜春市"),
    ("361000", "抚州市"),
    ("361100", "上饶市"),
]
SHARING = ["无条件共享"] * 5 + ["有条件共享"] * 4 + ["不予共享"]
OPENING = ["无条件开放"] * 2 + ["有条件开放"] * 2 + ["不予开放"] * 6
STATUSES = ["published"] * 18 + ["draft", "submitted"]


@dataclass
class Entry:
    id: str
    name: str
    summary: str
    items: list[str]
    tags: list[str]
    provider: str
    org_id: str
    region_code: str
    class_code: str
    sharing_type: str
    opening_type: str
    status: str
    updated_at: datetime


def make_entries(n: int, seed: int = 7) -> list[Entry]:
    rnd = random.Random(seed)
    now = datetime(2025, 1, 1, tzinfo=UTC)
    entries = []
    for i in range(n):
        dept = rnd.choice(DEPARTMENT_NAMES)
        d_index = DEPARTMENT_NAMES.index(dept)
        subjects, dept_items = DEPARTMENTS[dept]
        region_code, region_name = rnd.choice(REGIONS)
        prefix = "省" if region_code == "360000" else region_name
        provider = f"{prefix}{dept}"
        subject = rnd.choice(subjects)
        suffix = rnd.choice(SUFFIXES)
        name = f"{region_name if rnd.random() < 0.4 and region_code != '360000' else ''}{subject}{suffix}"
        if rnd.random() < 0.15:
            name += f"（{rnd.randint(2015, 2024)}年度）"
        k_dept = rnd.randint(4, min(6, len(dept_items)))
        items = rnd.sample(dept_items, k_dept) + rnd.sample(GENERIC_ITEMS, 10 - k_dept)
        summary = (
            f"{provider}负责汇集的{subject}{suffix}，内容包括{items[0]}、{items[1]}、{items[2]}等"
            f"{len(items)}项，{rnd.choice(CYCLES)}更新，主要用于{rnd.choice(USAGES)}和{rnd.choice(USAGES)}。"
        )
        entries.append(
            Entry(
                id=f"e{i:07d}",
                name=name,
                summary=summary,
                items=items,
                tags=rnd.sample(TAGS, rnd.randint(1, 3)),
                provider=provider,
                org_id=f"org-{region_code}-{d_index:02d}",
                region_code=region_code,
                class_code=rnd.choice(["1", "2", "3"]) + f"{rnd.randint(1, 12):02d}{rnd.randint(1, 20):03d}",
                sharing_type=rnd.choice(SHARING),
                opening_type=rnd.choice(OPENING),
                status=rnd.choice(STATUSES),
                updated_at=now - timedelta(minutes=rnd.randint(0, 3 * 365 * 24 * 60)),
            )
        )
    return entries


def index_docs(entries: list[Entry]) -> Iterator[IndexDoc]:
    for e in entries:
        yield IndexDoc(
            doc_type=DOC_TYPE,
            doc_id=e.id,
            title=e.name,
            fields={
                "title": e.name,
                "summary": e.summary,
                "items": e.items,
                "tags": e.tags,
                "provider": e.provider,
            },
            facets={
                "org_id": e.org_id,
                "region_code": e.region_code,
                "class_code": e.class_code,
                "sharing_type": e.sharing_type,
                "opening_type": e.opening_type,
                "status": e.status,
            },
            extra={"provider": e.provider},
            updated_at=e.updated_at,
        )


# ------------------------------------------------------------------------------------------- queries


@dataclass(frozen=True)
class Query:
    kind: str
    q: str
    filters: dict[str, list[str]] | None = None


def make_queries(entries: list[Entry], count: int = 200, seed: int = 11) -> list[Query]:
    """Mixed queries people type in a catalog: words, word pairs, initials, pinyin, partial names."""
    from zhengshu.search.text import full_pinyin

    rnd = random.Random(seed)
    subjects = [s for subs, _ in DEPARTMENTS.values() for s in subs]
    words = [
        "企业",
        "社保",
        "医保",
        "登记",
        "许可",
        "学校",
        "养老",
        "不动产",
        "排污",
        "纳税人",
        "婚姻",
        "车辆",
        "监测",
        "处罚",
        "备案",
        "旅行社",
        "律师",
        "采购",
        "水库",
        "公积金",
    ]
    queries: list[Query] = []
    per_kind = count // 6
    for _ in range(per_kind):
        queries.append(Query("word", rnd.choice(words)))
    for _ in range(per_kind):
        queries.append(Query("two_words", f"{rnd.choice(subjects)[:2]} {rnd.choice(SUFFIXES)[:2]}"))
    for _ in range(per_kind):
        s = rnd.choice(subjects) + rnd.choice(SUFFIXES)
        queries.append(Query("initials", initials(s)[: rnd.randint(3, 6)]))
    for _ in range(per_kind):
        queries.append(Query("pinyin", full_pinyin(rnd.choice(subjects))))
    for _ in range(per_kind):
        name = rnd.choice(entries).name
        start = rnd.randint(0, max(0, len(name) - 4))
        queries.append(Query("partial", name[start : start + rnd.randint(3, 5)]))
    while len(queries) < count:
        base = rnd.choice(queries[: per_kind * 5])
        facet = rnd.choice(["sharing_type", "region_code", "class_code"])
        value = {
            "sharing_type": rnd.choice(["无条件共享", "有条件共享"]),
            "region_code": rnd.choice(REGIONS)[0][:4],
            "class_code": rnd.choice(["1", "2", "3"]),
        }[facet]
        queries.append(Query(base.kind + "+filter", base.q, {facet: [value]}))
    rnd.shuffle(queries)
    return queries


# ------------------------------------------------------------------------------ the naive LIKE baseline

naive_md = MetaData()
naive_entry = Table(
    "bench_entry",
    naive_md,
    Column("id", Integer, primary_key=True),
    Column("name", String(400)),
    Column("summary", Text),
    Column("org_id", String(32)),
    Column("region_code", String(12)),
    Column("class_code", String(32)),
    Column("sharing_type", String(16)),
    Column("status", String(16)),
)
naive_item = Table(
    "bench_item",
    naive_md,
    Column("id", Integer, primary_key=True),
    Column("entry_id", Integer, index=True),
    Column("name", String(200)),
)


def load_naive(session: Session, entries: list[Entry]) -> None:
    batch_e: list[dict[str, Any]] = []
    batch_i: list[dict[str, Any]] = []
    item_id = 0
    for n, e in enumerate(entries, start=1):
        batch_e.append(
            {
                "id": n,
                "name": e.name,
                "summary": e.summary,
                "org_id": e.org_id,
                "region_code": e.region_code,
                "class_code": e.class_code,
                "sharing_type": e.sharing_type,
                "status": e.status,
            }
        )
        for name in e.items:
            item_id += 1
            batch_i.append({"id": item_id, "entry_id": n, "name": name})
        if len(batch_e) >= 5000:
            session.execute(insert(naive_entry), batch_e)
            session.execute(insert(naive_item), batch_i)
            batch_e, batch_i = [], []
    if batch_e:
        session.execute(insert(naive_entry), batch_e)
        session.execute(insert(naive_item), batch_i)


def like_search(session: Session, query: Query) -> list[Any]:
    e, i = naive_entry, naive_item
    conds = []
    for word in query.q.split():
        pattern = f"%{word}%"
        conds.append(or_(e.c.name.like(pattern), e.c.summary.like(pattern), i.c.name.like(pattern)))
    for col, values in (query.filters or {}).items():
        if col in ("region_code", "class_code"):
            conds.append(or_(*[e.c[col].like(f"{v}%") for v in values]))
        else:
            conds.append(e.c[col].in_(values))
    stmt = select(e.c.id, e.c.name).distinct().select_from(e.join(i, i.c.entry_id == e.c.id)).where(and_(*conds))
    return session.execute(stmt.limit(20)).all()


# ------------------------------------------------------------------------------------------ running


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return (time.perf_counter() - start) * 1000, result


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def build(engine: Engine, entries: list[Entry], label: str) -> float:
    SearchDoc.metadata.create_all(engine, tables=[SearchDoc.__table__, SearchPosting.__table__])
    naive_md.create_all(engine)
    with Session(engine) as session, err.status(f"{label}: loading the naive entry/item tables"):
        load_naive(session, entries)
        session.commit()
    with (
        Session(engine) as session,
        Progress(
            TextColumn(f"{label} index"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
        ) as progress,
    ):
        task = progress.add_task("index", total=len(entries))
        start = time.perf_counter()
        service.bulk_index(session, index_docs(entries), progress=lambda n: progress.advance(task, n))
        session.commit()
        build_s = time.perf_counter() - start
    with Session(engine) as session:
        service.optimize(session)
        session.commit()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("VACUUM ANALYZE"))
            sizes = conn.execute(
                text(
                    "SELECT pg_size_pretty(pg_relation_size('search_doc')), "
                    "pg_size_pretty(pg_relation_size('ix_search_doc_terms')), "
                    "pg_size_pretty(pg_total_relation_size('search_doc'))"
                )
            ).one()
            err.print(f"pg search_doc: heap {sizes[0]}, GIN index {sizes[1]}, with all indexes {sizes[2]}")
        else:
            conn.execute(text("ANALYZE"))
    return build_s


def run_queries(engine: Engine, queries: list[Query], label: str) -> dict[str, float]:
    facets = ["org_id", "sharing_type", "class_top", "status"]
    times: list[float] = []
    like_times: list[float] = []
    by_kind: dict[str, list[float]] = {}
    found = 0
    with Session(engine) as session:

        def one(query: Query) -> service.SearchResult:
            return service.search(session, doc_type=DOC_TYPE, q=query.q, filters=query.filters, facets=facets, limit=20)

        for query in queries:  # warm the caches once
            one(query)
        for query in queries:
            ms, result = timed(lambda query=query: one(query))
            times.append(ms)
            by_kind.setdefault(query.kind.split("+")[0], []).append(ms)
            found += result.total > 0
        for query in queries[:3]:
            like_search(session, query)
        with Progress(
            TextColumn(f"{label} LIKE scan"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
        ) as progress:
            task = progress.add_task("like", total=len(queries))
            for query in queries:
                ms, _ = timed(lambda query=query: like_search(session, query))
                like_times.append(ms)
                progress.advance(task)
        session.rollback()
    slowest = sorted(zip(times, queries, strict=True), key=lambda tq: -tq[0])[:5]
    err.print(f"[bold]{label}[/]: {found}/{len(queries)} queries found something")
    for kind, ts in sorted(by_kind.items()):
        err.print(f"  {kind:10s} n={len(ts):3d} p50={pct(ts, 50):7.2f} ms  p95={pct(ts, 95):7.2f} ms")
    for ms, query in slowest:
        err.print(f"  slow: {ms:7.2f} ms  {query.q!r} {query.filters or ''}")
    p50, like_p50 = pct(times, 50), pct(like_times, 50)
    return {
        f"{label}_p50_ms": p50,
        f"{label}_p95_ms": pct(times, 95),
        f"{label}_like_p50_ms": like_p50,
        f"{label}_like_p95_ms": pct(like_times, 95),
        f"{label}_ratio_vs_like": like_p50 / p50 if p50 else float("inf"),
    }


def sqlite_engine(path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def _cache(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA cache_size=-262144")  # 256 MiB page cache
        cur.execute("PRAGMA mmap_size=2147483648")
        cur.close()

    return engine


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--skip-pg", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args(argv)

    with err.status("generating entries"):
        entries = make_entries(args.entries)
        queries = make_queries(entries, args.queries)
    figures: dict[str, float | int] = {"entries": len(entries), "items": sum(len(e.items) for e in entries)}

    if not args.skip_sqlite:
        with tempfile.TemporaryDirectory(prefix="zhengshu-bench-") as tmp:
            path = Path(tmp) / "bench.sqlite"
            engine = sqlite_engine(path)
            figures["sqlite_index_build_s"] = build(engine, entries, "sqlite")
            err.print(f"sqlite file: {path.stat().st_size / 2**20:.0f} MiB")
            figures.update(run_queries(engine, queries, "sqlite"))
            engine.dispose()

    if not args.skip_pg:
        schema = f"bench_search_{uuid.uuid4().hex[:8]}"
        admin = create_engine(args.pg_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        engine = create_engine(args.pg_url, connect_args={"options": f"-csearch_path={schema}"})
        try:
            figures["pg_index_build_s"] = build(engine, entries, "pg")
            figures.update(run_queries(engine, queries, "pg"))
        finally:
            engine.dispose()
            with admin.connect() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()

    for name, value in figures.items():
        print(f"{name}: {value:.2f}" if isinstance(value, float) else f"{name}: {value}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
