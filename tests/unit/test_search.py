"""Search index on SQLite (in memory) and PostgreSQL (a schema of its own): words, pinyin, facets, scope."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, func, or_, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from zhengshu.core.errors import ValidationFailed
from zhengshu.search import service
from zhengshu.search.models import SearchDoc, SearchPosting
from zhengshu.search.pg import tsvector_literal, weight_class
from zhengshu.search.service import IndexDoc
from zhengshu.search.text import QueryToken, compact_terms, full_pinyin, index_terms, initials, query_terms

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TABLES = [SearchDoc.__table__, SearchPosting.__table__]
T = "catalog_entry"
BASE_TIME = datetime(2024, 5, 1, tzinfo=UTC)


def _entry(
    doc_id: str,
    title: str,
    *,
    summary: str = "",
    items: list[str] | None = None,
    tags: list[str] | None = None,
    provider: str = "",
    org: str = "org-a",
    status: str = "published",
    sharing: str = "无条件共享",
    class_code: str = "102001",
    region: str = "440000",
    boost: float = 1.0,
    age_days: int = 0,
) -> IndexDoc:
    return IndexDoc(
        doc_type=T,
        doc_id=doc_id,
        title=title,
        fields={
            "title": title,
            "summary": summary,
            "items": items or [],
            "tags": tags or [],
            "provider": provider,
        },
        facets={
            "org_id": org,
            "region_code": region,
            "class_code": class_code,
            "sharing_type": sharing,
            "opening_type": "不予开放",
            "status": status,
        },
        boost=boost,
        extra={"provider": provider},
        updated_at=BASE_TIME - timedelta(days=age_days),
    )


CORPUS = [
    _entry(
        "e1",
        "企业登记信息",
        summary="记录全省企业登记注册的基本情况，按月更新。",
        items=["统一社会信用代码", "企业名称", "法定代表人", "注册资本"],
        tags=["市场主体"],
        provider="省市场监督管理局",
        class_code="102001",
    ),
    _entry(
        "e2",
        "个人社会保险缴费记录",
        summary="参保人员养老保险缴费明细。",
        items=["公民身份号码", "姓名", "缴费基数", "缴费月份"],
        tags=["社保"],
        provider="省人力资源和社会保障厅",
        org="org-b",
        sharing="有条件共享",
        class_code="203001",
        region="440100",
    ),
    _entry(
        "e3",
        "参保单位名录",
        summary="参加社会保险的用人单位清单。",
        items=["单位名称", "企业类型", "参保人数"],
        tags=["社保"],
        provider="省人力资源和社会保障厅",
        org="org-b",
        class_code="203002",
        region="440100",
    ),
    _entry(
        "e4",
        "企业年报草稿数据",
        summary="尚未发布的企业年度报告。",
        items=["企业名称", "年报年度"],
        provider="省市场监督管理局",
        org="org-b",
        status="draft",
        class_code="102002",
    ),
    _entry(
        "e5",
        "企业注销登记信息",
        summary="企业注销登记情况。",
        items=["企业名称", "注销日期"],
        provider="省市场监督管理局",
        org="org-a",
        status="draft",
        class_code="102001",
        age_days=3,
    ),
]


def _pg_engine(schema: str) -> Engine:
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    finally:
        admin.dispose()
    return create_engine(PG_URL, connect_args={"options": f"-csearch_path={schema}"})


def _drop_pg_schema(schema: str) -> None:
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def session(request: pytest.FixtureRequest) -> Iterator[Session]:
    schema = f"t_search_{uuid.uuid4().hex[:12]}"
    engine = create_engine("sqlite://") if request.param == "sqlite" else _pg_engine(schema)
    try:
        SearchDoc.metadata.create_all(engine, tables=TABLES)
        with Session(engine) as s:
            service.bulk_index(s, CORPUS)
            s.commit()
            yield s
            s.rollback()
    finally:
        engine.dispose()
        if request.param == "postgres":
            _drop_pg_schema(schema)


def ids(result: service.SearchResult) -> list[str]:
    return [h.doc_id for h in result.hits]


def find(session: Session, q: str | None, **kwargs: object) -> service.SearchResult:
    return service.search(session, doc_type=T, q=q, **kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------- text helpers


def test_pinyin_helpers() -> None:
    assert full_pinyin("企业登记") == "qiyedengji"
    assert initials("企业登记信息") == "qydjxx"
    assert initials("API数据") == "asj"


def test_title_terms_include_words_pinyin_initials_chains_and_bigrams() -> None:
    terms = index_terms("企业登记信息", "title")
    for term in ["企业", "登记", "信息", "qiye", "qy", "qydjxx", "djxx", "qiyedengjixinxi", "记信"]:
        assert term in terms, term
    assert terms["企业"] > terms["qydjxx"] > terms["记信"]
    # summaries get words only (no pinyin), at a lower weight, and no stopwords
    summary = index_terms("记录全省企业登记的情况", "summary")
    assert summary["企业"] < terms["企业"]
    assert "qiye" not in summary and "的" not in summary


def test_query_terms() -> None:
    assert query_terms("企业 登记") == [QueryToken("企业"), QueryToken("登记")]
    assert query_terms("QYDJ") == [QueryToken("qydj", prefix=True)]
    assert query_terms("登记信") == [QueryToken("登记"), QueryToken("信", prefix=True)]
    assert query_terms("企业的企业") == [QueryToken("企业")]
    assert query_terms("  ，。 ") == []
    assert QueryToken("qydj", prefix=True).upper == "qydk"


def test_compact_terms_drops_only_what_a_prefix_query_still_reaches() -> None:
    terms = {
        "qy": 7,
        "qydjxx": 7,
        "qiye": 8,
        "qiyedengjixinxi": 7,
        "信": 1,
        "信息": 2,
        "企": 3,
        "企业": 2,
        "1": 2,
        "10": 2,
    }
    kept = compact_terms(terms)
    # "qy" is reached through "qydjxx" with the same weight, "信" through "信息"
    assert "qy" not in kept and "信" not in kept
    # a heavier short term keeps its weight; words are matched exactly; a lone digit is matched exactly
    assert {"qiye", "qydjxx", "qiyedengjixinxi", "信息", "企", "企业", "1", "10"} <= set(kept)
    assert kept["qiye"] == 8


def test_tsvector_literal_quotes_terms_and_keeps_weight_classes() -> None:
    assert [weight_class(w) for w in (10, 7, 6, 5, 4, 3, 2, 1)] == ["A", "A", "B", "B", "C", "C", "D", "D"]
    assert tsvector_literal({"企业": 10, "o'k": 6, "a\\b": 3, "名称": 2}) == "'企业':1A 'o''k':1B 'a\\\\b':1C '名称'"


# ------------------------------------------------------------------------------------------------ search


@pytest.mark.parametrize(
    "q",
    [
        "企业",
        "登记",
        "企业 登记",
        "企业登记信息",
        "qydj",
        "QYDJ",
        "qy",
        "qiye",
        "qiyedengji",
        "djxx",
        "登记信",
        "信用代码",
    ],
)
def test_finds_entry_by_words_pinyin_and_partial_names(session: Session, q: str) -> None:
    assert "e1" in ids(find(session, q))


def test_finds_by_item_tag_and_provider(session: Session) -> None:
    assert ids(find(session, "法定代表人")) == ["e1"]
    assert ids(find(session, "市场主体")) == ["e1"]
    assert ids(find(session, "sczt")) == ["e1"]  # tag initials
    assert set(ids(find(session, "社会保障厅"))) == {"e2", "e3"}


def test_and_semantics(session: Session) -> None:
    assert set(ids(find(session, "企业"))) == {"e1", "e3", "e4", "e5"}
    assert set(ids(find(session, "企业 注销"))) == {"e5"}
    assert ids(find(session, "企业 养老")) == []
    assert ids(find(session, "qydj 社保")) == []
    assert find(session, "不存在的词汇xyz").total == 0


def test_field_weights_order_the_results(session: Session) -> None:
    for doc_id, field in [("w1", "items"), ("w2", "summary"), ("w3", "tags"), ("w4", "title")]:
        text_ = "水库" if field != "items" else ["水库"]
        service.index_document(
            session,
            doc_type=T,
            doc_id=doc_id,
            title="水库" if field == "title" else "数据",
            fields={field: text_} if field != "title" else {},
            facets={"status": "published"},
            updated_at=BASE_TIME - timedelta(days=int(doc_id[1])),  # older documents rank first on a tie
        )
    result = find(session, "水库")
    assert ids(result) == ["w4", "w3", "w2", "w1"]
    scores = [h.score for h in result.hits]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == 4
    # the same order for pinyin, which only titles and tags carry
    assert ids(find(session, "shuiku")) == ["w4", "w3"]


def test_title_match_ranks_above_item_only_match(session: Session) -> None:
    result = find(session, "企业", filters={"status": ["published"]})
    assert ids(result) == ["e1", "e3"]  # e3 only has 企业 in a data item name
    assert result.hits[0].score > result.hits[1].score
    assert result.hits[0].title == "企业登记信息"
    assert result.hits[0].extra == {"provider": "省市场监督管理局"}


def test_filters_and_facet_counts(session: Session) -> None:
    all_facets = ["org_id", "status", "sharing_type", "class_top", "class_item", "region_code"]
    result = find(session, "企业", facets=all_facets)
    assert result.total == 4
    assert dict(result.facets["org_id"]) == {"org-a": 2, "org-b": 2}
    assert dict(result.facets["status"]) == {"published": 2, "draft": 2}
    assert dict(result.facets["class_top"]) == {"1": 3, "2": 1}
    assert dict(result.facets["class_item"]) == {"102": 3, "203": 1}

    by_class = find(session, "企业", filters={"class_code": ["102001"]}, facets=["status"])
    assert set(ids(by_class)) == {"e1", "e5"}
    assert dict(by_class.facets["status"]) == {"published": 1, "draft": 1}
    # class and region codes filter by prefix: a city code selects its own entries, a class its sub-classes
    assert set(ids(find(session, None, filters={"class_code": ["2"]}))) == {"e2", "e3"}
    assert set(ids(find(session, None, filters={"region_code": ["4401"]}))) == {"e2", "e3"}
    both = find(session, "社保", filters={"sharing_type": ["有条件共享"], "org_id": ["org-b"]})
    assert ids(both) == ["e2"]
    assert both.total == 1
    with pytest.raises(ValidationFailed):
        find(session, "企业", filters={"owner": ["x"]})
    with pytest.raises(ValidationFailed):
        find(session, "企业", facets=["owner"])


def test_extra_where_hides_other_organisations_drafts_everywhere(session: Session) -> None:
    visible_to_a = or_(SearchDoc.status == "published", SearchDoc.org_id == "org-a")
    result = find(session, "企业", facets=["org_id", "status"], extra_where=visible_to_a)
    assert set(ids(result)) == {"e1", "e3", "e5"}  # e4 is org-b's draft
    assert result.total == 3
    assert dict(result.facets["org_id"]) == {"org-a": 2, "org-b": 1}
    assert dict(result.facets["status"]) == {"published": 2, "draft": 1}
    assert find(session, "年报", extra_where=visible_to_a).total == 0
    listing = find(session, None, facets=["status"], extra_where=visible_to_a)
    assert "e4" not in ids(listing)
    assert dict(listing.facets["status"]) == {"published": 3, "draft": 1}


def test_empty_query_lists_by_boost_then_recency_with_pagination(session: Session) -> None:
    service.index_document(
        session,
        doc_type=T,
        doc_id="e6",
        title="重点推荐数据",
        fields={"summary": "推荐"},
        facets={"status": "published"},
        boost=5.0,
        updated_at=BASE_TIME - timedelta(days=10),
    )
    listing = find(session, "", limit=3)
    assert listing.total == 6
    assert ids(listing)[0] == "e6"
    assert len(listing.hits) == 3
    everything = ids(find(session, None, limit=50))
    assert everything[-1] == "e5"  # oldest among boost 1.0
    page2 = find(session, None, limit=3, offset=3)
    assert ids(listing) + ids(page2) == everything


def test_reindex_replaces_old_terms(session: Session) -> None:
    service.index_document(
        session,
        doc_type=T,
        doc_id="e1",
        title="自然人基础信息",
        fields={"items": ["公民身份号码"]},
        facets={"org_id": "org-c", "status": "published"},
    )
    assert "e1" not in ids(find(session, "qydj"))
    assert "e1" not in ids(find(session, "法定代表人"))
    assert ids(find(session, "zrr")) == ["e1"]
    assert find(session, "自然人", facets=["org_id"]).facets["org_id"] == [("org-c", 1)]
    terms = service.indexed_terms(session, doc_type=T, doc_id="e1")
    assert "企业" not in terms and "自然人" in terms and "zrrjcxx" in terms
    assert session.scalar(select(func.count()).select_from(SearchDoc).where(SearchDoc.doc_id == "e1")) == 1


def test_bulk_index_replaces_existing_documents(session: Session) -> None:
    service.bulk_index(session, [_entry("e2", "个人医疗保险参保信息", items=["医保卡号"], org="org-b")])
    assert ids(find(session, "缴费")) == []
    assert ids(find(session, "医保卡号")) == ["e2"]
    assert session.scalar(select(func.count()).select_from(SearchDoc)) == len(CORPUS)


def test_remove_document(session: Session) -> None:
    assert service.remove_document(session, doc_type=T, doc_id="e1") is True
    assert service.remove_document(session, doc_type=T, doc_id="e1") is False
    assert "e1" not in ids(find(session, "企业"))
    orphans = select(func.count()).select_from(SearchPosting).where(SearchPosting.doc_ref.not_in(select(SearchDoc.id)))
    assert session.scalar(orphans) == 0


def test_doc_types_are_separate(session: Session) -> None:
    service.index_document(
        session,
        doc_type="open_dataset",
        doc_id="d1",
        title="企业登记信息开放数据集",
        fields={},
        facets={"opening_type": "无条件开放"},
    )
    assert ids(service.search(session, doc_type="open_dataset", q="qydj")) == ["d1"]
    assert "d1" not in ids(find(session, "qydj"))


def test_ranking_is_consistent_with_counts(session: Session) -> None:
    result = find(session, "企业", facets=["status"], limit=2)
    assert len(result.hits) == 2
    assert result.total == 4
    assert sum(Counter(dict(result.facets["status"])).values()) == result.total
    scores = [h.score for h in result.hits]
    assert scores == sorted(scores, reverse=True)
    optimize_then = find(session, "企业", limit=2)
    service.optimize(session)
    assert ids(find(session, "企业", limit=2)) == ids(optimize_then)
