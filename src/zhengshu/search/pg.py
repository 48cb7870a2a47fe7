"""The PostgreSQL side of the search index: each document's terms in a ``tsvector`` column with a GIN index.

The terms are the ones :mod:`zhengshu.search.text` computes for every database (jieba words, pinyin,
initials, bigrams); they are written as a tsvector literal, so PostgreSQL's own parser and dictionaries
never see the text. A query is the AND of its tokens as a tsquery (prefix tokens as ``'qydj':*``), which
the GIN index answers as a bitmap, and the score comes from the term weights stored with the lexemes:

- a term's weight (10 for a title word … 1 for a lone character of a data item) is kept as one of the
  four tsvector weight classes (A title words, B tags/provider, C title bigrams/summary, D data items);
- ``ts_rank`` over the OR of the query tokens, with class weights 1.0/0.6/0.3/0.1 and scaled back by the
  number of tokens, gives the sum of the tokens' class weights × 10 — the scale of the posting weights
  used on other databases (a prefix token that matches several terms of a document adds them up).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, cast, func, literal
from sqlalchemy.dialects.postgresql import ARRAY, REAL, TSQUERY

from zhengshu.search.text import QueryToken

# tsvector weight class of a term weight; D is the class of a lexeme stored without a position
_CLASS_BOUNDS = ((7, "A"), (5, "B"), (3, "C"))
# ts_rank weights in the order {D, C, B, A}
RANK_WEIGHTS = "{0.1,0.3,0.6,1.0}"
# ts_rank divides each lexeme's weight by this (the limit of sum 1/i^2) and the sum by the number of tokens
_RANK_SCALE = 10 * 1.64493406685


def weight_class(weight: float) -> str:
    for bound, name in _CLASS_BOUNDS:
        if weight >= bound:
            return name
    return "D"


def _quote(term: str) -> str:
    # tsvector/tsquery literal syntax: single quotes doubled, backslashes escaped
    return "'" + term.replace("\\", "\\\\").replace("'", "''") + "'"


def tsvector_literal(terms: dict[str, float]) -> str:
    """``'企业':1A 'qydj':1B '名称'`` — every lexeme once; D-class lexemes need no position."""
    parts = []
    for term, weight in terms.items():
        cls = weight_class(weight)
        parts.append(_quote(term) if cls == "D" else f"{_quote(term)}:1{cls}")
    return " ".join(parts)


def _tsquery(tokens: list[QueryToken], operator: str) -> ColumnElement[Any]:
    text_ = f" {operator} ".join(_quote(t.term) + (":*" if t.prefix else "") for t in tokens)
    return cast(literal(text_), TSQUERY)


def matches(column: ColumnElement[Any], tokens: list[QueryToken]) -> ColumnElement[bool]:
    """The document contains every token (answered by the GIN index)."""
    return column.bool_op("@@")(_tsquery(tokens, "&"))


def score(column: ColumnElement[Any], tokens: list[QueryToken]) -> ColumnElement[Any]:
    """Sum over the tokens of the weight of their class in the document (A 10, B 6, C 3, D 1)."""
    rank = func.ts_rank(cast(literal(RANK_WEIGHTS), ARRAY(REAL)), column, _tsquery(tokens, "|"))
    return rank * (len(tokens) * _RANK_SCALE)
