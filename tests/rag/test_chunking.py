"""Heading-first chunking: heading paths, real line ranges, whole code fences, capped pieces with overlap."""

from __future__ import annotations

import itertools
from pathlib import Path

from opsmith.rag.chunking import Chunk, chunk_document
from opsmith.rag.embedder import Embedder
from opsmith.rag.loaders import load_document


def _chunks(
    tmp_path: Path, name: str, text: str, embedder: Embedder, *, max_tokens: int = 256, **kwargs: object
) -> list[Chunk]:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    document = load_document(path, name, max_bytes=10_000_000)
    return chunk_document(document, count_tokens=embedder.count_tokens, max_tokens=max_tokens, **kwargs)  # type: ignore[arg-type]


def _assert_lines_are_real(chunks: list[Chunk], text: str) -> None:
    """Every line of a chunk's text occurs in the file within the chunk's line range."""
    file_lines = text.split("\n")
    for chunk in chunks:
        window = file_lines[chunk.start_line - 1 : chunk.end_line]
        assert 1 <= chunk.start_line <= chunk.end_line <= len(file_lines)
        for line in chunk.text.split("\n"):
            if line.strip():
                assert any(line.strip() in original for original in window), (line, chunk.start_line, chunk.end_line)


def _fences(text: str) -> int:
    return sum(1 for line in text.split("\n") if line.lstrip().startswith("```"))


SECTIONED = """\
# Disk full

Alert fires at 90% usage.

## Diagnosis

Check which folder grows.

### Logs

Rotate the application logs first.

## Mitigation

Grow the volume.
"""


def test_each_section_keeps_its_heading_path_and_line_range(tmp_path: Path, embedder: Embedder) -> None:
    chunks = _chunks(tmp_path, "disk-full.md", SECTIONED, embedder, merge_sections=False)

    assert [(c.heading, c.start_line, c.end_line) for c in chunks] == [
        ("Disk full", 1, 3),
        ("Disk full > Diagnosis", 5, 7),
        ("Disk full > Diagnosis > Logs", 9, 11),
        ("Disk full > Mitigation", 13, 15),
    ]
    assert chunks[2].text == "### Logs\n\nRotate the application logs first."
    assert [c.index for c in chunks] == [0, 1, 2, 3]
    assert {c.source for c in chunks} == {"disk-full.md"}
    _assert_lines_are_real(chunks, SECTIONED)


def test_small_sections_are_merged_and_the_heading_names_them(tmp_path: Path, embedder: Embedder) -> None:
    chunks = _chunks(tmp_path, "disk-full.md", SECTIONED, embedder)

    assert len(chunks) == 1
    (chunk,) = chunks
    assert chunk.heading == "Disk full > Diagnosis / Logs / Mitigation"
    assert (chunk.start_line, chunk.end_line) == (1, 15)
    for line in ("Alert fires at 90% usage.", "Rotate the application logs first.", "Grow the volume."):
        assert line in chunk.text


def test_sections_merge_only_while_they_fit_the_cap(tmp_path: Path, embedder: Embedder) -> None:
    sections = "\n\n".join(
        f"## Step {n}\n\n" + " ".join(f"Check replica {n}-{i} lag before promoting it." for i in range(3))
        for n in range(6)
    )
    text = f"# Failover\n\n{sections}\n"
    chunks = _chunks(tmp_path, "failover.md", text, embedder, max_tokens=96)

    assert 1 < len(chunks) < 7  # merged, but not into one
    for chunk in chunks:
        assert embedder.count_tokens(chunk.text) <= 96
        named = [f"Step {n}" for n in range(6) if f"## Step {n}" in chunk.text]
        # Each merged section is named in the heading, in order.
        assert chunk.heading == "Failover > " + " / ".join(named)
    _assert_lines_are_real(chunks, text)


def test_document_without_title_uses_the_file_stem_as_root(tmp_path: Path, embedder: Embedder) -> None:
    text = "Page the database on-call first.\n\n## Steps\n\nRestart the primary.\n"
    chunks = _chunks(tmp_path, "ops/escalation.md", text, embedder, merge_sections=False)

    assert [c.heading for c in chunks] == ["escalation", "escalation > Steps"]
    assert (chunks[0].start_line, chunks[0].end_line) == (1, 1)

    plain = _chunks(tmp_path, "notes/on-call.txt", "Page the database on-call first.\n", embedder)
    assert [c.heading for c in plain] == ["on-call"]


def test_headings_inside_a_code_fence_are_code_not_sections(tmp_path: Path, embedder: Embedder) -> None:
    text = "# Cleanup\n\n## Steps\n\n```bash\n# remove old WAL\npg_archivecleanup /wal 000000010000\n```\n"
    chunks = _chunks(tmp_path, "cleanup.md", text, embedder, merge_sections=False)

    assert [c.heading for c in chunks] == ["Cleanup", "Cleanup > Steps"]
    assert "# remove old WAL" in chunks[1].text


def test_a_code_fence_larger_than_the_cap_stays_whole(tmp_path: Path, embedder: Embedder) -> None:
    script = "\n".join(f"kubectl -n shop delete pod checkout-{i:03d} --grace-period=30" for i in range(60))
    prose = " ".join(f"Drain node {i} before deleting its pods." for i in range(20))
    text = f"# Purge\n\n## Steps\n\n{prose}\n\n```bash\n{script}\n```\n\n{prose}\n\n~~~\nsecond fence\n~~~\n"
    chunks = _chunks(tmp_path, "purge.md", text, embedder, max_tokens=64)

    holding = [c for c in chunks if "checkout-000" in c.text]
    assert len(holding) == 1
    assert all(f"checkout-{i:03d}" in holding[0].text for i in range(60))
    assert embedder.count_tokens(holding[0].text) > 64  # the fence alone is over the cap, and not split
    for chunk in chunks:
        assert _fences(chunk.text) % 2 == 0, chunk.text
        assert chunk.text.count("~~~") % 2 == 0, chunk.text
    _assert_lines_are_real(chunks, text)


