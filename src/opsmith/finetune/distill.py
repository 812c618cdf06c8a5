"""Distillation: a teacher model answers a file of prompts, and the answers become training data.

**Prompts** (``prompts.jsonl``) hold one JSON object per line, in either shape::

    {"id": "disk-1", "prompt": "Summarise this alert: ..."}
    {"id": "disk-2", "instruction": "Summarise this alert.", "input": "[FIRING:1] ..."}

``id`` is optional (a string or an integer); without one, the row's id is a hash of its text
(:func:`prompt_id`), so it is the same on every run. In the alpaca-style shape the teacher is
sent ``instruction``, a blank line, then ``input`` (when there is one). Other keys, such as an
existing ``output``, are ignored. Blank lines are skipped; any other line that is not one of
these shapes is a failure reported with its line number, never silently dropped.

**Output rows** carry the prompt's ``id`` and are either alpaca ``{"id", "instruction",
"input", "output"}`` or chat ``{"id", "messages": [user, assistant]}``. The system prompt
(``system`` or a template's) steers the teacher but is left out of the rows by default, so
the student learns the behaviour without needing the prompt; ``include_system`` keeps it as
the chat rows' first message.

**Resume.** The output file is appended to. At start, rows already in it are read and their
prompts skipped, so running the same command again after Ctrl-C, a crash or failures only
does what is left. A crash can leave a half-written last line: it is cut off (and that
prompt answered again), never duplicated. An unreadable line anywhere else is an error.

**Failures** (provider errors after the provider's own retries, empty answers, answers cut
off at the token limit, invalid prompt rows) are recorded per row, with the line number, in
``OUTPUT.failures.jsonl`` beside the output (rewritten each run, removed when a run has none)
and in the report. Failed prompts are not written to the output, so the next run retries
them. An authentication or configuration error stops the run, since every row would fail.

**Cost.** Token usage is summed over every teacher call. The cost uses the prices given
(USD per 1M input and output tokens); without them, a hosted teacher's base inference prices
from the shipped price table (``opsmith/finetune/prices.yaml``) when it lists the model, and
otherwise no cost. The report names where the prices came from.

**Concurrency.** Up to ``concurrency`` teacher calls run at once in a thread pool; the calling
thread alone writes the output, one flushed line per answer, in the order answers arrive.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from opsmith.errors import ConfigError, InputError, PathNotFoundError, ProviderAuthError
from opsmith.llm._base import ChatResponse, Message, Usage

if TYPE_CHECKING:
    from opsmith.config import Settings
    from opsmith.llm._base import ChatModel

__all__ = [
    "FORMATS",
    "TEACHER_PROVIDERS",
    "DistillFailure",
    "DistillProgress",
    "DistillPrompt",
    "DistillReport",
    "Format",
    "ProgressHook",
    "distill",
    "failures_path",
    "load_teacher",
    "parse_teacher",
    "prompt_id",
    "read_prompts",
    "system_prompt",
    "table_prices",
]

Format = Literal["alpaca", "chat"]
FORMATS: tuple[Format, ...] = ("alpaca", "chat")
#: Providers that can be a teacher (``none`` cannot answer anything).
TEACHER_PROVIDERS = ("anthropic", "openai", "local_hf")
_PROMPT_SHAPES = 'give {"prompt": TEXT} or {"instruction": TEXT, "input": TEXT (optional)}, each with an optional "id"'


@dataclass(frozen=True)
class DistillPrompt:
    """One prompt to answer: its line in the prompts file, its id, and its text."""

    line: int
    id: str
    instruction: str
    input: str = ""

    @property
    def text(self) -> str:
        """What the teacher is sent as the user message."""
        return f"{self.instruction}\n\n{self.input}" if self.input else self.instruction


@dataclass
class DistillFailure:
    """A prompt that produced no training row this run: its line, its id (if known) and why."""

    line: int
    id: str | None
    error: str


@dataclass
class DistillProgress:
    """Passed to the progress callback after each answer: work done out of this run's total."""

    done: int = 0
    total: int = 0
    answered: int = 0
    failed: int = 0


