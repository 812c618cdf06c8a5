"""The review pipeline: find .tf files, parse, run the rules per folder, add the LLM's findings, merge."""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from opsmith.errors import InputError, OpsmithError, PathNotFoundError
from opsmith.review.findings import Finding, ReviewResult, Skipped, merge_findings
from opsmith.review.hcl import SyntaxProblem, TfFile, parse_text
from opsmith.review.module import Module

if TYPE_CHECKING:
    from opsmith.config import Settings
    from opsmith.llm import ChatModel

__all__ = ["SourceFile", "collect_files", "preview_redacted", "read_tf", "review"]

#: How much of a file is checked for NUL bytes to call it binary.
_SNIFF_BYTES = 8192


@dataclass(frozen=True)
class SourceFile:
    """A .tf file to review and the name findings give it (relative to the PATH it came from)."""

    path: Path
    name: str
    explicit: bool = False  # passed as a file, not found in a folder


def _walk(root: Path) -> Iterator[Path]:
    """Every entry under ``root`` that is not a folder, skipping dot-folders and links to folders.

    A stack rather than recursion (``Path.rglob`` recursed once per level), so a tree any
    number of folders deep is walked, never a RecursionError.
    """
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as entries:
                found = list(entries)
        except OSError:  # unreadable: passed over, as rglob did
            continue
        for entry in found:
            try:
                is_folder = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_folder = False
            if not is_folder:
                yield Path(entry.path)
            elif not entry.name.startswith("."):
                # .terraform holds downloaded modules; dot-folders are tooling (.git, .terragrunt-cache).
                stack.append(Path(entry.path))


def collect_files(paths: Sequence[Path | str]) -> tuple[list[SourceFile], list[Skipped]]:
    """The .tf files under ``paths`` (sorted), and the paths passed over with why.

    Raises :class:`PathNotFoundError` for a missing path and :class:`InputError` when no
    .tf file is found at all.
    """
    if not paths:
        raise InputError("No path given — pass a folder or .tf file, e.g. opsmith review infra/")
    found: list[tuple[SourceFile, str]] = []
    skipped: list[Skipped] = []
    others = 0
    seen: set[Path] = set()
    for given in paths:
        root = Path(given)
        if not root.exists():
            raise PathNotFoundError(given)
        if root.is_file():
            if root.suffix != ".tf":
                skipped.append(Skipped(str(given), "not a .tf file"))
                others += 1
                continue
            if root.resolve() not in seen:
                seen.add(root.resolve())
                found.append((SourceFile(root, root.name, explicit=True), str(given)))
            continue
        for path in sorted(_walk(root)):
            relative = path.relative_to(root)
            if not path.is_file():
                continue
            if path.suffix != ".tf":
                others += 1
                continue
            if path.resolve() in seen:
                continue
            seen.add(path.resolve())
            found.append((SourceFile(path, relative.as_posix()), (Path(str(given)) / relative).as_posix()))
    if not found:
        shown = ", ".join(str(p) for p in paths)
        ignored = f" ({others} other file{'s' if others != 1 else ''} ignored)" if others else ""
        raise InputError(
            f"No Terraform files (.tf) found in {shown}{ignored} — pass a folder or file holding .tf files"
        )
    # Two PATHs can each hold a main.tf: those fall back to the path as given.
    counts: dict[str, int] = defaultdict(int)
    for source, _ in found:
        counts[source.name] += 1
    files = [
        source if counts[source.name] == 1 else SourceFile(source.path, as_given, source.explicit)
        for source, as_given in found
    ]
    return files, skipped