def test_long_section_is_split_to_the_cap_with_overlap(tmp_path: Path, embedder: Embedder) -> None:
    # Paragraphs short and long: overlap must work both by whole paragraphs and by a paragraph's tail.
    paragraphs = [
        f"Step {i}: restart worker {i}." if i % 2 else " ".join(f"Worker {i} drains queue {j} first." for j in range(6))
        for i in range(16)
    ]
    text = "# Workers\n\n## Procedure\n\n" + "\n\n".join(paragraphs) + "\n"
    chunks = _chunks(tmp_path, "workers.md", text, embedder, max_tokens=80, overlap=16)

    assert len(chunks) > 3
    assert {c.heading for c in chunks} == {"Workers > Procedure"}
    for chunk in chunks:
        assert embedder.count_tokens(chunk.text) <= 80
    for previous, current in itertools.pairwise(chunks):
        shared = current.text.split("\n\n")[0]
        assert shared in previous.text, (previous.text, current.text)
        assert embedder.count_tokens(shared) <= 16
        assert current.start_line <= previous.end_line
    # Nothing is lost between pieces: every sentence is in some chunk.
    joined = "\n".join(c.text for c in chunks)
    sentences = [s if s.endswith(".") else s + "." for p in paragraphs for s in p.split(". ")]
    assert all(sentence in joined for sentence in sentences)
    _assert_lines_are_real(chunks, text)


def test_zero_overlap_means_pieces_share_nothing(tmp_path: Path, embedder: Embedder) -> None:
    text = "# Workers\n\n" + "\n\n".join(f"Step {i}: restart worker {i} and watch its queue." for i in range(30))
    chunks = _chunks(tmp_path, "workers.md", text, embedder, max_tokens=64, overlap=0)

    assert len(chunks) > 2
    steps = [line for c in chunks for line in c.text.split("\n\n") if line.startswith("Step")]
    assert steps == [f"Step {i}: restart worker {i} and watch its queue." for i in range(30)]


def test_a_huge_single_line_paragraph_is_split_into_capped_pieces(tmp_path: Path, embedder: Embedder) -> None:
    words = [f"token{i:04d}" for i in range(1500)]
    text = "# Dump\n\n" + " ".join(words) + "\n\nAfter the dump.\n"
    chunks = _chunks(tmp_path, "dump.md", text, embedder, max_tokens=64, overlap=8)

    pieces = [c for c in chunks if "token" in c.text]
    assert len(pieces) > 10
    for chunk in chunks:
        assert embedder.count_tokens(chunk.text) <= 64
    for chunk in pieces[1:]:
        assert (chunk.start_line, chunk.end_line) in {(3, 3), (3, 5)}
    seen = set(" ".join(c.text for c in pieces).split())
    assert all(word in seen for word in words)
    # Consecutive pieces overlap by a few words.
    for previous, current in itertools.pairwise(pieces):
        assert current.text.split()[0] in previous.text.split()


def test_chunk_tokens_match_the_embedders_count(tmp_path: Path, embedder: Embedder) -> None:
    chunks = _chunks(tmp_path, "disk-full.md", SECTIONED, embedder, merge_sections=False)
    for chunk in chunks:
        # Units are counted separately; joining them must not hide tokens from the cap.
        assert abs(chunk.tokens - embedder.count_tokens(chunk.text)) <= 2


def test_a_word_longer_than_the_cap_is_cut_into_capped_pieces(tmp_path: Path, embedder: Embedder) -> None:
    import base64

    blob = base64.b64encode(bytes(range(256)) * 12).decode()  # one 4 KB "word", like a pasted secret or bundle
    text = f"# Config\n\nThe broken value was {blob} and then the pod restarted.\n"
    chunks = _chunks(tmp_path, "config.md", text, embedder, max_tokens=64, overlap=8)

    assert len(chunks) > 10
    for chunk in chunks:
        assert embedder.count_tokens(chunk.text) <= 64
    assert blob in "".join(c.text for c in chunks).replace(" ", "").replace("\n", "")
    assert "restarted." in chunks[-1].text


def test_each_line_of_a_chunk_knows_its_source_line(tmp_path: Path, embedder: Embedder) -> None:
    """Answers cite a section or a command inside a chunk by the line it is on in the file."""
    text = SECTIONED + "\n\n```bash\nkubectl -n app get pods\n\n\nkubectl -n app describe pod x\n```\n"
    text += "\n".join(f"Step {i}: check the volume of node {i} and write down its usage." for i in range(40)) + "\n"
    chunks = _chunks(tmp_path, "a.md", text, embedder, max_tokens=64, overlap=16)
    file_lines = text.split("\n")

    assert len(chunks) > 3  # split, with overlap, so numbering cannot just count from the chunk's start
    for chunk in chunks:
        lines = chunk.text.split("\n")
        assert len(chunk.line_numbers) == len(lines)
        for number, line in zip(chunk.line_numbers, lines, strict=True):
            if number == 0:
                assert line == ""  # the blank line between two units
            elif line.strip():
                assert line.strip() in file_lines[number - 1], (number, line)
            else:  # a blank line inside a code fence, kept with its own number
                assert not file_lines[number - 1].strip(), (number, line)
    fenced = next(c for c in chunks if "describe pod" in c.text)
    assert file_lines[fenced.line_numbers[fenced.text.split("\n").index("kubectl -n app describe pod x")] - 1] == (
        "kubectl -n app describe pod x"
    )
