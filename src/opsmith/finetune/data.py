"""Training-data validation for fine-tuning: alpaca and chat JSONL, problems by line, token stats.

:func:`validate_file` reads a JSONL file once and reports every problem with its 1-based line
number, plus token-length statistics; :func:`fix_file` writes the rows that passed to a new file.

**Formats.**

- *alpaca*: ``{"instruction": str, "input": str (optional), "output": str}``. The prompt is the
  instruction, followed by a blank line and the input when there is one; the completion is the
  output.
- *chat*: ``{"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}`` with at
  least one user turn, ending with an assistant turn. The completion is the final assistant turn;
  the prompt is every message before it.
- *auto*: the format of the first row whose keys name one (``messages`` → chat; ``instruction`` or
  ``output`` → alpaca). A row of the other format later in the file is a ``mixed_format`` error.

Other keys in a row are ignored.

**Problems** (``Problem.kind``). These are errors; :func:`fix_file` drops the rows that have them:

- ``invalid_json`` (not UTF-8, not JSON, or nested too deeply to read), ``not_object``,
  ``unknown_format``, ``mixed_format``;
- ``missing_field``, ``empty_field`` (blank after stripping whitespace), ``wrong_type``;
- ``unknown_role`` (chat roles other than system/user/assistant), ``bad_turns`` (no user turn, or
  not ending with an assistant turn);
- ``copied_output``: after normalisation (below) the output equals the instruction or the input,
  or its words appear, in order, inside the input (the instruction when there is no input; the
  last user turn in chat) and cover at least half of it: it "merely copies", while a short
  extracted span is fine;
- ``duplicate``: the same example (every field, exactly) as an earlier line, which it names;
- ``near_duplicate``: either the same *normalised prompt* as an earlier line (a repeat, or a
  contradiction when the outputs differ), or a word-bigram Jaccard similarity of at least
  ``near_duplicate_threshold`` (default 0.8) with an earlier line's *example text*. The example
  text is the input and output (the instruction and output when there is no input; the user and
  assistant turns in chat), leaving out the instruction or system prompt that is often shared by
  every row; its shingles are the pairs of consecutive words plus (last word, end). One
  substituted word in a 20-word text gives 18/22 = 0.82. Candidates are found in O(n) with
  MinHash (32 hashes) and LSH (bands of 4 at the default threshold: a pair at exactly 0.8 is
  found with probability 0.985, one at 0.9 with 0.9998), and every candidate is confirmed with
  the exact Jaccard similarity, so nothing below the threshold is ever reported.
- ``too_long``: prompt + completion tokens over ``sequence_len``;
- ``lone_surrogate``: a string holds half of a UTF-16 surrogate pair (``"\\ud83d"``, typically
  an emoji cut off mid-character). It is not text: tokenizers and ``datasets`` refuse it. The
  row is still checked without it, and :func:`fix_file` *repairs* the row, removing the lone
  surrogate, rather than dropping it.

Each row gets at most one of ``copied_output``, ``duplicate``, ``near_duplicate`` and
``too_long`` (in that order). Warnings: ``few_examples`` (fewer than ``min_examples`` usable
rows, default 1,000), ``approximate_tokens`` (a base model was named but its tokenizer is not
available locally) and ``blank_lines``. Problems about the whole file have line 0.

**Normalisation** (copies and near-duplicates): case-folded, ASCII punctuation replaced by
spaces, whitespace collapsed.

**Token counts** cover the text of the fields only: a prompt template or chat template adds a
few tokens per row, so leave headroom under ``sequence_len``. With a tokenizer (the base model's,
loaded with ``local_files_only=True``) the counts are exact for that text; without one they use
the approximation ``ceil(characters / 4)`` per text (about four characters per token is the
usual figure for English with BPE tokenizers; code and non-English text run more tokens per
character). ``ValidationReport.token_counter`` says which was used.
"""

from __future__ import annotations

import json
import math
import os
import re
import string
from array import array
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from opsmith.errors import InputError, PathNotFoundError

__all__ = [
    "APPROX_COUNTER",
    "MIN_EXAMPLES",
    "ROLES",
    "DataStats",
    "FixResult",
    "Format",
    "LengthStats",
    "Problem",
    "TokenCounter",
    "ValidationReport",
    "check_fix_target",
    "fix_file",
    "tokenizer_counter",
    "validate_file",
]

