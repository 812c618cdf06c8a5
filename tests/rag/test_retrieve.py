"""The retriever's view of one runbook: all of it for an answer, but never without bound."""

from __future__ import annotations

import pytest

from opsmith.rag import retrieve
from opsmith.rag.answer import answer_question
from opsmith.rag.retrieve import Retriever

# A long runbook: forty sections, each its own chunk once the small ones stop merging.
LONG = "# Zone sync\n\n" + "\n".join(
    f"## Step {i}: zone {i}\n\nCheck replication of zone {i} with the admin tool and its sync status.\n"
    + " ".join(["Note that zone sync can lag behind for a while after a restart."] * 12)
    + f"\n\n```bash\nradosgw-admin sync status --rgw-zone=zone{i}\n```\n"
    for i in range(40)
)
QUESTION = "How do I check the sync status of zone 7?"


@pytest.fixture(scope="module")
def extra_runbooks() -> dict[str, str]:
    return {"storage/zone-sync.md": LONG}


def test_a_runbook_is_read_whole(shared_retriever: Retriever) -> None:
    (best,) = shared_retriever.search(QUESTION, k=1)
    hits = shared_retriever.runbook_hits(QUESTION, best.chunk)

    assert best.chunk.source == "storage/zone-sync.md"
    assert best.chunk.chunk_count > 10
    assert sorted(h.chunk.chunk_index for h in hits) == list(range(best.chunk.chunk_count))
    assert {h.chunk.file_sha256 for h in hits} == {best.chunk.file_sha256}


def test_a_huge_runbook_is_read_only_in_its_most_relevant_part(
    shared_retriever: Retriever, monkeypatch: pytest.MonkeyPatch
) -> None:
    (best,) = shared_retriever.search(QUESTION, k=1)
    everything = shared_retriever.search(QUESTION, k=100, mode="dense")
    monkeypatch.setattr(retrieve, "MAX_RUNBOOK_CHUNKS", 5)

    hits = shared_retriever.runbook_hits(QUESTION, best.chunk)

    assert len(hits) == 5
    most_relevant = [h for h in everything if h.chunk.source == best.chunk.source][:5]
    assert {h.chunk.chunk_index for h in hits} == {h.chunk.chunk_index for h in most_relevant}
    assert all(h.relevance > 0 for h in hits)
    # An answer is still made from what was read, with exact lines and the zone asked about.
    answer = answer_question(QUESTION, retriever=shared_retriever)
    assert not answer.refused
    assert answer.citations[0].source == "storage/zone-sync.md"
    assert "radosgw-admin sync status --rgw-zone=zone7" in answer.answer


def test_parts_of_a_huge_runbook_read_for_different_questions_are_not_mixed_up(
    shared_retriever: Retriever, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rebuilt runbooks are kept between questions; a partial read is kept apart from another one."""
    monkeypatch.setattr(retrieve, "MAX_RUNBOOK_CHUNKS", 5)
    first = answer_question("How do I check the sync status of zone 7?", retriever=shared_retriever)
    second = answer_question("How do I check the sync status of zone 33?", retriever=shared_retriever)

    assert "--rgw-zone=zone7" in first.answer
    assert "--rgw-zone=zone33" in second.answer
    assert "--rgw-zone=zone33" not in first.answer
