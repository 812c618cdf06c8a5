"""export-axolotl: the same run as an Axolotl config that passes Axolotl's validation rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from opsmith.finetune.axolotl import check_axolotl, export_axolotl, to_axolotl
from opsmith.finetune.config import FinetuneConfig, load_config

REFERENCE = """\
base_model: ./base
datasets:
  - path: data/alerts.alpaca.jsonl
    type: alpaca
  - path: data/alerts.chat.jsonl
    type: chat
sequence_len: 1024
sample_packing: true
adapter: lora
lora_r: 16
lora_alpha: 32
lora_dropout: 0.05
lora_target_linear: true
output_dir: ./outputs/run
micro_batch_size: 2
gradient_accumulation_steps: 4
num_epochs: 3
learning_rate: 0.0002
val_set_size: 0.05
train_on_inputs: false
warmup_steps: 10
eval_steps: 50
"""


@pytest.fixture
def reference(tmp_path: Path) -> FinetuneConfig:
    (tmp_path / "base").mkdir()
    path = tmp_path / "finetune.yaml"
    path.write_text(REFERENCE, encoding="utf-8")
    return load_config(path)


def test_reference_config_exports_exactly_the_expected_keys(reference: FinetuneConfig, tmp_path: Path) -> None:
    written = export_axolotl(reference, tmp_path / "axolotl.yaml")
    loaded = yaml.safe_load(written.read_text(encoding="utf-8"))
    assert loaded == {
        "base_model": str(tmp_path / "base"),
        "load_in_8bit": False,
        "load_in_4bit": False,
        "datasets": [
            {"path": str(tmp_path / "data" / "alerts.alpaca.jsonl"), "ds_type": "json", "type": "alpaca"},
            {
                "path": str(tmp_path / "data" / "alerts.chat.jsonl"),
                "ds_type": "json",
                "type": "chat_template",
                "chat_template": "tokenizer_default",
                "field_messages": "messages",
                "message_property_mappings": {"role": "role", "content": "content"},
                "roles_to_train": ["assistant"],
                "train_on_eos": "turn",
            },
        ],
        "val_set_size": 0.05,
        "output_dir": str(tmp_path / "outputs" / "run"),
        "sequence_len": 1024,
        "sample_packing": True,
        "pad_to_sequence_len": True,
        "adapter": "lora",
        "lora_r": 16,
        "lora_alpha": 32,
        "lora_dropout": 0.05,
        "lora_target_linear": True,
        "micro_batch_size": 2,
        "gradient_accumulation_steps": 4,
        "num_epochs": 3.0,
        "learning_rate": 0.0002,
        "lr_scheduler": "cosine",
        "warmup_steps": 10,
        "optimizer": "adamw_torch",
        "weight_decay": 0.0,
        "train_on_inputs": False,
        "bf16": "auto",
        "gradient_checkpointing": False,
        "logging_steps": 1,
        "seed": 42,
        "saves_per_epoch": 1,
        "eval_steps": 50,
    }
    assert check_axolotl(loaded) == []
    assert list(loaded) == list(to_axolotl(reference))  # the file keeps the readable key order
    header = written.read_text(encoding="utf-8").splitlines()[:3]
    assert all(line.startswith("#") for line in header)
    assert "accelerate launch -m axolotl.cli.train axolotl.yaml" in header[1]


def _export(reference: FinetuneConfig, **update: Any) -> dict[str, Any]:
    return to_axolotl(reference.model_copy(update=update))


def test_mutually_exclusive_keys_are_never_both_written(reference: FinetuneConfig) -> None:
    data = _export(
        reference,
        lora_target_linear=None,
        lora_target_modules=["q_proj", "v_proj"],
        max_steps=200,
        save_steps=25,
        save_strategy="steps",
        eval_steps=None,
    )
    assert data["lora_target_modules"] == ["q_proj", "v_proj"]
    assert "lora_target_linear" not in data
    assert data["max_steps"] == 200
    assert "num_epochs" not in data
    assert data["save_steps"] == 25
    assert "saves_per_epoch" not in data
    assert data["evals_per_epoch"] == 1
    assert "eval_steps" not in data
    assert check_axolotl(data) == []


def test_no_packing_no_eval_no_checkpoints(reference: FinetuneConfig) -> None:
    data = _export(reference, sample_packing=False, val_set_size=0.0, eval_steps=None, save_strategy="no")
    assert data["sample_packing"] is False
    assert "pad_to_sequence_len" not in data
    assert data["val_set_size"] == 0.0
    assert "eval_steps" not in data
    assert "evals_per_epoch" not in data
    assert data["save_strategy"] == "no"
    assert "saves_per_epoch" not in data
    assert check_axolotl(data) == []


def test_row_count_val_set_size_stays_a_count(reference: FinetuneConfig) -> None:
    # Axolotl reads val_set_size > 1 as a number of rows, as opsmith does.
    assert _export(reference, val_set_size=50.0)["val_set_size"] == 50
    assert isinstance(_export(reference, val_set_size=50.0)["val_set_size"], int)


def test_bf16_and_training_flags_carry_over(reference: FinetuneConfig) -> None:
    data = _export(
        reference, bf16=False, gradient_checkpointing=True, train_on_inputs=True, optimizer="adamw_torch_fused"
    )
    assert (data["bf16"], data["gradient_checkpointing"], data["train_on_inputs"]) == (False, True, True)
    assert data["optimizer"] == "adamw_torch_fused"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"gradient_accumulation_steps": None}, "at least two of"),
        ({"lora_target_modules": ["q_proj"]}, "lora_target_linear and lora_target_modules"),
        ({"saves_per_epoch": 1, "save_steps": 10}, "save_steps and saves_per_epoch"),
        ({"batch_size": 16}, "gradient_accumulation_steps and batch_size"),
        ({"pad_to_sequence_len": False}, "pad_to_sequence_len"),
        ({"val_set_size": 0}, "need val_set_size"),
        ({"adapter": "qlora"}, "load_in_4bit"),
    ],
)
def test_the_checker_catches_what_axolotl_rejects(
    reference: FinetuneConfig, change: dict[str, Any], problem: str
) -> None:
    data = to_axolotl(reference) | change
    assert any(problem in found for found in check_axolotl(data)), check_axolotl(data)
