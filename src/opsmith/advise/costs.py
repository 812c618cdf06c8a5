"""Monthly inference cost per approach, and when fine-tuning a smaller model pays back.

From the user's numbers and the shipped price table (:func:`opsmith.finetune.estimate.load_price_table`):

- per query on a model = ``(input tokens × input price + output tokens × output price) / 1e6``;
- monthly = per query × ``queries_per_day`` × 30;
- prompt-only: ``prompt_tokens`` in on the current model; RAG: ``prompt_tokens + context_tokens``;
  long-context: ``prompt_tokens + corpus_tokens``;
- fine-tune: ``prompt_tokens`` in on the candidate small model at its fine-tuned price (its base
  price where the table has none), after a one-off training cost of ``labeled_examples ×
  (prompt_tokens + output_tokens)`` tokens (one epoch) at its training price;
- ``breakeven_queries`` = training cost / (prompt-only per query − fine-tuned per query), rounded
  up: the total queries after which training has paid for itself. ``None`` when the fine-tuned
  model is not cheaper per query, the table has no training price for it, or there are no labelled
  examples to train on; ``breakeven_note`` then says which (the first of those that holds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from opsmith.errors import InputError

DAYS_PER_MONTH = 30


@dataclass(frozen=True)
class CostModel:
    """The cost figures in USD; ``to_dict()`` is ``Recommendation.costs``."""

    monthly: dict[str, float]
    per_query: dict[str, float]
    training_usd: float | None
    breakeven_queries: int | None
    assumptions: dict[str, Any]
    #: Why ``breakeven_queries`` is None (None when it is a number).
    breakeven_note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.monthly,
            "per_query": self.per_query,
            "training_usd": self.training_usd,
            "breakeven_queries": self.breakeven_queries,
            "breakeven_note": self.breakeven_note,
            "assumptions": self.assumptions,
        }


def _names(offering: Any) -> list[str]:
    return [*offering.aliases, offering.model, offering.id]


def find_offering(price_table: Any, name: str) -> Any:
    """The offering with inference prices that ``name`` names (model, alias or id), case-insensitive."""
    priced = [o for o in price_table.offerings if o.base is not None]
    wanted = name.lower()
    for offering in priced:
        if wanted in {n.lower() for n in _names(offering)}:
            return offering
    known = ", ".join(sorted(_names(o)[0] for o in priced))
    raise InputError(f"Unknown model {name!r} in the price table — use one of: {known}")


def _per_query(price: Any, input_tokens: int, output_tokens: int) -> float:
    return float(input_tokens * price.input_per_mtok + output_tokens * price.output_per_mtok) / 1e6


def cost_model(values: dict[str, Any], price_table: Any = None) -> CostModel:
    """Costs for the numbers in ``values`` (every cost key and ``corpus_tokens``, ``labeled_examples`` set)."""
    if price_table is None:
        from opsmith.finetune.estimate import load_price_table

        price_table = load_price_table()
    current = find_offering(price_table, values["current_model"])
    small = find_offering(price_table, values["candidate_small_model"])
    prompt, context, output = values["prompt_tokens"], values["context_tokens"], values["output_tokens"]
    small_price = small.fine_tuned or small.base
    per_query = {
        "prompt": _per_query(current.base, prompt, output),
        "rag": _per_query(current.base, prompt + context, output),
        "long-context": _per_query(current.base, prompt + values["corpus_tokens"], output),
        "fine-tune": _per_query(small_price, prompt, output),
    }
    queries_per_month = values["queries_per_day"] * DAYS_PER_MONTH
    training_tokens = values["labeled_examples"] * (prompt + output)
    training = None if small.training_per_mtok is None else training_tokens * small.training_per_mtok / 1e6
    # Rounded before ceil: float noise must not turn an exact 2000 queries into 2001.
    saving = per_query["prompt"] - per_query["fine-tune"]
    # No examples means no training run to pay back: "breaks even after 0 queries" would mislead.
    breakeven, note = None, None
    if saving <= 0:
        note = "the fine-tuned model is not cheaper per query, so training never pays back"
    elif training is None:
        note = f"the price table has no training price for {small.id}"
    elif values["labeled_examples"] <= 0:
        note = "labeled_examples is 0, so there is no training run to pay back (set it to price one)"
    else:
        breakeven = math.ceil(round(training / saving, 6))
    return CostModel(
        monthly={k: round(v * queries_per_month, 2) for k, v in per_query.items()},
        per_query={k: round(v, 6) for k, v in per_query.items()},
        training_usd=None if training is None else round(training, 2),
        breakeven_queries=breakeven,
        breakeven_note=note,
        assumptions={
            "days_per_month": DAYS_PER_MONTH,
            "queries_per_day": values["queries_per_day"],
            "prompt_tokens": prompt,
            "context_tokens": context,
            "corpus_tokens": values["corpus_tokens"],
            "output_tokens": output,
            "current_model": current.id,
            "candidate_small_model": small.id,
            "training_tokens": training_tokens,
            "training_epochs": 1,
            "price_table": price_table.version,
        },
    )
