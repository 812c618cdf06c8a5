"""LoRA training with PEFT and TRL's ``SFTTrainer``: data -> tokens with a loss mask -> adapter + report.

The policies a team needs to trust a run, each decided once here:

* **Prompt format.** Alpaca rows use the fixed Alpaca template below (the one Axolotl's
  ``type: alpaca`` uses), whatever the model; chat rows use the tokenizer's own chat template,
  so training matches what the model sees at inference. A tokenizer without one cannot train
  on chat data (a :class:`~opsmith.errors.ConfigError` says so).
* **Loss mask.** opsmith tokenizes each row itself into ``input_ids`` plus a ``completion_mask``
  (1 on the response, or on every assistant turn for chat) and hands TRL a pre-tokenized
  dataset with ``completion_only_loss=True``; TRL turns the mask into labels, ``-100`` on every
  other token. ``train_on_inputs: true`` sets ``completion_only_loss=False``: every token counts.
  Tokenizing here (rather than letting TRL render prompt/completion pairs) is what lets every
  assistant turn of a multi-turn chat be trained, with any chat template, and lets rows be
  measured before training.
* **EOS.** The EOS token ends every completion (and every chat conversation whose template does
  not already end in it) and is inside the mask, so the model learns to stop.
* **Padding.** The pad token is the tokenizer's own when it differs from EOS, else ``unk``, else
  a special token with "pad" in its name, else EOS. Falling back to EOS is safe here because
  TRL's collator marks padding by position (attention mask, labels padded with ``-100``), not
  by token id; the report names the token used.
* **Over-length rows** (more tokens than ``sequence_len``) are dropped, never truncated (a cut
  completion teaches the model to stop mid-answer), and counted per file in the report. Axolotl
  drops them too.
* **Validation split.** ``val_set_size`` rows are drawn at random (seeded) after dropping.

Outputs in ``output_dir``: the adapter (``adapter_model.safetensors`` + ``adapter_config.json``)
and tokenizer, ``checkpoint-N/`` folders, ``finetune.yaml`` (the resolved config),
``train_report.json`` and ``loss.png``.
"""

from __future__ import annotations

import json
import random
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsmith.errors import ConfigError, InputError, PathNotFoundError
from opsmith.finetune.config import DatasetSpec, FinetuneConfig

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = [
    "ALPACA_PROMPT",
    "ALPACA_PROMPT_NO_INPUT",
    "CONFIG_FILE",
    "PLOT_FILE",
    "REPORT_FILE",
    "Example",
    "PreparedData",
    "TrainProgress",
    "TrainReport",
    "TrainingRun",
    "alpaca_prompt",
    "plot_losses",
    "prepare_data",
    "prepare_run",
    "set_pad_token",
    "tokenize_alpaca",
    "tokenize_chat",
    "train",
]

#: The Stanford Alpaca prompt, as Axolotl's ``type: alpaca`` renders it.
ALPACA_PROMPT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)
ALPACA_PROMPT_NO_INPUT = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:\n"
)

REPORT_FILE = "train_report.json"
PLOT_FILE = "loss.png"
CONFIG_FILE = "finetune.yaml"
_THIRD_PARTY = r"(transformers|trl|peft|accelerate|datasets|torch)(\.|$)"


# -- data ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Example:
    """One tokenized row: ``completion_mask`` is 1 where the token is trained."""

    input_ids: list[int]
    completion_mask: list[int]

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass
class PreparedData:
    """Tokenized rows split for training, and what was left out."""

    train: list[Example]
    eval: list[Example]
    dropped: dict[str, int] = field(default_factory=dict)  # over-length rows per dataset path

    @property
    def dropped_rows(self) -> int:
        return sum(self.dropped.values())


def alpaca_prompt(row: dict[str, Any]) -> str:
    """The Alpaca prompt for a row with ``instruction`` and optional ``input``."""
    if str(row.get("input") or "").strip():
        return ALPACA_PROMPT.format(instruction=row["instruction"], input=row["input"])
    return ALPACA_PROMPT_NO_INPUT.format(instruction=row["instruction"])


def tokenize_alpaca(row: dict[str, Any], tokenizer: PreTrainedTokenizerBase) -> Example:
    """Prompt tokens (masked) then ``output`` + EOS (trained).

    The two parts are tokenized separately, as at inference, where the prompt is encoded and
    the answer generated after it; the tokenizer adds its BOS to the prompt if it uses one.
    """
    prompt = tokenizer(alpaca_prompt(row))["input_ids"]
    completion = [*tokenizer(str(row["output"]), add_special_tokens=False)["input_ids"], tokenizer.eos_token_id]
    return Example([*prompt, *completion], [0] * len(prompt) + [1] * len(completion))


