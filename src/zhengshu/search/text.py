"""Turning Chinese text into search terms: jieba words, title bigrams, full pinyin and pinyin initials.

Indexing and querying share these functions so both sides cut text the same way. jieba runs without its
HMM (new-word guessing) on both sides: guessed words depend on the surrounding text, so a word guessed in
a title would not be guessed the same way in a short query.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

MAX_TERM_LEN = 64  # longer terms are cut: prefix matching still works on the cut term

# Weight of a term by the field it came from; a term found in several fields keeps its highest weight.
FIELD_WEIGHTS: dict[str, int] = {"title": 10, "tags": 6, "provider": 5, "summary": 3, "items": 2}
# Title-derived terms that are weaker evidence than a whole title word.
W_TITLE_CHAIN = 7  # pinyin / initials of the title from a word boundary to its end ("qydjxx", "djxx")
W_TITLE_BIGRAM = 4  # two adjacent characters of the title ("记信"): partial names

# Function words that carry no meaning in a catalog search; dropped on both sides.
_STOPWORD_TEXT = """
的 了 和 与 及 或 等 在 是 为 对 由 将 其 之 并 以 于 按 该 各 个 中 有 无 从 向 到 把 被 所 而 且 也 就 都
以及 或者 并且 及其 其他 相关 包括 用于 通过 进行 有关
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())

_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_RE = re.compile(f"[{_CJK}]")
_CJK_RUN_RE = re.compile(f"[{_CJK}]+")
_ASCII_WORD_RE = re.compile(r"[0-9a-z]+")
# A query is cut into runs of CJK characters and runs of ASCII letters/digits; everything else separates.
_QUERY_PART_RE = re.compile(f"[{_CJK}]+|[0-9A-Za-z]+")

_jieba_lock = threading.Lock()
_jieba: Any = None


def _jieba_module() -> Any:
    """Import and initialise jieba once, quietly (its dictionary load logs to stderr by default)."""
    global _jieba
    if _jieba is None:
        with _jieba_lock:
            if _jieba is None:
                import logging

                import jieba

                jieba.setLogLevel(logging.WARNING)
                jieba.initialize()
                _jieba = jieba
    return _jieba


def is_cjk(text: str) -> bool:
    return bool(_CJK_RE.search(text))


def _cut(text: str) -> list[str]:
    return [w for w in _jieba_module().cut(text, HMM=False) if w.strip()]


def _cut_for_search(text: str) -> list[str]:
    return [w for w in _jieba_module().cut_for_search(text, HMM=False) if w.strip()]


@lru_cache(maxsize=200_000)
def _syllables(word: str) -> tuple[str, ...]:
    from pypinyin import lazy_pinyin

    # characters without pinyin (ASCII words, digits) come back as one piece, lowercased
    return tuple(s.lower() for s in lazy_pinyin(word, errors="default") if s.strip())


def full_pinyin(text: str) -> str:
    """Tone-less pinyin of ``text`` joined without spaces: "企业登记" -> "qiyedengji"."""
    return "".join(s for s in _syllables(text) if s.isalnum())


def initials(text: str) -> str:
    """First letter of each syllable: "企业登记信息" -> "qydjxx" (ASCII words keep their first letter)."""
    return "".join(s[0] for s in _syllables(text) if s and s[0].isalnum())


def _put(terms: dict[str, float], term: str, weight: float) -> None:
    term = term[:MAX_TERM_LEN]
    if len(term) < 1 or term in STOPWORDS:
        return
    if terms.get(term, 0.0) < weight:
        terms[term] = weight


def _word_terms(text: str, weight: float, terms: dict[str, float], *, pinyin: bool) -> None:
    """Lowercased jieba search words of ``text``; with ``pinyin`` also each word's pinyin and initials."""
    for word in _cut_for_search(text.lower()):
        if is_cjk(word):
            if len(word) < 2:
                # a character jieba left alone ("法定代表人" -> 法定代表 + 人): a query cut the same way
                # asks for it (stopwords are dropped by _put)
                _put(terms, word, max(1, round(weight * 0.3)))
                continue
            _put(terms, word, weight)
            if pinyin:
                _put(terms, full_pinyin(word), round(weight * 0.8))
                _put(terms, initials(word), round(weight * 0.7))
        else:
            for token in _ASCII_WORD_RE.findall(word):
                if len(token) >= 2 or token.isdigit():
                    _put(terms, token, weight)


