"""The decision tree: the answers it reads, the YAML it is stored as, and the walk through it."""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from opsmith.errors import InputError

TREE_FILE = Path(__file__).with_name("tree.yaml")

Technique = Literal["prompt", "rag", "fine-tune", "long-context", "neither"]
TECHNIQUES: tuple[str, ...] = ("prompt", "rag", "long-context", "fine-tune")


class Answers(BaseModel):
    """What the user knows about their task; ``None`` = not answered (asked, or a default)."""

    model_config = ConfigDict(extra="forbid")

    missing_knowledge: bool | None = None
    behavior_wrong: bool | None = None
    prompting_tried: bool | None = None
    still_wrong_after_prompting: bool | None = None
    too_slow_or_expensive: bool | None = None
    fundamentally_incapable: bool | None = None
    knowledge_changes_often: bool | None = None
    needs_citations: bool | None = None
    labeled_examples: int | None = Field(default=None, ge=0)
    corpus_tokens: int | None = Field(default=None, ge=0)
    queries_per_day: int | None = Field(default=None, ge=0)
    prompt_tokens: int | None = Field(default=None, ge=0)
    context_tokens: int | None = Field(default=None, ge=0)
    output_tokens: int | None = Field(default=None, ge=0)
    current_model: str | None = None
    candidate_small_model: str | None = None


#: The value a key takes when it is not answered (``--answers`` without a TTY). See docs/advise.md.
DEFAULTS: dict[str, object] = {
    "missing_knowledge": False,
    "behavior_wrong": False,
    "prompting_tried": False,
    "still_wrong_after_prompting": False,
    "too_slow_or_expensive": False,
    "fundamentally_incapable": False,
    "knowledge_changes_often": False,
    "needs_citations": False,
    "labeled_examples": 0,
    "corpus_tokens": 1_000_000,
    "queries_per_day": 1_000,
    "prompt_tokens": 500,
    "context_tokens": 2_000,
    "output_tokens": 300,
    "current_model": "gpt-4.1",
    "candidate_small_model": "gpt-4.1-nano",
}

#: Keys the cost model reads (asked after the tree's questions on a TTY).
COST_KEYS: tuple[str, ...] = (
    "queries_per_day",
    "prompt_tokens",
    "context_tokens",
    "output_tokens",
    "current_model",
    "candidate_small_model",
)

_OPS: dict[str, Callable[[Any, Any], bool]] = {"<=": operator.le, ">=": operator.ge}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Gate(_Strict):
    op: Literal["<=", ">="]
    value: int


class Branch(_Strict):
    reason: str = Field(min_length=1)
    next: str | None = None
    add: Technique | None = None
    commands: list[str] = Field(default_factory=list)
    #: Answers that also argue for this branch although the walk does not ask about them here:
    #: a boolean key -> the sentence added to ``reason`` when that answer is yes.
    also_because: dict[str, str] = Field(default_factory=dict)


class Node(_Strict):
    question: str = Field(min_length=1)
    key: str
    gate: Gate | None = None
    when_yes: Branch
    when_no: Branch


class Fallback(_Strict):
    primary: Technique
    reason: str


class TechniqueInfo(_Strict):
    changes: str
    time_to_production: str
    maintenance: str
    freshness: str
    data_required: str
    commands: list[str]


class Tree(_Strict):
    """The validated ``tree.yaml``: ``nodes`` by id, the ``start`` node, and per-technique facts."""

    version: int
    start: str
    fallback: Fallback
    nodes: dict[str, Node]
    techniques: dict[str, TechniqueInfo]

    @model_validator(mode="after")
    def _check(self) -> Tree:
        fields = Answers.model_fields
        for node_id, node in self.nodes.items():
            if node.key not in fields:
                raise ValueError(f"node {node_id!r}: key {node.key!r} is not an answers key")
            numeric = fields[node.key].annotation == (int | None)
            if numeric != (node.gate is not None):
                raise ValueError(f"node {node_id!r}: a gate needs a numeric key and a numeric key needs a gate")
            for branch in (node.when_yes, node.when_no):
                if branch.next is not None and branch.next not in self.nodes:
                    raise ValueError(f"node {node_id!r}: next {branch.next!r} is not a node")
                for key in branch.also_because:
                    if key not in fields or fields[key].annotation != (bool | None):
                        raise ValueError(f"node {node_id!r}: also_because key {key!r} is not a yes/no answers key")
        if set(self.techniques) != set(TECHNIQUES):
            raise ValueError(f"techniques must be exactly {', '.join(TECHNIQUES)}")
        if self.start not in self.nodes:
            raise ValueError(f"start {self.start!r} is not a node")
        _check_acyclic(self)
        return self


