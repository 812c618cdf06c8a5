"""The harness: every variant on every item, cached, scored, compared and diagnosed."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import TYPE_CHECKING, Any

from opsmith.compare.cache import ResultCache, config_hash
from opsmith.compare.diagnosis import aggregate, diagnose_item, recommend_from
from opsmith.compare.evalset import EvalItem
from opsmith.compare.metrics import mean, percentile, recall_at_k, score_item
from opsmith.compare.stats import paired_bootstrap
from opsmith.compare.variants import DEMO_LABEL, PROMPT_VERSION, Variant, item_prompt, run_item
from opsmith.config import DEFAULT_REFUSAL_THRESHOLD

if TYPE_CHECKING:
    from opsmith.finetune.estimate import PriceTable
    from opsmith.rag.retrieve import Retriever


@dataclass
class CompareResult:
    """What ``opsmith compare`` returns; ``to_dict`` is the ``--json`` shape."""

    variants: dict[str, dict[str, Any]]
    comparisons: list[dict[str, Any]]
    diagnosis: dict[str, Any]
    recommendation: dict[str, Any] | None
    items: list[dict[str, Any]]
    demo: bool = False
    forgetting: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": DEMO_LABEL if self.demo else None,
            "variants": self.variants,
            "comparisons": self.comparisons,
            "diagnosis": self.diagnosis,
            "recommendation": self.recommendation,
            "forgetting": self.forgetting,
            "items": self.items,
            "notes": self.notes,
        }


def cost_per_1k(
    variant: Variant, input_tokens: float, output_tokens: float, prices: PriceTable | None
) -> tuple[float | None, str]:
    """USD per 1,000 queries at the mean token counts, and a note saying where it comes from."""
    provider, model = variant.model.provider, variant.model.model
    if provider == "local_hf":
        return 0.0, "local model: no marginal API cost (hardware not counted)"
    if provider == "fake":
        return None, f"{DEMO_LABEL}: no price"
    for offering in prices.offerings if prices else ():
        if model in {offering.model, offering.id, *offering.aliases}:
            price = offering.fine_tuned if variant.finetuned and offering.fine_tuned else offering.base
            if price is None:
                break
            dollars = 1000 * (input_tokens * price.input_per_mtok + output_tokens * price.output_per_mtok) / 1e6
            return round(dollars, 4), f"price table: {offering.id} (as of {offering.as_of})"
    return None, f"{model} is not in the price table — add it with --price-table or see finetune/prices.yaml"


def run_variants(
    items: Sequence[EvalItem],
    variants: Sequence[Variant],
    *,
    retriever: Retriever | None,
    k: int,
    cache: ResultCache,
    config: dict[str, Any],
    refusal_threshold: float = DEFAULT_REFUSAL_THRESHOLD,
    on_result: Callable[[], None] | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Raw results as variant -> item id -> result, from the cache where present."""
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for variant in variants:
        per_item = results.setdefault(variant.name, {})
        for item in items:
            key = config_hash(
                **config,
                variant=variant.name,
                provider=variant.model.provider,
                model=variant.model.model,
                prompt_version=PROMPT_VERSION,
                question=item_prompt(item),
                k=k if variant.rag else None,
                refusal_threshold=refusal_threshold if variant.rag else None,
            )
            raw = cache.get(variant.name, item.id, key)
            if raw is None:
                raw = run_item(variant, item, retriever=retriever, k=k, refusal_threshold=refusal_threshold)
                cache.put(variant.name, item.id, key, raw)
            per_item[item.id] = {**raw, **score_item(item, raw["text"], raw["refused"])}
            if variant.rag and item.gold_sources:
                per_item[item.id]["recall@k"] = recall_at_k(raw["retrieved"], item.gold_sources, k)
            if on_result:
                on_result()
    return results


def summarize(variant: Variant, rows: list[dict[str, Any]], prices: PriceTable | None) -> dict[str, Any]:
    """Aggregate metrics of one variant over its item results."""
    latencies = [r["latency_ms"] for r in rows]
    tokens_in = mean([r["input_tokens"] for r in rows]) or 0.0
    tokens_out = mean([r["output_tokens"] for r in rows]) or 0.0
    cost, cost_note = cost_per_1k(variant, tokens_in, tokens_out, prices)
    recalls = [r["recall@k"] for r in rows if r.get("recall@k") is not None]
    return {
        "provider": variant.model.provider,
        "model": variant.model.model,
        "score": mean([r["score"] for r in rows]),
        "exact_match": mean([r["exact_match"] for r in rows if "exact_match" in r]),
        "token_f1": mean([r["token_f1"] for r in rows if "token_f1" in r]),
        "must_include": mean([r["must_include"] for r in rows if "must_include" in r]),
        "schema_valid": mean([float(r["schema_valid"]) for r in rows if "schema_valid" in r]),
        "refusal_correct": mean([float(r["refusal_correct"]) for r in rows]),
        "recall@k": mean(recalls),
        "latency_p50_ms": percentile(latencies, 50),
        "latency_p95_ms": percentile(latencies, 95),
        "input_tokens": tokens_in,
        "output_tokens": tokens_out,
        "cost_per_1k_usd": cost,
        "cost_note": cost_note,
        "errors": sum(1 for r in rows if r.get("error")),
    }