Format = Literal["alpaca", "chat"]
#: opsmith's recommended minimum number of examples for teaching a small open model a new behaviour.
MIN_EXAMPLES = 1000
ROLES = ("system", "user", "assistant")

# Kinds that drop a row in --fix, in the order they are checked.
_CONTENT_KINDS = ("copied_output", "duplicate", "near_duplicate", "too_long")
# Kinds that --fix repairs instead: the row is kept, rewritten without the problem.
_REPAIRED_KINDS = ("lone_surrogate",)
_SURROGATE = re.compile("[\ud800-\udfff]")
# The JSON escapes that decode to one (a regex beats two substring scans on backslash-heavy rows).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_PUNCTUATION = string.punctuation.encode()
_TO_SPACE = bytes.maketrans(_PUNCTUATION, b" " * len(_PUNCTUATION))
# MinHash/LSH shape: 32 hashes in bands of 4 rows (8 bands) for the default threshold 0.8. A pair
# at Jaccard 0.8 then shares a band with probability 1 - (1 - 0.8**4)**8 = 0.985 (0.9998 at 0.9)
# and one at 0.3 with 0.06. Lower thresholds use narrower bands (see _band_rows). Every candidate
# is then checked exactly.
_HASHES = 32
_SEED = 20240607


@dataclass(frozen=True)
class Problem:
    """One problem found in a data file: 1-based ``line`` (0 for the whole file), ``kind``, ``message``."""

    line: int
    kind: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "kind": self.kind, "message": self.message}


@dataclass(frozen=True)
class LengthStats:
    """Distribution of token lengths: min, median, 95th percentile (nearest rank) and max."""

    min: int
    p50: int
    p95: int
    max: int

    @classmethod
    def of(cls, values: Sequence[int]) -> LengthStats:
        if not values:
            return cls(0, 0, 0, 0)
        ordered = sorted(values)

        def rank(q: float) -> int:
            return ordered[max(0, math.ceil(q * len(ordered)) - 1)]

        return cls(ordered[0], rank(0.5), rank(0.95), ordered[-1])

    def to_dict(self) -> dict[str, int]:
        return {"min": self.min, "p50": self.p50, "p95": self.p95, "max": self.max}


@dataclass(frozen=True)
class DataStats:
    """Token statistics over the structurally valid rows (what a trainer would read as-is).

    ``total_tokens`` is prompt plus completion tokens over those rows: one epoch's training tokens.
    """

    count: int
    prompt_tokens: LengthStats
    completion_tokens: LengthStats
    total_tokens: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "prompt_tokens": self.prompt_tokens.to_dict(),
            "completion_tokens": self.completion_tokens.to_dict(),
            "total_tokens": self.total_tokens,
        }


@dataclass(frozen=True)
class TokenCounter:
    """Counts tokens for a batch of texts. ``name`` is ``tokenizer:<model>`` or ``approx: chars/4``."""

    name: str
    count: Callable[[list[str]], list[int]]

    @classmethod
    def from_tokenizer(cls, tokenizer: Any, name: str | None = None) -> TokenCounter:
        """Wrap a Hugging Face tokenizer (special tokens are not added: they belong to the template)."""
        label = name or str(getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__)

        def count(texts: list[str]) -> list[int]:
            return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]

        return cls(f"tokenizer:{label}", count)


