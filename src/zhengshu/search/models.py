"""The search index: one row per searchable document and an inverted index of its terms.

On PostgreSQL the inverted index is the database's own: the document's terms in a ``tsvector`` column
(``search_doc.terms``) under a GIN index, and ``search_posting`` stays empty. Other databases (SQLite)
keep the terms in ``search_posting``, and ``terms`` stays NULL.

Postings refer to documents by a small integer (``search_doc.id``) rather than by "type:id" strings: with
about a hundred postings per catalog entry the index holds millions of rows, and the key is repeated in
every one of them and in both posting indexes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Float,
    Index,
    Integer,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from zhengshu.core.db import Base, utcnow

# Facet columns of search_doc, usable in ``filters`` and ``facets``.
FACET_COLUMNS = ("org_id", "region_code", "class_code", "sharing_type", "opening_type", "status")
# Hierarchical codes filtered by prefix: "2" selects every 主题信息资源 class, "4401" every county of a city.
PREFIX_FACETS = frozenset({"region_code", "class_code"})

# Byte-order comparison on PostgreSQL so that prefix ranges (term >= 'qydj' AND term < 'qydk') mean
# "starts with" whatever the database's default collation is; SQLite compares bytes already.
TermString = String(64).with_variant(String(64, collation="C"), "postgresql")
CodeString = String(32).with_variant(String(32, collation="C"), "postgresql")
TermVector = Text().with_variant(TSVECTOR(), "postgresql")


class SearchDoc(Base):
    __tablename__ = "search_doc"
    __table_args__ = (
        UniqueConstraint("doc_type", "doc_id", name="uq_search_doc_type_id"),
        # New entries wait in a pending list that a bulk load merges in sorted runs (4x faster than one
        # insertion per term) and every search scans: kept small (256 kB) so that scan stays cheap, and
        # emptied by optimize(). Elsewhere the column is NULL and the index, limited to non-NULL values,
        # stays empty.
        Index(
            "ix_search_doc_terms",
            "terms",
            postgresql_using="gin",
            postgresql_with={"fastupdate": "on", "gin_pending_list_limit": 256},
            sqlite_where=text("terms IS NOT NULL"),
        ),
    )

    # INTEGER PRIMARY KEY is SQLite's rowid: posting -> document lookups are a direct B-tree seek
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    doc_type: Mapped[str] = mapped_column(String(32))  # "catalog_entry", "open_dataset", ...
    # the columns a search reads for every matched document come first and the display texts last, so a
    # long summary (which SQLite moves to overflow pages) is never read while filtering and counting, and
    # PostgreSQL reaches ``terms`` for ranking without stepping over them
    boost: Mapped[float] = mapped_column(Float, default=1.0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    org_id: Mapped[str | None] = mapped_column(String(32), index=True)
    region_code: Mapped[str | None] = mapped_column(CodeString, index=True)
    class_code: Mapped[str | None] = mapped_column(CodeString, index=True)
    sharing_type: Mapped[str | None] = mapped_column(String(16), index=True)
    opening_type: Mapped[str | None] = mapped_column(String(16), index=True)
    status: Mapped[str | None] = mapped_column(String(16), index=True)
    terms: Mapped[str | None] = mapped_column(TermVector)  # PostgreSQL only, see the module docstring
    doc_id: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(400))
    summary: Mapped[str] = mapped_column(Text, default="")  # shortened, for result lists
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)


class SearchPosting(Base):
    """One term of one document. (term, doc_ref) is the lookup path; (doc_ref, term) checks whether a
    given document has a term (the AND of a multi-word query) and finds a document's postings to delete.
    No foreign key: postings are written and removed only with their document, and a key check per row
    would triple the cost of a bulk load."""

    __tablename__ = "search_posting"
    __table_args__ = (
        PrimaryKeyConstraint("term", "doc_ref", name="pk_search_posting"),
        Index("ix_search_posting_doc_term", "doc_ref", "term", "weight"),
        {"sqlite_with_rowid": False},  # the primary key is the table: no separate rowid B-tree
    )

    term: Mapped[str] = mapped_column(TermString)
    doc_ref: Mapped[int] = mapped_column(Integer)
    weight: Mapped[int] = mapped_column(SmallInteger)
