"""Loaders: every format becomes markdown-like lines that point at real lines of the original file."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

import pytest

from opsmith.rag.documents import Document, SkipFile, SourceLine
from opsmith.rag.loaders import SUPPORTED_SUFFIXES, file_digest, load_document

MAX = 20_000_000


def _write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def _load(tmp_path: Path, name: str, content: str | bytes, *, max_bytes: int = MAX) -> Document:
    return load_document(_write(tmp_path, name, content), name, max_bytes=max_bytes)


def _pairs(doc: Document) -> list[tuple[int, str]]:
    return [(line.number, line.text) for line in doc.lines]


def _number_of(doc: Document, text: str) -> int:
    matches = [line.number for line in doc.lines if line.text == text]
    assert len(matches) == 1, f"{text!r} occurs {len(matches)} times in {_pairs(doc)}"
    return matches[0]


def _line_of(source: str, needle: str) -> int:
    """1-based line of the first occurrence of ``needle`` in ``source``."""
    return source[: source.index(needle)].count("\n") + 1


# --------------------------------------------------------------------------- minimal PDF fixture


def _pdf(*pages: bytes, fonts: dict[str, str] | None = None, info_title: str | None = None) -> bytes:
    """A PDF with one page per content stream, standard-14 fonts and a correct xref table, built by hand."""
    fonts = fonts if fonts is not None else {"F1": "Helvetica-Bold", "F2": "Helvetica", "F3": "Courier"}
    # Objects: 1 catalog, 2 page tree, then the fonts, then a (page, content) pair per page.
    font_ids = {name: 3 + k for k, name in enumerate(fonts)}
    page_ids = [3 + len(fonts) + 2 * k for k in range(len(pages))]
    font_refs = " ".join(f"/{name} {font_ids[name]} 0 R" for name in fonts)
    kids = " ".join(f"{page_id} 0 R" for page_id in page_ids)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode(),
        *(
            f"<< /Type /Font /Subtype /Type1 /BaseFont /{base} /Encoding /WinAnsiEncoding >>".encode()
            for base in fonts.values()
        ),
    ]
    for page_id, content in zip(page_ids, pages, strict=True):
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << {font_refs} >> >>"
            f" /Contents {page_id + 1} 0 R >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
    info_id = None
    if info_title is not None:
        objects.append(f"<< /Title ({info_title}) >>".encode())
        info_id = len(objects)
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    info = b" /Info %d 0 R" % info_id if info_id else b""
    out += b"trailer\n<< /Size %d /Root 1 0 R%s >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, info, xref)
    return bytes(out)


_RUNBOOK_PDF_CONTENT = b"""BT /F1 18 Tf 72 720 Td (Deploy Guide) Tj ET
BT /F2 11 Tf 72 690 Td (Restart the service after each configuration change.) Tj ET
BT /F2 11 Tf 72 675 Td (Check the logs for errors before you continue.) Tj ET
BT /F1 14 Tf 72 650 Td (Rollback) Tj ET
BT /F3 11 Tf 72 630 Td (kubectl rollout undo deploy/web) Tj ET
BT /F3 11 Tf 72 617 Td (kubectl rollout status deploy/web) Tj ET
BT /F2 11 Tf 72 595 Td (Watch the error rate on the dashboard for ten minutes.) Tj ET"""


# --------------------------------------------------------------------------- common behaviour


def test_supported_suffixes() -> None:
    assert frozenset({".md", ".markdown", ".txt", ".rst", ".html", ".htm", ".pdf"}) == SUPPORTED_SUFFIXES


def test_every_format_module_is_registered_once() -> None:
    # A format is a module of the package defining FORMAT; forgetting the registry line, or two
    # formats claiming one suffix, fails here rather than as files silently skipped.
    import importlib
    import pkgutil

    from opsmith.rag import loaders

    modules = [info.name for info in pkgutil.iter_modules(loaders.__path__) if not info.name.startswith("_")]
    assert sorted(modules) == ["html", "markdown", "pdf", "rst", "text"]
    formats = [importlib.import_module(f"opsmith.rag.loaders.{name}").FORMAT for name in modules]
    assert sorted(loaders._FORMATS, key=lambda f: f.kind) == sorted(formats, key=lambda f: f.kind)
    suffixes = [suffix for fmt in formats for suffix in fmt.suffixes]
    assert len(suffixes) == len(set(suffixes))
    assert all(s == s.lower() and s.startswith(".") for s in suffixes)
    assert frozenset(suffixes) == SUPPORTED_SUFFIXES


@pytest.mark.parametrize(
    ("name", "kind"),
    [("a.md", "md"), ("a.MARKDOWN", "md"), ("a.txt", "txt"), ("a.rst", "rst"), ("a.htm", "html"), ("a.html", "html")],
)
def test_kind_and_sha256_of_raw_bytes(tmp_path: Path, name: str, kind: str) -> None:
    raw = b"\xef\xbb\xbfsome text\r\n"
    doc = _load(tmp_path, name, raw)
    assert doc.kind == kind
    assert doc.source == name
    assert doc.path == tmp_path / name
    assert doc.sha256 == hashlib.sha256(raw).hexdigest()


def test_unsupported_suffix(tmp_path: Path) -> None:
    with pytest.raises(SkipFile, match=r"unsupported file type \.xyz"):
        _load(tmp_path, "notes.xyz", "hello")


def test_oversize_file_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(SkipFile) as info:
        _load(tmp_path, "big.md", "x" * 101, max_bytes=100)
    assert "OPSMITH_MAX_FILE_BYTES" in info.value.reason
    assert "larger than 100 bytes" in info.value.reason
    assert _load(tmp_path, "ok.md", "x" * 100, max_bytes=100).lines == [SourceLine(1, "x" * 100)]


def test_oversize_message_shows_the_limit_in_megabytes(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    with path.open("wb") as handle:  # sparse: no 20 MB actually written
        handle.truncate(MAX + 1)
    with pytest.raises(SkipFile) as info:
        load_document(path, "big.txt", max_bytes=MAX)
    assert info.value.reason == "larger than 20.0 MB (OPSMITH_MAX_FILE_BYTES) — split it or raise the limit"


def test_permission_denied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, "secret.md", "# Secret\n")
    real_open = os.open

    def deny(name: Any, *args: Any, **kwargs: Any) -> int:
        # The tests may run as root, which chmod cannot lock out.
        if Path(name) == path:
            raise PermissionError(13, "Permission denied", str(name))
        return real_open(name, *args, **kwargs)

    monkeypatch.setattr(os, "open", deny)
    with pytest.raises(SkipFile, match="cannot read: permission denied"):
        load_document(path, "secret.md", max_bytes=MAX)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are a POSIX feature")
def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    # Opening a FIFO for reading blocks until a writer appears: it must never be opened like a file.
    fifo = tmp_path / "pipe.md"
    os.mkfifo(fifo)
    for read in (lambda: load_document(fifo, "pipe.md", max_bytes=MAX), lambda: file_digest(fifo, max_bytes=MAX)):
        with pytest.raises(SkipFile) as info:
            read()
        assert info.value.reason == "not a regular file (a FIFO) — not read"


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_a_link_to_a_device_is_refused_not_read_forever(tmp_path: Path) -> None:
    link = tmp_path / "zero.md"
    link.symlink_to("/dev/zero")
    with pytest.raises(SkipFile) as info:
        file_digest(link, max_bytes=MAX)
    assert info.value.reason == "not a regular file (a character device) — not read"


def test_file_digest_streams_the_bytes_after_a_prefix(tmp_path: Path) -> None:
    content = os.urandom(3 * (1 << 20) + 17)  # more than one read block
    path = _write(tmp_path, "notes.txt", content)
    assert file_digest(path, max_bytes=MAX, prefix=b"recipe\x00") == hashlib.sha256(b"recipe\x00" + content).hexdigest()
    with pytest.raises(SkipFile, match="OPSMITH_MAX_FILE_BYTES"):
        file_digest(path, max_bytes=len(content) - 1)


def test_an_oversized_file_is_refused_before_it_is_opened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "huge.md"
    with path.open("wb") as handle:
        handle.truncate(2 * 1024**3)  # sparse: 2 GB that cost no disk

    def never(name: Any, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"opened {name}")

    monkeypatch.setattr(os, "open", never)
    monkeypatch.setattr(io, "open", never)
    for read in (lambda: load_document(path, "huge.md", max_bytes=MAX), lambda: file_digest(path, max_bytes=MAX)):
        with pytest.raises(SkipFile, match=r"larger than 20\.0 MB"):
            read()


def test_directory_named_like_a_file(tmp_path: Path) -> None:
    (tmp_path / "folder.md").mkdir()
    with pytest.raises(SkipFile, match=r"not a regular file \(a folder\)"):
        load_document(tmp_path / "folder.md", "folder.md", max_bytes=MAX)


@pytest.mark.parametrize("content", [b"", b"   \n\t\r\n  ", b"\xef\xbb\xbf\n\n"])
def test_empty_file(tmp_path: Path, content: bytes) -> None:
    with pytest.raises(SkipFile, match="empty file"):
        _load(tmp_path, "empty.md", content)


def test_nul_bytes_are_binary(tmp_path: Path) -> None:
    with pytest.raises(SkipFile, match="binary content"):
        _load(tmp_path, "image.txt", b"PK\x03\x04\x00\x00some zip")


def test_many_control_characters_are_binary(tmp_path: Path) -> None:
    with pytest.raises(SkipFile, match="binary content"):
        _load(tmp_path, "blob.md", bytes(range(1, 32)) * 20 + b"text")


def test_ansi_coloured_log_is_text(tmp_path: Path) -> None:
    doc = _load(tmp_path, "build.txt", "\x1b[31mERROR\x1b[0m disk full\n" * 50)
    assert len(doc.lines) == 50


def test_bom_stripped_and_crlf_normalised(tmp_path: Path) -> None:
    doc = _load(tmp_path, "win.md", b"\xef\xbb\xbf# Title\r\n\r\nBody line\r\nold mac\rline\r\n")
    assert _pairs(doc) == [(1, "# Title"), (2, ""), (3, "Body line"), (4, "old mac"), (5, "line")]
    assert doc.title == "Title"
    assert doc.warnings == []


def test_non_utf8_is_replaced_with_a_warning(tmp_path: Path) -> None:
    doc = _load(tmp_path, "latin1.txt", "Caf\xe9 au lait\nsecond\n".encode("latin-1"))
    assert doc.lines[0] == SourceLine(1, "Caf\ufffd au lait")
    assert doc.lines[1] == SourceLine(2, "second")
    assert doc.warnings == ["not valid UTF-8; undecodable bytes replaced"]


# --------------------------------------------------------------------------- markdown and text


def test_markdown_lines_keep_their_numbers(tmp_path: Path) -> None:
    text = "# Runbook\n\nStep one.\n\n```bash\n# not a heading\nsystemctl restart etcd\n```\n\n## Next\n"
    doc = _load(tmp_path, "runbook.md", text)
    assert _pairs(doc) == list(enumerate(text.splitlines(), start=1))
    assert doc.title == "Runbook"
    assert doc.text == text.rstrip("\n")


def test_markdown_title_ignores_hash_lines_in_code_fences(tmp_path: Path) -> None:
    doc = _load(tmp_path, "a.md", "```sh\n# install\n```\n\n## Sub\n\n# Real Title #\n")
    assert doc.title == "Real Title"


def test_markdown_without_h1_has_no_title(tmp_path: Path) -> None:
    assert _load(tmp_path, "a.md", "## Only a section\n\ntext\n").title is None


def test_yaml_front_matter_stripped_title_taken_numbers_kept(tmp_path: Path) -> None:
    text = '---\ntitle: "Etcd recovery"\ntags: [etcd]\n---\n# Heading in body\n\nRestore the snapshot.\n'
    doc = _load(tmp_path, "etcd.md", text)
    assert doc.title == "Etcd recovery"
    assert _pairs(doc) == [(5, "# Heading in body"), (6, ""), (7, "Restore the snapshot.")]
    assert all("tags" not in line.text for line in doc.lines)


def test_toml_front_matter(tmp_path: Path) -> None:
    doc = _load(tmp_path, "hugo.md", "+++\ntitle = 'Disk full'\n+++\nFree some space.\n")
    assert doc.title == "Disk full"
    assert _pairs(doc) == [(4, "Free some space.")]


def test_malformed_front_matter_is_still_stripped(tmp_path: Path) -> None:
    doc = _load(tmp_path, "a.md", "---\ntitle: [unclosed\n---\nBody\n")
    assert doc.title is None
    assert _pairs(doc) == [(4, "Body")]


def test_front_matter_without_title_falls_back_to_h1(tmp_path: Path) -> None:
    doc = _load(tmp_path, "a.md", "---\nauthor: me\n---\n\n# From the body\n")
    assert doc.title == "From the body"
    assert doc.lines[0].number == 4


def test_unclosed_dashes_are_not_front_matter(tmp_path: Path) -> None:
    doc = _load(tmp_path, "a.md", "---\ntitle: no\nbody\n")
    assert doc.title is None
    assert [line.text for line in doc.lines] == ["---", "title: no", "body"]


def test_setext_headings_become_atx_on_the_title_line(tmp_path: Path) -> None:
    text = "Incident Guide\n==============\n\nIntro text.\n\nTriage\n------\n\nCheck the pager.\n"
    doc = _load(tmp_path, "guide.md", text)
    assert _pairs(doc) == [
        (1, "# Incident Guide"),
        (3, ""),
        (4, "Intro text."),
        (5, ""),
        (6, "## Triage"),
        (8, ""),
        (9, "Check the pager."),
    ]
    assert doc.title == "Incident Guide"


def test_setext_not_applied_inside_code_fence_or_to_list_items(tmp_path: Path) -> None:
    text = "```\nname\n====\n```\n\n- item\n---\n"
    doc = _load(tmp_path, "a.md", text)
    assert [line.text for line in doc.lines] == text.splitlines()


def test_txt_gets_setext_but_no_title_from_hash_lines(tmp_path: Path) -> None:
    doc = _load(tmp_path, "notes.txt", "# comment\nPlain text\n\nSection\n=======\nbody\n")
    assert doc.kind == "txt"
    assert doc.title is None
    assert _pairs(doc) == [(1, "# comment"), (2, "Plain text"), (3, ""), (4, "# Section"), (6, "body")]


# --------------------------------------------------------------------------- reStructuredText

_RST = """\
=============
 Etcd Runbook
