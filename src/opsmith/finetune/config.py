"""The training config: one YAML file whose keys mirror Axolotl's, so a run moves between the two.

``opsmith finetune train --config finetune.yaml`` reads it, and ``opsmith finetune export-axolotl``
writes the same run as an Axolotl config. Unknown keys are an error that names the key (a typo
must never silently fall back to a default), and relative paths resolve against the folder of
the config file, so a config and its data can move together.

The keys (defaults in brackets)::

    base_model                 Hugging Face model id or local folder (required)
    datasets                   list of {path, type: alpaca | chat} (required)
    sequence_len [2048]        longer rows are dropped and counted, like Axolotl does
    sample_packing [false]     pack several rows into each sequence_len window
    adapter [lora]             only LoRA is supported
    lora_r [8] lora_alpha [16] lora_dropout [0.05]
    lora_target_linear         every linear layer (the default when neither is set) ...
    lora_target_modules        ... or these module names; not both
    output_dir [lora-out]      adapter, checkpoints, report and plot
    micro_batch_size [1] gradient_accumulation_steps [1]
    num_epochs [1] max_steps   max_steps, when set, wins over num_epochs
    learning_rate [2e-4] lr_scheduler [cosine] warmup_steps [0] optimizer [adamw_torch] weight_decay [0]
    val_set_size [0]           a fraction (0.1) or a whole count (50) held out for eval loss
    train_on_inputs [false]    false: loss on the completion / assistant turns only
    seed [42] logging_steps [1] eval_steps save_total_limit
    save_steps / save_strategy checkpoints every save_steps, else at each epoch end; "no" for none
    bf16 [auto]                auto: on a GPU that supports it, off on CPU
    gradient_checkpointing [false]
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from opsmith.errors import ConfigError, PathNotFoundError

DatasetType = Literal["alpaca", "chat"]
Scheduler = Literal["linear", "cosine", "constant", "constant_with_warmup", "cosine_with_restarts", "polynomial"]
Optimizer = Literal["adamw_torch", "adamw_torch_fused", "adafactor", "sgd", "adagrad", "rmsprop"]


class DatasetSpec(BaseModel):
    """One training file: a JSONL ``path`` in ``alpaca`` or ``chat`` (``messages``) format."""

    model_config = ConfigDict(extra="forbid")

    path: Path
    type: DatasetType


class FinetuneConfig(BaseModel):
    """A LoRA training run. Field names are Axolotl's config keys; see the module docstring."""

    model_config = ConfigDict(extra="forbid")

    base_model: str = Field(min_length=1)
    datasets: list[DatasetSpec] = Field(min_length=1)
    sequence_len: int = Field(2048, ge=8)
    sample_packing: bool = False

    adapter: Literal["lora"] = "lora"
    lora_r: int = Field(8, ge=1)
    lora_alpha: int = Field(16, ge=1)
    lora_dropout: float = Field(0.05, ge=0.0, lt=1.0)
    lora_target_linear: bool | None = None
    lora_target_modules: list[str] | None = None

    output_dir: Path = Path("lora-out")
    micro_batch_size: int = Field(1, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    num_epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, ge=1)
    learning_rate: float = Field(2e-4, gt=0)
    lr_scheduler: Scheduler = "cosine"
    warmup_steps: int = Field(0, ge=0)
    optimizer: Optimizer = "adamw_torch"
    weight_decay: float = Field(0.0, ge=0)
    val_set_size: float = Field(0.0, ge=0)
    train_on_inputs: bool = False

    seed: int = 42
    logging_steps: int = Field(1, ge=1)
    save_steps: int | None = Field(None, ge=1)
    save_strategy: Literal["steps", "epoch", "no"] | None = None
    save_total_limit: int | None = Field(None, ge=1)
    eval_steps: int | None = Field(None, ge=1)
    bf16: Literal["auto"] | bool = "auto"
    gradient_checkpointing: bool = False

    @field_validator("val_set_size")
    @classmethod
    def _fraction_or_count(cls, value: float) -> float:
        # Axolotl reads > 1 as a row count and <= 1 as a fraction, so 1 would mean "everything".
        if value == 1 or (value > 1 and not float(value).is_integer()):
            raise ValueError("use a fraction below 1 (e.g. 0.1) or a whole row count of 2 or more")
        return value

    @model_validator(mode="after")
    def _one_way_to_pick_targets(self) -> FinetuneConfig:
        if self.lora_target_linear and self.lora_target_modules:
            raise ValueError("lora_target_linear and lora_target_modules are mutually exclusive — keep one")
        if self.lora_target_modules == []:
            raise ValueError("lora_target_modules is empty — list module names or set lora_target_linear: true")
        if not self.lora_target_modules and self.lora_target_linear is None:
            self.lora_target_linear = True  # the QLoRA paper's advice, and what the resolved config records
        if self.save_steps is not None and self.save_strategy not in (None, "steps"):
            raise ValueError("save_steps needs save_strategy: steps (or no save_strategy) — drop one of them")
        if self.save_strategy == "steps" and self.save_steps is None:
            raise ValueError("save_strategy: steps needs save_steps — set it")
        if self.save_strategy is None:
            self.save_strategy = "steps" if self.save_steps else "epoch"
        if self.eval_steps is not None and self.val_set_size == 0:
            raise ValueError("eval_steps needs a validation split — set val_set_size (e.g. 0.1)")
        return self

    # -- derived values ----------------------------------------------------------------------------

    def eval_rows(self, total: int) -> int:
        """How many of ``total`` rows the validation split holds."""
        if self.val_set_size <= 0:
            return 0
        if self.val_set_size < 1:
            return max(1, round(total * self.val_set_size))
        return int(self.val_set_size)

    def to_yaml_dict(self) -> dict[str, Any]:
        """Every key with its resolved value, paths as strings, in declaration order."""
        return self.model_dump(mode="json")


