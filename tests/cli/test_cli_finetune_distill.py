"""``opsmith finetune distill`` with a fake teacher, and ``opsmith ask`` served by a local_hf model + adapter."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from clitools import ANSWERABLE, Run, assert_one_error_line

from opsmith.config import Settings
from opsmith.finetune.tiny import build_tiny_llama
from opsmith.llm import Message, Usage
from opsmith.testing import FakeChatModel

PROMPTS = [
    {"id": "disk", "prompt": "Node disk 91% full on node-3, what now?"},
    {"id": "lag", "instruction": "Summarise the alert.", "input": "replica 340s behind primary"},
    {"id": "kafka", "prompt": "Consumer group payments is 20000 messages behind."},
]


def _answer(messages: list[Message]) -> str:
    return f"answer to: {messages[-1].content}"


@pytest.fixture
def prompts_file(tmp_path: Path) -> Path:
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in PROMPTS), encoding="utf-8")
    return path


@pytest.fixture
def teachers(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, FakeChatModel]]:
    """Replace the teacher the CLI builds with a FakeChatModel; records (spec, fake) per run."""
    built: list[tuple[str, FakeChatModel]] = []

    def fake_teacher(spec: str, settings: Settings) -> FakeChatModel:
        fake = FakeChatModel(reply=_answer, usage_per_call=Usage(100, 40))
        built.append((spec, fake))
        return fake

    monkeypatch.setattr("opsmith.finetune.distill.load_teacher", fake_teacher)
    return built


def test_distill_json(
    cli_ok: Callable[..., Run], prompts_file: Path, tmp_path: Path, teachers: list[tuple[str, FakeChatModel]]
) -> None:
    out = tmp_path / "data.jsonl"
    run = cli_ok(
        "finetune", "distill", "--teacher", "anthropic:claude-sonnet-4-6", "--prompts", str(prompts_file),
        "-o", str(out), "--template", "incident-summary", "--concurrency", "2", "--max-tokens", "300",
        "--price-in", "3", "--price-out", "15", "--json",
    )  # fmt: skip
    data = run.json()
    assert (data["prompts"], data["answered"], data["skipped_existing"], data["failed"]) == (3, 3, 0, 0)
    assert (data["input_tokens"], data["output_tokens"]) == (300, 120)
    assert data["cost_usd"] == pytest.approx((300 * 3 + 120 * 15) / 1e6)
    assert data["output"] == str(out)
    assert data["failures"] == []
    assert data["format"] == "alpaca"
    spec, fake = teachers[0]
    assert spec == "anthropic:claude-sonnet-4-6"
    assert all(call["messages"][0].role == "system" and call["max_tokens"] == 300 for call in fake.calls)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == ["disk", "kafka", "lag"]

    again = cli_ok(
        "finetune", "distill", "--teacher", "anthropic:claude-sonnet-4-6", "--prompts", str(prompts_file),
        "-o", str(out), "--json",
    ).json()  # fmt: skip
    assert (again["answered"], again["skipped_existing"], again["cost_usd"]) == (0, 3, None)
    assert teachers[1][1].calls == []


def test_distill_chat_human_output(
    cli_ok: Callable[..., Run], prompts_file: Path, tmp_path: Path, teachers: list[tuple[str, FakeChatModel]]
) -> None:
    out = tmp_path / "chat.jsonl"
    run = cli_ok(
        "finetune", "distill", "--teacher", "openai:gpt-4o-mini", "--prompts", str(prompts_file), "-o", str(out),
        "--format", "chat", "--system", "Be terse.", "--include-system",
    )  # fmt: skip
    assert "3 answered, 0 already there, 0 failed, of 3 prompts" in run.stdout
    assert "300 input + 120 output tokens" in run.stdout
    assert "$" not in run.stdout  # no prices given, and the fake is not in the price table
    first = json.loads(out.read_text().splitlines()[0])
    assert first["messages"][0] == {"role": "system", "content": "Be terse."}


def test_distill_failures_exit_1_and_keep_json(
    cli: Callable[..., Run],
    prompts_file: Path,
    tmp_path: Path,
    teachers: list[tuple[str, FakeChatModel]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from opsmith.errors import ProviderUnavailableError

    def failing(spec: str, settings: Settings) -> FakeChatModel:
        return FakeChatModel(reply=_answer, errors=[None, ProviderUnavailableError("down", provider="fake")])

    monkeypatch.setattr("opsmith.finetune.distill.load_teacher", failing)
    out = tmp_path / "data.jsonl"
    run = cli(
        "finetune", "distill", "--teacher", "openai:m", "--prompts", str(prompts_file), "-o", str(out),
        "--concurrency", "1", "--json",
    )  # fmt: skip
    assert run.exit_code == 1
    data = run.json()
    assert data["failed"] == 1
    assert data["failures"] == [{"line": 2, "id": "lag", "error": "ProviderUnavailableError: down"}]
    assert "1 of 3 prompts failed" in run.stderr
    assert "run the same command again" in run.stderr


def test_distill_bad_teacher_is_one_error_line(
    cli_main: Callable[..., Run], prompts_file: Path, tmp_path: Path
) -> None:
    run = cli_main(
        "finetune", "distill", "--teacher", "gpt-4o", "--prompts", str(prompts_file), "-o", str(tmp_path / "o.jsonl")
    )
    assert_one_error_line(run, "Invalid teacher 'gpt-4o'", "PROVIDER:MODEL")


def test_distill_missing_prompts_is_one_error_line(cli_main: Callable[..., Run], tmp_path: Path) -> None:
    run = cli_main(
        "finetune", "distill", "--teacher", "openai:m", "--prompts", str(tmp_path / "nope.jsonl"),
        "-o", str(tmp_path / "o.jsonl"),
    )  # fmt: skip
    assert_one_error_line(run, "Path not found", "nope.jsonl")


def test_distill_without_a_key_is_one_error_line(
    cli_main: Callable[..., Run], prompts_file: Path, tmp_path: Path
) -> None:
    run = cli_main(
        "finetune", "distill", "--teacher", "anthropic:claude-sonnet-4-6", "--prompts", str(prompts_file),
        "-o", str(tmp_path / "o.jsonl"),
    )  # fmt: skip
    assert_one_error_line(run, "ANTHROPIC_API_KEY")
    assert not (tmp_path / "o.jsonl").exists()


# -- serving: ask through the local_hf provider ---------------------------------------------


@pytest.fixture(scope="module")
def tiny_with_adapter(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny Llama with room for the RAG prompt, and a LoRA adapter for it."""
    pytest.importorskip("torch", reason="needs the train extra (torch)")
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = build_tiny_llama(tmp_path_factory.mktemp("ask-tiny"), max_position_embeddings=8192)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base, local_files_only=True),
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]),
    )
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.5)
    adapter = tmp_path_factory.mktemp("ask-adapter")
    model.save_pretrained(adapter)
    return base, adapter