ProgressHook = Callable[[DistillProgress], None]


@dataclass
class DistillReport:
    """What a run did. ``prompts`` = ``answered`` + ``skipped_existing`` + ``failed``.

    Tokens and cost cover every teacher call this run, including answers rejected as empty or
    cut off (they were paid for). ``cost_usd`` is None when no prices were given.
    """

    teacher: str
    format: str
    output: str
    prompts: int = 0
    answered: int = 0
    skipped_existing: int = 0
    failed: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    price_source: str | None = None
    seconds: float = 0.0
    repaired_partial_line: bool = False
    failures_file: str | None = None
    failures: list[DistillFailure] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def prompt_id(instruction: str, input: str = "") -> str:
    """A stable id for a prompt without one: the first 16 hex digits of a SHA-256 of its text."""
    digest = hashlib.sha256(json.dumps([instruction, input], ensure_ascii=False).encode("utf-8")).hexdigest()
    return f"p-{digest[:16]}"


def failures_path(output: Path) -> Path:
    """The sidecar file beside ``output`` that lists this run's failed rows (``data.failures.jsonl``)."""
    return output.with_suffix(".failures.jsonl")


def table_prices(provider: str, model: str) -> tuple[float, float, str] | None:
    """Input and output USD per 1M tokens for a hosted ``model`` from the shipped price table, with the row's id.

    None for a local model, or one the table does not list (by model name, alias or id).
    """
    if provider == "local_hf":
        return None
    from opsmith.finetune.estimate import load_price_table

    wanted = model.lower()
    for offering in load_price_table().offerings:
        names = {offering.id.lower(), offering.model.lower(), *(alias.lower() for alias in offering.aliases)}
        if offering.base is not None and wanted in names:
            price = offering.base
            return price.input_per_mtok, price.output_per_mtok, f"price table: {offering.id} (as of {offering.as_of})"
    return None


def parse_teacher(spec: str) -> tuple[str, str]:
    """Split ``PROVIDER:MODEL`` (``anthropic:claude-sonnet-4-6``, ``openai:llama3.1:8b``, ``local_hf:PATH``)."""
    provider, sep, model = spec.partition(":")
    provider, model = provider.strip(), model.strip()
    if not sep or provider not in TEACHER_PROVIDERS or not model:
        raise InputError(
            f"Invalid teacher {spec!r} — give PROVIDER:MODEL with PROVIDER one of {', '.join(TEACHER_PROVIDERS)},"
            " e.g. anthropic:claude-sonnet-4-6, openai:gpt-4o-mini or local_hf:./merged-model"
        )
    return provider, model


def load_teacher(spec: str, settings: Settings) -> ChatModel:
    """Build the teacher named by ``spec`` with ``settings`` (keys, base URL, timeouts) otherwise as they are.

    A ``local_hf`` teacher is the model alone: ``OPSMITH_ADAPTER`` (meant for ``ask``) is not applied.
    """
    from opsmith.llm.registry import get_chat_model

    provider, model = parse_teacher(spec)
    chat_model = get_chat_model(settings.model_copy(update={"provider": provider, "model": model, "adapter": None}))
    if chat_model is None:  # pragma: no cover - parse_teacher rules out "none"
        raise ConfigError(f"No teacher for {spec!r} — give PROVIDER:MODEL")
    return chat_model


def system_prompt(system: str | None, template_id: str | None, settings: Settings) -> str | None:
    """The system prompt to send: ``system`` as given, or the ``system`` text of template ``template_id``."""
    if system is not None and template_id is not None:
        raise InputError("Give a system prompt or a template, not both — drop --system or --template")
    if template_id is not None:
        from opsmith.prompts import load_template

        return load_template(template_id, settings).system
    if system is not None and not system.strip():
        raise InputError("The system prompt is empty — pass some text to --system, or leave it out")
    return system


