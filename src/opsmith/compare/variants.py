"""The four ways of answering that ``compare`` measures, and the offline demo model.

* ``prompt``: a system prompt and the question, no retrieval.
* ``rag``: :func:`~opsmith.rag.answer.answer_question` (retrieval + grounded prompt).
* ``finetuned``: like ``prompt``, with the fine-tuned model.
* ``rag+finetuned``: like ``rag``, with the fine-tuned model.

Every variant sees the same question text; a format-sensitive item (JSON-schema reference)
appends the same "reply with JSON matching this schema" instruction for all of them.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opsmith.compare.evalset import EvalItem
from opsmith.compare.metrics import is_refusal
from opsmith.config import DEFAULT_REFUSAL_THRESHOLD
from opsmith.llm._base import ChatModel, Message

if TYPE_CHECKING:
    from pathlib import Path

    from opsmith.config import Settings
    from opsmith.rag.retrieve import Retriever
    from opsmith.testing import FakeChatModel

VARIANTS = ("prompt", "rag", "finetuned", "rag+finetuned")
#: Bump when PROMPT_SYSTEM or the question wording changes: it is part of the cache key.
PROMPT_VERSION = 1
PROMPT_SYSTEM = (
    "You are an on-call assistant for a DevOps/SRE team. Answer the question briefly and precisely, "
    'with exact commands where they help. If you do not know the answer, say "I don\'t know".'
)
DEMO_LABEL = "demo (fake provider)"
DEMO_UNSURE = "I am not sure; check the service dashboards."


@dataclass(frozen=True)
class Variant:
    """A named way of answering: a chat model, with or without retrieval."""

    name: str
    model: ChatModel
    rag: bool
    finetuned: bool = False


def build_variants(
    names: list[str], settings: Settings, *, provider: str, model: str | None = None, adapter: Path | None = None
) -> list[Variant]:
    """The named variants (from :data:`VARIANTS`) over the models ``provider`` gives.

    ``finetuned`` variants use the fine-tuned model: ``adapter`` on the ``model`` base for
    ``local_hf``, the model id ``model`` for a hosted provider, a second demo model for ``fake``
    (the offline demonstration, :func:`demo_model`). The others use the base model. The caller
    closes each variant's model.

    Raises:
        ConfigError: ``provider`` is ``none``, or a model it needs is not given.
    """
    from opsmith.errors import ConfigError
    from opsmith.llm.registry import get_chat_model

    base: ChatModel | None
    tuned: ChatModel | None
    if provider == "fake":
        base, tuned = demo_model("demo"), demo_model(f"demo-finetuned:{model or adapter}")
    elif provider == "none":
        raise ConfigError(
            "compare needs a chat model — pass --provider anthropic|openai|local_hf,"
            " or --provider fake for an offline demo"
        )
    elif provider == "local_hf":
        from opsmith.llm.local_hf import LocalHFChatModel

        if not (model or settings.model):
            raise ConfigError("local_hf needs the base model — pass --model PATH (and --adapter DIR for finetuned)")
        base_path = model or str(settings.model)
        tokens, deadline = settings.llm_max_tokens, settings.llm_deadline
        base = LocalHFChatModel(base_path, max_tokens=tokens, deadline=deadline)
        tuned = LocalHFChatModel(base_path, adapter, max_tokens=tokens, deadline=deadline) if adapter else base
    else:
        base = get_chat_model(settings)
        tuned = get_chat_model(settings.model_copy(update={"model": model})) if model else base
    if base is None or tuned is None:
        raise ConfigError("compare needs a chat model — pass --provider, or --provider fake for an offline demo")
    return [
        Variant(n, tuned if "finetuned" in n else base, rag=n.startswith("rag"), finetuned="finetuned" in n)
        for n in names
    ]


def format_instructions(item: EvalItem) -> str | None:
    """The output format a JSON-schema item asks for; None for free-text items."""
    if item.json_schema is None:
        return None
    schema = json.dumps(item.json_schema, sort_keys=True)
    return f"Reply with only a JSON object that matches this JSON schema: {schema}"


def item_prompt(item: EvalItem) -> str:
    """The question as every variant sees it (with the format instructions, if any)."""
    instructions = format_instructions(item)
    return item.question if instructions is None else f"{item.question}\n\n{instructions}"


def run_item(
    variant: Variant,
    item: EvalItem,
    *,
    retriever: Retriever | None,
    k: int,
    refusal_threshold: float = DEFAULT_REFUSAL_THRESHOLD,
) -> dict[str, Any]:
    """Answer ``item`` with ``variant``; the raw result the metrics and the cache work from."""
    question = item_prompt(item)
    if variant.rag:
        from opsmith.rag.answer import answer_question

        if retriever is None:
            raise ValueError(f"variant {variant.name!r} needs a retriever")
        # Retrieval and refusal see the bare question; the format goes to the model only.
        answer = answer_question(
            item.question,
            retriever=retriever,
            chat_model=variant.model,
            k=k,
            refusal_threshold=refusal_threshold,
            instructions=format_instructions(item),
        )
        return {
            "text": answer.answer,
            "refused": answer.refused,
            "retrieved": [c.source for c in answer.retrieved],
            "latency_ms": answer.timings_ms["total"],
            "input_tokens": answer.usage.get("input_tokens", 0),
            "output_tokens": answer.usage.get("output_tokens", 0),
            "error": answer.error,
        }
    started = time.perf_counter()
    response = variant.model.complete(
        [Message("system", PROMPT_SYSTEM), Message("user", question)], max_tokens=1024, temperature=0.0
    )
    return {
        "text": response.text,
        "refused": is_refusal(response.text),
        "retrieved": [],
        "latency_ms": round((time.perf_counter() - started) * 1000, 2),
        "input_tokens": response.usage.input_tokens,
        "output_tokens": response.usage.output_tokens,
        "error": None,
    }


# Attributes sit on the opening line; a heading path contains ">" itself, so match to the newline.
_EXCERPT = re.compile(r"<excerpt n=\"\d+\"[^\n]*>\n(.*?)\n</excerpt>", re.DOTALL)
_SCHEMA = re.compile(r"matches this JSON schema: (\{.*\})\s*$", re.DOTALL)


def demo_reply(messages: list[Message]) -> str:
    """What the offline demonstration model says (see :func:`demo_model`)."""
    user = messages[-1].content
    excerpts = _EXCERPT.findall(user)
    schema = _SCHEMA.search(user)
    if not excerpts:
        return DEMO_UNSURE
    lines = [line for line in excerpts[0].splitlines() if line.strip()]
    if schema is not None:
        return json.dumps(_fill(json.loads(schema.group(1)), " ".join(lines)))
    return "\n\n".join(f"{text.strip()} [{n}]" for n, text in enumerate(excerpts, start=1))


def _fill(schema: dict[str, Any], text: str) -> Any:
    kind = schema.get("type")
    if "enum" in schema:
        return schema["enum"][0]
    if kind == "object":
        props = schema.get("properties", {})
        return {name: _fill(props.get(name, {}), text) for name in schema.get("required", list(props))}
    if kind == "array":
        return [_fill(schema.get("items", {}), text)] * max(1, int(schema.get("minItems", 1)))
    if kind in {"integer", "number"}:
        return int(schema.get("minimum", 1))
    if kind == "boolean":
        return True
    return text[:200] or "n/a"


def demo_model(model: str = "demo") -> FakeChatModel:
    """An offline DEMONSTRATION chat model, not a language model.

    With runbook excerpts in the prompt it quotes the excerpts, citing each
    [n] (for a JSON-schema item it fills a JSON object that validates); without excerpts it
    says it is not sure. So RAG variants "know" what retrieval brings and prompt-only ones
    know nothing: enough to exercise every part of ``compare`` without a provider.
    """
    from opsmith.testing import FakeChatModel

    return FakeChatModel(reply=demo_reply, model=model)
