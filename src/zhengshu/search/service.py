"""Indexing and searching documents (catalog entries, open datasets, data-map nodes) on any SQL store.

A query is a list of tokens (see :mod:`zhengshu.search.text`) that a document must all contain.

On PostgreSQL the terms of a document are a weighted ``tsvector`` under a GIN index (see
:mod:`zhengshu.search.pg`): the index answers the AND of the tokens as one bitmap, and the score is read
from the matched rows themselves. Elsewhere (SQLite) they are rows of ``search_posting``: the
rarest token (counted up to a cap) drives the query: its postings are read by the (term, doc_ref) key;
other exact words are joined on their key and prefix tokens (pinyin, initials, a lone character) are
looked up per candidate on (doc_ref, term), so "企业 登记 信息" costs about as much as its rarest
word. Filters, the caller's authorisation condition, the total, the facet counts and the page all come
from one statement over the same matched set, so nothing outside ``extra_where`` can leak through a count.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    delete,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    text,
    tuple_,
    union_all,
)
from sqlalchemy.orm import Session

from zhengshu.core.db import UTCDateTime, utcnow
from zhengshu.core.errors import ValidationFailed
from zhengshu.search import pg
from zhengshu.search.models import FACET_COLUMNS, PREFIX_FACETS, SearchDoc, SearchPosting
from zhengshu.search.text import QueryToken, compact_terms, document_terms, query_terms

DOC = SearchDoc.__table__
POSTING = SearchPosting.__table__

# Facets computed from a column: the 类 (1 digit) and 类+项 (3 digits) of the resource class code.
DERIVED_FACETS: dict[str, ColumnElement[Any]] = {
    "class_top": func.substr(DOC.c.class_code, 1, 1),
    "class_item": func.substr(DOC.c.class_code, 1, 3),
}
FACET_VALUE_LIMIT = 100  # values returned per facet, most frequent first
_ESTIMATE_CAP = 50_000  # postings counted per token when choosing the driving token
_BATCH = 2_000  # documents per bulk-index round trip
SUMMARY_CHARS = 300  # kept for result lists; the full text is indexed, not stored

FieldText = str | list[str] | None


@dataclass
class IndexDoc:
    doc_type: str
    doc_id: str
    title: str
    fields: dict[str, FieldText] = field(default_factory=dict)
    facets: dict[str, str | None] = field(default_factory=dict)
    boost: float = 1.0
    extra: dict[str, Any] | None = None
    summary: str = ""
    updated_at: datetime | None = None


@dataclass(frozen=True)
class Hit:
    doc_id: str
    title: str
    score: float
    extra: dict[str, Any]
    summary: str = ""


@dataclass
class SearchResult:
    hits: list[Hit]
    total: int
    facets: dict[str, list[tuple[str, int]]]
    tokens: list[QueryToken] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------- indexing


def _summary_of(doc: IndexDoc) -> str:
    if doc.summary:
        return doc.summary[:SUMMARY_CHARS]
    text_ = doc.fields.get("summary")
    if isinstance(text_, list):
        text_ = "；".join(text_)
    return (text_ or "")[:SUMMARY_CHARS]


def _uses_tsvector(session: Session) -> bool:
    """Whether the terms live in ``search_doc.terms`` (PostgreSQL) rather than in ``search_posting``."""
    return session.get_bind().dialect.name == "postgresql"


def _doc_row(doc: IndexDoc, terms: str | None) -> dict[str, Any]:
    unknown = set(doc.facets) - set(FACET_COLUMNS)
    if unknown:
        raise ValidationFailed(f"未知的检索分面：{', '.join(sorted(unknown))}", code="search.unknown_facet")
    row: dict[str, Any] = {
        "doc_type": doc.doc_type,
        "doc_id": doc.doc_id,
        "title": doc.title[:400],
        "summary": _summary_of(doc),
        "boost": doc.boost,
        "updated_at": doc.updated_at or utcnow(),
        "extra": doc.extra or {},
        "terms": terms,
    }
    for name in FACET_COLUMNS:
        row[name] = doc.facets.get(name)
    return row


def _terms_of(doc: IndexDoc) -> dict[str, float]:
    fields = dict(doc.fields)
    fields.setdefault("title", doc.title)
    return compact_terms(document_terms(fields))


def _delete_docs(session: Session, refs: Sequence[int]) -> None:
    if refs:
        if not _uses_tsvector(session):
            session.execute(delete(POSTING).where(POSTING.c.doc_ref.in_(refs)))
        session.execute(delete(DOC).where(DOC.c.id.in_(refs)))


def _insert_postings(session: Session, rows: list[tuple[str, int, int]]) -> None:
    """Fast path per driver: COPY on psycopg, a raw executemany on sqlite3, Core executemany elsewhere."""
    if not rows:
        return
    rows.sort()  # key order keeps B-tree page writes local
    conn = session.connection()
    dialect = conn.dialect
    if dialect.name == "postgresql" and dialect.driver == "psycopg":
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        with cursor.copy(f"COPY {POSTING.name} (term, doc_ref, weight) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    elif dialect.name == "sqlite":
        conn.exec_driver_sql(f"INSERT INTO {POSTING.name} (term, doc_ref, weight) VALUES (?, ?, ?)", rows)
    else:
        session.execute(insert(POSTING), [{"term": t, "doc_ref": d, "weight": w} for t, d, w in rows])


def _existing_refs(session: Session, docs: list[IndexDoc]) -> list[int]:
    """Ids of the documents already indexed, looked up per type with ``doc_id IN (...)``: an index range
    per key on (doc_type, doc_id), where a list of (type, id) pairs may be planned as a scan."""
    by_type: dict[str, list[str]] = defaultdict(list)
    for doc in docs:
        by_type[doc.doc_type].append(doc.doc_id)
    where = or_(*[and_(DOC.c.doc_type == t, DOC.c.doc_id.in_(ids)) for t, ids in by_type.items()])
    return list(session.scalars(select(DOC.c.id).where(where)))


def _insert_docs(session: Session, rows: list[dict[str, Any]]) -> None:
    """Document rows without their ids: COPY on psycopg (a third of the time of a multi-row INSERT), Core
    executemany elsewhere."""
    conn = session.connection()
    if conn.dialect.driver != "psycopg":
        session.execute(insert(DOC), rows)
        return
    names = list(rows[0])
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(f"COPY {DOC.name} ({', '.join(names)}) FROM STDIN") as copy:
        for row in rows:
            values = dict(row)
            # what the column types do on the INSERT path: JSON text, UTC timestamps (naive refused)
            values["extra"] = json.dumps(values["extra"], ensure_ascii=False)
            values["updated_at"] = UTCDateTime().process_bind_param(values["updated_at"], conn.dialect)
            copy.write_row([values[name] for name in names])


def index_document(
    session: Session,
    *,
    doc_type: str,
    doc_id: str,
    title: str,
    fields: dict[str, FieldText],
    facets: dict[str, str | None],
    boost: float = 1.0,
    extra: dict[str, Any] | None = None,
    summary: str = "",
    updated_at: datetime | None = None,
) -> None:
    """Index (or re-index) one document; its previous terms are replaced."""
    bulk_index(
        session,
        [IndexDoc(doc_type, doc_id, title, fields, facets, boost, extra, summary, updated_at)],
    )


def remove_document(session: Session, *, doc_type: str, doc_id: str) -> bool:
    """Drop a document from the index; returns whether it was there."""
    ref = session.scalar(select(DOC.c.id).where(DOC.c.doc_type == doc_type, DOC.c.doc_id == doc_id))
    if ref is None:
        return False
    _delete_docs(session, [ref])
    return True


def _batches(docs: Iterable[IndexDoc], size: int) -> Iterator[list[IndexDoc]]:
    it = iter(docs)
    while batch := list(islice(it, size)):
        yield batch


def bulk_index(
    session: Session,
    docs: Iterable[IndexDoc],
    *,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Index many documents with a few statements per batch (Core inserts, no ORM objects).

    Documents already in the index are replaced. ``progress`` is called with the number of documents
    done after each batch. Returns the number of documents indexed.
    """
    done = 0
    vectors = _uses_tsvector(session)
    for batch in _batches(docs, _BATCH):
        # the last occurrence of a document in a batch wins, as with successive index_document calls
        unique = list({(d.doc_type, d.doc_id): d for d in batch}.values())
        terms = [_terms_of(d) for d in unique]
        doc_rows = [
            _doc_row(d, pg.tsvector_literal(t) if vectors else None) for d, t in zip(unique, terms, strict=True)
        ]
        _delete_docs(session, _existing_refs(session, unique))
        if vectors:
            _insert_docs(session, doc_rows)  # the terms are in the rows: no ids needed back
        else:
            result = session.execute(
                insert(DOC).returning(DOC.c.id, sort_by_parameter_order=True),
                doc_rows,
            )
            refs = list(result.scalars())
            rows = [
                (term, ref, int(weight))
                for ref, doc_terms in zip(refs, terms, strict=True)
                for term, weight in doc_terms.items()
            ]
            _insert_postings(session, rows)
        done += len(batch)
        if progress:
            progress(len(batch))
    session.flush()
    return done