def read_prompts(path: Path) -> tuple[list[DistillPrompt], list[DistillFailure]]:
    """Parse a prompts file: the valid prompts, and a failure for every other non-blank line.

    A second row with an id already seen (the same explicit id, or the same text without one)
    is a failure naming the first row's line.
    """
    if not path.is_file():
        raise PathNotFoundError(path)
    prompts: list[DistillPrompt] = []
    failures: list[DistillFailure] = []
    first_line: dict[str, int] = {}
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                prompt = _parse_prompt(number, raw)
            except ValueError as exc:
                failures.append(DistillFailure(number, None, str(exc)))
                continue
            if prompt.id in first_line:
                failures.append(
                    DistillFailure(
                        number, prompt.id, f"duplicate id {prompt.id!r} (first on line {first_line[prompt.id]})"
                    )
                )
                continue
            first_line[prompt.id] = number
            prompts.append(prompt)
    return prompts, failures


def _parse_prompt(number: int, raw: str) -> DistillPrompt:
    try:
        row = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON ({exc.msg} at column {exc.colno})") from exc
    if not isinstance(row, dict):
        raise ValueError(f"expected a JSON object, got {type(row).__name__} — {_PROMPT_SHAPES}")
    if "prompt" in row and "instruction" in row:
        raise ValueError('both "prompt" and "instruction" — give one of them')
    key = "prompt" if "prompt" in row else "instruction"
    text = row.get(key)
    if key not in row:
        raise ValueError(f'no "prompt" or "instruction" — {_PROMPT_SHAPES}')
    if not isinstance(text, str):
        raise ValueError(f'"{key}" must be text, got {type(text).__name__}')
    if not text.strip():
        raise ValueError(f'"{key}" is empty')
    extra = row.get("input", "") if key == "instruction" else ""
    if "input" in row and key == "prompt":
        raise ValueError('"input" goes with "instruction", not "prompt" — rename "prompt" to "instruction"')
    if extra is None:
        extra = ""
    if not isinstance(extra, str):
        raise ValueError(f'"input" must be text, got {type(extra).__name__}')
    given = row.get("id")
    if given is None:
        row_id = prompt_id(text, extra)
    elif isinstance(given, str) and given.strip():
        row_id = given
    elif isinstance(given, int) and not isinstance(given, bool):
        row_id = str(given)
    else:
        raise ValueError(f'"id" must be non-empty text or an integer, got {given!r}')
    return DistillPrompt(number, row_id, text, extra)


