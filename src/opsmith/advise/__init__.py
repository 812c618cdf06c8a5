"""``opsmith advise``: which technique fits — prompt, RAG, long context, fine-tuning or neither.

:func:`recommend` walks the decision tree in ``tree.yaml`` (data, not nested ifs; ``opsmith
compare`` walks the same file) with the user's :class:`Answers`, fills what is missing from
:data:`DEFAULTS`, and prices each approach with :mod:`opsmith.advise.costs`. The result, a
:class:`Recommendation`, holds the primary technique, further ones to combine (``also``), the
path with a reason per step, the costs, the comparison table and the next commands.
:func:`load_answers` reads the answers from a YAML file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opsmith.advise._tree import (
    COST_KEYS,
    DEFAULTS,
    TECHNIQUES,
    Answers,
    Question,
    Step,
    Tree,
    load_tree,
    next_question,
    questions,
    walk,
)
from opsmith.advise.costs import CostModel, cost_model

__all__ = [
    "COST_KEYS",
    "DEFAULTS",
    "TECHNIQUES",
    "Answers",
    "CostModel",
    "Question",
    "Recommendation",
    "Step",
    "Tree",
    "cost_model",
    "load_answers",
    "load_tree",
    "next_question",
    "questions",
    "recommend",
    "walk",
]

# How `opsmith compare` names the variant that measures each technique.
_COMPARE_VARIANTS = {"prompt": "prompt", "rag": "rag", "fine-tune": "finetuned", "long-context": "prompt"}


@dataclass
class Recommendation:
    """What :func:`recommend` decided; ``to_dict()`` is the ``--json`` shape."""

    primary: str
    also: list[str]
    path: list[Step]
    costs: dict[str, Any]
    table: list[dict[str, Any]]
    next_commands: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "primary": self.primary,
            "also": self.also,
            "path": [step.to_dict() for step in self.path],
            "costs": self.costs,
            "table": self.table,
            "next_commands": self.next_commands,
        }


def load_answers(path: Path) -> Answers:
    """Read :class:`Answers` from a YAML file of ``key: value`` (``opsmith advise --answers``).

    Missing keys stay unanswered (``recommend`` gives them the defaults).

    Raises:
        PathNotFoundError: no such file.
        InputError: not YAML, not a mapping, an unknown key or a bad value; the message names the key.
    """
    import yaml
    from pydantic import ValidationError

    from opsmith.errors import InputError, PathNotFoundError

    if not path.is_file():
        raise PathNotFoundError(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InputError(
            f"Answers file {path} is not valid YAML ({' '.join(str(exc).split())}) — fix the file"
        ) from exc
    if not isinstance(data, dict):
        raise InputError(f"Answers file {path} must be a mapping of key: value — see docs/advise.md")
    try:
        return Answers.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        if first["type"] == "extra_forbidden":
            known = ", ".join(Answers.model_fields)
            raise InputError(f"Unknown key {key!r} in {path} — use one of: {known}") from exc
        raise InputError(f"Bad value for {key!r} in {path}: {first['msg']} — see docs/advise.md") from exc


def recommend(answers: Answers, *, tree: Tree | None = None, price_table: Any = None) -> Recommendation:
    """Walk the tree with ``answers`` (``None`` values take :data:`DEFAULTS`) and price each approach.

    Args:
        answers: what the user said; unanswered keys use the documented defaults.
        tree: a decision tree (default: the shipped ``tree.yaml``).
        price_table: a :class:`~opsmith.finetune.estimate.PriceTable` (default: the shipped one).

    Returns:
        The :class:`Recommendation`. Raises :class:`~opsmith.errors.InputError` for a model name
        the price table does not know.
    """
    tree = tree or load_tree()
    given = answers.model_dump()
    values = {key: DEFAULTS[key] if value is None else value for key, value in given.items()}
    result = walk(tree, values)
    chosen = result.techniques or [tree.fallback.primary]
    path = result.path if result.techniques else [*result.path, Step("Recommendation", None, tree.fallback.reason)]
    primary, also = chosen[0], chosen[1:]
    costs = cost_model(values, price_table)
    table = [
        {
            "approach": name,
            **tree.techniques[name].model_dump(exclude={"commands"}),
            "monthly_cost_usd": costs.monthly[name],
            "recommended": name in chosen,
        }
        for name in TECHNIQUES
    ]
    return Recommendation(
        primary=primary,
        also=also,
        path=path,
        costs=costs.to_dict(),
        table=table,
        next_commands=_next_commands(tree, chosen, result.commands),
    )


def _next_commands(tree: Tree, chosen: list[str], extra: list[str]) -> list[str]:
    commands = list(extra)
    for name in chosen:
        if name in tree.techniques:
            commands.extend(c for c in tree.techniques[name].commands if c not in commands)
    variants = [_COMPARE_VARIANTS[name] for name in chosen if name in _COMPARE_VARIANTS]
    if {"rag", "finetuned"} <= set(variants):
        variants.append("rag+finetuned")
    if variants:
        # Always measure against the prompt-only baseline before committing.
        ordered = list(dict.fromkeys(["prompt", *variants]))
        commands.append(f"opsmith compare eval.jsonl --variants {','.join(ordered)}")
    return commands
