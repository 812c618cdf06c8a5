"""Training throughput of ``opsmith finetune train`` against a plain TRL ``SFTTrainer`` script.

    cd benchmarks && ../.venv/bin/python finetune_throughput.py [--steps 40] [--repeats 7]

Both sides train a LoRA adapter on the same tiny Llama (built in code, nothing downloaded), the
same alpaca rows (``examples/finetune/alert-summaries.alpaca.jsonl``), and the same settings:
micro batch 4, LoRA r=8 on every linear layer, the same learning rate, seed and step count,
a loss logged every step, no eval, no checkpoints. They run in this one process, alternating,
so they see the same machine state. The headline ratio is the median, over ``--repeats``
attempts, of opsmith's tokens/s divided by the plain script's in the same attempt; the best and
median tokens/s of each side are reported beside it (a shared CPU makes single runs vary).

* **opsmith**: ``opsmith.finetune.train.train(config)``, which tokenizes the rows itself,
  counts tokens, reports progress and writes the adapter, report and loss plot.
* **plain TRL**: the minimal script below: prompt/completion pairs in the same Alpaca template,
  ``SFTTrainer(model, args, train_dataset, processing_class, peft_config)``, ``train()``,
  ``save_model()``.

The headline figure is training-loop throughput: non-padding tokens trained per second of
``trainer.train()`` (opsmith's ``train_report.json`` figures against TRL's own ``num_tokens``
metric over its ``train_runtime``). Target: opsmith >= 0.95x the plain script. End-to-end wall
time (model load, data preparation, training, saving) is reported too. Both sides run on the
GPU when there is one (fp32, so the comparison stays like for like) and the card is named in
the results; otherwise on the CPU, and the results say the GPU was not measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import REPO, save

DATA = REPO / "examples" / "finetune" / "alert-summaries.alpaca.jsonl"
SETTINGS: dict[str, Any] = {
    "sequence_len": 512,
    "micro_batch_size": 4,
    "gradient_accumulation_steps": 1,
    "learning_rate": 2e-3,
    "lr_scheduler": "constant",
    "optimizer": "adamw_torch",
    "lora_r": 8,
    "lora_alpha": 16,
    "lora_dropout": 0.05,
    "seed": 0,
}


def plain_trl(model_path: Path, rows: list[dict[str, str]], output: Path, steps: int) -> dict[str, float]:
    """A minimal TRL 1.x LoRA SFT script, as a user would write it from the TRL docs."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from opsmith.finetune.train import alpaca_prompt  # the same prompt text on both sides

    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    dataset = Dataset.from_list([{"prompt": alpaca_prompt(row), "completion": row["output"]} for row in rows])
    args = SFTConfig(
        output_dir=str(output),
        max_steps=steps,
        per_device_train_batch_size=SETTINGS["micro_batch_size"],
        gradient_accumulation_steps=SETTINGS["gradient_accumulation_steps"],
        learning_rate=SETTINGS["learning_rate"],
        lr_scheduler_type=SETTINGS["lr_scheduler"],
        optim=SETTINGS["optimizer"],
        max_length=SETTINGS["sequence_len"],
        seed=SETTINGS["seed"],
        logging_steps=1,
        save_strategy="no",
        bf16=False,
        activation_checkpointing=False,
        dataloader_pin_memory=torch.cuda.is_available(),  # as opsmith sets it
        report_to="none",
        disable_tqdm=True,
    )
    peft_config = LoraConfig(
        r=SETTINGS["lora_r"],
        lora_alpha=SETTINGS["lora_alpha"],
        lora_dropout=SETTINGS["lora_dropout"],
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=dataset, processing_class=tokenizer, peft_config=peft_config
    )
    result = trainer.train()
    trainer.save_model(str(output))
    tokens = max(int(entry.get("num_tokens", 0)) for entry in trainer.state.log_history)
    seconds = float(result.metrics["train_runtime"])
    return {"tokens": tokens, "train_seconds": seconds, "wall_seconds": time.perf_counter() - started}


