"""A runbook rebuilt from its stored chunks: document text, sections with levels, exact source lines,
the overlap of a long section's pieces dropped, and the fallback for indexes without line numbers."""

from __future__ import annotations

import dataclasses
import random
import re
from pathlib import Path

from opsmith.rag.chunking import chunk_document
from opsmith.rag.documents import Document, SourceLine
from opsmith.rag.indexing import stored_chunks as as_stored
from opsmith.rag.runbook import Runbook
from opsmith.rag.store import StoredChunk


def _words(text: str) -> int:
    return len(text.split())


def stored_chunks(
    text: str, source: str = "db/disk-full.md", *, max_tokens: int = 40, overlap: int = 12, title: str | None = None
) -> list[StoredChunk]:
    """``text`` (lines numbered from 1) through the real chunker, stored as ingest stores it."""
    lines = [SourceLine(number, line) for number, line in enumerate(text.split("\n"), start=1)]
    document = Document(source, Path(source), "md", "0" * 64, lines, title=title)
    pieces = chunk_document(document, count_tokens=_words, max_tokens=max_tokens, overlap=overlap)
    return as_stored(document, pieces)


def normalised(text: str) -> str:
    """``text`` as a runbook gives it back: runs of blank lines outside code fences become one blank
    line, and no blank lines at either end."""
    out: list[str] = []
    fenced = False
    for line in text.split("\n"):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        if not fenced and not line.strip() and (not out or not out[-1].strip()):
            continue
        out.append(line)
    return "\n".join(out).strip("\n")


def block_lines(runbook: Runbook) -> list[SourceLine]:
    return [line for section in runbook.sections for block in section.blocks for line in block.lines]


DISK_FULL = """\
Owner: the database team.

# Disk full

Alert fires when the data volume passes ninety percent.


## Diagnosis

Find what fills the volume:

```bash
df -h /var/lib/postgresql

du -sh /var/lib/postgresql/16/main/pg_wal
```

The log grows when archiving fails.

Check the archiver status and its last error.

Look for failed segments and the time of the last success.

If archiving fails for hours the volume keeps filling.

Then the database stops accepting writes and the service goes down for everyone.

### Logs

Read the logs with `journalctl -u postgresql`.


## Mitigation

Remove archived segments with `pg_archivecleanup`.
"""


def test_a_runbook_is_rebuilt_from_its_chunks_with_the_overlap_dropped() -> None:
    chunks = stored_chunks(DISK_FULL)
    chunk_lines = sum(len([n for n in c.line_numbers or [] if n]) for c in chunks)
    document_lines = len([line for line in DISK_FULL.split("\n") if line.strip()])
    # The long Diagnosis section is cut into pieces that repeat the end of the piece before.
    assert len(chunks) >= 4
    assert chunk_lines > document_lines

    runbook = Runbook.from_chunks(chunks)

    assert runbook.text == normalised(DISK_FULL)
    assert runbook.source == "db/disk-full.md"


def test_the_chunks_may_come_in_any_order() -> None:
    chunks = stored_chunks(DISK_FULL)
    shuffled = list(chunks)
    random.Random(7).shuffle(shuffled)
    assert shuffled != chunks

    assert Runbook.from_chunks(shuffled) == Runbook.from_chunks(chunks)


def test_every_line_keeps_its_line_in_the_file() -> None:
    original = DISK_FULL.split("\n")
    runbook = Runbook.from_chunks(stored_chunks(DISK_FULL))

    numbered = [line for line in block_lines(runbook) if line.number]
    assert len(numbered) == len([line for line in original if line.strip()])
    for line in numbered:
        assert original[line.number - 1] == line.text
    for section in runbook.sections:
        for block in section.blocks:
            assert original[block.start_line - 1] == block.lines[0].text
            assert original[block.end_line - 1] == block.lines[-1].text
    # The blank line inside the code block is kept, without a line number of its own.
    code = next(b for s in runbook.sections for b in s.blocks if b.kind == "code")
    assert [line.number for line in code.lines] == [12, 13, 0, 15, 16]


def test_sections_have_heading_paths_levels_and_line_ranges() -> None:
    runbook = Runbook.from_chunks(stored_chunks(DISK_FULL))

    assert [(s.path, s.level, s.start_line, s.end_line) for s in runbook.sections] == [
        ([], 0, 1, 1),  # text before the first heading
        (["Disk full"], 1, 3, 5),
        (["Disk full", "Diagnosis"], 2, 8, 26),
        (["Disk full", "Diagnosis", "Logs"], 3, 28, 30),
        (["Disk full", "Mitigation"], 2, 33, 35),
    ]
    assert [s.index for s in runbook.sections] == list(range(5))
    diagnosis = runbook.sections[2]
    assert diagnosis.heading == "Disk full > Diagnosis"
    assert [b.kind for b in diagnosis.blocks] == ["heading", "text", "code", "text", "text", "text", "text", "text"]
    assert diagnosis.text.startswith("## Diagnosis\n\nFind what fills the volume:\n\n```bash")