def compare(
    items: Sequence[EvalItem],
    variants: Sequence[Variant],
    *,
    retriever: Retriever | None,
    cache: ResultCache,
    k: int = 5,
    config: dict[str, Any] | None = None,
    prices: PriceTable | None = None,
    general: Sequence[EvalItem] = (),
    refusal_threshold: float = DEFAULT_REFUSAL_THRESHOLD,
    on_result: Callable[[], None] | None = None,
) -> CompareResult:
    """Run ``variants`` on ``items`` and measure them against each other.

    Args:
        items: the eval set (see :mod:`opsmith.compare.evalset`).
        variants: the answering setups; ``rag`` ones need ``retriever``.
        cache: where results are kept between runs, keyed by ``config`` and the variant.
        k: chunks retrieved per question by RAG variants (and the k of recall@k).
        prices: the price table for cost per 1k queries (None: costs are null).
        refusal_threshold: RAG variants refuse below this retrieval support (settings' value).
        general: a general-purpose set run on ``prompt`` and ``finetuned`` (forgetting check).
        on_result: called after each (variant, item) result, for a progress bar.

    Returns:
        A :class:`CompareResult` with metrics, paired bootstrap comparisons, the per-item
        diagnosis and ``advise``'s recommendation.
    """
    config = config or {}
    raw = run_variants(
        items,
        variants,
        retriever=retriever,
        k=k,
        cache=cache,
        config=config,
        refusal_threshold=refusal_threshold,
        on_result=on_result,
    )
    names = [v.name for v in variants]
    metrics = {v.name: summarize(v, [raw[v.name][i.id] for i in items], prices) for v in variants}
    comparisons = [
        paired_bootstrap(a, [raw[a][i.id]["score"] for i in items], b, [raw[b][i.id]["score"] for i in items]).to_dict()
        for a, b in combinations(names, 2)
    ]
    per_item = {i.id: diagnose_item(i, {n: raw[n][i.id] for n in names}) for i in items}
    best = max((m["score"] or 0.0) for m in metrics.values())
    diagnosis = aggregate(per_item, list(items), best, corpus_tokens=_corpus_tokens(retriever))
    recommendation = recommend_from(diagnosis["answers"])
    rows = [
        {
            "id": i.id,
            "answerable": i.answerable,
            "diagnosis": per_item[i.id],
            "results": {n: raw[n][i.id] for n in names},
        }
        for i in items
    ]
    forgetting = None
    by_name = {v.name: v for v in variants}
    if general and "prompt" in by_name and "finetuned" in by_name:
        pair = [by_name["prompt"], by_name["finetuned"]]
        general_raw = run_variants(
            general, pair, retriever=None, k=k, cache=cache, config={**config, "set": "general"}, on_result=on_result
        )
        base = mean([general_raw["prompt"][i.id]["score"] for i in general]) or 0.0
        tuned = mean([general_raw["finetuned"][i.id]["score"] for i in general]) or 0.0
        test = paired_bootstrap(
            "prompt",
            [general_raw["prompt"][i.id]["score"] for i in general],
            "finetuned",
            [general_raw["finetuned"][i.id]["score"] for i in general],
        )
        forgetting = {
            "items": len(general),
            "base_score": base,
            "finetuned_score": tuned,
            "regression": round(base - tuned, 4),
            "comparison": test.to_dict(),
        }
    notes = sorted({m["cost_note"] for m in metrics.values()})
    demo = any(v.model.provider == "fake" for v in variants)
    return CompareResult(metrics, comparisons, diagnosis, recommendation, rows, demo, forgetting, notes)


def _corpus_tokens(retriever: Retriever | None) -> int | None:
    """Tokens in the indexed collection (the embedder's tokenizer), or None without an index."""
    if retriever is None:
        return None
    chunks = retriever.store.all_chunks(retriever.collection)
    return sum(retriever.embedder.count_tokens(chunk.text) for chunk in chunks)