def _approx_count(texts: list[str]) -> list[int]:
    return [(len(text) + 3) // 4 for text in texts]


#: ``ceil(characters / 4)`` per text: the documented fallback when no tokenizer is available.
APPROX_COUNTER = TokenCounter("approx: chars/4", _approx_count)


def tokenizer_counter(base_model: str) -> TokenCounter | None:
    """The base model's tokenizer as a :class:`TokenCounter` if it is available locally, else ``None``.

    Never downloads: loads with ``local_files_only=True`` from a folder or the Hugging Face cache.
    """
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(base_model, local_files_only=True)
    # Any failure to load (not cached, not a tokenizer folder, a malformed repo id, a missing
    # optional dependency) means the same thing here: fall back to the approximation and say so.
    except Exception:
        return None
    return TokenCounter.from_tokenizer(tokenizer, base_model)


@dataclass
class ValidationReport:
    """What :func:`validate_file` found.

    ``records`` counts non-blank lines, ``valid`` the rows that are structurally valid and ``clean``
    those that also have no content problem (what :func:`fix_file` keeps). ``errors`` and
    ``warnings`` are sorted by line.
    """

    path: Path
    format: Format | None
    records: int
    valid: int
    clean: int
    errors: list[Problem]
    warnings: list[Problem]
    stats: DataStats
    token_counter: str
    sequence_len: int | None = None
    near_duplicate_threshold: float = 0.8
    _fingerprint: tuple[int, int] = field(default=(0, 0), repr=False)

    @property
    def ok(self) -> bool:
        return not self.errors

    def error_counts(self) -> dict[str, int]:
        return dict(Counter(problem.kind for problem in self.errors))

    def drop_reasons(self) -> dict[int, str]:
        """Line → the kind of its first error: the rows :func:`fix_file` leaves out, and why."""
        reasons: dict[int, str] = {}
        for problem in self.errors:
            if problem.line > 0 and problem.kind not in _REPAIRED_KINDS:
                reasons.setdefault(problem.line, problem.kind)
        return reasons

    def repairs(self) -> dict[int, str]:
        """Line → the kind of problem :func:`fix_file` repairs on it (for the rows it keeps)."""
        dropped = self.drop_reasons()
        return {p.line: p.kind for p in self.errors if p.kind in _REPAIRED_KINDS and p.line not in dropped}

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "format": self.format,
            "ok": self.ok,
            "records": self.records,
            "valid": self.valid,
            "clean": self.clean,
            "token_counter": self.token_counter,
            "sequence_len": self.sequence_len,
            "near_duplicate_threshold": self.near_duplicate_threshold,
            "stats": self.stats.to_dict(),
            "error_counts": self.error_counts(),
            "errors": [problem.to_dict() for problem in self.errors],
            "warnings": [problem.to_dict() for problem in self.warnings],
        }


@dataclass(frozen=True)
class FixResult:
    """What :func:`fix_file` wrote: ``kept`` rows to ``path``; ``dropped`` and ``repaired`` (kept,
    rewritten) rows counted per problem kind."""

    path: Path
    kept: int
    dropped: dict[str, int]
    repaired: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "kept": self.kept, "dropped": self.dropped, "repaired": self.repaired}


@dataclass(slots=True)
class _Row:
    """A structurally valid row, kept until the whole-file checks have run."""

    line: int
    prompt: str  # kept only when a tokenizer counts tokens after the pass
    completion: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    flagged: bool = False
    words: int = 0  # how many word ids this row added to ``_Checker.ids`` (0: not compared)


class _Vocab(dict[bytes, int]):
    """Word → small integer id, in order of first appearance (deterministic, unlike ``hash``)."""

    def __missing__(self, word: bytes) -> int:
        self[word] = index = len(self)
        return index


def _words(text: str) -> list[bytes]:
    return text.casefold().encode().translate(_TO_SPACE).split()


def _detect(obj: dict[str, Any]) -> Format | None:
    if "messages" in obj:
        return "chat"
    if "instruction" in obj or "output" in obj:
        return "alpaca"
    return None


