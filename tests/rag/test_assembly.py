"""What an answer is made of: sections scored and chosen within a budget, excerpts with exact lines,
the commands of the quoted sections, shortened sample output, and the terms no runbook covers."""

from __future__ import annotations

import dataclasses
import json
import shlex
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from opsmith.config import load_settings
from opsmith.rag.answer import answer_context, extractive_answer
from opsmith.rag.assembly import (
    ANSWER_CAP,
    ANSWER_CHARS,
    CODE_LINES,
    ELISION,
    MAX_COMMANDS,
    OUTPUT_LINES,
    Command,
    Excerpt,
    Selection,
    asks_for_action,
    block_commands,
    choose_sections,
    commands,
    compact,
    context_excerpts,
    extract_excerpts,
    not_covered,
    score_sections,
)
from opsmith.rag.chunking import chunk_document
from opsmith.rag.documents import Document, SourceLine
from opsmith.rag.embedder import Embedder
from opsmith.rag.indexing import ingest
from opsmith.rag.indexing import stored_chunks as as_stored
from opsmith.rag.loaders import load_document
from opsmith.rag.retrieve import Retriever
from opsmith.rag.runbook import Block, Runbook
from opsmith.rag.sparse import term_id, tokenize
from opsmith.rag.store import Hit, QdrantStore, StoredChunk, TermStats

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "runbooks"


def _words(text: str) -> int:
    return len(text.split())


def stored_chunks(text: str, source: str, *, max_tokens: int = 64, overlap: int = 16) -> list[StoredChunk]:
    """``text`` (lines numbered from 1) through the real chunker, stored as ingest stores it."""
    lines = [SourceLine(number, line) for number, line in enumerate(text.split("\n"), start=1)]
    document = Document(source, Path(source), "md", "0" * 64, lines)
    pieces = chunk_document(document, count_tokens=_words, max_tokens=max_tokens, overlap=overlap)
    return as_stored(document, pieces)


def runbook_of(text: str, source: str = "runbook.md") -> Runbook:
    return Runbook.from_chunks(stored_chunks(text, source))


def code_block(text: str, first: int = 1) -> Block:
    return Block("code", [SourceLine(first + i, line) for i, line in enumerate(text.split("\n"))])


def chars(block: Block) -> int:
    return len(block.text)


def size(runbook: Runbook, *indices: int) -> int:
    """What :func:`choose_sections` counts for these sections whole (each block and its separator)."""
    return sum(len(block.text) + 2 for i in indices for block in runbook.sections[i].blocks)


def chosen_cost(runbook: Runbook, picked: Selection) -> int:
    return sum(len(runbook.sections[i].blocks[j].text) + 2 for i, blocks in picked.items() for j in blocks)


def assert_lines_exact(excerpt: Excerpt, file_lines: dict[int, set[str]]) -> None:
    """Every quoted line sits at its line in the file, and the excerpt's range is its first to last line."""
    assert excerpt.blocks, excerpt
    assert excerpt.text == "\n\n".join(block.text for block in excerpt.blocks)
    numbers = [line.number for block in excerpt.blocks for line in block.lines if line.number]
    assert (excerpt.start_line, excerpt.end_line) == (min(numbers), max(numbers))
    for block in excerpt.blocks:
        for line in block.lines:
            if line.number:
                assert line.text in file_lines[line.number], (excerpt.source, line)


def file_lines_of(text: str) -> dict[int, set[str]]:
    return {number: {line} for number, line in enumerate(text.split("\n"), start=1)}


# --- asks_for_action -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("How do I fix the disk full alert?", True),
        ("etcd is paging about slow fsync, what should I run?", True),
        ("Which command shows the consumer lag?", True),
        ("Restart the broker safely", True),
        ("What is the impact of PgbouncerPoolExhausted?", False),
        ("Why does the certificate alert fire?", False),
    ],
)
def test_asks_for_action(question: str, expected: bool) -> None:
    assert asks_for_action(question) is expected


# --- score_sections --------------------------------------------------------------------------

POOL = """\
# Database pool

## Restarts

Restart the pods. Restart them again if the restart did not help, then restart the node.

## Connection pooler

The pgbouncer settings live in the pooler config.

## Unrelated

Nothing here matches the question at all.
"""


def test_rare_question_terms_count_most_with_collection_statistics() -> None:
    runbook = runbook_of(POOL)
    question = "restart pgbouncer"
    restart, pgbouncer = (term_id(tokenize(word)[0]) for word in ("restart", "pgbouncer"))

    common_restart = score_sections(question, runbook, TermStats(chunks=100, df={restart: 90, pgbouncer: 1}))
    common_pgbouncer = score_sections(question, runbook, TermStats(chunks=100, df={restart: 1, pgbouncer: 90}))

    assert common_restart[2] > common_restart[1]  # "pgbouncer" is what this question is about
    assert common_pgbouncer[1] > common_pgbouncer[2]
    assert common_restart[3] == common_pgbouncer[3] == 0.0
    assert max(common_restart) == pytest.approx(1.0)  # scaled to the best section