=============

Intro paragraph.

Backup
======

Take a snapshot:

.. code-block:: bash
   :linenos:

   etcdctl snapshot save /tmp/snap.db
     --endpoints=https://127.0.0.1:2379

Then verify it::

    etcdctl snapshot status /tmp/snap.db

Details
-------

.. note:: Directives other than code stay as text.

Restore
=======

Run ``etcdctl snapshot restore``.
"""


def test_rst_headings_levels_follow_first_appearance(tmp_path: Path) -> None:
    doc = _load(tmp_path, "etcd.rst", _RST)
    headings = [(line.number, line.text) for line in doc.lines if line.text.startswith("#")]
    assert headings == [
        (2, "# Etcd Runbook"),
        (_line_of(_RST, "Backup"), "## Backup"),
        (_line_of(_RST, "Details"), "### Details"),
        (_line_of(_RST, "Restore\n"), "## Restore"),
    ]
    assert doc.title == "Etcd Runbook"
    assert not any(set(line.text) <= {"=", "-"} and line.text for line in doc.lines), "adornments must be dropped"


def test_rst_code_block_becomes_fence_with_real_numbers(tmp_path: Path) -> None:
    doc = _load(tmp_path, "etcd.rst", _RST)
    directive = _line_of(_RST, ".. code-block::")
    save = _line_of(_RST, "etcdctl snapshot save")
    i = doc.lines.index(SourceLine(directive, "```bash"))
    assert doc.lines[i + 1 : i + 4] == [
        SourceLine(save, "etcdctl snapshot save /tmp/snap.db"),
        SourceLine(save + 1, "  --endpoints=https://127.0.0.1:2379"),
        SourceLine(save + 1, "```"),
    ]
    assert not any(":linenos:" in line.text for line in doc.lines)


def test_rst_literal_block_becomes_fence(tmp_path: Path) -> None:
    doc = _load(tmp_path, "etcd.rst", _RST)
    intro = _line_of(_RST, "Then verify it::")
    status = _line_of(_RST, "etcdctl snapshot status")
    i = doc.lines.index(SourceLine(intro, "Then verify it:"))
    assert doc.lines[i + 1 : i + 5] == [
        SourceLine(intro + 1, ""),
        SourceLine(status, "```"),
        SourceLine(status, "etcdctl snapshot status /tmp/snap.db"),
        SourceLine(status, "```"),
    ]


def test_rst_other_directives_and_roles_stay_text(tmp_path: Path) -> None:
    doc = _load(tmp_path, "etcd.rst", _RST)
    note = _line_of(_RST, ".. note::")
    assert SourceLine(note, ".. note:: Directives other than code stay as text.") in doc.lines
    assert doc.lines[-1] == SourceLine(_line_of(_RST, "Run ``"), "Run ``etcdctl snapshot restore``.")


def test_rst_lone_double_colon_and_code_without_language(tmp_path: Path) -> None:
    text = "Paragraph\n\n::\n\n  raw text\n\n.. code::\n\n  x = 1\n"
    doc = _load(tmp_path, "a.rst", text)
    assert _pairs(doc) == [
        (1, "Paragraph"),
        (2, ""),
        (4, ""),
        (5, "```"),
        (5, "raw text"),
        (5, "```"),
        (6, ""),
        (7, "```"),
        (9, "x = 1"),
        (9, "```"),
    ]


def test_rst_transition_and_short_underline_are_not_titles(tmp_path: Path) -> None:
    text = "Before\n\n----------\n\nLong title here\n---\n"
    doc = _load(tmp_path, "a.rst", text)
    assert not any(line.text.startswith("#") for line in doc.lines)
    assert doc.title is None


# --------------------------------------------------------------------------- HTML

_HTML = """\
<!DOCTYPE html>
<html>
<head>
  <title>Disk Pressure Runbook</title>
  <style>body { color: red }</style>
  <script>var secret = "tracking-code";</script>