def tokenize_chat(messages: list[dict[str, Any]], tokenizer: PreTrainedTokenizerBase) -> Example:
    """The conversation through the chat template, with every assistant turn trained.

    A turn's span runs from the end of the rendered prefix with a generation prompt to the end
    of the rendered prefix including that turn, so the template's end-of-turn token is trained.
    """

    def render(part: list[dict[str, Any]], generation_prompt: bool) -> str:
        if not part:
            return ""
        text = tokenizer.apply_chat_template(part, tokenize=False, add_generation_prompt=generation_prompt)
        return str(text)

    full = render(messages, False)
    spans: list[tuple[int, int]] = []
    for index, message in enumerate(messages):
        if message.get("role") != "assistant":
            continue
        before, through = render(messages[:index], True), render(messages[: index + 1], False)
        prefixes = full.startswith(before) and full.startswith(through) and len(through) > len(before)
        if prefixes and (not spans or len(before) >= spans[-1][1]):
            spans.append((len(before), len(through)))
    if not spans:
        # Templates that re-render earlier turns differently (e.g. dropping past reasoning) break
        # the prefix property; train the final turn from where the prompt stops matching.
        prompt = render(messages[:-1], True)
        common = next((i for i, (a, b) in enumerate(zip(prompt, full, strict=False)) if a != b), len(prompt))
        spans = [(min(common, len(full)), len(full))]

    input_ids: list[int] = []
    mask: list[int] = []

    def add(text: str, trained: bool) -> None:
        if text:
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            input_ids.extend(ids)
            mask.extend([int(trained)] * len(ids))

    cursor = 0
    for start, end in spans:
        add(full[cursor:start], False)
        add(full[start:end], True)
        cursor = end
    add(full[cursor:], False)
    eos = tokenizer.eos_token
    if eos and not full.rstrip().endswith(eos):
        input_ids.append(tokenizer.eos_token_id)
        mask.append(1)
    return Example(input_ids, mask)


def _read_rows(spec: DatasetSpec) -> Iterator[tuple[int, dict[str, Any]]]:
    path = spec.path
    if not path.is_file():
        raise PathNotFoundError(path)
    remedy = f"run `opsmith finetune validate {path}` for a full report"
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{number}: invalid JSON ({exc.msg}) — {remedy}") from exc
            if spec.type == "alpaca":
                ok = isinstance(row, dict) and isinstance(row.get("instruction"), str) and "output" in row
                need = "'instruction' and 'output'"
            else:
                messages = row.get("messages") if isinstance(row, dict) else None
                ok = (
                    isinstance(messages, list)
                    and bool(messages)
                    and all(isinstance(m, dict) and "role" in m and "content" in m for m in messages)
                    and messages[-1]["role"] == "assistant"
                )
                need = "'messages' (role/content, ending with an assistant turn)"
            if not ok:
                raise InputError(f"{path}:{number}: a {spec.type} row needs {need} — {remedy}")
            yield number, row


def prepare_data(config: FinetuneConfig, tokenizer: PreTrainedTokenizerBase) -> PreparedData:
    """Read every dataset, tokenize with the loss mask, drop over-length rows, split off eval rows."""
    rows: list[Example] = []
    dropped: dict[str, int] = {}
    for spec in config.datasets:
        if spec.type == "chat" and not getattr(tokenizer, "chat_template", None):
            raise ConfigError(
                f"{spec.path}: chat data needs a tokenizer with a chat template, and {config.base_model} has none"
                " — convert the file to alpaca format or pick an instruct/chat base model"
            )
        too_long = 0
        for _, row in _read_rows(spec):
            if spec.type == "alpaca":
                example = tokenize_alpaca(row, tokenizer)
            else:
                example = tokenize_chat(row["messages"], tokenizer)
            if len(example) > config.sequence_len:
                too_long += 1
            else:
                rows.append(example)
        dropped[str(spec.path)] = too_long
    if not rows:
        raise InputError(
            f"No training rows left ({sum(dropped.values())} over sequence_len={config.sequence_len})"
            " — raise sequence_len or add data"
        )
    eval_count = config.eval_rows(len(rows))
    if eval_count >= len(rows):
        raise ConfigError(f"val_set_size={config.val_set_size} leaves no training rows out of {len(rows)} — lower it")
    order = list(range(len(rows)))
    random.Random(config.seed).shuffle(order)
    held_out = set(order[:eval_count])
    return PreparedData(
        train=[row for i, row in enumerate(rows) if i not in held_out],
        eval=[rows[i] for i in sorted(held_out)],
        dropped=dropped,
    )