def distill(
    prompts_path: Path | str,
    output_path: Path | str,
    *,
    teacher: ChatModel,
    system: str | None = None,
    template_id: str | None = None,
    settings: Settings | None = None,
    fmt: str = "alpaca",
    concurrency: int = 4,
    max_tokens: int | None = None,
    temperature: float | None = None,
    price_in: float | None = None,
    price_out: float | None = None,
    include_system: bool = False,
    progress: ProgressHook | None = None,
) -> DistillReport:
    """Have ``teacher`` answer every prompt not yet answered in ``output_path``; append the answers.

    Args:
        prompts_path: JSON lines of prompts (see the module docstring for the two shapes).
        output_path: JSON lines of training rows; created, or resumed when it exists.
        teacher: Any :class:`~opsmith.llm.ChatModel` (see :func:`load_teacher`).
        system: A system prompt sent with every prompt.
        template_id: Or: send the system prompt of this prompt template.
        settings: For loading the template; read from env and config when None.
        fmt: ``alpaca`` or ``chat`` rows.
        concurrency: Teacher calls in flight at once.
        max_tokens: Answer cap per call; the teacher's default when None.
        temperature: Sampling temperature; the teacher's default when None.
        price_in: USD per 1M input tokens, for ``cost_usd`` (give both prices or neither;
            with neither, the price table is used where it lists the teacher).
        price_out: USD per 1M output tokens.
        include_system: Keep the system prompt as the first message of chat rows.
        progress: Called with a :class:`DistillProgress` at the start and after each answer.

    Returns:
        A :class:`DistillReport`; failed rows are in it and in the failures file.

    Raises:
        InputError: bad arguments, a missing prompts file, or an output file that is not
            distill output in this format.
        ProviderAuthError, ConfigError: the teacher cannot be used at all.
    """
    started = time.perf_counter()
    if fmt not in FORMATS:
        raise InputError(f"Unknown format {fmt!r} — use alpaca or chat")
    if concurrency < 1:
        raise InputError(f"concurrency must be at least 1, got {concurrency}")
    if (price_in is None) != (price_out is None):
        raise InputError("Give both prices (input and output, USD per 1M tokens) or neither")
    if (price_in is not None and price_in < 0) or (price_out is not None and price_out < 0):
        raise InputError("Prices cannot be negative")
    if include_system and fmt == "alpaca":
        raise InputError("Alpaca rows have no system message — use --format chat to keep the system prompt")
    prompts_path, output_path = Path(prompts_path), Path(output_path)
    if output_path.resolve() == prompts_path.resolve():
        raise InputError(f"The output {output_path} is the prompts file — write to another file")
    if settings is None:
        from opsmith.config import load_settings

        settings = load_settings()
    system_text = system_prompt(system, template_id, settings)
    prompts, failures = read_prompts(prompts_path)
    done_ids, repaired, needs_newline = _answered_ids(output_path, fmt)
    todo = [p for p in prompts if p.id not in done_ids]
    report = DistillReport(
        teacher=f"{teacher.provider}:{teacher.model}",
        format=fmt,
        output=str(output_path),
        prompts=len(prompts) + len(failures),
        skipped_existing=len(prompts) - len(todo),
        repaired_partial_line=repaired,
    )
    sidecar = failures_path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    usage = Usage()
    state = DistillProgress(total=len(todo))

    with sidecar.open("w", encoding="utf-8") as fail_file, output_path.open("a", encoding="utf-8") as out_file:

        def fail(failure: DistillFailure) -> None:
            report.failures.append(failure)
            fail_file.write(json.dumps(asdict(failure), ensure_ascii=False) + "\n")
            fail_file.flush()

        for failure in failures:
            fail(failure)
        if needs_newline:
            out_file.write("\n")
        if progress:
            progress(replace(state))

        def call(prompt: DistillPrompt) -> ChatResponse:
            messages = [Message("user", prompt.text)]
            if system_text is not None:
                messages.insert(0, Message("system", system_text))
            return teacher.complete(messages, max_tokens=max_tokens, temperature=temperature)

        for prompt, outcome in _answers(call, todo, concurrency):
            state.done += 1
            if isinstance(outcome, BaseException):
                state.failed += 1
                fail(DistillFailure(prompt.line, prompt.id, _describe(outcome)))
            else:
                usage = usage + outcome.usage
                problem = _unusable(outcome)
                if problem:
                    state.failed += 1
                    fail(DistillFailure(prompt.line, prompt.id, problem))
                else:
                    row = _row(prompt, outcome.text, fmt, system_text if include_system else None)
                    out_file.write(json.dumps(row, ensure_ascii=False) + "\n")
                    out_file.flush()
                    state.answered += 1
            if progress:
                progress(replace(state))

    if not report.failures:
        sidecar.unlink(missing_ok=True)
    else:
        report.failures_file = str(sidecar)
    report.answered = state.answered
    report.failed = len(report.failures)
    report.input_tokens, report.output_tokens = usage.input_tokens, usage.output_tokens
    if price_in is not None and price_out is not None:
        report.price_source = "given"
    elif found := table_prices(teacher.provider, teacher.model):
        price_in, price_out, report.price_source = found
    if price_in is not None and price_out is not None:
        report.cost_usd = (usage.input_tokens * price_in + usage.output_tokens * price_out) / 1_000_000
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def _answers(
    call: Callable[[DistillPrompt], ChatResponse], todo: list[DistillPrompt], concurrency: int
) -> Iterator[tuple[DistillPrompt, ChatResponse | Exception]]:
    """Run ``call`` over ``todo`` with at most ``concurrency`` in flight; yield results as they finish.

    Exceptions become results, except those that make every further call pointless (bad key,
    bad configuration) and interrupts, which propagate after pending calls are cancelled.
    """
    queue = iter(todo)
    pending: dict[Future[ChatResponse], DistillPrompt] = {}
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="opsmith-distill")
    try:
        while True:
            # A short queue beyond the running calls keeps workers busy without reading ahead far.
            while len(pending) < 2 * concurrency and (prompt := next(queue, None)) is not None:
                pending[pool.submit(call, prompt)] = prompt
            if not pending:
                break
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            fatal: BaseException | None = None
            # In prompt order, and answers that arrived with a fatal error are still written.
            for future in sorted(finished, key=lambda f: pending[f].line):
                prompt = pending.pop(future)
                error = future.exception()
                if error is None:
                    yield prompt, future.result()
                elif isinstance(error, ProviderAuthError | ConfigError) or not isinstance(error, Exception):
                    fatal = fatal or error
                else:
                    yield prompt, error
            if fatal is not None:
                raise fatal
    finally:
        # On an interrupt, drop queued calls and do not wait for the running ones.
        pool.shutdown(wait=not pending, cancel_futures=True)


