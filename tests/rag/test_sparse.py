"""BM25 sparse vectors: runbook-aware tokens, saturated and length-normalised weights, stable ids."""

from __future__ import annotations

import zlib

import pytest

from opsmith.rag.sparse import K1, B, document_vector, query_vector, term_id, term_ids, tokenize


def _weight(text: str, term: str, **kwargs: float) -> float:
    vector = document_vector(text, **kwargs)
    return dict(zip(vector.indices, vector.values, strict=True))[term_id(term)]


def test_camel_case_identifiers_yield_the_whole_and_the_parts() -> None:
    assert tokenize("AlertmanagerFailedReload") == ["alertmanagerfailedreload", "alertmanag", "fail", "reload"]
    assert tokenize("HTTPServerError") == ["httpservererror", "http", "server", "error"]


def test_snake_case_identifiers_yield_the_whole_and_the_parts() -> None:
    assert tokenize("kube_pod_status_ready") == ["kube_pod_status_ready", "kube", "pod", "status", "readi"]
    # A stopword inside an identifier is dropped from the parts but the whole is kept.
    assert tokenize("time_to_live") == ["time_to_live", "time", "live"]


def test_stopwords_are_dropped_and_words_stemmed() -> None:
    assert tokenize("How do I restart the pods?") == ["restart", "pod"]
    # Words that matter in alerts are not stopwords.
    assert tokenize("node is not ready, disk down") == ["node", "not", "readi", "disk", "down"]


def test_term_frequency_saturates() -> None:
    filler = " ".join(f"filler{i}" for i in range(9))
    once = _weight(f"disk {filler}", "disk")
    ten_times = _weight(" ".join(["disk"] * 10), "disk")  # same length: 10 terms

    assert ten_times > once
    assert ten_times < 10 * once
    assert ten_times < K1 + 1  # BM25's ceiling


def test_weights_are_length_normalised() -> None:
    short = _weight("disk full", "disk")
    long = _weight("disk " + " ".join(f"filler{i}" for i in range(200)), "disk")
    assert long < short
    # At the average length a single occurrence weighs exactly 1.
    assert _weight("disk full", "disk", avgdl=2) == pytest.approx(1.0)
    # dl/avgdl enters as the formula says.
    dl, avgdl = 2, 120.0
    assert short == pytest.approx((K1 + 1) / (1 + K1 * (1 - B + B * dl / avgdl)))


def test_document_vector_indices_are_sorted_distinct_term_ids() -> None:
    vector = document_vector("restart the pod, then restart the node")
    assert vector.indices == sorted({term_id("restart"), term_id("pod"), term_id("node")})
    assert len(vector.values) == 3


def test_query_vector_is_all_ones_over_distinct_terms() -> None:
    vector = query_vector("restart restart the checkout pod")
    assert vector.indices == sorted({term_id("restart"), term_id("checkout"), term_id("pod")})
    assert vector.values == [1.0, 1.0, 1.0]
    assert query_vector("the and of").indices == []


def test_term_ids_are_stable_crc32() -> None:
    # Stored indexes depend on these ids: they must not change between runs or versions.
    assert term_id("disk") == 208985346
    assert term_id("restart") == zlib.crc32(b"restart")
    assert all(0 <= i < 2**32 for i in term_ids("kube_pod_status_ready AlertmanagerFailedReload"))
    assert term_ids("Disk disks") == {term_id("disk")}