def set_pad_token(tokenizer: PreTrainedTokenizerBase) -> str:
    """Give ``tokenizer`` a pad token other than EOS where it has one to offer; returns it.

    Order: its own pad token (if not EOS), ``unk``, a special token named like "pad", then EOS.
    """
    eos = tokenizer.eos_token
    pad = tokenizer.pad_token
    if pad is None or pad == eos:
        candidates = [tokenizer.unk_token, *(t for t in tokenizer.all_special_tokens if "pad" in t.lower())]
        vocab = tokenizer.get_vocab()
        pad = next((t for t in candidates if t and t != eos and t in vocab), None) or eos
        tokenizer.pad_token = pad
    return str(pad)


# -- progress and report -------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainProgress:
    """Where a run is: sent after every optimizer step."""

    step: int
    total_steps: int
    loss: float | None
    epoch: float


@dataclass
class TrainReport:
    """What a finished run did; ``to_dict()`` is ``train_report.json``."""

    output_dir: str
    base_model: str
    device: str
    bf16: bool
    steps: int
    start_step: int
    epochs: float
    train_examples: int
    eval_examples: int
    dropped_rows: int
    dropped_by_dataset: dict[str, int]
    train_tokens: int
    tokens_per_second: float
    train_seconds: float
    wall_seconds: float
    peak_memory_mb: float
    peak_memory_kind: str
    pad_token: str
    losses: list[dict[str, float]]
    eval_losses: list[dict[str, float]]
    resumed_from: str | None = None
    files: dict[str, str] = field(default_factory=dict)

    @property
    def first_loss(self) -> float | None:
        return self.losses[0]["loss"] if self.losses else None

    @property
    def final_loss(self) -> float | None:
        return self.losses[-1]["loss"] if self.losses else None

    @property
    def final_eval_loss(self) -> float | None:
        return self.eval_losses[-1]["loss"] if self.eval_losses else None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(first_loss=self.first_loss, final_loss=self.final_loss, final_eval_loss=self.final_eval_loss)
        return data