def test_the_heading_path_counts_toward_a_sections_score() -> None:
    runbook = runbook_of("# Title\n\n## Pgbouncer\n\nIts settings.\n\n## Other\n\nNothing.\n")

    scores = score_sections("pgbouncer", runbook, None)

    assert scores[1] > scores[2] == 0.0


def test_dense_relevance_of_a_hit_raises_the_sections_it_overlaps() -> None:
    chunks = stored_chunks(POOL, "db/pool.md", max_tokens=20, overlap=0)
    runbook = Runbook.from_chunks(chunks)
    unrelated = next(c for c in chunks if "Nothing here" in c.text)
    elsewhere = dataclasses.replace(unrelated, source="other.md")
    question = "what happens to the connections?"

    alone = score_sections(question, runbook, None)
    hit = score_sections(question, runbook, None, [Hit(unrelated, 0.5, 0.8)])
    other = score_sections(question, runbook, None, [Hit(elsewhere, 0.5, 0.8)])

    assert alone[3] == 0.0
    assert hit[3] > 0.0
    assert hit[3] == max(hit)
    assert other == alone  # a chunk of another runbook says nothing about this one


def test_score_sections_of_an_empty_runbook() -> None:
    assert score_sections("anything", Runbook("x.md", None, []), None) == []


# --- choose_sections -------------------------------------------------------------------------

GATEWAY = """\
# Gateway

Intro paragraph about the object gateway.

## Sync lag

### Symptoms

Peers report that the zone is behind and reads return old objects.

### Investigation

Replication between zones runs in shards. Each shard keeps a marker of the last entry it copied,
and the data log on the source zone grows while the peer catches up. A long outage of one peer
leaves many shards behind, and the first pass over them reads the full bucket index, which is
slow on large buckets. This background is useful when the lag does not shrink after a restart.

### Solution

Restart the sync on the zone that is behind, then watch its shard markers move again:

```bash
radosgw-admin sync run
```

## Quota full

Buckets stop accepting writes.

### Solution

Raise the quota:

```bash
radosgw-admin quota set --max-size=1T
```
"""


def test_gateway_sections() -> None:
    # The shape the choose_sections tests below rely on.
    runbook = runbook_of(GATEWAY)
    assert [(s.path[-1], s.level) for s in runbook.sections] == [
        ("Gateway", 1),
        ("Sync lag", 2),
        ("Symptoms", 3),
        ("Investigation", 3),
        ("Solution", 3),
        ("Quota full", 2),
        ("Solution", 3),
    ]
    assert [b.kind for b in runbook.sections[1].blocks] == ["heading"]
    assert size(runbook, 3) > size(runbook, 4) > size(runbook, 6)