def _looks_like_path(value: str) -> bool:
    return value.startswith((".", "/", "~")) or "\\" in value


def load_config(path: Path | str) -> FinetuneConfig:
    """Read and validate a YAML training config; relative paths resolve against its folder.

    Raises :class:`~opsmith.errors.ConfigError` (one line, naming the key) for unknown keys,
    bad values or unreadable YAML, and :class:`~opsmith.errors.PathNotFoundError` when the
    file itself is missing.
    """
    import yaml

    config_path = Path(path)
    if not config_path.is_file():
        raise PathNotFoundError(config_path)
    try:
        data = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        detail = " ".join(str(exc).split())
        raise ConfigError(f"{config_path}: not valid YAML ({detail}) — fix the syntax") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{config_path}: expected a mapping of keys (base_model, datasets, ...) — see the example")
    return config_from_dict(data, base_dir=config_path.resolve().parent, source=str(config_path))


def config_from_dict(data: dict[str, Any], *, base_dir: Path | None = None, source: str = "config") -> FinetuneConfig:
    """Validate ``data`` as a :class:`FinetuneConfig`; with ``base_dir``, resolve relative paths there."""
    try:
        config = FinetuneConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from exc
    return resolve_paths(config, base_dir) if base_dir is not None else config


def resolve_paths(config: FinetuneConfig, base_dir: Path) -> FinetuneConfig:
    """A copy with dataset paths, output_dir and a local base_model made absolute against ``base_dir``."""
    base = base_dir.expanduser().resolve()

    def absolute(value: Path) -> Path:
        value = value.expanduser()
        return value if value.is_absolute() else (base / value).resolve()

    base_model = config.base_model
    local = absolute(Path(base_model))
    # A hub id ("org/name") stays as it is unless a folder of that name sits beside the config.
    if _looks_like_path(base_model) or local.exists():
        base_model = str(local)
    datasets = [spec.model_copy(update={"path": absolute(spec.path)}) for spec in config.datasets]
    return config.model_copy(
        update={"base_model": base_model, "datasets": datasets, "output_dir": absolute(config.output_dir)}
    )


def _describe(exc: ValidationError, source: str) -> str:
    """The first validation problem as one line that names the key."""
    error = exc.errors()[0]
    where = _location(error.get("loc", ()))
    if error["type"] == "extra_forbidden":
        known = list(DatasetSpec.model_fields) if "datasets[" in where else list(FinetuneConfig.model_fields)
        key = str(error["loc"][-1])
        close = difflib.get_close_matches(key, known, n=1)
        hint = f"did you mean '{close[0]}'?" if close else "remove it or check the spelling"
        return f"{source}: unknown key '{where}' — {hint}"
    if error["type"] == "missing":
        return f"{source}: missing required key '{where}' — add it (see examples/finetune/finetune.yaml)"
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    if not where:
        return f"{source}: {message}"
    return f"{source}: '{where}': {message} — fix the value"


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