def plot_losses(report: TrainReport, path: Path) -> Path:
    """Training loss per step, with eval loss points, as a PNG (matplotlib's Agg backend)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    if report.losses:
        axes.plot([p["step"] for p in report.losses], [p["loss"] for p in report.losses], label="train loss")
    if report.eval_losses:
        steps, values = [p["step"] for p in report.eval_losses], [p["loss"] for p in report.eval_losses]
        axes.plot(steps, values, "o-", label="eval loss")
    axes.set_xlabel("step")
    axes.set_ylabel("loss")
    axes.set_title(f"LoRA on {Path(report.base_model).name}")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, format="png")
    return path


def _peak_memory_mb(on_cuda: bool) -> tuple[float, str]:
    if on_cuda:
        import torch

        return torch.cuda.max_memory_allocated() / 2**20, "cuda_max_allocated"
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / (2**20 if sys.platform == "darwin" else 2**10), "process_max_rss"


@contextmanager
def _quiet_progress_bars() -> Iterator[None]:
    """Silence the datasets/transformers tqdm bars (opsmith shows its own; --json needs clean streams)
    and the deprecation warnings these libraries raise about each other, which a user cannot act on."""
    import datasets.utils.logging as datasets_logging
    import transformers.utils.logging as transformers_logging

    datasets_was_on = datasets_logging.is_progress_bar_enabled()
    transformers_was_on = transformers_logging.is_progress_bar_enabled()
    datasets_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        with warnings.catch_warnings():
            for category in (FutureWarning, DeprecationWarning):
                warnings.filterwarnings("ignore", category=category, module=_THIRD_PARTY)
            yield
    finally:
        if datasets_was_on:
            datasets_logging.enable_progress_bar()
        if transformers_was_on:
            transformers_logging.enable_progress_bar()  # type: ignore[no-untyped-call]


# -- the run -------------------------------------------------------------------------------------


class TrainingRun:
    """A prepared run: tokenizer, data, PEFT model and ``SFTTrainer``, ready to :meth:`train`.

    Use :func:`prepare_run` to build one; :func:`train` does both steps. Holding the run gives
    access to ``model`` (a ``PeftModel``) and ``trainer`` for inspection, as the tests do.
    """

    def __init__(
        self,
        config: FinetuneConfig,
        *,
        tokenizer: Any,
        model: Any,
        trainer: Any,
        data: PreparedData,
        pad_token: str,
        bf16: bool,
        started: float,
    ) -> None:
        self.config = config
        self.tokenizer = tokenizer
        self.model = model
        self.trainer = trainer
        self.data = data
        self.pad_token = pad_token
        self.bf16 = bf16
        self._started = started

    def train(self, *, resume: bool = False) -> TrainReport:
        """Run the training loop (from the last checkpoint with ``resume``) and write the outputs."""
        output = self.config.output_dir
        checkpoint: str | None = None
        start_step, start_tokens = 0, 0
        if resume:
            from transformers.trainer_utils import get_last_checkpoint

            checkpoint = get_last_checkpoint(str(output)) if output.is_dir() else None  # type: ignore[no-untyped-call]
            if checkpoint is None:
                raise InputError(f"No checkpoint to resume from in {output} — run without --resume, or set save_steps")
            saved = json.loads((Path(checkpoint) / "trainer_state.json").read_text(encoding="utf-8"))
            start_step, start_tokens = int(saved.get("global_step", 0)), int(saved.get("num_input_tokens_seen", 0))

        with _quiet_progress_bars():
            result = self.trainer.train(resume_from_checkpoint=checkpoint)
            state = self.trainer.state  # train() replaces the state object (and loads it from the checkpoint)
            # The end-of-training eval, unless the step-based schedule already did it at this step.
            if self.data.eval and not any(
                "eval_loss" in entry and entry.get("step") == state.global_step for entry in state.log_history
            ):
                self.trainer.evaluate()
            output.mkdir(parents=True, exist_ok=True)
            self.trainer.save_model(str(output))

        train_seconds = float(result.metrics.get("train_runtime", 0.0))
        tokens = int(state.num_input_tokens_seen) - start_tokens
        on_cuda = str(self.trainer.args.device).startswith("cuda")
        peak, peak_kind = _peak_memory_mb(on_cuda)
        device = str(self.trainer.args.device)
        if on_cuda:
            import torch

            device = f"{device} ({torch.cuda.get_device_name(self.trainer.args.device)})"
        report = TrainReport(
            output_dir=str(output),
            base_model=self.config.base_model,
            device=device,
            bf16=self.bf16,
            steps=int(state.global_step),
            start_step=start_step,
            epochs=round(float(state.epoch or 0.0), 4),
            train_examples=len(self.data.train),
            eval_examples=len(self.data.eval),
            dropped_rows=self.data.dropped_rows,
            dropped_by_dataset=dict(self.data.dropped),
            train_tokens=tokens,
            tokens_per_second=round(tokens / train_seconds, 1) if train_seconds > 0 else 0.0,
            train_seconds=round(train_seconds, 3),
            wall_seconds=0.0,
            peak_memory_mb=round(peak, 1),
            peak_memory_kind=peak_kind,
            pad_token=self.pad_token,
            losses=[{"step": int(e["step"]), "loss": float(e["loss"])} for e in state.log_history if "loss" in e],
            eval_losses=[
                {"step": int(e["step"]), "loss": float(e["eval_loss"])} for e in state.log_history if "eval_loss" in e
            ],
            resumed_from=checkpoint,
        )
        self._write_outputs(report)
        return report

    def _write_outputs(self, report: TrainReport) -> None:
        import yaml

        output = self.config.output_dir
        config_path = output / CONFIG_FILE
        config_path.write_text(
            "# The resolved config of this run (defaults filled in, paths absolute).\n"
            + yaml.safe_dump(self.config.to_yaml_dict(), sort_keys=False),
            encoding="utf-8",
        )
        plot_path = plot_losses(report, output / PLOT_FILE)
        report_path = output / REPORT_FILE
        report.files = {
            "adapter": str(output / "adapter_model.safetensors"),
            "config": str(config_path),
            "report": str(report_path),
            "plot": str(plot_path),
        }
        report.wall_seconds = round(time.perf_counter() - self._started, 3)
        report_path.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")


def _use_bf16(setting: bool | str) -> bool:
    import torch

    if setting == "auto":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    return bool(setting)


def _progress_callback(progress: Callable[[TrainProgress], None]) -> Any:
    from transformers import TrainerCallback

    class _Progress(TrainerCallback):
        def __init__(self) -> None:
            self.loss: float | None = None

        def _send(self, state: Any) -> None:
            progress(TrainProgress(state.global_step, state.max_steps, self.loss, float(state.epoch or 0.0)))

        def on_step_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
            # The default flow callback ran first: when this step's loss is about to be logged,
            # report the step from on_log, with its own loss rather than the previous one.
            if not control.should_log:
                self._send(state)

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **_: Any) -> None:
            if logs and "loss" in logs:
                self.loss = float(logs["loss"])
                self._send(state)

    return _Progress()


def prepare_run(config: FinetuneConfig, *, progress: Callable[[TrainProgress], None] | None = None) -> TrainingRun:
    """Load the tokenizer and base model, tokenize the data and build the PEFT model and trainer."""
    started = time.perf_counter()
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback
    from trl import SFTConfig, SFTTrainer  # type: ignore[attr-defined]  # lazily exported names

    with _quiet_progress_bars():
        try:
            tokenizer = AutoTokenizer.from_pretrained(config.base_model)
        except OSError as exc:
            raise ConfigError(
                f"Cannot load the tokenizer of base_model {config.base_model!r} — give a local model folder or a"
                " Hugging Face model id you can download"
            ) from exc
        pad_token = set_pad_token(tokenizer)
        data = prepare_data(config, tokenizer)
        bf16 = _use_bf16(config.bf16)
        on_cuda = torch.cuda.is_available()
        if on_cuda:
            torch.cuda.reset_peak_memory_stats()  # so the report's peak is this run's
        model = AutoModelForCausalLM.from_pretrained(
            config.base_model, dtype=torch.bfloat16 if bf16 and on_cuda else torch.float32
        )

        from datasets import Dataset

        def as_dataset(examples: list[Example]) -> Any:
            return Dataset.from_dict(
                {"input_ids": [e.input_ids for e in examples], "completion_mask": [e.completion_mask for e in examples]}
            )

        has_eval = bool(data.eval)
        args = SFTConfig(
            output_dir=str(config.output_dir),
            per_device_train_batch_size=config.micro_batch_size,
            per_device_eval_batch_size=config.micro_batch_size,
            gradient_accumulation_steps=config.gradient_accumulation_steps,
            num_train_epochs=config.num_epochs,
            max_steps=config.max_steps or -1,
            learning_rate=config.learning_rate,
            lr_scheduler_type=config.lr_scheduler,
            warmup_steps=config.warmup_steps,
            optim=config.optimizer,
            weight_decay=config.weight_decay,
            seed=config.seed,
            data_seed=config.seed,
            logging_steps=config.logging_steps,
            # Checkpoints every save_steps (and at the end), else at each epoch end, or none.
            save_strategy=config.save_strategy or "epoch",
            save_steps=config.save_steps or 500,
            save_total_limit=config.save_total_limit,
            eval_strategy=("steps" if config.eval_steps else "epoch") if has_eval else "no",
            eval_steps=config.eval_steps,
            bf16=bf16,
            fp16=False,
            activation_checkpointing=config.gradient_checkpointing,  # transformers 5's name for it
            max_length=config.sequence_len,
            packing=config.sample_packing,
            completion_only_loss=not config.train_on_inputs,
            include_num_input_tokens_seen="non_padding",
            dataloader_pin_memory=on_cuda,
            report_to="none",
            disable_tqdm=True,
        )
        targets: str | list[str] | None = "all-linear" if config.lora_target_linear else config.lora_target_modules
        trainer = SFTTrainer(
            model=model,
            args=args,
            train_dataset=as_dataset(data.train),
            eval_dataset=as_dataset(data.eval) if has_eval else None,
            processing_class=tokenizer,
            peft_config=LoraConfig(
                r=config.lora_r,
                lora_alpha=config.lora_alpha,
                lora_dropout=config.lora_dropout,
                target_modules=targets,
                task_type="CAUSAL_LM",
            ),
            callbacks=[_progress_callback(progress)] if progress else None,
        )
    # disable_tqdm swaps the tqdm bar for PrinterCallback, which prints every log dict to stdout.
    trainer.remove_callback(PrinterCallback)
    return TrainingRun(
        config,
        tokenizer=tokenizer,
        model=trainer.model,
        trainer=trainer,
        data=data,
        pad_token=pad_token,
        bf16=bf16,
        started=started,
    )


def train(
    config: FinetuneConfig, *, resume: bool = False, progress: Callable[[TrainProgress], None] | None = None
) -> TrainReport:
    """Train a LoRA adapter as ``config`` says and write it, with its report, to ``config.output_dir``.

    Args:
        config: the run (see :mod:`opsmith.finetune.config`).
        resume: continue from the last ``checkpoint-N`` in ``output_dir``.
        progress: called after every optimizer step with a :class:`TrainProgress`.

    Returns:
        The :class:`TrainReport` also written to ``train_report.json``.
    """
    return prepare_run(config, progress=progress).train(resume=resume)