def optimize(session: Session) -> None:
    """Refresh planner statistics of the index tables (after a bulk load, or nightly)."""
    session.flush()
    if _uses_tsvector(session):
        # merge the GIN pending list, which every search would otherwise scan; ANALYZE also samples the
        # most common lexemes of ``terms``, from which the planner chooses between the GIN bitmap and a scan
        session.execute(text("SELECT gin_clean_pending_list('ix_search_doc_terms'::regclass)"))
        session.execute(text(f"ANALYZE {DOC.name}"))
        return
    for table in (DOC.name, POSTING.name):
        session.execute(text(f"ANALYZE {table}"))


def indexed_terms(session: Session, *, doc_type: str, doc_id: str) -> set[str]:
    """The terms a document is indexed under (for diagnostics); empty if it is not indexed."""
    if _uses_tsvector(session):
        stmt = select(func.tsvector_to_array(DOC.c.terms)).where(DOC.c.doc_type == doc_type, DOC.c.doc_id == doc_id)
        return set(session.scalar(stmt) or [])
    ref = select(DOC.c.id).where(DOC.c.doc_type == doc_type, DOC.c.doc_id == doc_id).scalar_subquery()
    return set(session.scalars(select(POSTING.c.term).where(POSTING.c.doc_ref == ref)))


