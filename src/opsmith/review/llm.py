"""The LLM reviewer: numbered, redacted source in; checked findings out.

The built-in ``terraform-review`` prompt template gets two variables: ``files`` (each
file headed ``# file: NAME`` and every line numbered like ``  12 | resource ...``, with
secrets replaced by ``<redacted>`` first) and ``rule_findings`` (the rules' findings as
JSON, so the model does not repeat them). The reply is validated as :class:`LlmReview`
by :func:`~opsmith.llm.structured.complete_structured`, which re-asks on invalid output.

Every finding is then checked against what was sent: its file must be one of the files in
the prompt and its line inside that file, or it is dropped and counted. Its ``resource``
becomes the address of the block that really spans the line.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from opsmith.errors import OpsmithError
from opsmith.review.findings import CATEGORIES, Finding, LlmReport
from opsmith.review.hcl import TfFile
from opsmith.review.secrets import redact

if TYPE_CHECKING:
    from opsmith.config import Settings
    from opsmith.llm import ChatModel

__all__ = [
    "MAX_PROMPT_CHARS",
    "TEMPLATE_ID",
    "LlmFinding",
    "LlmOutcome",
    "LlmReview",
    "check_findings",
    "llm_review",
    "numbered_source",
    "prompt_source",
]

TEMPLATE_ID = "terraform-review"
#: Most characters of numbered source sent in one request; more files go in further requests.
MAX_PROMPT_CHARS = 60_000
_MAX_TEXT = 600


class LlmFinding(BaseModel):
    """One finding as the model reports it (the template's ``output_schema`` item)."""

    model_config = ConfigDict(extra="forbid")

    severity: Literal["critical", "warning"]
    line: int = Field(ge=1, description="A line number exactly as shown in the numbered source.")
    file: str = Field(min_length=1, description='The path after "# file:" in the source.')
    resource: str | None = Field(description="Terraform address of the enclosing block; null outside a block.")
    issue: str = Field(min_length=1, description="What is wrong and why it matters.")
    fix: str = Field(min_length=1, description="The concrete change that fixes it.")


class LlmReview(BaseModel):
    """The model's whole answer: findings by category."""

    model_config = ConfigDict(extra="forbid")

    security: list[LlmFinding]
    cost: list[LlmFinding]
    correctness: list[LlmFinding]


@dataclass
class LlmOutcome:
    """Checked LLM findings, how many were dropped, the call report and any notes."""

    findings: list[Finding]
    dropped: int
    report: LlmReport
    warnings: list[str] = field(default_factory=list)


def numbered_source(tf: TfFile, text: str | None = None) -> str:
    """``# file: NAME`` then each line as ``  12 | ...`` (``text`` replaces the file's own, e.g. redacted)."""
    lines = (tf.text if text is None else text).splitlines() or [""]
    width = max(4, len(str(len(lines))))
    body = "\n".join(f"{number:>{width}} | {line}" for number, line in enumerate(lines, start=1))
    return f"# file: {tf.name}\n{body}"


def prompt_source(tf: TfFile) -> str:
    """``tf`` exactly as the LLM gets it: secrets replaced by ``<redacted>``, then numbered."""
    return numbered_source(tf, redact(tf)[0])


def _batches(sources: list[tuple[TfFile, str]], limit: int) -> tuple[list[list[tuple[TfFile, str]]], list[str]]:
    """Files grouped into requests under ``limit`` characters; names of files too big to send at all."""
    batches: list[list[tuple[TfFile, str]]] = []
    too_big: list[str] = []
    current: list[tuple[TfFile, str]] = []
    size = 0
    for tf, numbered in sources:
        if len(numbered) > limit:
            too_big.append(tf.name)
            continue
        if current and size + len(numbered) > limit:
            batches.append(current)
            current, size = [], 0
        current.append((tf, numbered))
        size += len(numbered) + 2
    if current:
        batches.append(current)
    return batches, too_big


def llm_review(
    files: Sequence[TfFile],
    rule_findings: Sequence[Finding],
    *,
    chat_model: ChatModel,
    settings: Settings,
    max_prompt_chars: int = MAX_PROMPT_CHARS,
) -> LlmOutcome:
    """Ask ``chat_model`` (through the ``terraform-review`` template) for what the rules missed.

    Args:
        files: Parsed files; binary ones (no text) are not sent.
        rule_findings: Listed in the prompt so the model does not repeat them.
        chat_model: The provider.
        settings: For the template lookup, token limit and call log.
        max_prompt_chars: Numbered source per request; larger sets are split by file.

    Returns:
        Checked findings (``source="llm"``), the count dropped for a file or line that was
        not in the prompt, a :class:`LlmReport` and notes (files not sent).

    Raises:
        StructuredOutputError, ProviderError, TemplateError: when the first request fails.
        A later request failing keeps what earlier ones found and adds a note instead.
    """
    from opsmith.llm.calllog import CallLog
    from opsmith.llm.structured import complete_structured
    from opsmith.prompts import load_template

    template = load_template(TEMPLATE_ID, settings)
    log = CallLog.for_settings(settings)
    sources = [(tf, prompt_source(tf)) for tf in files if tf.text.strip()]
    batches, too_big = _batches(sources, max_prompt_chars)
    report = LlmReport(
        provider=str(getattr(chat_model, "provider", "")),
        model=str(getattr(chat_model, "model", "")),
        template=f"{template.id} v{template.version}",
    )
    outcome = LlmOutcome(findings=[], dropped=0, report=report)
    if too_big:
        outcome.warnings.append(
            f"LLM review skipped {len(too_big)} file(s) too large to send ({', '.join(too_big[:3])}"
            f"{', ...' if len(too_big) > 3 else ''}); the rules still covered them"
        )
    for index, batch in enumerate(batches):
        names = {tf.name for tf, _ in batch}
        already = [
            {"file": f.file, "line": f.line, "rule": f.rule, "severity": f.severity, "issue": f.issue}
            for f in rule_findings
            if f.file in names
        ]
        messages = template.render(
            {"files": "\n\n".join(numbered for _, numbered in batch), "rule_findings": json.dumps(already)}
        )
        try:
            result = complete_structured(
                chat_model,
                messages,
                LlmReview,
                max_attempts=settings.llm_max_attempts,
                max_tokens=template.params.max_tokens or settings.llm_max_tokens,
                temperature=template.params.temperature,
                log=log,
                log_context={"template_id": template.id, "template_version": template.version, "files": len(batch)},
            )
        except OpsmithError as exc:
            if index == 0:
                raise
            left = sum(len(b) for b in batches[index:])
            outcome.warnings.append(f"LLM review stopped with {left} file(s) unreviewed: {' '.join(str(exc).split())}")
            break
        report.attempts += result.attempts
        report.input_tokens += result.usage.input_tokens
        report.output_tokens += result.usage.output_tokens
        report.latency_ms += result.latency_ms
        report.call_id = result.call_id or report.call_id
        kept, dropped = check_findings(result.value, {tf.name: tf for tf, _ in batch})
        outcome.findings.extend(kept)
        outcome.dropped += dropped
    report.findings = len(outcome.findings)
    return outcome


def check_findings(review: LlmReview, sent: dict[str, TfFile]) -> tuple[list[Finding], int]:
    """Keep findings whose file was sent and whose line is in it; fix up their resource.

    Returns the kept findings (as ``source="llm"``, ``rule=None``) and the number dropped.
    """
    kept: list[Finding] = []
    dropped = 0
    for category in CATEGORIES:
        for item in getattr(review, category):
            name = item.file.strip().removeprefix("./")
            tf = sent.get(name)
            if tf is None or not 1 <= item.line <= tf.line_count:
                dropped += 1
                continue
            block = tf.block_at(item.line)
            resource = block.address_at(item.line) if block is not None else None
            issue, fix = _clean(item.issue), _clean(item.fix)
            if not issue or not fix:
                dropped += 1
                continue
            kept.append(
                Finding(
                    category=category,
                    severity=item.severity,
                    line=item.line,
                    issue=issue,
                    fix=fix,
                    file=tf.name,
                    resource=resource,
                    rule=None,
                    source="llm",
                )
            )
    return kept, dropped


def _clean(text: str) -> str:
    """One line, trimmed to a sane length."""
    line = " ".join(text.split())
    return line if len(line) <= _MAX_TEXT else line[: _MAX_TEXT - 1] + "…"