</head>
<body>
<nav><a href="/">Home</a> <a href="/docs">Docs</a></nav>
<!-- reviewers: remove before publishing -->
<h1>Disk  pressure</h1>
<p>When a node reports
   <b>DiskPressure</b>, run <code>df -h</code> first.</p>
<ul>
  <li>Check /var/log</li>
  <li><p>Prune images</p></li>
</ul>
<pre><code class="language-bash">docker system prune -af
journalctl --vacuum-size=200M
</code></pre>
<h2>Escalation</h2>
<table>
  <tr><th>Team</th><th>Channel</th></tr>
  <tr><td>SRE</td><td>#sre-oncall</td></tr>
</table>
<div>Loose div text
  <p>Nested paragraph</p>
  Tail text
</div>
<blockquote>Quoted advice</blockquote>
<footer>Copyright ACME</footer>
<script>console.log("late script")</script>
</body>
</html>
"""


def test_html_structure_and_sourcelines(tmp_path: Path) -> None:
    doc = _load(tmp_path, "disk.html", _HTML)
    n = lambda needle: _line_of(_HTML, needle)  # noqa: E731
    prune = n("docker system prune")
    assert _pairs(doc) == [
        (n("<h1>"), "# Disk pressure"),
        (n("<p>When"), "When a node reports DiskPressure, run `df -h` first."),
        (n("Check /var/log"), "- Check /var/log"),
        (n("Prune images"), "- Prune images"),
        (n("<pre>"), "```bash"),
        (prune, "docker system prune -af"),
        (prune + 1, "journalctl --vacuum-size=200M"),
        (prune + 1, "```"),
        (n("<h2>"), "## Escalation"),
        (n("<th>Team"), "Team | Channel"),
        (n("<td>SRE"), "SRE | #sre-oncall"),
        (n("<div>"), "Loose div text"),
        (n("<p>Nested"), "Nested paragraph"),
        (n("Tail text"), "Tail text"),
        (n("<blockquote>"), "> Quoted advice"),
    ]
    assert doc.title == "Disk Pressure Runbook"


def test_html_drops_scripts_styles_nav_footer_and_comments(tmp_path: Path) -> None:
    text = _load(tmp_path, "disk.html", _HTML).text
    for gone in ("tracking-code", "late script", "color: red", "Home", "Copyright", "reviewers"):
        assert gone not in text


def test_html_pre_with_leading_newline_numbers_the_first_code_line(tmp_path: Path) -> None:
    html = "<p>Run:</p>\n<pre>\nline one\n  line two\n</pre>\n"
    doc = _load(tmp_path, "a.html", html)
    assert _pairs(doc) == [(1, "Run:"), (2, "```"), (3, "line one"), (4, "  line two"), (4, "```")]


def test_html_nested_lists_and_text_after_a_nested_block(tmp_path: Path) -> None:
    html = "<ul>\n<li>outer\n  <ul>\n    <li>inner</li>\n  </ul>\n  after inner\n</li>\n</ul>\n"
    doc = _load(tmp_path, "a.html", html)
    assert _pairs(doc) == [(2, "- outer"), (4, "  - inner"), (6, "after inner")]


def test_html_body_text_cannot_pose_as_a_heading_or_fence(tmp_path: Path) -> None:
    doc = _load(tmp_path, "a.html", "<p># not a heading</p>\n<p>```</p>\n")
    assert [line.text for line in doc.lines] == ["\\# not a heading", "\\```"]
    assert doc.title is None


def test_html_pre_containing_a_fence_gets_a_longer_fence(tmp_path: Path) -> None:
    doc = _load(tmp_path, "a.html", "<pre>Write:\n```\ncode\n```</pre>\n")
    assert [line.text for line in doc.lines] == ["````", "Write:", "```", "code", "```", "````"]


def test_html_title_falls_back_to_first_h1(tmp_path: Path) -> None:
    doc = _load(tmp_path, "a.htm", "<h2>Sub</h2>\n<h1>Main <code>etcd</code></h1>\n")
    assert doc.title == "Main `etcd`"
    assert doc.kind == "html"


def test_html_article_header_keeps_its_heading(tmp_path: Path) -> None:
    html = "<header>Site banner</header>\n<article><header><h1>Post</h1></header><p>Body</p></article>\n"
    doc = _load(tmp_path, "a.html", html)
    assert [line.text for line in doc.lines] == ["# Post", "Body"]


def test_html_with_only_script_has_no_text(tmp_path: Path) -> None:
    with pytest.raises(SkipFile, match="no text content"):
        _load(tmp_path, "a.html", "<html><script>alert(1)</script></html>")


# --------------------------------------------------------------------------- PDF


def test_pdf_heading_by_font_size_body_and_code(tmp_path: Path) -> None:
    doc = _load(tmp_path, "guide.pdf", _pdf(_RUNBOOK_PDF_CONTENT))
    assert doc.kind == "pdf"
    assert _pairs(doc) == [
        (1, "# Deploy Guide"),
        (2, "Restart the service after each configuration change."),
        (3, "Check the logs for errors before you continue."),
        (4, "## Rollback"),
        (5, "```"),
        (5, "kubectl rollout undo deploy/web"),
        (6, "kubectl rollout status deploy/web"),
        (6, "```"),
        (7, "Watch the error rate on the dashboard for ten minutes."),
    ]
    assert doc.title == "Deploy Guide"
    assert doc.warnings == []


def test_pdf_text_matrix_scaling_counts_towards_font_size(tmp_path: Path) -> None:
    # Size 1 scaled by the text matrix is how many generators write 20pt text.
    content = b"""BT /F2 1 Tf 20 0 0 20 72 720 Tm (Big Title) Tj ET