# ---------------------------------------------------------------------------------------------- searching


def _facet_column(name: str) -> ColumnElement[Any]:
    if name in FACET_COLUMNS:
        return DOC.c[name]
    if name in DERIVED_FACETS:
        return DERIVED_FACETS[name]
    raise ValidationFailed(f"未知的检索分面：{name}", code="search.unknown_facet")


def _filter_conditions(filters: dict[str, list[str]] | None) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    for name, values in (filters or {}).items():
        values = [v for v in values if v is not None and v != ""]
        if not values:
            continue  # an empty choice means "any"
        if name in PREFIX_FACETS:
            col = DOC.c[name]
            conditions.append(or_(*[and_(col >= v, col < QueryToken(v).upper) for v in values]))
        else:
            conditions.append(_facet_column(name).in_(values))
    return conditions


def _term_condition(posting: Any, token: QueryToken) -> ColumnElement[bool]:
    if token.prefix:
        return and_(posting.c.term >= token.term, posting.c.term < token.upper)
    return posting.c.term == token.term


def _estimate(session: Session, token: QueryToken) -> int:
    """Postings of a token, counted up to a cap: enough to pick the rarest token to drive the query."""
    capped = select(literal(1)).where(_term_condition(POSTING, token)).limit(_ESTIMATE_CAP)
    return session.scalar(select(func.count()).select_from(capped.subquery())) or 0