class _Checker:
    """State for one pass over a file."""

    def __init__(self, fmt: Format | None, fmt_line: int, approximate: bool) -> None:
        self.fmt = fmt
        self.fmt_line = fmt_line
        self.approximate = approximate
        self.errors: list[Problem] = []
        self.rows: list[_Row] = []
        self.exact: dict[tuple[str, ...], int] = {}
        self.prompts: dict[bytes, int] = {}
        # Word ids of each unflagged row's example text, back to back, for near-duplicate search.
        self.ids = array("q")
        self.vocab = _Vocab()
        self._last_instruction: tuple[str, list[bytes]] = ("", [])

    def error(self, line: int, kind: str, message: str) -> None:
        self.errors.append(Problem(line, kind, message))

    def string_field(self, line: int, obj: dict[str, Any], key: str, *, required: bool) -> str | None:
        if key not in obj:
            if required:
                self.error(line, "missing_field", f"missing field '{key}'")
            return None
        value = obj[key]
        if not isinstance(value, str):
            self.error(line, "wrong_type", f"'{key}' must be a string, not {_type_name(value)}")
            return None
        if required and not value.strip():
            self.error(line, "empty_field", f"'{key}' is empty")
            return None
        return value

    def row(self, line: int, obj: Any) -> None:
        if not isinstance(obj, dict):
            self.error(line, "not_object", f"each line must be a JSON object, not {_type_name(obj)}")
            return
        detected = _detect(obj)
        if self.fmt is None:
            self.error(line, "unknown_format", "neither alpaca ('instruction', 'output') nor chat ('messages') fields")
            return
        if detected is not None and detected != self.fmt:
            origin = f" (from line {self.fmt_line})" if self.fmt_line else ""
            article = "an" if self.fmt == "alpaca" else "a"
            self.error(line, "mixed_format", f"a {detected} row in {article} {self.fmt} file{origin}")
            return
        if self.fmt == "alpaca":
            self.alpaca(line, obj)
        else:
            self.chat(line, obj)

    def alpaca(self, line: int, obj: dict[str, Any]) -> None:
        instruction, output, given_input = obj.get("instruction"), obj.get("output"), obj.get("input", "")
        # Fast path first: the checks below report each problem only when one of these fails.
        if not (
            type(instruction) is str
            and type(output) is str
            and type(given_input) is str
            and instruction.strip()
            and output.strip()
        ):
            self.string_field(line, obj, "instruction", required=True)
            self.string_field(line, obj, "input", required=False)
            self.string_field(line, obj, "output", required=True)
            return
        has_input = bool(given_input.strip())
        prompt = f"{instruction}\n\n{given_input}" if has_input else instruction
        # Datasets often repeat one instruction on every row: normalise it once.
        if self._last_instruction[0] == instruction:
            n_instruction = self._last_instruction[1]
        else:
            n_instruction = _words(instruction)
            self._last_instruction = (instruction, n_instruction)
        n_output = _words(output)
        n_input = _words(given_input) if has_input else []
        source = n_input if has_input else n_instruction
        row = _Row(line, "" if self.approximate else prompt, "" if self.approximate else output)
        self.rows.append(row)
        if self.approximate:
            row.prompt_tokens, row.completion_tokens = (len(prompt) + 3) // 4, (len(output) + 3) // 4
        if n_output in (n_instruction, source) or _mostly_contained(n_output, source):
            copied = "the input" if has_input else "the instruction"
            row.flagged = True
            self.error(line, "copied_output", f"the output merely copies {copied}")
        self.content_keys(row, ("alpaca", instruction, given_input, output), b" ".join(n_instruction + n_input))
        if not row.flagged:
            self.add_words(row, source, n_output)

    def chat(self, line: int, obj: dict[str, Any]) -> None:
        messages = obj.get("messages")
        if "messages" not in obj:
            self.error(line, "missing_field", "missing field 'messages'")
            return
        if not isinstance(messages, list):
            self.error(line, "wrong_type", f"'messages' must be a list, not {_type_name(messages)}")
            return
        if not messages:
            self.error(line, "empty_field", "'messages' is empty")
            return
        before = len(self.errors)
        turns: list[tuple[str, str]] = []
        for index, message in enumerate(messages):
            where = f"messages[{index}]"
            if not isinstance(message, dict):
                self.error(line, "wrong_type", f"{where} must be an object, not {_type_name(message)}")
                continue
            role, content = message.get("role"), message.get("content")
            if "role" not in message:
                self.error(line, "missing_field", f"{where} has no 'role'")
            elif not isinstance(role, str):
                self.error(line, "wrong_type", f"{where}.role must be a string, not {_type_name(role)}")
            elif role not in ROLES:
                hint = {"human": "user", "gpt": "assistant", "bot": "assistant", "model": "assistant"}.get(role)
                fix = f" (use '{hint}')" if hint else ""
                self.error(line, "unknown_role", f"{where}.role '{role}' is not system, user or assistant{fix}")
            if "content" not in message:
                self.error(line, "missing_field", f"{where} has no 'content'")
            elif not isinstance(content, str):
                self.error(line, "wrong_type", f"{where}.content must be a string, not {_type_name(content)}")
            elif not content.strip():
                self.error(line, "empty_field", f"{where}.content is empty")
            if isinstance(role, str) and isinstance(content, str):
                turns.append((role, content))
        if len(self.errors) > before:
            return
        if not any(role == "user" for role, _ in turns):
            self.error(line, "bad_turns", "no user turn")
        if turns[-1][0] != "assistant":
            self.error(line, "bad_turns", f"the last turn is '{turns[-1][0]}'; it must be 'assistant'")
        if len(self.errors) > before:
            return
        prompt = "\n".join(content for _, content in turns[:-1])
        completion = turns[-1][1]
        normalised = [_words(content) for _, content in turns]
        last_user = next(
            words for (role, _), words in zip(reversed(turns), reversed(normalised), strict=True) if role == "user"
        )
        row = _Row(line, "" if self.approximate else prompt, "" if self.approximate else completion)
        self.rows.append(row)
        if self.approximate:
            row.prompt_tokens, row.completion_tokens = (len(prompt) + 3) // 4, (len(completion) + 3) // 4
        if normalised[-1] == last_user or _mostly_contained(normalised[-1], last_user):
            row.flagged = True
            self.error(line, "copied_output", "the assistant turn merely copies the last user turn")
        key = ("chat", *(f"{role}\x00{content}" for role, content in turns))
        self.content_keys(row, key, b"\x00".join(b" ".join(words) for words in normalised[:-1]))
        if not row.flagged:
            example = [words for (role, _), words in zip(turns, normalised, strict=True) if role != "system"]
            self.add_words(row, *example)

    def add_words(self, row: _Row, *parts: list[bytes]) -> None:
        lookup = self.vocab.__getitem__
        for words in parts:
            self.ids.extend(map(lookup, words))
            row.words += len(words)

    def content_keys(self, row: _Row, exact_key: tuple[str, ...], prompt_norm: bytes) -> None:
        first = self.exact.setdefault(exact_key, row.line)
        first_prompt = self.prompts.setdefault(prompt_norm, row.line)
        if row.flagged:
            return
        if first != row.line:
            row.flagged = True
            self.error(row.line, "duplicate", f"duplicate of line {first}")
        elif first_prompt != row.line:
            row.flagged = True
            self.error(row.line, "near_duplicate", f"same prompt as line {first_prompt} (after normalisation)")