def test_span_holds_a_section_and_its_subsections() -> None:
    runbook = Runbook.from_chunks(stored_chunks(DISK_FULL))

    assert list(runbook.span(0)) == [0]  # the preamble has no subsections
    assert list(runbook.span(1)) == [1, 2, 3, 4]  # the title holds everything after it
    assert list(runbook.span(2)) == [2, 3]  # Diagnosis and its Logs, not Mitigation
    assert list(runbook.span(3)) == [3]
    assert list(runbook.span(4)) == [4]


def test_parents_are_the_enclosing_sections_nearest_first() -> None:
    runbook = Runbook.from_chunks(stored_chunks(DISK_FULL))

    assert runbook.parents(3) == [2, 1]  # Logs < Diagnosis < Disk full
    assert runbook.parents(4) == [1]  # Mitigation's sibling Diagnosis is not a parent
    assert runbook.parents(1) == []
    assert runbook.parents(0) == []


def test_heading_levels_follow_the_markers_not_the_nesting() -> None:
    # A document that skips a level: "###" straight under "#".
    text = "# Title\n\nIntro.\n\n### Deep\n\nDeep text.\n\n## Shallow\n\nShallow text.\n"
    runbook = Runbook.from_chunks(stored_chunks(text, max_tokens=256))

    assert [s.level for s in runbook.sections] == [1, 3, 2]
    assert runbook.parents(1) == [0]
    assert list(runbook.span(0)) == [0, 1, 2]
    assert list(runbook.span(1)) == [1]


def test_the_overlap_of_a_long_line_cut_into_pieces_is_dropped() -> None:
    # One 300-word line: the chunker cuts it into windows, each starting with the last words of
    # the one before (same line number, a suffix of its text).
    words = " ".join(f"word{i}" + ("." if i % 13 == 12 else "") for i in range(300))
    text = f"# Title\n\n## Long\n\n{words}\n\nShort after.\n"
    for max_tokens, overlap in [(64, 16), (40, 12), (30, 0)]:
        chunks = stored_chunks(text, max_tokens=max_tokens, overlap=overlap)
        assert len(chunks) > 5
        runbook = Runbook.from_chunks(chunks)

        assert runbook.text.split() == text.split(), (max_tokens, overlap)
        for line in block_lines(runbook):
            if line.number:
                assert line.text in text.split("\n")[line.number - 1]


def test_title_and_source_come_from_the_chunks() -> None:
    runbook = Runbook.from_chunks(stored_chunks(DISK_FULL, "ops/disk.md", title="Disk full runbook"))

    assert (runbook.source, runbook.title) == ("ops/disk.md", "Disk full runbook")
    assert Runbook.from_chunks([]) == Runbook("", None, [])


def without_line_numbers(chunks: list[StoredChunk]) -> list[StoredChunk]:
    """The chunks as an index made before line numbers were kept stores them."""
    return [dataclasses.replace(chunk, line_numbers=None) for chunk in chunks]


def test_old_index_without_line_numbers_counts_lines_from_each_chunks_start() -> None:
    # One blank line between units everywhere: counting from each chunk's first line is exact.
    single = re.sub(r"\n{3,}", "\n\n", DISK_FULL)
    chunks = stored_chunks(single)

    rebuilt = Runbook.from_chunks(without_line_numbers(chunks))

    assert rebuilt == Runbook.from_chunks(chunks)
    assert rebuilt.text == normalised(single)


def test_line_numbers_that_do_not_match_the_text_are_ignored() -> None:
    chunks = stored_chunks(DISK_FULL)
    broken = [dataclasses.replace(c, line_numbers=(c.line_numbers or [])[:-1]) for c in chunks]

    assert Runbook.from_chunks(broken) == Runbook.from_chunks(without_line_numbers(chunks))


def test_old_index_line_numbers_stay_within_each_chunk() -> None:
    # Two blank lines inside a chunk: the estimate drifts, but never past the chunk's last line.
    text = "# Title\n\nFirst.\n\n\n\nSecond.\n\n\n\nThird.\n"
    chunks = stored_chunks(text, max_tokens=256)
    assert len(chunks) == 1

    runbook = Runbook.from_chunks(without_line_numbers(chunks))

    assert runbook.text == normalised(text)
    numbers = [line.number for line in block_lines(runbook) if line.number]
    assert numbers[0] == 1
    assert numbers == sorted(numbers)
    assert max(numbers) <= chunks[0].end_line == 11


DOUBLE_BLANK = """\
# Disk full

## Diagnosis

The log grows when archiving fails.


Check the archiver status and its last error.

Look for failed segments and the time of the last success.

If archiving fails for hours the volume keeps filling.

Then the database stops accepting writes and the service goes down for everyone.
"""


def test_old_index_drops_the_overlap_after_a_double_blank_line() -> None:
    chunks = stored_chunks(DOUBLE_BLANK)
    # The paragraph after the double blank line ends chunk 0 and starts chunk 1 (the overlap).
    assert "Check the archiver status" in chunks[0].text
    assert chunks[1].text.startswith("Check the archiver status")

    runbook = Runbook.from_chunks(without_line_numbers(chunks))

    assert runbook.text == normalised(DOUBLE_BLANK)