def _matched(
    session: Session,
    *,
    doc_type: str,
    tokens: list[QueryToken],
    conditions: list[ColumnElement[bool]],
    facet_names: Sequence[str],
) -> Select[Any]:
    """Documents matching every token and condition, with their score and facet values."""
    facet_cols = [_facet_column(name).label(f"f_{i}") for i, name in enumerate(facet_names)]
    where = [DOC.c.doc_type == doc_type, *conditions]
    if not tokens:
        return select(DOC.c.id, DOC.c.boost.label("score"), DOC.c.updated_at, *facet_cols).where(*where)
    if _uses_tsvector(session):
        score_ = pg.score(DOC.c.terms, tokens) * DOC.c.boost
        where.append(pg.matches(DOC.c.terms, tokens))
        return select(DOC.c.id, score_.label("score"), DOC.c.updated_at, *facet_cols).where(*where)

    if len(tokens) > 1:
        # rarest first; on a tie an exact term, which needs no grouping
        tokens = sorted(tokens, key=lambda t: (_estimate(session, t), t.prefix))
    driver, *others = tokens
    p0 = POSTING.alias("p0")
    if driver.prefix:
        # a document may have several terms with the prefix ("qiye", "qiyedengjixinxi"): count it once
        # (grouping by doc_ref + 0 keeps SQLite from walking the whole (doc_ref, term) index for its order)
        ref = (p0.c.doc_ref + 0).label("doc_ref")
        base = (
            select(ref, func.max(p0.c.weight).label("weight"))
            .where(_term_condition(p0, driver))
            .group_by(ref)
            .subquery("t0")
        )
    else:
        base = select(p0.c.doc_ref, p0.c.weight).where(_term_condition(p0, driver)).subquery("t0")

    # Exact tokens are joined on their (term, doc_ref) key: the planner sees good row estimates for a
    # single term and picks nested-loop lookups or a hash join by size.
    score: ColumnElement[Any] = base.c.weight
    joined: Any = base
    exact = [t for t in others if not t.prefix]
    prefixed = [t for t in others if t.prefix]
    for i, token in enumerate(exact, start=1):
        p = POSTING.alias(f"p{i}")
        joined = joined.join(p, and_(p.c.doc_ref == base.c.doc_ref, _term_condition(p, token)))
        score = score + p.c.weight
    if prefixed:
        # A prefix range has poor row estimates and may match several terms of a document, so it is a
        # lookup on (doc_ref, term) per candidate, written as a scalar subquery that no planner turns
        # into a join driven by the (often common) prefix. OFFSET 0 keeps each lookup evaluated once.
        cols = [base.c.doc_ref, score.label("weight")]
        for j, token in enumerate(prefixed):
            p = POSTING.alias(f"q{j}")
            probe = and_(p.c.doc_ref == base.c.doc_ref, _term_condition(p, token))
            cols.append(select(func.max(p.c.weight)).where(probe).scalar_subquery().label(f"w{j}"))
        base = select(*cols).select_from(joined).offset(0).subquery("t1")
        joined = base
        score = base.c.weight
        for j in range(len(prefixed)):
            where.append(base.c[f"w{j}"].is_not(None))
            score = score + base.c[f"w{j}"]
    return (
        select(DOC.c.id, (score * DOC.c.boost).label("score"), DOC.c.updated_at, *facet_cols)
        .select_from(joined.join(DOC, DOC.c.id == base.c.doc_ref))
        .where(*where)
    )