def _mostly_contained(output: list[bytes], source: list[bytes]) -> bool:
    """The output's words appear in order inside the source's, and cover at least half of it."""
    if not output or len(output) > len(source):
        return False
    joined, within = b" ".join(output), b" ".join(source)
    return 2 * len(joined) >= len(within) and b" " + joined + b" " in b" " + within + b" "


def _without_surrogates(value: Any, found: list[str]) -> Any:
    """``value`` with lone surrogates removed from every string (keys too); appends each to ``found``."""
    if isinstance(value, str):
        if _SURROGATE.search(value):
            found.extend(_SURROGATE.findall(value))
            return _SURROGATE.sub("", value)
        return value
    if isinstance(value, list):
        return [_without_surrogates(item, found) for item in value]
    if isinstance(value, dict):
        return {_without_surrogates(key, found): _without_surrogates(item, found) for key, item in value.items()}
    return value


def _parse(line: str) -> tuple[Any, list[str]]:
    """One row's JSON with lone surrogates removed, and the surrogates removed.

    Raises ``ValueError`` when the line cannot be read. Surrogates can only come from ``\\uD8xx``
    to ``\\uDFxx`` escapes (the line itself decoded as UTF-8), so rows without one skip the walk.
    """
    try:
        obj = json.loads(line)
        found: list[str] = []
        if _SURROGATE_ESCAPE.search(line):
            obj = _without_surrogates(obj, found)
    # CPython's decoder recurses once per level: "[[[[…" a thousand deep exhausts the stack.
    except RecursionError:
        raise ValueError("nested too deeply to read (about 1,000 levels or more)") from None
    return obj, found


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number"}.get(
        type(value), "a number" if isinstance(value, float) else type(value).__name__
    )


def _read_lines(path: Path) -> tuple[list[str | None], tuple[int, int]]:
    """Physical lines (without ``\\n``; ``None`` for a line that is not UTF-8) and a fingerprint."""
    if not path.exists():
        raise PathNotFoundError(path)
    if not path.is_file():
        raise InputError(f"{path} is not a file — pass a .jsonl file with one example per line")
    stat = path.stat()
    data = path.read_bytes()
    raw = data.split(b"\n")
    if raw and raw[-1] == b"":
        raw.pop()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        lines: list[str | None] = []
        for chunk in raw:
            try:
                lines.append(chunk.decode("utf-8"))
            except UnicodeDecodeError:
                lines.append(None)
    else:
        lines = list(text.split("\n")[: len(raw)])
    if lines and lines[0] is not None and lines[0].startswith("\ufeff"):
        lines[0] = lines[0][1:]
    return lines, (stat.st_size, stat.st_mtime_ns)