def _describe(exc: BaseException) -> str:
    message = str(exc).strip()
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _unusable(response: ChatResponse) -> str | None:
    if response.truncated:
        return (
            f"the answer was cut off at the token limit ({response.usage.output_tokens} output tokens)"
            " — raise --max-tokens and run again"
        )
    if not response.text.strip():
        return "the teacher returned an empty answer"
    return None


def _row(prompt: DistillPrompt, answer: str, fmt: str, system: str | None) -> dict[str, Any]:
    if fmt == "alpaca":
        return {"id": prompt.id, "instruction": prompt.instruction, "input": prompt.input, "output": answer}
    messages = [{"role": "user", "content": prompt.text}, {"role": "assistant", "content": answer}]
    if system is not None:
        messages.insert(0, {"role": "system", "content": system})
    return {"id": prompt.id, "messages": messages}


def _answered_ids(output: Path, fmt: str) -> tuple[set[str], bool, bool]:
    """Ids already in ``output``; whether a half-written last line was cut off; whether a newline is missing.

    Only the last line can be half-written (each row is written whole and flushed), so a bad
    last line is removed from the file; a bad line anywhere else is an :class:`InputError`.
    """
    if not output.exists():
        return set(), False, False
    if not output.is_file():
        raise InputError(f"The output {output} is not a file — pass a .jsonl file path to -o")
    data = output.read_bytes()
    ids: set[str] = set()
    offset = 0
    number = 0
    while offset < len(data):
        end = data.find(b"\n", offset)
        last = end == -1
        raw = data[offset:] if last else data[offset:end]
        number += 1
        start, offset = offset, len(data) if last else end + 1
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            if last:
                with output.open("r+b") as handle:
                    handle.truncate(start)
                return ids, True, False
            raise InputError(
                f"Line {number} of {output} is not valid JSON — fix or delete that line, or write to a new file"
            ) from None
        ids.add(_existing_id(row, number, output, fmt))
        if last:
            return ids, False, True
    return ids, False, False


def _existing_id(row: Any, number: int, output: Path, fmt: str) -> str:
    if not isinstance(row, dict) or not isinstance(row.get("id"), str):
        raise InputError(f"Line {number} of {output} has no id, so it is not distill output — write to a new file")
    found = "chat" if "messages" in row else "alpaca" if "output" in row else None
    if found != fmt:
        raise InputError(
            f"Line {number} of {output} is {'a ' + found if found else 'not an alpaca or chat'} row"
            f" but the format is {fmt} — pass --format {found or 'alpaca'} or write to a new file"
        )
    result: str = row["id"]
    return result