def test_ask_with_local_hf_and_adapter(
    cli_ok: Callable[..., Run],
    ingested: Path,
    tiny_with_adapter: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base, adapter = tiny_with_adapter
    monkeypatch.setenv("OPSMITH_LLM_MAX_TOKENS", "8")
    # A random-weight model cites nothing: keep its reply (flagged ungrounded) instead of refusing it.
    monkeypatch.setenv("OPSMITH_REQUIRE_CITATIONS", "false")
    run = cli_ok("ask", ANSWERABLE, "--provider", "local_hf", "--model", str(base), "--adapter", str(adapter), "--json")
    data: dict[str, Any] = run.json()
    assert data["provider"] == "local_hf"
    assert data["model"] == f"{base}+{adapter}"
    assert data["refused"] is False
    assert data["grounded"] is (len(data["citations"]) > 0)
    assert data["error"] is None
    assert isinstance(data["answer"], str)
    assert 0 < data["usage"]["output_tokens"] <= 8
    assert data["usage"]["input_tokens"] > 512  # the grounded prompt with its excerpts, all of it
    assert data["retrieved"]
    assert data["retrieved"][0]["source"] == "postgres-replication-lag.md"


def test_ask_local_hf_without_model_is_one_error_line(cli_main: Callable[..., Run], ingested: Path) -> None:
    run = cli_main("ask", ANSWERABLE, "--provider", "local_hf")
    assert_one_error_line(run, "local_hf needs a model folder", "--model PATH")
