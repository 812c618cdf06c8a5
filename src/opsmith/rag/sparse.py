"""BM25 sparse vectors computed in code; Qdrant supplies the IDF (``Modifier.IDF``).

A document vector holds, per term, BM25's saturated term frequency
``tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))``. A query vector holds 1.0 per
distinct term. With the IDF modifier Qdrant multiplies in each term's IDF at query time,
so the dot product is the BM25 score. No model is downloaded (fastembed's BM25 would).

Tokens are tuned for runbooks: ``AlertmanagerFailedReload`` and ``kube_pod_status_ready``
are indexed whole *and* as their parts, so both the alert name and plain words match.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

__all__ = [
    "DEFAULT_AVGDL",
    "K1",
    "STOPWORDS",
    "B",
    "SparseVector",
    "document_vector",
    "query_vector",
    "term_id",
    "term_ids",
    "tokenize",
]

K1 = 1.2
B = 0.75
#: Typical chunk length in BM25 tokens; stored per collection so ingest and query agree.
DEFAULT_AVGDL = 120.0

_WORD = re.compile(r"[A-Za-z0-9_]+")
_CAMEL = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")

# Function words that carry no retrieval signal; kept short on purpose so terms such as
# "down", "not" or "no" (meaningful in alerts) still count.
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "been",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "for",
        "from",
        "had",
        "has",
        "have",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "me",
        "my",
        "of",
        "on",
        "or",
        "our",
        "should",
        "so",
        "such",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "to",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
    ]
)


@dataclass(frozen=True)
class SparseVector:
    indices: list[int]
    values: list[float]


@lru_cache(maxsize=1)
def _stemmer() -> object:
    import snowballstemmer

    return snowballstemmer.stemmer("english")


@lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    return _stemmer().stemWord(word)  # type: ignore[attr-defined, no-any-return]


def tokenize(text: str) -> list[str]:
    """Lower-cased, stemmed terms; compound identifiers also yield their parts."""
    terms: list[str] = []
    for match in _WORD.finditer(text):
        word = match.group()
        parts = [p for piece in word.split("_") for p in _CAMEL.findall(piece)]
        lowered = word.lower()
        if len(parts) > 1:
            terms.append(lowered)
            terms.extend(_stem(p.lower()) for p in parts if p.lower() not in STOPWORDS)
        elif lowered not in STOPWORDS:
            terms.append(_stem(lowered))
    return terms


def term_id(term: str) -> int:
    """Stable 32-bit id of a term (Qdrant sparse indices are uint32)."""
    return zlib.crc32(term.encode("utf-8"))


def document_vector(text: str, *, avgdl: float = DEFAULT_AVGDL) -> SparseVector:
    counts = Counter(term_id(t) for t in tokenize(text))
    length = sum(counts.values())
    norm = K1 * (1 - B + B * length / avgdl)
    indices = sorted(counts)
    return SparseVector(indices, [counts[i] * (K1 + 1) / (counts[i] + norm) for i in indices])


def query_vector(text: str) -> SparseVector:
    indices = sorted({term_id(t) for t in tokenize(text)})
    return SparseVector(indices, [1.0] * len(indices))


def term_ids(text: str) -> set[int]:
    """Distinct term ids in ``text``."""
    return {term_id(t) for t in tokenize(text)}