def _check_acyclic(tree: Tree) -> None:
    def visit(node_id: str, seen: tuple[str, ...]) -> None:
        if node_id in seen:
            raise ValueError(f"the tree loops back to node {node_id!r}")
        node = tree.nodes[node_id]
        for branch in (node.when_yes, node.when_no):
            if branch.next is not None:
                visit(branch.next, (*seen, node_id))

    visit(tree.start, ())


@cache
def _load_shipped() -> Tree:
    return load_tree(TREE_FILE)


def load_tree(path: Path | str | None = None) -> Tree:
    """The shipped decision tree (``tree.yaml``), or one of the same shape at ``path``."""
    import yaml

    if path is None:
        return _load_shipped()
    source = Path(path)
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8"))
        return Tree.model_validate(data)
    except OSError as exc:
        raise InputError(f"Cannot read decision tree {source} ({exc}) — pass an existing YAML file") from exc
    except (yaml.YAMLError, ValidationError) as exc:
        detail = " ".join(str(exc).split())
        raise InputError(f"Decision tree {source} is invalid ({detail}) — fix the file") from exc


@dataclass(frozen=True)
class Question:
    """One question to ask: the answers ``key``, its text and the kind of value it takes."""

    key: str
    text: str
    kind: Literal["bool", "int", "str"]


@dataclass
class Step:
    """One node of the walk: the question, the answer used and why it led where it did."""

    question: str
    answer: object
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {"question": self.question, "answer": self.answer, "reason": self.reason}


@dataclass
class Walk:
    """Where a walk ended: the path taken, techniques in the order added, and extra commands."""

    path: list[Step] = field(default_factory=list)
    techniques: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    taken: list[tuple[str, bool]] = field(default_factory=list)  # (node id, branch), for the tests
    unanswered: Question | None = None


def _question(tree: Tree, node: Node) -> Question:
    annotation = Answers.model_fields[node.key].annotation
    kind: Literal["bool", "int", "str"] = (
        "int" if annotation == (int | None) else "bool" if annotation == (bool | None) else "str"
    )
    return Question(key=node.key, text=node.question, kind=kind)


def walk(tree: Tree, values: dict[str, Any]) -> Walk:
    """Follow the tree with ``values``; stop at the first node whose key is missing (``unanswered``)."""
    result = Walk()
    node_id: str | None = tree.start
    while node_id is not None:
        node = tree.nodes[node_id]
        answer = values.get(node.key)
        if answer is None:
            result.unanswered = _question(tree, node)
            return result
        passed = _OPS[node.gate.op](answer, node.gate.value) if node.gate is not None else bool(answer)
        branch = node.when_yes if passed else node.when_no
        result.taken.append((node_id, passed))
        reason = " ".join([branch.reason, *(text for key, text in branch.also_because.items() if values.get(key))])
        result.path.append(Step(question=node.question, answer=answer, reason=reason))
        if branch.add is not None and branch.add not in result.techniques:
            result.techniques.append(branch.add)
        result.commands.extend(c for c in branch.commands if c not in result.commands)
        node_id = branch.next
    return result


def next_question(tree: Tree, answers: Answers) -> Question | None:
    """The next question the tree needs for ``answers``, or ``None`` when the walk is complete."""
    return walk(tree, answers.model_dump()).unanswered


def questions(tree: Tree | None = None) -> list[Question]:
    """Every question: the tree's (one per key, in tree order) and then the cost model's inputs."""
    tree = tree or load_tree()
    found: dict[str, Question] = {}
    for node in tree.nodes.values():
        found.setdefault(node.key, _question(tree, node))
    texts = {
        "queries_per_day": "How many queries a day?",
        "prompt_tokens": "Prompt tokens per query (instructions + question)?",
        "context_tokens": "Retrieved context tokens per query with RAG?",
        "output_tokens": "Output tokens per query?",
        "current_model": "Current model (a name in the price table)?",
        "candidate_small_model": "Smaller model to fine-tune (a name in the price table)?",
    }
    for key in COST_KEYS:
        kind: Literal["int", "str"] = "int" if Answers.model_fields[key].annotation == (int | None) else "str"
        found.setdefault(key, Question(key=key, text=texts[key], kind=kind))
    return list(found.values())


def leaf_paths(tree: Tree) -> list[list[tuple[str, bool]]]:
    """Every path from the start to an end, as (node id, branch taken) pairs: what the tests cover."""
    paths: list[list[tuple[str, bool]]] = []

    def visit(node_id: str, prefix: list[tuple[str, bool]]) -> None:
        node = tree.nodes[node_id]
        for taken, branch in ((True, node.when_yes), (False, node.when_no)):
            path = [*prefix, (node_id, taken)]
            if branch.next is None:
                paths.append(path)
            else:
                visit(branch.next, path)

    visit(tree.start, [])
    return paths