def _decide_format(lines: list[str | None], fmt: str) -> tuple[Format | None, int]:
    if fmt in ("alpaca", "chat"):
        return ("alpaca" if fmt == "alpaca" else "chat"), 0
    if fmt != "auto":
        raise InputError(f"Unknown format '{fmt}' — use alpaca, chat or auto")
    for number, line in enumerate(lines, start=1):
        if line is None or not line.strip():
            continue
        try:
            obj, _ = _parse(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and (detected := _detect(obj)) is not None:
            return detected, number
    return None, 0


def _band_rows(threshold: float) -> int:
    """The widest band (fewest false candidates) that still finds pairs at ``threshold`` with p ≥ 0.98."""
    for rows in (4, 2, 1):
        if 1 - (1 - threshold**rows) ** (_HASHES // rows) >= 0.98:
            return rows
    return 1


def _near_duplicates(ids: array[int], counts: list[int], threshold: float) -> dict[int, int]:
    """Near-duplicate pairs among texts given as word ids: ``ids`` holds the texts back to back,
    ``counts[i]`` (≥ 1) is the length of text ``i``. Returns later index → earlier index for each
    text whose word-bigram Jaccard similarity with an earlier one is at least ``threshold``.

    All texts at once in numpy: each bigram gets a 32-bit multiply-shift hash (a text's last word
    pairs with an end marker, so one-word texts have a shingle too), and ``_HASHES`` cheap
    permutations of it give the MinHash signatures. LSH pairs each text with the first text that
    shares a band; pairs whose signatures agree too little are skipped, and the exact Jaccard
    similarity of the two bigram sets confirms the rest.
    """
    import numpy as np

    if not counts:
        return {}
    lengths = np.asarray(counts, dtype=np.int64)
    ends = np.cumsum(lengths)
    starts = ends - lengths
    tokens = np.frombuffer(ids, dtype=np.int64).astype(np.uint64)
    following = np.empty_like(tokens)
    following[:-1] = tokens[1:]
    following[ends - 1] = np.uint64(2**63 - 1)  # the end marker, no word's id
    mixed = (tokens * np.uint64(0x9E3779B97F4A7C15)) ^ (following * np.uint64(0xC2B2AE3D27D4EB4F))
    bigrams = ((mixed * np.uint64(0xFF51AFD7ED558CCD)) >> np.uint64(32)).astype(np.uint32)
    rng = np.random.default_rng(_SEED)
    multipliers = rng.integers(0, 2**32, size=_HASHES, dtype=np.uint32) | np.uint32(1)
    offsets = rng.integers(0, 2**32, size=_HASHES, dtype=np.uint32)
    signatures = np.empty((len(counts), _HASHES), dtype=np.uint32)
    for j in range(_HASHES):
        signatures[:, j] = np.minimum.reduceat(bigrams * multipliers[j] + offsets[j], starts)

    pairs = []
    width = _band_rows(threshold)
    for band in range(_HASHES // width):
        keys = np.ascontiguousarray(signatures[:, band * width : (band + 1) * width]).view(
            np.dtype((np.void, 4 * width))
        )[:, 0]
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        leader = first[inverse.reshape(-1)]
        follows = np.flatnonzero(leader != np.arange(len(keys)))
        pairs.append(np.stack([follows, leader[follows]], axis=1))
    candidates = np.unique(np.concatenate(pairs), axis=0)
    if not len(candidates):
        return {}
    # 32 hashes estimate the similarity within about ±0.07 (one standard deviation at 0.8), so a
    # margin of 0.2 skips hopeless pairs while keeping nearly every real one for the exact check.
    agree = (signatures[candidates[:, 0]] == signatures[candidates[:, 1]]).mean(axis=1)
    candidates = candidates[agree >= threshold - 0.2]

    def bigram_set(i: int) -> set[int]:
        return set(bigrams[starts[i] : ends[i]].tolist())

    found: dict[int, int] = {}
    for later, earlier in candidates.tolist():
        if later in found:
            continue
        mine, theirs = bigram_set(later), bigram_set(earlier)
        if len(mine & theirs) >= threshold * len(mine | theirs):
            found[later] = earlier
    return found


def validate_file(
    path: Path | str,
    *,
    fmt: str = "auto",
    tokenizer: TokenCounter | Callable[[list[str]], list[int]] | Any | None = None,
    base_model: str | None = None,
    sequence_len: int | None = None,
    near_duplicate_threshold: float = 0.8,
    min_examples: int = MIN_EXAMPLES,
) -> ValidationReport:
    """Check a JSONL training file and report every problem by line, with token statistics.

    Args:
        path: the ``.jsonl`` file.
        fmt: ``"alpaca"``, ``"chat"`` or ``"auto"`` (from the first row that names a format).
        tokenizer: a :class:`TokenCounter`, a Hugging Face tokenizer, or a function from a list of
            texts to their token counts. ``None``: the base model's tokenizer if ``base_model`` is
            available locally, else the ``chars/4`` approximation.
        base_model: a model folder or hub id whose tokenizer counts tokens when it is on disk.
        sequence_len: rows with more prompt + completion tokens are ``too_long`` errors.
        near_duplicate_threshold: the word-bigram Jaccard similarity at which two rows are
            near-duplicates (see the module docstring).
        min_examples: fewer usable rows than this is a ``few_examples`` warning.

    Returns:
        A :class:`ValidationReport`. Raises :class:`~opsmith.errors.InputError` when the file
        cannot be read at all (missing, a folder) or an argument is invalid.
    """
    path = Path(path)
    if sequence_len is not None and sequence_len < 1:
        raise InputError(f"--sequence-len must be at least 1, not {sequence_len}")
    if not 0 < near_duplicate_threshold <= 1:
        raise InputError(f"The near-duplicate threshold must be in (0, 1], not {near_duplicate_threshold}")
    warnings: list[Problem] = []
    counter: TokenCounter
    if isinstance(tokenizer, TokenCounter):
        counter = tokenizer
    elif tokenizer is not None and hasattr(tokenizer, "name_or_path"):
        counter = TokenCounter.from_tokenizer(tokenizer)
    elif tokenizer is not None:
        counter = TokenCounter(f"tokenizer:{getattr(tokenizer, '__name__', 'custom')}", tokenizer)
    elif base_model and (loaded := tokenizer_counter(base_model)) is not None:
        counter = loaded
    else:
        counter = APPROX_COUNTER
        if base_model:
            warnings.append(
                Problem(
                    0,
                    "approximate_tokens",
                    f"no local tokenizer for '{base_model}': token counts use the approximation chars/4"
                    " — download the model (or pass its folder) for exact counts",
                )
            )
    approximate = counter is APPROX_COUNTER

    lines, fingerprint = _read_lines(path)
    file_fmt, fmt_line = _decide_format(lines, fmt)
    checker = _Checker(file_fmt, fmt_line, approximate)
    records = blank = 0
    first_blank = 0
    for number, line in enumerate(lines, start=1):
        if line is None:
            records += 1
            checker.error(number, "invalid_json", "not valid UTF-8 text")
            continue
        if not line.strip():
            blank += 1
            first_blank = first_blank or number
            continue
        records += 1
        try:
            obj, surrogates = _parse(line)
        except ValueError as exc:
            detail = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            column = f" at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
            checker.error(number, "invalid_json", f"invalid JSON: {detail}{column}")
            continue
        if surrogates:
            shown = ", ".join(sorted({f"\\u{ord(char):04x}" for char in surrogates}))
            checker.error(
                number,
                "lone_surrogate",
                f"lone surrogate {shown} (half of an emoji?) is not valid text and tokenizers reject it"
                " — --fix removes it",
            )
        checker.row(number, obj)

    rows = checker.rows
    compared = [row for row in rows if row.words]
    pairs = _near_duplicates(checker.ids, [row.words for row in compared], near_duplicate_threshold)
    for later, earlier in pairs.items():
        row = compared[later]
        row.flagged = True
        checker.error(
            row.line,
            "near_duplicate",
            f"near-duplicate of line {compared[earlier].line} (word-bigram similarity ≥ {near_duplicate_threshold:g})",
        )

    if not approximate:
        batch = 1024
        for start in range(0, len(rows), batch):
            chunk = rows[start : start + batch]
            counts = counter.count([row.prompt for row in chunk] + [row.completion for row in chunk])
            for i, row in enumerate(chunk):
                row.prompt_tokens, row.completion_tokens = counts[i], counts[len(chunk) + i]
    if sequence_len is not None:
        for row in rows:
            total = row.prompt_tokens + row.completion_tokens
            if not row.flagged and total > sequence_len:
                row.flagged = True
                checker.error(
                    row.line,
                    "too_long",
                    f"{total} tokens (prompt {row.prompt_tokens} + completion {row.completion_tokens})"
                    f" > sequence_len {sequence_len}, counted with {counter.name}",
                )

    errors = sorted(checker.errors, key=lambda problem: problem.line)
    clean = sum(1 for row in rows if not row.flagged)
    if blank:
        warnings.append(Problem(0, "blank_lines", f"{blank} blank line(s) ignored (the first is line {first_blank})"))
    if clean < min_examples:
        warnings.append(
            Problem(
                0,
                "few_examples",
                f"{clean} usable example{'' if clean == 1 else 's'}; at least {min_examples:,} are recommended"
                " to teach a new behaviour"
                " — add examples (for instance with `opsmith finetune distill`)",
            )
        )
    prompt_lengths = [row.prompt_tokens for row in rows]
    completion_lengths = [row.completion_tokens for row in rows]
    stats = DataStats(
        count=len(rows),
        prompt_tokens=LengthStats.of(prompt_lengths),
        completion_tokens=LengthStats.of(completion_lengths),
        total_tokens=sum(prompt_lengths) + sum(completion_lengths),
    )
    return ValidationReport(
        path=path,
        format=file_fmt,
        records=records,
        valid=len(rows),
        clean=clean,
        errors=errors,
        warnings=warnings,
        stats=stats,
        token_counter=counter.name,
        sequence_len=sequence_len,
        near_duplicate_threshold=near_duplicate_threshold,
        _fingerprint=fingerprint,
    )


def check_fix_target(source: Path | str, out: Path | str) -> None:
    """Refuse an output path that is the input file (or a folder): ``--fix`` never edits in place."""
    source, out = Path(source), Path(out)
    same = out.resolve() == source.resolve() or (out.exists() and source.exists() and os.path.samefile(out, source))
    if same:
        raise InputError(f"--fix {out} is the input file — write the cleaned rows to a new path, e.g. {_fixed(source)}")
    if out.is_dir():
        raise InputError(f"--fix {out} is a folder — pass a file path, e.g. {out / _fixed(source).name}")


def _fixed(source: Path) -> Path:
    return source.with_name(f"{source.stem}.fixed{source.suffix or '.jsonl'}")


def fix_file(report: ValidationReport, out: Path | str) -> FixResult:
    """Write the rows of ``report.path`` that had no error to ``out``, each line unchanged.

    Rows whose only errors are repairable (``lone_surrogate``) are kept too, re-serialised without
    the lone surrogates (valid UTF-8 JSON; key order kept, spacing normalised). Blank lines are left
    out. The input file is never modified; ``out`` is written through a temporary file and renamed
    into place. Raises :class:`~opsmith.errors.InputError` when ``out`` is the input or the input
    changed since it was validated.
    """
    source, out = Path(report.path), Path(out)
    check_fix_target(source, out)
    stat = source.stat()
    if (stat.st_size, stat.st_mtime_ns) != report._fingerprint:
        raise InputError(f"{source} changed after it was validated — run `opsmith finetune validate` again")
    reasons, repairs = report.drop_reasons(), report.repairs()
    kept: list[bytes] = []
    raw = source.read_bytes().split(b"\n")
    if raw and raw[-1] == b"":
        raw.pop()
    for number, line in enumerate(raw, start=1):
        # Blank as validate_file sees it (str.strip, so Unicode spaces count too).
        if number in reasons or not line.decode("utf-8", errors="replace").strip():
            continue
        if number in repairs:
            obj, _ = _parse(line.decode("utf-8"))
            line = json.dumps(obj, ensure_ascii=False).encode()
        kept.append(line + b"\n")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    partial.write_bytes(b"".join(kept))
    os.replace(partial, out)
    return FixResult(
        path=out, kept=len(kept), dropped=dict(Counter(reasons.values())), repaired=dict(Counter(repairs.values()))
    )
