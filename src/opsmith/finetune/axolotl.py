"""The same training run as an Axolotl config: the scale-out path to multi-GPU nodes.

opsmith's config keys are Axolotl's, so most values carry over as they are. What needs
translating, and why:

* ``type: chat`` becomes ``type: chat_template`` with the tokenizer's own template,
  ``field_messages: messages``, loss on assistant turns (``roles_to_train``) including each
  turn's end token (``train_on_eos: turn``) — what opsmith trains on.
* ``ds_type: json`` on every dataset, since the files are JSONL.
* ``load_in_8bit``/``load_in_4bit`` are written as ``false``: this is plain LoRA.
* One of ``num_epochs`` / ``max_steps`` (the one in effect), one of ``lora_target_linear`` /
  ``lora_target_modules``, and one of ``save_steps``, ``saves_per_epoch: 1`` (opsmith's default
  of a checkpoint per epoch) or ``save_strategy: "no"``, since Axolotl treats those as mutually
  exclusive.
* ``sample_packing: true`` comes with ``pad_to_sequence_len: true``, which Axolotl expects.

Axolotl's schema has many more keys (DeepSpeed, FSDP, flash attention); add them to the exported
file for the cluster. :func:`check_axolotl` applies the Axolotl validation rules this export
could run into, and :func:`export_axolotl` refuses to write a config that breaks one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from opsmith.errors import ConfigError
from opsmith.finetune.config import DatasetSpec, FinetuneConfig

__all__ = ["LAUNCH_COMMAND", "check_axolotl", "export_axolotl", "to_axolotl"]

#: How to start the exported run (multi-GPU: add ``deepspeed: deepspeed_configs/zero2.json`` or FSDP keys).
LAUNCH_COMMAND = "accelerate launch -m axolotl.cli.train {path}"


def _dataset(spec: DatasetSpec) -> dict[str, Any]:
    if spec.type == "alpaca":
        return {"path": str(spec.path), "ds_type": "json", "type": "alpaca"}
    return {
        "path": str(spec.path),
        "ds_type": "json",
        "type": "chat_template",
        "chat_template": "tokenizer_default",
        "field_messages": "messages",
        "message_property_mappings": {"role": "role", "content": "content"},
        "roles_to_train": ["assistant"],
        "train_on_eos": "turn",
    }


def to_axolotl(config: FinetuneConfig) -> dict[str, Any]:
    """The Axolotl config (as a dict, keys in a readable order) for the same run as ``config``."""
    val_set_size: float | int = config.val_set_size
    if val_set_size >= 1:
        val_set_size = int(val_set_size)
    data: dict[str, Any] = {
        "base_model": config.base_model,
        "load_in_8bit": False,
        "load_in_4bit": False,
        "datasets": [_dataset(spec) for spec in config.datasets],
        "val_set_size": val_set_size,
        "output_dir": str(config.output_dir),
        "sequence_len": config.sequence_len,
        "sample_packing": config.sample_packing,
    }
    if config.sample_packing:
        data["pad_to_sequence_len"] = True
    data |= {
        "adapter": "lora",
        "lora_r": config.lora_r,
        "lora_alpha": config.lora_alpha,
        "lora_dropout": config.lora_dropout,
    }
    if config.lora_target_modules:
        data["lora_target_modules"] = list(config.lora_target_modules)
    else:
        data["lora_target_linear"] = bool(config.lora_target_linear)
    data |= {
        "micro_batch_size": config.micro_batch_size,
        "gradient_accumulation_steps": config.gradient_accumulation_steps,
    }
    if config.max_steps is not None:
        data["max_steps"] = config.max_steps
    else:
        data["num_epochs"] = config.num_epochs
    data |= {
        "learning_rate": config.learning_rate,
        "lr_scheduler": config.lr_scheduler,
        "warmup_steps": config.warmup_steps,
        "optimizer": config.optimizer,
        "weight_decay": config.weight_decay,
        "train_on_inputs": config.train_on_inputs,
        "bf16": config.bf16,
        "gradient_checkpointing": config.gradient_checkpointing,
        "logging_steps": config.logging_steps,
        "seed": config.seed,
    }
    if config.save_strategy == "no":
        data["save_strategy"] = "no"
    elif config.save_steps is not None:
        data["save_steps"] = config.save_steps
    else:
        data["saves_per_epoch"] = 1
    if config.save_total_limit is not None:
        data["save_total_limit"] = config.save_total_limit
    if config.val_set_size > 0:
        if config.eval_steps is not None:
            data["eval_steps"] = config.eval_steps
        else:
            data["evals_per_epoch"] = 1
    return data


def check_axolotl(data: dict[str, Any]) -> list[str]:
    """Axolotl's config validation rules that apply to LoRA SFT configs; returns the broken ones."""
    problems: list[str] = []
    batch_keys = ("micro_batch_size", "gradient_accumulation_steps", "batch_size")
    if sum(1 for key in batch_keys if data.get(key)) < 2:
        problems.append("at least two of micro_batch_size, gradient_accumulation_steps, batch_size must be set")
    exclusive = [
        ("gradient_accumulation_steps", "batch_size"),
        ("lora_target_linear", "lora_target_modules"),
        ("warmup_steps", "warmup_ratio"),
        ("save_steps", "saves_per_epoch"),
        ("eval_steps", "evals_per_epoch"),
    ]
    problems += [f"{a} and {b} are mutually exclusive" for a, b in exclusive if data.get(a) and data.get(b)]
    if data.get("save_strategy") and data.get("save_steps") and data["save_strategy"] != "steps":
        problems.append("save_steps needs save_strategy: steps")
    if data.get("sample_packing") and data.get("pad_to_sequence_len") is False:
        problems.append("sample_packing wants pad_to_sequence_len: true")
    if not data.get("val_set_size") and (data.get("eval_steps") or data.get("evals_per_epoch")):
        problems.append("eval_steps/evals_per_epoch need val_set_size > 0")
    if data.get("adapter") not in (None, "lora", "qlora"):
        problems.append(f"unknown adapter {data.get('adapter')!r}")
    if data.get("adapter") == "qlora" and not data.get("load_in_4bit"):
        problems.append("adapter: qlora requires load_in_4bit: true")
    if not data.get("datasets"):
        problems.append("datasets is required")
    for index, dataset in enumerate(data.get("datasets") or []):
        if str(dataset.get("type", "")).startswith("sharegpt"):
            problems.append(f"datasets[{index}]: type sharegpt is deprecated; use chat_template")
    return problems


def export_axolotl(config: FinetuneConfig, path: Path | str) -> Path:
    """Write ``config`` as an Axolotl YAML file at ``path``; returns the path."""
    import yaml

    data = to_axolotl(config)
    problems = check_axolotl(data)
    if problems:  # a bug in to_axolotl, not in the user's config: it was already validated
        raise ConfigError(f"The exported Axolotl config would be rejected: {'; '.join(problems)}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    header = (
        "# Axolotl config exported by `opsmith finetune export-axolotl` for the same LoRA run.\n"
        f"# Launch: {LAUNCH_COMMAND.format(path=target.name)}\n"
        "# Multi-GPU: add `deepspeed: deepspeed_configs/zero2.json` (or fsdp keys) and launch the same way.\n"
    )
    target.write_text(header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return target
