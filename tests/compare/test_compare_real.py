"""compare with the real pieces: retrieval over examples/runbooks and a local_hf fine-tuned variant
built from the tiny in-code model with a LoRA adapter."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsmith.compare import EvalItem, ResultCache, Variant, compare, demo_model, load_evalset
from opsmith.compare.variants import PROMPT_SYSTEM, item_prompt
from opsmith.config import load_settings
from opsmith.finetune.tiny import build_tiny_llama
from opsmith.llm import Message
from opsmith.llm.local_hf import LocalHFChatModel
from opsmith.rag.embedder import load_embedder
from opsmith.rag.indexing import ingest
from opsmith.rag.retrieve import Retriever
from opsmith.rag.store import QdrantStore
from opsmith.testing import FakeChatModel

# Ingests every example runbook for the module, and one test runs a tiny model with an adapter.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
RUNBOOKS = REPO / "examples" / "runbooks"
_EXCERPT_SOURCE = re.compile(r'<excerpt n="\d+" source="([^"]+)"')


def prompts_by_question(model: FakeChatModel) -> dict[str, str]:
    """The user prompt of each call the model saw, keyed by the question it asked."""
    prompts: dict[str, str] = {}
    for call in model.calls:
        text = call["messages"][-1].content
        asked = re.search(r"^Question: (.*)$", text, re.MULTILINE)
        prompts[asked.group(1) if asked else text] = text
    return prompts


@pytest.fixture(scope="module")
def retriever(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Retriever]:
    settings = load_settings(home=tmp_path_factory.mktemp("compare-home"))
    embedder = load_embedder(settings)
    with QdrantStore(settings) as store:
        ingest([REPO / "examples" / "runbooks"], settings=settings, embedder=embedder, store=store)
        yield Retriever(embedder, store, settings.collection)


@pytest.fixture(scope="module")
def items() -> list[EvalItem]:
    every = {item.id: item for item in load_evalset(REPO / "examples" / "compare" / "eval.jsonl")}
    answerable = [i for i in every.values() if i.answerable and i.gold_sources and i.must_include][:4]
    unanswerable = [i for i in every.values() if not i.answerable][:2]
    return answerable + unanswerable


def test_rag_scores_come_from_what_retrieval_finds(retriever: Retriever, items: list[EvalItem], tmp_path: Path) -> None:
    # The demo model quotes whatever excerpts it is given, so "rag beats prompt" alone would hold
    # by construction. What is asserted here is what retrieval decides: which runbooks reach the
    # prompt, which questions are refused, and that breaking retrieval breaks the scores.
    prompt_model, rag_model = demo_model(), demo_model()
    variants = [Variant("prompt", prompt_model, rag=False), Variant("rag", rag_model, rag=True)]
    with ResultCache(tmp_path / "cache.sqlite") as cache:
        result = compare(items, variants, retriever=retriever, cache=cache)
    rag, prompt = result.variants["rag"], result.variants["prompt"]
    rows = {row["id"]: row["results"] for row in result.to_dict()["items"]}
    answerable = [i for i in items if i.answerable]

    assert rag["recall@k"] == 1.0  # every gold runbook was retrieved ...
    seen = prompts_by_question(rag_model)
    for item in answerable:
        assert rows[item.id]["rag"]["retrieved"][0] in item.gold_sources, item.id  # ... and ranked first
        # The gold runbook is what the model was given to quote, and what it was asked to quote from.
        assert _EXCERPT_SOURCE.findall(seen[item.question])[0] in item.gold_sources, item.id
    assert not any("<excerpt" in text for text in prompts_by_question(prompt_model).values())
    assert rag["must_include"] > prompt["must_include"]

    unanswerable = {i.id for i in items if not i.answerable}
    refused = {item_id for item_id, results in rows.items() if results["rag"]["refused"]}
    assert refused == unanswerable  # refused for too little support, and only those
    assert not {i.question for i in items if not i.answerable} & set(seen)  # refused before any LLM call
    measured = result.diagnosis["answers"]["corpus_tokens"]
    assert 10_000 < measured < 200_000  # the example runbooks, counted with the embedder's tokenizer

    # Retrieval broken on purpose: it may only search runbooks that answer none of the questions.
    gold = {source for item in items for source in item.gold_sources}
    every = {p.relative_to(RUNBOOKS).as_posix() for p in RUNBOOKS.rglob("*") if p.is_file()}
    assert gold < every
    blind = dataclasses.replace(retriever, sources=tuple(sorted(every - gold)))
    with ResultCache(tmp_path / "blind.sqlite") as cache:
        broken = compare(items, [Variant("rag", demo_model(), rag=True)], retriever=blind, cache=cache)
    assert broken.variants["rag"]["recall@k"] == 0.0
    assert broken.variants["rag"]["must_include"] < rag["must_include"]
    assert broken.variants["rag"]["score"] < rag["score"]


def test_local_hf_finetuned_variant_runs(items: list[EvalItem], tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = build_tiny_llama(tmp_path / "tiny")
    peft_model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base, local_files_only=True),
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]),
    )
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    peft_model.save_pretrained(tmp_path / "adapter")

    base_model = LocalHFChatModel(base, max_tokens=8, device="cpu")
    tuned = LocalHFChatModel(base, adapter=tmp_path / "adapter", max_tokens=8, device="cpu")
    variants = [Variant("prompt", base_model, rag=False), Variant("finetuned", tuned, rag=False, finetuned=True)]
    with ResultCache(tmp_path / "cache.sqlite") as cache:
        result = compare(items[:2], variants, retriever=None, cache=cache)
    rows = result.to_dict()["items"]
    texts = {name: [row["results"][name]["text"] for row in rows] for name in ("prompt", "finetuned")}
    # What compare recorded is what each model says to the prompt-only question (greedy decoding
    # is deterministic): the variants were not mixed up, and the adapter was applied.
    for row, item in zip(rows, items[:2], strict=True):
        asked = [Message("system", PROMPT_SYSTEM), Message("user", item_prompt(item))]
        for name, model in (("prompt", base_model), ("finetuned", tuned)):
            assert row["results"][name]["text"] == model.complete(asked, max_tokens=1024, temperature=0.0).text
    assert texts["prompt"] != texts["finetuned"]  # the adapter changes what the model says
    assert result.variants["finetuned"]["output_tokens"] > 0
    assert {c["a"] for c in result.to_dict()["comparisons"]} | {c["b"] for c in result.to_dict()["comparisons"]} == {
        "prompt",
        "finetuned",
    }