def test_a_runbook_that_fits_is_chosen_whole_whatever_the_scores() -> None:
    runbook = runbook_of(GATEWAY)
    whole = {i: list(range(len(s.blocks))) for i, s in enumerate(runbook.sections)}

    picked = choose_sections(runbook, [0.0] * 7, budget=len(runbook.text), cost=chars, act=False)

    assert picked == whole
    half = choose_sections(runbook, [0.0] * 7, budget=len(runbook.text) // 2, cost=chars, act=False)
    assert half != whole


def test_the_best_section_grows_to_the_largest_section_around_it_that_fits() -> None:
    runbook = runbook_of(GATEWAY)
    scores = [0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]  # Symptoms
    budget = size(runbook, 1, 2, 3, 4) + 5  # "Sync lag" fits, the whole runbook does not

    picked = choose_sections(runbook, scores, budget=budget, cost=chars, act=False)

    # All of "Sync lag": its investigation and solution come with the symptom.
    assert picked == {i: list(range(len(runbook.sections[i].blocks))) for i in (1, 2, 3, 4)}


def test_the_rest_of_the_topic_comes_before_better_sections_elsewhere() -> None:
    runbook = runbook_of(GATEWAY)
    # The other "Solution" scores higher than this problem's, but is about another problem.
    scores = [0.0, 0.0, 1.0, 0.5, 0.2, 0.0, 0.9]
    budget = size(runbook, 2, 4) + 10
    assert budget < size(runbook, 1, 2, 3, 4)  # "Sync lag" does not fit: it is the topic
    assert budget < size(runbook, 2, 6) + size(runbook, 4)  # only one of the two solutions fits
    assert size(runbook, 6) < size(runbook, 4)  # and by size or score alone it would be the other one

    picked = choose_sections(runbook, scores, budget=budget, cost=chars, act=False)

    assert sorted(picked) == [2, 4]
    assert chosen_cost(runbook, picked) <= budget


def test_sections_with_commands_come_first_when_the_question_asks_what_to_do() -> None:
    runbook = runbook_of(GATEWAY)
    # In the topic, Investigation (no command) scores higher than Solution (a command).
    scores = [0.0, 0.0, 1.0, 0.5, 0.2, 0.0, 0.0]
    budget = size(runbook, 2, 3) + 10  # room for Symptoms and one of the two
    assert budget < size(runbook, 2, 3, 4)

    describe = choose_sections(runbook, scores, budget=budget, cost=chars, act=False)
    act = choose_sections(runbook, scores, budget=budget, cost=chars, act=True)

    assert sorted(describe) == [2, 3]
    assert sorted(act) == [2, 4]


def test_a_heading_with_nothing_chosen_under_it_is_dropped() -> None:
    runbook = runbook_of(GATEWAY)
    budget = size(runbook, 1, 6) + 5
    assert budget < size(runbook, 1, 2, 3, 4)  # "Sync lag" does not fit whole

    # "Sync lag" (a heading alone) scores best, but none of its subsections fits or matches.
    scores = [0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.5]
    alone = choose_sections(runbook, scores, budget=budget, cost=chars, act=False)

    assert sorted(alone) == [6]


def test_a_heading_with_a_subsection_chosen_under_it_is_kept() -> None:
    runbook = runbook_of(GATEWAY)
    scores = [0.0, 1.0, 0.8, 0.0, 0.0, 0.0, 0.0]
    budget = size(runbook, 1, 2) + 5

    picked = choose_sections(runbook, scores, budget=budget, cost=chars, act=False)

    assert sorted(picked) == [1, 2]


RECOVERY = """\
# Broker

Intro.

## Recovery

This broker was added in the great migration of the old racks, long before the current team
took over, and its history explains some odd settings in the configuration management repo.

Leader election moves partitions to the remaining brokers; election takes a few seconds per
partition and the election log shows each move as it happens on the controller node.

Restart the broker:

```bash
kubectl -n kafka rollout restart statefulset/kafka
```

Closing remarks that nobody reads, about the weather and the office coffee machine.
"""


def recovery_weigh(block: Block) -> float:
    # Only the election paragraph matches the question's words; the command's introduction does not.
    return 2.0 if "election" in block.text else 0.0


def test_a_section_too_long_gives_its_best_blocks_a_command_with_its_introduction() -> None:
    runbook = runbook_of(RECOVERY)
    recovery = runbook.sections[1]
    assert [b.kind for b in recovery.blocks] == ["heading", "text", "text", "text", "code", "text"]
    heading = len(recovery.blocks[0].text) + 2
    election = len(recovery.blocks[2].text) + 2
    command = len(recovery.blocks[3].text) + len(recovery.blocks[4].text) + 2
    budget = heading + max(election, command) + 5  # the heading and one of the two
    assert budget < heading + election + command

    describe = choose_sections(runbook, [0.0, 1.0], budget=budget, cost=chars, act=False, weigh=recovery_weigh)
    act = choose_sections(runbook, [0.0, 1.0], budget=budget, cost=chars, act=True, weigh=recovery_weigh)

    assert describe == {1: [0, 2]}  # the paragraph that matches best
    assert act == {1: [0, 3, 4]}  # the command, with the paragraph that introduces it, whole


def test_the_chosen_blocks_never_cost_more_than_the_budget() -> None:
    runbook = runbook_of(GATEWAY)
    question = "the gateway sync is behind, how do I restart it?"
    scores = score_sections(question, runbook, None)
    totals = []
    for budget in range(0, len(runbook.text) + 20, 7):
        picked = choose_sections(runbook, scores, budget=budget, cost=chars, act=True, weigh=lambda b: 1.0)
        totals.append(chosen_cost(runbook, picked))
        assert totals[-1] <= budget or picked == {i: list(range(len(s.blocks))) for i, s in enumerate(runbook.sections)}
    assert totals[0] == 0
    assert totals[-1] > totals[len(totals) // 2] > 0


# --- extract_excerpts ------------------------------------------------------------------------

KAFKA = """\
# Kafka under-replicated partitions

Alert fires when a partition has fewer in-sync replicas than configured.

## Symptoms

Producers see higher latency and consumers lag behind.

## Investigation

Describe the topic to see which brokers are missing:

```console
$ kafka-topics.sh --describe --under-replicated-partitions --bootstrap-server localhost:9092
Topic: orders Partition: 3 Leader: 1 Replicas: 1,2,3 Isr: 1
Topic: orders Partition: 4 Leader: 2 Replicas: 2,3,1 Isr: 2
Topic: orders Partition: 5 Leader: 2 Replicas: 2,3,1 Isr: 2
Topic: orders Partition: 6 Leader: 3 Replicas: 3,1,2 Isr: 3
$ kafka-broker-api-versions.sh --bootstrap-server localhost:9092
broker 1 ok
```

## Resolution

Restart the broker that dropped out of the ISR:

```bash
kubectl -n kafka rollout restart statefulset/kafka
```

## Background

Kafka keeps replicas of each partition on several brokers. The in-sync replica set is what
the leader waits for before acknowledging writes. This section is long descriptive prose.
"""

KAFKA_QUESTION = "kafka partitions are under-replicated, how do I fix it?"


def test_the_offline_quote_shortens_sample_output_but_keeps_commands_whole() -> None:
    runbook = runbook_of(KAFKA, "kafka.md")

    quoted = extract_excerpts(KAFKA_QUESTION, runbook, None, [])

    text = "\n".join(e.text for e in quoted)
    assert "Partition: 4" in text
    assert "Partition: 5" not in text
    assert ELISION in text.split("\n")
    assert [(c.text, c.line) for c in commands(quoted)] == [
        ("kafka-topics.sh --describe --under-replicated-partitions --bootstrap-server localhost:9092", 14),
        ("kafka-broker-api-versions.sh --bootstrap-server localhost:9092", 19),
        ("kubectl -n kafka rollout restart statefulset/kafka", 28),
    ]
    for command in commands(quoted):
        assert command.text in text
        assert command.source == "kafka.md"
    lines = file_lines_of(KAFKA)
    for excerpt in quoted:
        assert_lines_exact(excerpt, lines)


@pytest.mark.parametrize("budget", [500, 800, 1200, ANSWER_CHARS])
def test_the_offline_answer_with_its_commands_fits_the_budget(budget: int) -> None:
    runbook = runbook_of(KAFKA + "\n" + GATEWAY.replace("# Gateway", "## Gateway"), "kafka.md")

    quoted = extract_excerpts(KAFKA_QUESTION, runbook, None, [], budget=budget)
    answer = extractive_answer(quoted, found_commands=commands(quoted))

    assert quoted
    assert len(answer) <= budget


def test_a_bigger_answer_budget_quotes_more() -> None:
    runbook = runbook_of(KAFKA + "\n" + GATEWAY.replace("# Gateway", "## Gateway"), "kafka.md")

    small = extract_excerpts(KAFKA_QUESTION, runbook, None, [], budget=500)
    large = extract_excerpts(KAFKA_QUESTION, runbook, None, [], budget=ANSWER_CHARS)

    assert sum(len(e.text) for e in large) > sum(len(e.text) for e in small) > 0


RESET_COMMANDS = "\n".join(
    f"kubectl -n zone{i} annotate bucket/b{i} sync.example.com/reset=now --overwrite" for i in range(10)
)
RESET = f"""\
# Reset

Why.

## Reset every zone

Reset the sync of each zone:

```bash
{RESET_COMMANDS}
```
"""
NOTES = "\n## Notes\n\n" + "\n\n".join(
    f"Background note {i} about zones and their history, of no use here." for i in range(12)
)


def test_the_commands_block_counts_toward_the_answer_budget() -> None:
    # A section whose quote fits the budget, but not with the Commands block that lists its
    # commands again; the runbook as a whole does not fit.
    runbook = runbook_of(RESET + NOTES, "reset.md")
    budget = 1600
    assert size(runbook, 1) < budget - 400 < len(runbook.text)

    quoted = extract_excerpts("how do I reset the zone sync?", runbook, None, [], budget=budget)
    answer = extractive_answer(quoted, found_commands=commands(quoted))

    assert len(answer) <= budget


def test_a_runbook_that_fits_is_quoted_whole_with_its_commands_on_top_within_the_cap() -> None:
    runbook = runbook_of(RESET, "reset.md")
    budget = 1600
    assert len(runbook.text) < budget - 400

    quoted = extract_excerpts("how do I reset the zone sync?", runbook, None, [], budget=budget)
    found = commands(quoted)
    answer = extractive_answer(quoted, found_commands=found)

    # Read top to bottom beats any selection: the whole text, then every command, under the hard cap.
    assert len(quoted) == 1
    assert quoted[0].text == runbook.text
    assert found
    assert all(f"line {c.line}:" in answer for c in found)
    assert len(answer) <= ANSWER_CAP


def test_the_commands_block_gives_way_to_the_hard_cap() -> None:
    excerpt = Excerpt("a.md", "A", 1, 2, "x" * 3600)
    many = [Command(f"kubectl get pods -n ns{i}", "a.md", i + 3) for i in range(12)]

    answer = extractive_answer([excerpt], found_commands=many)

    assert len(answer) <= ANSWER_CAP
    assert "x" * 3600 in answer  # the quote stays whole; the listing is what gives way
    assert "- line 3:" in answer


def test_the_offline_answer_fits_the_budget_with_long_headings_and_many_excerpts() -> None:
    title = "Storage cluster object store gateway replication falling behind its peers"
    parts = [f"# {title}\n\nIntro.\n"]
    for i in range(30):
        if i % 2:
            parts.append(f"## Unrelated pool quota topic number {i} with a long heading\n\nPool quota words {i}.\n")
        else:
            parts.append(
                f"## Replication step number {i} for the gateway peers\n\nCheck gateway replication lag on zone {i}."
                f"\n\n```bash\nradosgw-admin sync status --rgw-zone=zone{i}\n```\n"
            )
    runbook = runbook_of("\n".join(parts), "storage/very/long/path/to/runbooks/gateway-replication.md")

    quoted = extract_excerpts("gateway replication is behind, how do I check the sync status?", runbook, None, [])
    answer = extractive_answer(quoted, found_commands=commands(quoted))

    assert len(quoted) > 3
    assert len(answer) <= ANSWER_CHARS


# --- context_excerpts ------------------------------------------------------------------------

BROKER_DISK = """\
# Broker disk full

A broker's log directory is full.

## Mitigation

Lower retention:

```bash
kafka-configs.sh --alter --entity-type topics --entity-name orders --add-config retention.ms=3600000
```

Then watch the disk usage drop over the next minutes on every broker in the cluster.
"""


#: The chunks of KAFKA (kafka.md) and of BROKER_DISK (disk.md).
TwoRunbooks = tuple[list[StoredChunk], list[StoredChunk]]


@pytest.fixture
def two_runbooks() -> TwoRunbooks:
    return stored_chunks(KAFKA, "kafka.md"), stored_chunks(BROKER_DISK, "disk.md")


def _load(chunks: dict[str, list[StoredChunk]]) -> Callable[[Hit], tuple[Runbook, list[Hit]]]:
    """What ``answer_context`` passes as ``load``: a hit's whole runbook and its chunks as hits."""

    def load(hit: Hit) -> tuple[Runbook, list[Hit]]:
        own = chunks[hit.chunk.source]
        return Runbook.from_chunks(own), [Hit(c, 0.1, 0.3) for c in own]

    return load


def test_the_context_is_the_whole_runbook_when_it_fits(
    two_runbooks: TwoRunbooks,
) -> None:
    kafka, disk = two_runbooks
    runbook = Runbook.from_chunks(kafka)
    hits = [Hit(kafka[0], 1.0, 0.8), Hit(disk[0], 0.5, 0.6)]

    found = context_excerpts(KAFKA_QUESTION, runbook, None, hits, budget=1000, count_tokens=_words)

    assert found[0].text == runbook.text  # sample output and all, in one excerpt
    assert (found[0].start_line, found[0].end_line) == (1, KAFKA.count("\n"))
    assert [e.source for e in found] == ["kafka.md", "disk.md"]
    # Without a loader the other runbook's hit is given as it was retrieved.
    assert (found[1].text, found[1].start_line, found[1].end_line) == (
        disk[0].text.strip("\n"),
        disk[0].start_line,
        disk[0].end_line,
    )


def test_the_context_leaves_room_for_the_other_runbooks(
    two_runbooks: TwoRunbooks,
) -> None:
    kafka, disk = two_runbooks
    runbook = Runbook.from_chunks(kafka)
    hits = [Hit(kafka[0], 1.0, 0.8), Hit(disk[0], 0.5, 0.6)]
    budget = 120
    assert _words(runbook.text) > budget  # the best runbook alone would fill it

    found = context_excerpts(
        KAFKA_QUESTION, runbook, None, hits, budget=budget, count_tokens=_words, load=_load({"disk.md": disk})
    )

    sources = [e.source for e in found]
    assert sources[0] == "kafka.md"
    assert sources[-1] == "disk.md"
    assert sources == sorted(sources, key=lambda s: s != "kafka.md")  # the best runbook's parts first
    # Loaded whole, the other runbook fits the room left and is given whole.
    assert found[-1].text == Runbook.from_chunks(disk).text
    lines = {"kafka.md": file_lines_of(KAFKA), "disk.md": file_lines_of(BROKER_DISK)}
    for excerpt in found:
        assert_lines_exact(excerpt, lines[excerpt.source])


@pytest.mark.parametrize("loaded", [False, True])
def test_the_context_never_exceeds_its_token_budget(two_runbooks: TwoRunbooks, loaded: bool) -> None:
    kafka, disk = two_runbooks
    runbook = Runbook.from_chunks(kafka)
    hits = [Hit(kafka[0], 1.0, 0.8), Hit(disk[0], 0.5, 0.6), Hit(kafka[-1], 0.4, 0.5)]
    load = _load({"disk.md": disk}) if loaded else None
    spent = []
    for budget in range(0, 260, 3):
        found = context_excerpts(KAFKA_QUESTION, runbook, None, hits, budget=budget, count_tokens=_words, load=load)
        spent.append(sum(_words(e.text) for e in found))
        assert spent[-1] <= budget
    assert spent[-1] > spent[len(spent) // 3] > 0


# --- context_excerpts on the example runbooks ------------------------------------------------


@pytest.fixture(scope="module")
def examples_retriever(embedder: Embedder, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Retriever]:
    """examples/runbooks ingested once for this module."""
    root = tmp_path_factory.mktemp("examples-index")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPSMITH_HOME", str(root / "opsmith-home"))
        mp.delenv("OPSMITH_CONFIG", raising=False)
        settings = load_settings()
    with QdrantStore(settings) as opened:
        ingest([EXAMPLES], settings=settings, embedder=embedder, store=opened)
        yield Retriever(embedder=embedder, store=opened, collection=settings.collection)


def _questions() -> list[str]:
    with (REPO / "examples" / "questions.jsonl").open(encoding="utf-8") as handle:
        return [json.loads(line)["question"] for line in handle if line.strip()]


@pytest.mark.slow  # ingests every example runbook (about 20 s on two cores)
def test_the_context_for_every_example_question_fits_its_budget_with_exact_lines(
    examples_retriever: Retriever,
) -> None:
    count = examples_retriever.embedder.count_tokens
    documents: dict[str, dict[int, set[str]]] = {}

    def file_lines(source: str) -> dict[int, set[str]]:
        # Loaders turn rst, html and pdf into markdown lines that keep the file's line numbers.
        if source not in documents:
            document = load_document(EXAMPLES / source, source, max_bytes=10_000_000)
            found: dict[int, set[str]] = {}
            for line in document.lines:
                found.setdefault(line.number, set()).add(line.text)
            if source.endswith(".md"):
                raw = file_lines_of((EXAMPLES / source).read_text(encoding="utf-8"))
                assert found == {n: texts for n, texts in raw.items() if n in found}
            documents[source] = found
        return documents[source]

    questions = _questions()
    assert len(questions) >= 20
    for question in questions:
        hits = examples_retriever.search(question, k=5)
        spent: dict[int, int] = {}
        for budget in (300, 800, 2500):
            found = answer_context(question, hits, examples_retriever, context_tokens=budget)
            spent[budget] = sum(count(e.text) for e in found)
            assert 0 < spent[budget] <= budget, (question, budget)
            sources = [e.source for e in found]
            best = hits[0].chunk.source
            assert sources[0] == best
            assert sources == sorted(sources, key=lambda s: s != best), (question, budget, sources)
            for excerpt in found:
                if excerpt.blocks:
                    assert_lines_exact(excerpt, file_lines(excerpt.source))
                else:  # another runbook's hit as retrieved
                    assert excerpt.text.split("\n")[0] in file_lines(excerpt.source)[excerpt.start_line]
        assert spent[2500] > spent[800] > spent[300], (question, spent)


@pytest.fixture(scope="module")
def example_answers(examples_retriever: Retriever) -> dict[str, str]:
    """The offline answer (quotes and Commands block) to every example question."""
    answers: dict[str, str] = {}
    for question in _questions():
        hits = examples_retriever.search(question, k=5)
        whole = examples_retriever.runbook_hits(question, hits[0].chunk)
        runbook = Runbook.from_chunks([hit.chunk for hit in whole])
        quoted = extract_excerpts(question, runbook, examples_retriever.term_stats, [*hits, *whole])
        assert quoted, question
        answers[question] = extractive_answer(quoted, found_commands=commands(quoted))
    return answers


@pytest.mark.slow  # shares the index above
def test_the_offline_answers_to_the_example_questions_stay_readable(example_answers: dict[str, str]) -> None:
    lengths = sorted(len(answer) for answer in example_answers.values())

    assert lengths[-1] <= 4000  # the hard cap
    assert lengths[len(lengths) // 2] <= 2500


@pytest.mark.slow  # shares the index above
def test_the_offline_answer_to_every_example_question_fits_its_budget(example_answers: dict[str, str]) -> None:
    # Over ANSWER_CHARS only by the Commands block of a runbook quoted whole (see the test above).
    over = {
        question: len(answer)
        for question, answer in example_answers.items()
        if len(answer.split("\n\nCommands (", 1)[0]) > ANSWER_CHARS
    }

    assert over == {}


# --- commands --------------------------------------------------------------------------------


def test_prompted_console_lines_are_the_commands_and_the_rest_is_output() -> None:
    block = code_block(
        "```console\n"
        "$ kubectl -n kafka get pods\n"
        "NAME      READY   STATUS\n"
        "kafka-0   1/1     Running\n"
        "user@host:~$ kafka-topics.sh --list\n"
        "orders\n"
        "```",
        first=40,
    )

    assert block_commands(block) == [("kubectl -n kafka get pods", 41), ("kafka-topics.sh --list", 44)]


def test_a_continued_command_is_one_command_from_its_first_line() -> None:
    block = code_block(
        "```bash\n"
        "kafka-topics.sh --describe --under-replicated-partitions \\\n"
        "    --bootstrap-server localhost:9092\n"
        "kubectl -n kafka get pods\n"
        "```",
        first=10,
    )

    found = block_commands(block)

    assert [line for _, line in found] == [11, 13]
    assert "--bootstrap-server localhost:9092" in found[0][0]
    assert found[0][0].startswith("kafka-topics.sh")
    assert found[1] == ("kubectl -n kafka get pods", 13)


def test_a_continued_command_runs_as_written_when_pasted() -> None:
    block = code_block(
        "```console\n"
        "$ kafka-topics.sh --describe \\\n"
        "    --under-replicated-partitions \\\n"
        "    --bootstrap-server localhost:9092\n"
        "```"
    )

    [(command, _)] = block_commands(block)

    # Kept on its lines as the runbook wrote it; a shell joins a backslash-newline into one line.
    assert command.count("\\\n") == 2
    assert shlex.split(command.replace("\\\n", " ")) == [
        "kafka-topics.sh",
        "--describe",
        "--under-replicated-partitions",
        "--bootstrap-server",
        "localhost:9092",
    ]


@pytest.mark.parametrize("language", ["promql", "sql"])
def test_a_query_block_is_one_command(language: str) -> None:
    query = "sum by (pod) (\n  rate(http_requests_total{code=~'5..'}[5m])\n)"
    block = code_block(f"```{language}\n\n{query}\n```", first=7)

    assert block_commands(block) == [(query, 9)]


@pytest.mark.parametrize("language", ["yaml", "json"])
def test_configuration_blocks_have_no_commands(language: str) -> None:
    block = code_block(f"```{language}\nkubectl: not a command\nreplicas: 3\n```")

    assert block_commands(block) == []


def test_an_unlabelled_block_gives_only_lines_that_start_like_a_command() -> None:
    block = code_block(
        "```\n"
        "kubectl -n shop get pods\n"
        "NAME      READY   STATUS\n"
        "Error: connection refused\n"
        "2024-03-01 12:00:00 ERROR broker down\n"
        "Some prose that wandered into a code block.\n"
        "systemctl restart kubelet\n"
        "```"
    )

    assert block_commands(block) == [("kubectl -n shop get pods", 2), ("systemctl restart kubelet", 7)]


def test_text_and_heading_blocks_have_no_commands() -> None:
    assert block_commands(Block("text", [SourceLine(1, "Run `kubectl get pods`.")])) == []
    assert block_commands(Block("heading", [SourceLine(1, "## kubectl get pods")])) == []


def test_comment_lines_in_a_shell_block_are_not_commands() -> None:
    block = code_block(
        "```bash\n"
        "# Restart the deployments one by one\n"
        "kubectl -n shop rollout restart deploy/api\n"
        "kubectl -n shop rollout restart deploy/web\n"
        "```"
    )

    assert block_commands(block) == [
        ("kubectl -n shop rollout restart deploy/api", 3),
        ("kubectl -n shop rollout restart deploy/web", 4),
    ]


def test_comment_lines_in_a_console_transcript_are_not_commands() -> None:
    block = code_block(
        "```console\n"
        "# Get the prepare pods in the cluster\n"
        "$ kubectl -n rook-ceph get pod -l app=rook-ceph-osd-prepare\n"
        "NAME   READY\n"
        "```"
    )

    assert block_commands(block) == [("kubectl -n rook-ceph get pod -l app=rook-ceph-osd-prepare", 3)]


def test_commands_are_listed_once_in_order_up_to_the_limit() -> None:
    lines = "\n".join(f"$ kubectl -n ns{i % 15} get pods" for i in range(30))  # 15 distinct, each twice
    text = f"# Pods\n\n## List\n\n```console\n{lines}\n```\n"
    runbook = runbook_of(text, "pods.md")
    excerpts = extract_excerpts("how do I list pods?", runbook, None, [], budget=10_000)

    found = commands(excerpts)

    assert [c.text for c in found] == [f"kubectl -n ns{i} get pods" for i in range(MAX_COMMANDS)]
    assert [c.line for c in found] == list(range(6, 6 + MAX_COMMANDS))
    assert {c.source for c in found} == {"pods.md"}
    assert len(commands(excerpts, limit=100)) == 15


# --- compact ---------------------------------------------------------------------------------


def test_compact_keeps_every_command_and_a_little_of_each_output() -> None:
    output = [f"line {i} of output" for i in range(6)]
    block = code_block(
        "\n".join(["```console", "$ first-command", *output, "$ second-command", "only line", "```"]), first=20
    )

    short = compact(block)

    body = [line.text for line in short.lines[1:-1]]
    assert body == ["$ first-command", *output[:OUTPUT_LINES], ELISION, "$ second-command", "only line"]
    assert short.lines[0] == block.lines[0]
    assert short.lines[-1] == block.lines[-1]
    # Kept lines keep their numbers; the elision has none.
    assert [line.number for line in short.lines if line.text == "$ second-command"] == [28]
    assert [line.number for line in short.lines if line.text == ELISION] == [0]
    assert [c for c, _ in block_commands(short)] == [c for c, _ in block_commands(block)]


def test_compact_cuts_a_long_unprompted_block_after_its_first_lines() -> None:
    body = [f"key{i}: value{i}" for i in range(CODE_LINES + 10)]
    block = code_block("\n".join(["```yaml", *body, "```"]))

    short = compact(block)

    assert [line.text for line in short.lines] == ["```yaml", *body[:CODE_LINES], ELISION, "```"]


def test_compact_leaves_short_blocks_and_prose_alone() -> None:
    block = code_block("```bash\n" + "\n".join(f"echo {i}" for i in range(CODE_LINES)) + "\n```")
    prose = Block("text", [SourceLine(i, f"line {i}") for i in range(1, 40)])

    assert compact(block) is block
    assert compact(prose) is prose


def test_compact_keeps_every_command_of_a_commented_shell_block() -> None:
    commands_ = [f"kubectl -n shop rollout restart deploy/app{i}" for i in range(4)]
    block = code_block("\n".join(["```bash", "# Restart the deployments one by one", *commands_, "```"]))

    short = compact(block)

    assert all(command in short.text for command in commands_)


# --- not_covered -----------------------------------------------------------------------------

RUNBOOK_TEXT = "The ceph pool is full. Run `ceph osd df` to see usage, then set the pool quota."
WORDS = {"install", "froze", "fix", "pool", "ceph", "crash", "archive"} | {
    "read",
    "only",
    "fast",
    "path",
    "mean",
    "show",
}


def is_word(word: str) -> bool:
    return word in WORDS


def nothing(term: str) -> bool:
    return False


@pytest.mark.parametrize(
    ("question", "missing"),
    [
        ("How do I set allowVolumeExpansion on the pool?", ["allowVolumeExpansion"]),  # camelCase
        ("What does RECENT_CRASH mean?", ["RECENT_CRASH"]),
        ("how to set --storage.tsdb.retention.time", ["--storage.tsdb.retention.time"]),
        ("what does noout do to the pool?", ["noout"]),  # not a word of the language
        ("how do I run `ceph crash archive`?", ["ceph crash archive"]),  # backticks: literal
        ('what is the "fast path" of the pool?', ["fast path"]),  # quotes: literal, even of words
        ("ceph froze, how to fix?", []),  # ordinary words are left alone
        ("the pool is read-only, fix it", []),  # a hyphenated pair of ordinary words
        ("I reinstalled ceph and it froze", []),  # "reinstalled" is "install" inflected
        ("How do I fix ceph osd df?", []),  # in the runbook
        ("what does `ceph osd df` show?", []),  # literal, and in the runbook
        ("How do I set allowvolumeexpansion and noout?", ["allowvolumeexpansion", "noout"]),
    ],
)
def test_not_covered_names_the_specific_terms_no_runbook_mentions(question: str, missing: list[str]) -> None:
    assert not_covered(question, RUNBOOK_TEXT, nothing, is_word) == missing


def test_a_term_another_runbook_mentions_is_covered() -> None:
    corpus = {"allowvolumeexpansion"}

    assert not_covered("set allowVolumeExpansion and noout", RUNBOOK_TEXT, corpus.__contains__, is_word) == ["noout"]


def test_a_literal_term_must_be_in_the_best_runbook() -> None:
    # Another runbook naming `ceph crash archive` does not make the closest one cover it.
    corpus = {"ceph crash archive", "--yes-i-really-mean-it"}

    missing = not_covered(
        "run `ceph crash archive` --yes-i-really-mean-it?", RUNBOOK_TEXT, corpus.__contains__, is_word
    )

    assert missing == ["ceph crash archive", "--yes-i-really-mean-it"]


def test_an_inflected_term_is_covered_by_its_stem_in_the_runbook() -> None:
    # "noouts" is "noout" with a plural ending, which the runbook names.
    assert not_covered("why are there noouts?", "Set noout before the reboot.", nothing, is_word) == []


def test_without_a_vocabulary_only_identifiers_and_literals_count() -> None:
    # The default is_word takes every word for an ordinary one.
    assert not_covered("what does noout do with `scrub` and osd_max_backfills?", RUNBOOK_TEXT, nothing) == [
        "scrub",
        "osd_max_backfills",
    ]