def opsmith_train(model_path: Path, data: Path, output: Path, steps: int) -> dict[str, float]:
    from opsmith.finetune.config import config_from_dict
    from opsmith.finetune.train import train

    config = config_from_dict(
        {
            "base_model": str(model_path),
            "datasets": [{"path": str(data), "type": "alpaca"}],
            "output_dir": str(output),
            "max_steps": steps,
            "save_strategy": "no",
            "lora_target_linear": True,
            "bf16": False,
            **SETTINGS,
        }
    )
    started = time.perf_counter()
    report = train(config)
    return {
        "tokens": report.train_tokens,
        "train_seconds": report.train_seconds,
        "wall_seconds": time.perf_counter() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=40, help="Optimizer steps per run.")
    parser.add_argument("--repeats", type=int, default=7, help="Attempts (one run of each side per attempt).")
    parser.add_argument("--data", type=Path, default=DATA, help="Alpaca JSONL to train on.")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    data: Path = args.data.resolve()
    if not data.is_file():
        raise SystemExit(f"Training data not found at {data}")
    import torch
    import transformers.utils.logging as transformers_logging

    from opsmith.finetune.tiny import build_tiny_llama

    transformers_logging.set_verbosity_error()
    rows = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines() if line.strip()]
    scratch = Path(tempfile.mkdtemp(prefix="opsmith-bench-finetune-"))
    texts = [text for row in rows for text in (row["instruction"], row.get("input", ""), row["output"])]
    model_path = build_tiny_llama(scratch / "tiny-model", texts=texts, vocab_size=2048)  # as examples/finetune

    plain_trl(model_path, rows[:8], scratch / "warmup", steps=2)  # imports and first-call costs, off the clock
    runs: dict[str, list[dict[str, float]]] = {"opsmith": [], "plain_trl": []}
    for attempt in range(args.repeats):
        runs["opsmith"].append(opsmith_train(model_path, data, scratch / f"opsmith-{attempt}", args.steps))
        runs["plain_trl"].append(plain_trl(model_path, rows, scratch / f"plain-{attempt}", args.steps))

    def speeds(side: str) -> list[float]:
        return [run["tokens"] / run["train_seconds"] for run in runs[side]]

    def best(side: str) -> dict[str, Any]:
        chosen = max(runs[side], key=lambda run: run["tokens"] / run["train_seconds"])
        return {
            "tokens_per_second": round(chosen["tokens"] / chosen["train_seconds"], 1),
            "train_tokens": int(chosen["tokens"]),
            "train_seconds": round(chosen["train_seconds"], 3),
            "wall_seconds": round(min(run["wall_seconds"] for run in runs[side]), 3),
            "median_tokens_per_second": round(statistics.median(speeds(side)), 1),
            "all_tokens_per_second": [round(speed, 1) for speed in speeds(side)],
        }

    ours, plain = best("opsmith"), best("plain_trl")
    paired = [mine / theirs for mine, theirs in zip(speeds("opsmith"), speeds("plain_trl"), strict=True)]
    save(
        "finetune_throughput",
        {
            "device": f"cuda ({torch.cuda.get_device_name()})" if torch.cuda.is_available() else "cpu",
            "gpu": torch.cuda.get_device_name()
            if torch.cuda.is_available()
            else "not measured: no GPU on this machine",
            "torch_threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(),
            "model": "tiny Llama (opsmith.finetune.tiny: 2 layers, hidden 64, vocab 512)",
            "data": str(data.relative_to(REPO)) if data.is_relative_to(REPO) else str(data),
            "rows": len(rows),
            "steps": args.steps,
            "repeats": args.repeats,
            "settings": SETTINGS,
            "opsmith": ours,
            "plain_trl": plain,
            # Each attempt runs opsmith then plain TRL back to back; the median of those paired ratios
            # is the headline because it cancels most of the drift of a shared CPU.
            "throughput_ratio": round(statistics.median(paired), 3),
            "paired_ratios": [round(ratio, 3) for ratio in paired],
            "best_ratio": round(ours["tokens_per_second"] / plain["tokens_per_second"], 3),
            "median_ratio": round(ours["median_tokens_per_second"] / plain["median_tokens_per_second"], 3),
            "wall_ratio": round(plain["wall_seconds"] / ours["wall_seconds"], 3),
            "target_ratio": 0.95,
        },
    )


if __name__ == "__main__":
    main()
