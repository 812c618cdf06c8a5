"""The decision tree: every path through tree.yaml, each with its outcome, and the loader's checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from opsmith.advise import DEFAULTS, Answers, load_tree, next_question, questions, recommend
from opsmith.advise._tree import Tree, leaf_paths, walk
from opsmith.errors import InputError

NO = {"fundamentally_incapable": False, "missing_knowledge": False}
KNOW = {"fundamentally_incapable": False, "missing_knowledge": True}
BIG, SMALL = {"corpus_tokens": 500_000}, {"corpus_tokens": 100_000}
STILL_WRONG = {"behavior_wrong": True, "prompting_tried": True, "still_wrong_after_prompting": True}

# (answers, primary, also): every branch of every node is taken at least once.
CASES: list[tuple[dict[str, Any], str, list[str]]] = [
    ({"fundamentally_incapable": True, "missing_knowledge": True}, "neither", []),
    (NO, "prompt", []),  # nothing wrong: the fallback
    ({**KNOW, **BIG}, "rag", []),
    ({**KNOW, **SMALL, "knowledge_changes_often": True}, "rag", []),
    ({**KNOW, **SMALL, "needs_citations": True}, "rag", []),
    ({**KNOW, **SMALL}, "long-context", []),
    ({**KNOW, "corpus_tokens": 100_001}, "rag", []),
    ({**NO, "behavior_wrong": True}, "prompt", []),
    ({**NO, "behavior_wrong": True, "prompting_tried": True}, "prompt", []),
    ({**NO, **STILL_WRONG, "labeled_examples": 999}, "prompt", []),
    ({**NO, **STILL_WRONG, "labeled_examples": 1000}, "fine-tune", []),
    ({**NO, "too_slow_or_expensive": True, "labeled_examples": 1000}, "fine-tune", []),
    ({**NO, "too_slow_or_expensive": True, "labeled_examples": 10}, "fine-tune", []),
    ({**KNOW, **BIG, **STILL_WRONG, "labeled_examples": 2000}, "rag", ["fine-tune"]),
    ({**KNOW, **BIG, **STILL_WRONG, "labeled_examples": 20}, "rag", ["prompt"]),
    ({**KNOW, **SMALL, "behavior_wrong": True, "too_slow_or_expensive": True}, "long-context", ["prompt", "fine-tune"]),
    ({**NO, **STILL_WRONG, "labeled_examples": 50, "too_slow_or_expensive": True}, "prompt", ["fine-tune"]),
    ({**NO, **STILL_WRONG, "labeled_examples": 5000, "too_slow_or_expensive": True}, "fine-tune", []),
]


def _values(answers: dict[str, Any]) -> dict[str, Any]:
    return {**DEFAULTS, **answers}


@pytest.mark.parametrize(("answers", "primary", "also"), CASES)
def test_each_case_gives_its_recommendation(answers: dict[str, Any], primary: str, also: list[str]) -> None:
    rec = recommend(Answers(**answers))
    assert (rec.primary, rec.also) == (primary, also)
    assert rec.path
    assert all(step.reason for step in rec.path)


def test_every_branch_is_taken_by_a_case() -> None:
    tree = load_tree()
    taken = {pair for answers, _, _ in CASES for pair in walk(tree, _values(answers)).taken}
    every = {(node_id, branch) for node_id in tree.nodes for branch in (True, False)}
    assert every - taken == set()


def _answers_for(tree: Tree, path: list[tuple[str, bool]]) -> dict[str, Any] | None:
    """Answers that follow ``path``, or None when two gates on one key cannot both hold."""
    values: dict[str, Any] = {}
    for node_id, branch in path:
        node = tree.nodes[node_id]
        if node.gate is None:
            value: Any = branch
        else:
            inside = node.gate.value
            outside = node.gate.value + 1 if node.gate.op == "<=" else node.gate.value - 1
            value = inside if branch else outside
        if values.setdefault(node.key, value) != value:
            return None
    return values


def test_every_path_through_the_tree_is_walked_with_a_reason_per_step() -> None:
    tree = load_tree()
    paths = leaf_paths(tree)
    feasible = 0
    for path in paths:
        answers = _answers_for(tree, path)
        if answers is None:  # e.g. labeled_examples >= 1000 at one gate and < 1000 at the other
            continue
        feasible += 1
        result = walk(tree, _values(answers))
        assert result.taken == path
        assert result.unanswered is None
        rec = recommend(Answers(**answers))
        assert rec.primary in {"prompt", "rag", "fine-tune", "long-context", "neither"}
        assert len(rec.path) >= len(path)
        assert all(step.reason for step in rec.path)
    assert feasible >= 50


def test_next_question_asks_only_what_the_tree_needs() -> None:
    tree = load_tree()
    assert next_question(tree, Answers()).key == "fundamentally_incapable"  # type: ignore[union-attr]
    assert next_question(tree, Answers(fundamentally_incapable=True)) is None
    question = next_question(tree, Answers(fundamentally_incapable=False, missing_knowledge=True))
    assert question is not None
    assert (question.key, question.kind) == ("corpus_tokens", "int")
    keys = [q.key for q in questions(tree)]
    assert len(keys) == len(set(keys)) == len(Answers.model_fields)


def test_unknown_answer_key_is_rejected() -> None:
    with pytest.raises(ValueError, match="missing_knowlege"):
        Answers.model_validate({"missing_knowlege": True})


def _broken(tmp_path: Path, change: Any) -> Path:
    from opsmith.advise._tree import TREE_FILE

    data = yaml.safe_load(TREE_FILE.read_text(encoding="utf-8"))
    change(data)
    path = tmp_path / "tree.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda d: d["nodes"]["behavior"]["when_yes"].update(next="nowhere"), "'nowhere' is not a node"),
        (lambda d: d["nodes"]["behavior"].update(key="vibes"), "'vibes' is not an answers key"),
        (lambda d: d["nodes"]["speed"]["when_no"].update(next="incapable"), "loops back"),
        (lambda d: d["nodes"]["corpus_fits"].pop("gate"), "needs a gate"),
        (
            lambda d: d["nodes"]["corpus_fits"]["when_no"]["also_because"].update(corpus_tokens="big"),
            "also_because key 'corpus_tokens' is not a yes/no answers key",
        ),
    ],
)
def test_a_broken_tree_is_an_input_error(tmp_path: Path, change: Any, fragment: str) -> None:
    with pytest.raises(InputError, match=fragment):
        load_tree(_broken(tmp_path, change))


def _rag_reason(answers: dict[str, Any]) -> str:
    rec = recommend(Answers(**answers))
    assert rec.primary == "rag"
    return next(step.reason for step in rec.path if "RAG" in step.reason)


def test_a_rag_reason_names_every_answer_that_argues_for_rag() -> None:
    """A large corpus is reason enough, but "changes weekly" and "needs citations" are the user's too."""
    plain = _rag_reason({**KNOW, **BIG})
    assert plain == "The corpus is too large for one prompt — retrieve the relevant passages (RAG)."
    both = _rag_reason({**KNOW, **BIG, "knowledge_changes_often": True, "needs_citations": True})
    assert both.startswith(plain)
    assert "changes often" in both
    assert "citations" in both
    assert "citations" not in _rag_reason({**KNOW, **BIG, "knowledge_changes_often": True})
    fits = _rag_reason({**KNOW, **SMALL, "knowledge_changes_often": True, "needs_citations": True})
    assert "changes often" in fits
    assert "citations" in fits  # the citations node is not reached on this path, so the reason says it


def test_the_rag_example_states_every_reason_its_answers_give() -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "advise" / "rag.yaml"
    answers = yaml.safe_load(example.read_text(encoding="utf-8"))
    reason = _rag_reason(answers)
    assert "too large" in reason
    assert "changes often" in reason  # the example's "runbooks that change weekly"
    assert "citations" in reason