BT /F2 10 Tf 72 690 Td (Plain body text that is long enough to dominate.) Tj ET"""
    doc = _load(tmp_path, "scaled.pdf", _pdf(content, fonts={"F2": "Helvetica"}))
    assert doc.lines[0] == SourceLine(1, "# Big Title")
    assert doc.lines[1] == SourceLine(2, "Plain body text that is long enough to dominate.")


def test_pdf_uniform_size_has_no_headings_and_metadata_title(tmp_path: Path) -> None:
    content = b"BT /F2 11 Tf 72 720 Td (First line) Tj ET\nBT /F2 11 Tf 72 700 Td (Second line) Tj ET"
    doc = _load(tmp_path, "plain.pdf", _pdf(content, fonts={"F2": "Helvetica"}, info_title="Quarterly Report"))
    assert _pairs(doc) == [(1, "First line"), (2, "Second line")]
    assert doc.title == "Quarterly Report"


def test_pdf_line_numbers_continue_across_pages(tmp_path: Path) -> None:
    page_two = b"""BT /F1 18 Tf 72 720 Td (Second Page) Tj ET
BT /F2 11 Tf 72 690 Td (More body text on the second page of the guide.) Tj ET"""
    doc = _load(tmp_path, "two.pdf", _pdf(_RUNBOOK_PDF_CONTENT, page_two))
    assert doc.lines[-2:] == [
        SourceLine(8, "# Second Page"),
        SourceLine(9, "More body text on the second page of the guide."),
    ]


def test_pdf_long_large_line_is_not_a_heading(tmp_path: Path) -> None:
    lead = b"A" * 40 + b" " + b"b" * 160
    content = (
        b"BT /F2 16 Tf 72 720 Td ("
        + lead
        + b") Tj ET\n"
        + b"".join(
            b"BT /F2 10 Tf 72 %d Td (Ordinary body text, repeated to be the most common size.) Tj ET\n" % (700 - 12 * k)
            for k in range(6)
        )
    )
    doc = _load(tmp_path, "lead.pdf", _pdf(content, fonts={"F2": "Helvetica"}))
    assert doc.lines[0] == SourceLine(1, lead.decode())
    assert doc.title is None


def test_pdf_body_line_starting_with_hash_is_escaped(tmp_path: Path) -> None:
    content = b"BT /F2 11 Tf 72 720 Td (# generated file, do not edit) Tj ET\nBT /F2 11 Tf 72 700 Td (body) Tj ET"
    doc = _load(tmp_path, "hash.pdf", _pdf(content, fonts={"F2": "Helvetica"}))
    assert doc.lines[0] == SourceLine(1, "\\# generated file, do not edit")
    assert doc.title is None


def test_pdf_without_text_is_skipped(tmp_path: Path) -> None:
    with pytest.raises(SkipFile, match=r"no extractable text \(scanned PDF\?\)"):
        _load(tmp_path, "scan.pdf", _pdf(b"0 0 m 100 100 l S", fonts={}))


@pytest.mark.parametrize("raw", [b"%PDF-1.4\nthis is not really a pdf\n", b"\x00\x01garbage" * 10])
def test_corrupt_pdf_is_skipped(tmp_path: Path, raw: bytes) -> None:
    with pytest.raises(SkipFile, match="no extractable text"):
        _load(tmp_path, "broken.pdf", raw)


def test_encrypted_pdf(tmp_path: Path) -> None:
    from pypdf import PdfReader, PdfWriter

    def encrypted(user_password: str) -> bytes:
        writer = PdfWriter(clone_from=PdfReader(io.BytesIO(_pdf(_RUNBOOK_PDF_CONTENT))))
        writer.encrypt(user_password=user_password, owner_password="owner", algorithm="RC4-128")
        buffer = io.BytesIO()
        writer.write(buffer)
        return buffer.getvalue()

    with pytest.raises(SkipFile, match="encrypted PDF"):
        _load(tmp_path, "locked.pdf", encrypted("secret"))
    # An owner password alone only restricts printing or copying; the text is readable.
    doc = _load(tmp_path, "restricted.pdf", encrypted(""))
    assert doc.lines[0] == SourceLine(1, "# Deploy Guide")
