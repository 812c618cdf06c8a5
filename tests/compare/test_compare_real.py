"""compare with the real pieces: retrieval over examples/runbooks and a local_hf fine-tuned variant
built from the tiny in-code model with a LoRA adapter."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from opsmith.compare import EvalItem, ResultCache, Variant, compare, demo_model, load_evalset
from opsmith.config import load_settings
from opsmith.finetune.tiny import build_tiny_llama
from opsmith.llm.local_hf import LocalHFChatModel
from opsmith.rag.embedder import load_embedder
from opsmith.rag.ingest import ingest
from opsmith.rag.retrieve import Retriever
from opsmith.rag.store import QdrantStore

REPO = Path(__file__).resolve().parents[2]


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


def test_rag_beats_prompt_only_on_real_retrieval(retriever: Retriever, items: list[EvalItem], tmp_path: Path) -> None:
    variants = [Variant("prompt", demo_model(), rag=False), Variant("rag", demo_model(), rag=True)]
    with ResultCache(tmp_path / "cache.sqlite") as cache:
        result = compare(items, variants, retriever=retriever, cache=cache)
    rag, prompt = result.variants["rag"], result.variants["prompt"]
    assert rag["recall@k"] == 1.0  # every gold runbook was retrieved
    assert rag["must_include"] > prompt["must_include"] == 0.0
    assert rag["score"] > prompt["score"]
    unanswerable = {i.id for i in items if not i.answerable}
    refused = {row["id"] for row in result.to_dict()["items"] if row["results"]["rag"]["refused"]}
    assert unanswerable <= refused
    measured = result.diagnosis["answers"]["corpus_tokens"]
    assert 10_000 < measured < 200_000  # the example runbooks, counted with the embedder's tokenizer


def test_local_hf_finetuned_variant_runs(items: list[EvalItem], tmp_path: Path) -> None:
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
    assert all(isinstance(t, str) for t in texts["prompt"] + texts["finetuned"])
    assert texts["prompt"] != texts["finetuned"]  # the adapter changes what the model says
    assert result.variants["finetuned"]["output_tokens"] > 0
    assert {c["a"] for c in result.to_dict()["comparisons"]} | {c["b"] for c in result.to_dict()["comparisons"]} == {
        "prompt",
        "finetuned",
    }