def _count_parts(matched: Any, n_facets: int, *, grouping_sets: bool) -> list[Select[Any]]:
    """Rows ("t", NULL, total) and ("f<i>", value, count) over the matched set: one GROUP BY per facet, or
    on PostgreSQL a single pass with GROUPING SETS."""
    cols = [matched.c[f"f_{i}"] for i in range(n_facets)]
    if not grouping_sets or not cols:
        parts = [select(literal("t"), null(), func.count(), null()).select_from(matched)]
        for i, col in enumerate(cols):
            parts.append(select(literal(f"f{i}"), col, func.count(), null()).group_by(col))
        return parts
    # in the rows of one grouping set the other facet columns are NULL; the total's set groups none
    kind = case(*[(func.grouping(col) == 0, literal(f"f{i}")) for i, col in enumerate(cols)], else_=literal("t"))
    value = func.coalesce(*cols) if len(cols) > 1 else cols[0]
    sets = func.grouping_sets(*[tuple_(col) for col in cols], text("()"))
    return [select(kind, value, func.count(), null()).select_from(matched).group_by(sets)]


def search(
    session: Session,
    *,
    doc_type: str,
    q: str | None,
    filters: dict[str, list[str]] | None = None,
    facets: Sequence[str] = (),
    limit: int = 20,
    offset: int = 0,
    extra_where: ColumnElement[bool] | None = None,
) -> SearchResult:
    """Documents of ``doc_type`` containing every word of ``q`` (Chinese words, pinyin, initials,
    partial names), best first; with no query, all documents by boost and recency.

    ``filters`` maps a facet to accepted values (region and class codes match by prefix). ``extra_where``
    is the caller's authorisation condition on :class:`SearchDoc` columns; totals and facet counts are
    computed after it. Facet counts are over the matched set with every filter applied.
    """
    limit = max(0, min(limit, 200))
    offset = max(0, offset)
    tokens = query_terms(q)
    if q and q.strip() and not tokens:
        # only stopwords or punctuation: nothing to look for
        return SearchResult(hits=[], total=0, facets={name: [] for name in facets}, tokens=[])
    conditions = _filter_conditions(filters)
    if extra_where is not None:
        conditions.append(extra_where)
    matched = _matched(session, doc_type=doc_type, tokens=tokens, conditions=conditions, facet_names=facets).cte("m")

    order = (matched.c.score.desc(), matched.c.updated_at.desc(), matched.c.id.desc())
    page = select(matched.c.id, matched.c.score).order_by(*order).limit(limit).offset(offset).subquery("pg")
    parts: list[Select[Any]] = [
        select(literal("h").label("kind"), null().label("value"), page.c.score.label("num"), page.c.id),
        *_count_parts(matched, len(facets), grouping_sets=_uses_tsvector(session)),
    ]
    rows = session.execute(union_all(*parts)).all()

    scores: dict[int, float] = {}
    total = 0
    counts: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for kind, value, num, ref in rows:
        if kind == "h":
            scores[ref] = float(num)
        elif kind == "t":
            total = int(num)
        elif value is not None:
            counts[facets[int(kind[1:])]].append((str(value), int(num)))
    facet_counts = {name: sorted(counts[name], key=lambda vc: (-vc[1], vc[0]))[:FACET_VALUE_LIMIT] for name in facets}

    hits: list[Hit] = []
    if scores:
        details = session.execute(
            select(DOC.c.id, DOC.c.doc_id, DOC.c.title, DOC.c.summary, DOC.c.extra, DOC.c.updated_at).where(
                DOC.c.id.in_(list(scores))
            )
        ).all()
        # a UNION keeps no order: sort the page again the way the statement did
        details.sort(key=lambda r: (scores[r.id], r.updated_at, r.id), reverse=True)
        hits = [Hit(r.doc_id, r.title, scores[r.id], r.extra or {}, r.summary) for r in details]
    return SearchResult(hits=hits, total=total, facets=facet_counts, tokens=tokens)