def _title_terms(title: str, terms: dict[str, float]) -> None:
    text = title.lower()
    _word_terms(text, FIELD_WEIGHTS["title"], terms, pinyin=True)  # pinyin 8, initials 7
    # pinyin and initials from each word boundary to the end of the title, so "qydj" (a prefix of
    # "qydjxx") and "djxx" find "企业登记信息"; one chain per word keeps the count linear in the title
    words = [w for w in _cut(text) if is_cjk(w) or _ASCII_WORD_RE.fullmatch(w)]
    syllables = [(full_pinyin(w), initials(w)) for w in words]
    for start in range(len(words)):
        rest = syllables[start:]
        _put(terms, "".join(p for p, _ in rest), W_TITLE_CHAIN)
        _put(terms, "".join(i for _, i in rest), W_TITLE_CHAIN)
    # adjacent character pairs find partial names across word boundaries ("记信" in "登记信息")
    for run in _CJK_RUN_RE.findall(text):
        for i in range(len(run) - 1):
            _put(terms, run[i : i + 2], W_TITLE_BIGRAM)


def index_terms(text: str | list[str] | None, field: str) -> dict[str, float]:
    """Terms of one field of a document with their weights (``field`` picks the weight and the recipe)."""
    if field not in FIELD_WEIGHTS:
        raise ValueError(f"unknown search field {field!r}")
    terms: dict[str, float] = {}
    if not text:
        return terms
    parts = [text] if isinstance(text, str) else [t for t in text if t]
    for part in parts:
        # short texts (item names, tags, providers, titles) repeat across a catalog: cut them once
        found = _short_part_terms(part, field) if len(part) <= 40 else _part_terms(part, field)
        for term, weight in found:
            if terms.get(term, 0.0) < weight:
                terms[term] = weight
    return terms


def _part_terms(part: str, field: str) -> tuple[tuple[str, float], ...]:
    terms: dict[str, float] = {}
    if field == "title":
        _title_terms(part, terms)
    else:
        # names people type in pinyin: tags and the provider; summaries and items are too long
        _word_terms(part, FIELD_WEIGHTS[field], terms, pinyin=field in ("tags", "provider"))
    return tuple(terms.items())


_short_part_terms = lru_cache(maxsize=100_000)(_part_terms)


def document_terms(fields: dict[str, str | list[str] | None]) -> dict[str, float]:
    """All terms of a document: each term once, with the highest weight any field gave it."""
    merged: dict[str, float] = {}
    for field, text in fields.items():
        for term, weight in index_terms(text, field).items():
            if merged.get(term, 0.0) < weight:
                merged[term] = weight
    return merged


def _prefix_queried(term: str) -> bool:
    """Terms a query can only reach by prefix (see :func:`query_terms`): pinyin, initials and other ASCII
    words of two or more characters, and lone Chinese characters."""
    return (len(term) >= 2 and term.isascii()) or (len(term) == 1 and is_cjk(term))


def compact_terms(terms: dict[str, float]) -> dict[str, float]:
    """Drop the terms no query needs: a term that queries reach only by prefix ("jiating", "qy") when the
    document has a longer term starting with it ("jiatingnongchang", "qydjxx") with at least its weight.
    Every query finds the same documents from ~10% fewer terms, and each token the same best weight."""
    ordered = sorted(terms)
    kept: dict[str, float] = {}
    for i, term in enumerate(ordered):
        if _prefix_queried(term) and _has_longer(ordered, i, terms):
            continue
        kept[term] = terms[term]
    return kept


def _has_longer(ordered: list[str], i: int, terms: dict[str, float]) -> bool:
    """Whether a term after ``ordered[i]`` starts with it and weighs as much (they follow it when sorted)."""
    term = ordered[i]
    for j in range(i + 1, len(ordered)):
        other = ordered[j]
        if not other.startswith(term):
            return False
        if terms[other] >= terms[term]:
            return True
    return False


@dataclass(frozen=True)
class QueryToken:
    """One thing a document must contain: ``term`` exactly, or any term starting with it if ``prefix``."""

    term: str
    prefix: bool = False

    @property
    def upper(self) -> str:
        """Smallest string above every string that starts with ``term`` (for a range condition)."""
        return self.term[:-1] + chr(ord(self.term[-1]) + 1)


def query_terms(q: str | None) -> list[QueryToken]:
    """Tokens of a user query, AND-ed by the search.

    Chinese runs are cut into words (exact terms); a lone Chinese character matches any term starting
    with it ("登记信" -> 登记 + 信*). ASCII runs are pinyin, initials or English and match by prefix
    ("qydj" finds "qydjxx", "qiye" finds "qiyedengjixinxi").
    """
    tokens: list[QueryToken] = []
    if not q:
        return tokens
    for part in _QUERY_PART_RE.findall(q.lower()):
        if is_cjk(part):
            for word in _cut(part):
                if word in STOPWORDS:
                    continue
                tokens.append(QueryToken(word[:MAX_TERM_LEN], prefix=len(word) == 1))
        elif len(part) >= 2 or part.isdigit():
            tokens.append(QueryToken(part[:MAX_TERM_LEN], prefix=len(part) >= 2))
    seen: set[QueryToken] = set()
    unique = []
    for token in tokens:
        if token not in seen:
            seen.add(token)
            unique.append(token)
    return unique
