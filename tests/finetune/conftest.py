"""Fine-tuning fixtures: a tiny Llama built in code (once per session) and small training files.

``tiny_model`` is the path of a randomly initialised two-layer Llama whose tokenizer was trained
in-process on the rows below; nothing is downloaded. Other fine-tuning tests may reuse it.
The helpers are fixtures (``alert_rows``, ``jsonl_writer``, ``make_config``) rather than imports,
since every test folder's ``conftest`` module has the same name.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from opsmith.finetune.config import FinetuneConfig, config_from_dict
from opsmith.finetune.tiny import build_tiny_llama
from opsmith.finetune.train import ALPACA_PROMPT, ALPACA_PROMPT_NO_INPUT

ALERTS = [
    ("NodeDiskPressure", "node-3", "disk at 91%", "sev2"),
    ("PodOOMKilled", "checkout-7f9c", "container restarted 4 times", "sev3"),
    ("PostgresReplicationLag", "pg-replica-2", "lag 240s", "sev2"),
    ("KafkaConsumerLag", "payments", "lag 52000 messages", "sev2"),
    ("CertificateExpiringSoon", "api.example.com", "expires in 6 days", "sev3"),
    ("IngressHigh5xx", "ingress-nginx", "5xx ratio 12%", "sev1"),
    ("RedisMemoryHigh", "redis-main", "memory 95%", "sev2"),
    ("KubeNodeNotReady", "node-9", "NotReady for 10m", "sev1"),
    ("ArgoCDSyncFailed", "billing-app", "sync failed 3 times", "sev3"),
    ("DNSResolutionFailures", "coredns", "SERVFAIL rate 8%", "sev2"),
]

INSTRUCTION = "Summarise the alert as JSON with title and severity."


def alpaca_rows() -> list[dict[str, str]]:
    return [
        {
            "instruction": INSTRUCTION,
            "input": f"{name} on {target}: {detail}",
            "output": json.dumps({"title": f"{name} {target}", "severity": sev}),
        }
        for name, target, detail, sev in ALERTS
    ]


def chat_rows() -> list[dict[str, Any]]:
    return [
        {
            "messages": [
                {"role": "system", "content": "You summarise alerts."},
                {"role": "user", "content": row["input"]},
                {"role": "assistant", "content": row["output"]},
            ]
        }
        for row in alpaca_rows()
    ]


#: One row far longer than any sequence_len the tests use: it must be dropped and counted.
LONG_ROW = {"instruction": INSTRUCTION, "input": "disk full " * 200, "output": "sev1"}


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _corpus() -> list[str]:
    texts = [ALPACA_PROMPT, ALPACA_PROMPT_NO_INPUT, INSTRUCTION]
    for row in alpaca_rows():
        texts += [row["input"], row["output"]]
    return texts


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llama (tokenizer with a chat template, pad != eos) in a session temp folder."""
    pytest.importorskip("torch", reason="needs the train extra (torch)")
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-model") / "model", texts=_corpus())


@pytest.fixture(scope="session")
def alert_rows() -> list[dict[str, str]]:
    """Ten alpaca rows: alert text in, a one-line JSON summary out."""
    return alpaca_rows()


@pytest.fixture(scope="session")
def long_row() -> dict[str, str]:
    return dict(LONG_ROW)


@pytest.fixture(scope="session")
def jsonl_writer() -> Callable[[Path, list[dict[str, Any]]], Path]:
    return write_jsonl


@pytest.fixture(scope="session")
def make_config() -> Callable[..., FinetuneConfig]:
    """``make_config(tiny_model, data, output, **overrides)``; see :func:`build_config`."""
    return build_config


@pytest.fixture
def alpaca_file(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "data" / "alerts.alpaca.jsonl", alpaca_rows())


@pytest.fixture
def chat_file(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "data" / "alerts.chat.jsonl", chat_rows())


def build_config(tiny_model: Path, data: Path, output: Path, **overrides: Any) -> FinetuneConfig:
    """A small, fast run on the tiny model: memorisation-friendly learning rate, constant schedule."""
    values: dict[str, Any] = {
        "base_model": str(tiny_model),
        "datasets": [{"path": str(data), "type": "alpaca"}],
        "sequence_len": 256,
        "lora_r": 8,
        "lora_alpha": 16,
        "lora_dropout": 0.0,
        "output_dir": str(output),
        "micro_batch_size": 4,
        "gradient_accumulation_steps": 1,
        "max_steps": 4,
        "learning_rate": 5e-3,
        "lr_scheduler": "constant",
        "seed": 0,
        **overrides,
    }
    return config_from_dict(values)


@pytest.fixture
def config_for(tiny_model: Path, alpaca_file: Path, tmp_path: Path) -> Callable[..., FinetuneConfig]:
    """``config_for(**overrides)``: a config over the alpaca file, writing to ``tmp_path/out``."""

    def build(**overrides: Any) -> FinetuneConfig:
        return build_config(tiny_model, alpaca_file, tmp_path / "out", **overrides)

    return build


@pytest.fixture(scope="session")
def trained_adapter(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The output_dir of a short ``train`` run on the tiny model (adapter, tokenizer, report)."""
    from opsmith.finetune.train import train

    folder = tmp_path_factory.mktemp("adapter")
    data = write_jsonl(folder / "alerts.jsonl", alpaca_rows())
    with pytest.MonkeyPatch.context() as mp:  # session fixtures run before the per-test isolation
        mp.setenv("HF_HUB_OFFLINE", "1")
        report = train(build_config(tiny_model, data, folder / "out", max_steps=3, save_strategy="no"))
    return Path(report.output_dir)
