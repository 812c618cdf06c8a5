"""The cost model, against numbers worked out by hand from the shipped price table."""

from __future__ import annotations

from typing import Any

import pytest

from opsmith.advise import Answers, cost_model, recommend
from opsmith.errors import InputError

# gpt-4.1: $2 in / $8 out per 1M. gpt-4.1-nano fine-tuned: $0.20 / $0.80, training $1.50 per 1M.
NUMBERS: dict[str, Any] = {
    "queries_per_day": 1000,
    "prompt_tokens": 1000,
    "context_tokens": 2000,
    "corpus_tokens": 50_000,
    "output_tokens": 200,
    "labeled_examples": 1000,
    "current_model": "gpt-4.1",
    "candidate_small_model": "gpt-4.1-nano",
}


def test_monthly_costs_training_and_breakeven_match_the_hand_computation() -> None:
    costs = cost_model(NUMBERS)
    # 30,000 queries a month. prompt: 1000×2 + 200×8 = 3,600 µ$ per query.
    assert costs.monthly == {"prompt": 108.0, "rag": 228.0, "long-context": 3108.0, "fine-tune": 10.8}
    # rag: 3000×2 + 1600 = 7,600 µ$; long-context: 51,000×2 + 1600 = 103,600 µ$; fine-tune: 200 + 160 = 360 µ$.
    assert costs.per_query == {"prompt": 0.0036, "rag": 0.0076, "long-context": 0.1036, "fine-tune": 0.00036}
    # 1,000 examples × 1,200 tokens = 1.2M tokens × $1.50 = $1.80, saving 3,240 µ$ a query → 555.6 → 556.
    assert costs.training_usd == 1.8
    assert costs.breakeven_queries == 556
    assert costs.breakeven_note is None
    assert costs.assumptions["training_tokens"] == 1_200_000


def test_breakeven_is_none_when_the_fine_tuned_model_is_not_cheaper() -> None:
    costs = cost_model({**NUMBERS, "current_model": "gpt-4.1-nano", "candidate_small_model": "gpt-4.1"})
    assert costs.monthly["fine-tune"] > costs.monthly["prompt"]
    assert costs.breakeven_queries is None
    assert costs.breakeven_note == "the fine-tuned model is not cheaper per query, so training never pays back"


def test_breakeven_is_none_without_a_training_price() -> None:
    costs = cost_model({**NUMBERS, "candidate_small_model": "fireworks/serverless-up-to-4b"})
    assert costs.training_usd is None
    assert costs.breakeven_queries is None
    assert costs.breakeven_note == "the price table has no training price for fireworks/serverless-up-to-4b"
    assert costs.monthly["fine-tune"] == pytest.approx(30_000 * (1000 * 0.1 + 200 * 0.1) / 1e6)


def test_unknown_model_names_the_known_ones() -> None:
    with pytest.raises(InputError, match=r"Unknown model 'gpt-9'.*gpt-4\.1-mini"):
        cost_model({**NUMBERS, "current_model": "gpt-9"})


def test_recommend_carries_the_costs_and_marks_the_recommended_columns() -> None:
    rec = recommend(Answers(**NUMBERS, missing_knowledge=True, needs_citations=True, too_slow_or_expensive=True))
    assert (rec.primary, rec.also) == ("rag", ["fine-tune"])
    assert rec.costs["rag"] == 228.0
    assert rec.costs["breakeven_queries"] == 556
    marked = {row["approach"]: row["recommended"] for row in rec.table}
    assert marked == {"prompt": False, "rag": True, "long-context": False, "fine-tune": True}
    assert rec.next_commands[-1] == "opsmith compare eval.jsonl --variants prompt,rag,finetuned,rag+finetuned"


def test_no_labelled_examples_means_no_breakeven() -> None:
    from opsmith.advise import DEFAULTS, cost_model
    from opsmith.finetune.estimate import load_price_table

    values = {**DEFAULTS, "labeled_examples": 0}
    model = cost_model(values, load_price_table())
    assert model.breakeven_queries is None
    # The fine-tuned model IS cheaper per query: the reason is the missing examples, and it says so.
    assert model.per_query["fine-tune"] < model.per_query["prompt"]
    assert (
        model.breakeven_note == "labeled_examples is 0, so there is no training run to pay back (set it to price one)"
    )
    assert model.to_dict()["breakeven_note"] == model.breakeven_note