def read_tf(path: Path, name: str, *, max_bytes: int) -> TfFile | Skipped:
    """Read and parse one file. Binary or non-UTF-8 content becomes a syntax problem, never an exception."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            return Skipped(
                name, f"{size:,} bytes is over the {max_bytes:,}-byte limit — raise OPSMITH_MAX_FILE_BYTES to review it"
            )
        data = path.read_bytes()
    except OSError as exc:
        return Skipped(name, f"cannot be read ({exc.strerror or exc})")
    if b"\x00" in data[:_SNIFF_BYTES]:
        problem = SyntaxProblem("Not a text file (binary content) — Terraform cannot read it", 1)
        return TfFile(path=path, name=name, text="", problem=problem)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        problem = SyntaxProblem(f"Not UTF-8 text (invalid byte at line {line}) — Terraform reads UTF-8 only", line)
        return TfFile(path=path, name=name, text="", problem=problem)
    return parse_text(text, name=name, path=path)


def _modules(files: list[tuple[SourceFile, TfFile]], max_bytes: int) -> list[Module]:
    """Group files by folder; a file passed on its own gets its siblings as declaration context."""
    by_dir: dict[Path, Module] = {}
    explicit_dirs: set[Path] = set()
    for source, tf in files:
        directory = source.path.resolve().parent
        by_dir.setdefault(directory, Module(directory)).files.append(tf)
        if source.explicit:
            explicit_dirs.add(directory)
    for directory in explicit_dirs:
        module = by_dir[directory]
        have = {tf.path.resolve() for tf in module.files}
        for sibling in sorted(directory.glob("*.tf")):
            if sibling.resolve() in have:
                continue
            context = read_tf(sibling, sibling.name, max_bytes=max_bytes)
            if isinstance(context, TfFile) and context.problem is None:
                module.context.append(context)
    return list(by_dir.values())


def preview_redacted(paths: Sequence[Path | str], *, settings: Settings) -> tuple[list[str], list[Skipped]]:
    """What the LLM reviewer would be sent for ``paths``, file by file, and the files passed over.

    Each file is redacted and numbered exactly as in the prompt (see :func:`~opsmith.review.llm.prompt_source`),
    so a user can check what leaves the machine before configuring a provider. Nothing is sent.
    """
    from opsmith.review.llm import prompt_source

    sources, skipped = collect_files(paths)
    shown: list[str] = []
    for source in sources:
        tf = read_tf(source.path, source.name, max_bytes=settings.max_file_bytes)
        if isinstance(tf, Skipped):
            skipped.append(tf)
        elif tf.text.strip():
            shown.append(prompt_source(tf))
    return shown, skipped


def review(
    paths: Sequence[Path | str],
    *,
    settings: Settings,
    chat_model: ChatModel | None = None,
    use_llm: bool = True,
) -> ReviewResult:
    """Review the Terraform under ``paths``.

    Parses every .tf file (a file that fails to parse becomes an ``OPS-C000`` finding),
    runs the deterministic rules per folder, and, when ``use_llm`` and a ``chat_model``
    are given, adds the LLM reviewer's findings (secrets redacted before sending; lines
    checked against the files). A failed LLM step leaves the rule findings and a warning.

    Args:
        paths: Folders (searched recursively, dot-folders skipped) or .tf files.
        settings: Supplies ``max_file_bytes`` and the prompt/LLM settings.
        chat_model: The LLM; None reviews with the rules only.
        use_llm: False skips the LLM even when a model is given.

    Returns:
        A :class:`ReviewResult`; ``to_dict()`` is the JSON contract, ``exit_code()`` the CI gate.

    Raises:
        PathNotFoundError, InputError: a missing path, or no .tf file to review.
    """
    started = time.perf_counter()
    sources, skipped = collect_files(paths)
    result = ReviewResult(skipped=skipped)
    parsed: list[tuple[SourceFile, TfFile]] = []
    for source in sources:
        tf = read_tf(source.path, source.name, max_bytes=settings.max_file_bytes)
        if isinstance(tf, Skipped):
            result.skipped.append(tf)
        else:
            parsed.append((source, tf))
    if not parsed:
        reasons = "; ".join(f"{s.path}: {s.reason}" for s in result.skipped)
        raise InputError(f"No Terraform file could be reviewed ({reasons})")
    result.files = [tf.name for _, tf in parsed]
    result.sources = {tf.name: source.path for source, tf in parsed}
    parse_done = time.perf_counter()

    from opsmith.review.rules import run_rules

    rule_findings: list[Finding] = []
    for module in _modules(parsed, settings.max_file_bytes):
        rule_findings.extend(run_rules(module, warnings=result.warnings))
    rules_done = time.perf_counter()

    files = [tf for _, tf in parsed]
    llm_findings: list[Finding] = []
    if use_llm and chat_model is not None:
        from opsmith.review.llm import llm_review

        try:
            outcome = llm_review(files, rule_findings, chat_model=chat_model, settings=settings)
        except OpsmithError as exc:
            result.warnings.append(f"LLM review skipped: {_one_line(str(exc))}")
        else:
            llm_findings = outcome.findings
            result.dropped_llm_findings = outcome.dropped
            result.llm = outcome.report
            result.warnings.extend(outcome.warnings)
    llm_done = time.perf_counter()

    from opsmith.review.rules import RULES

    by_name = {tf.name: tf for tf in files}

    def block_of(file: str, line: int) -> str | None:
        tf = by_name.get(file)
        block = tf.block_at(line) if tf is not None else None
        return block.address_at(line) if block is not None else None

    keyword_rules = [(r.id, r.category, r.keywords) for r in RULES.values()]
    result.findings, duplicates = merge_findings(
        rule_findings, llm_findings, block_of=block_of, keyword_rules=keyword_rules
    )
    if result.llm is not None:
        result.llm.duplicates = duplicates
    result.timings_ms = {
        "parse": round((parse_done - started) * 1000, 1),
        "rules": round((rules_done - parse_done) * 1000, 1),
        "llm": round((llm_done - rules_done) * 1000, 1),
        "total": round((time.perf_counter() - started) * 1000, 1),
    }
    return result


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= 300 else line[:297] + "..."
