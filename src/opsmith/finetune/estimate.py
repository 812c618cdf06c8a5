"""What a fine-tuning run will cost: training tokens, dollars, GPU-hours and GPU memory.

:func:`estimate` turns a token count (given, or counted in a data file with
:func:`opsmith.finetune.data.validate_file`) and a model size into:

- **Training tokens** = data tokens × epochs.
- **Dollars** at the per-token training prices of hosted fine-tuning services, from the versioned
  price table shipped as ``prices.yaml`` (each row with its ``source`` and ``as_of`` date), or a
  table of the same shape (``price_table``), or one price for this run (``price_per_mtok``):
  ``cost = training tokens / 1e6 × price``.
- **Inference cost per 1,000 queries** for the base and the fine-tuned model where the table
  knows both prices: ``1000 × (prompt tokens × input price + output tokens × output price) / 1e6``.
  A fine-tuned model often needs a shorter prompt (no few-shot examples), hence
  ``fine_tuned_prompt_tokens``.
- **GPU-hours** per method (``lora``, ``qlora``, ``full``) = training tokens / (tokens per
  second × 3600), with tokens per second from ``throughput.yaml``: one figure per GPU type, method
  and model size (1B, 3B, 8B, 13B, 70B), each with its source; the shipped figures are a rule of
  thumb (peak FLOP/s × MFU / FLOPs per token, documented in that file). Sizes in between scale
  the nearest figure by ``size / params``. Across several GPUs the GPU-hours stay the same and the
  wall-clock hours divide.
- **Memory** per method, in GB (10⁹ bytes), from rules of thumb (N parameters):

  - full: 16 bytes/param = bf16 weights 2 + bf16 gradients 2 + fp32 master weights 4 + Adam
    moments 8 (mixed-precision Adam; Rajbhandari et al. 2020, "ZeRO", section 3.1);
  - LoRA: bf16 weights 2 bytes/param + the adapter's state, 16 bytes per trainable parameter,
    with the adapter at 0.5% of N (rank 16 on every linear layer: 42M for Llama 3.1 8B);
  - QLoRA: 0.55 bytes/param (4-bit NF4 weights 0.5 + quantisation constants, with embeddings and
    norms left in 16 bit) + the same adapter state;
  - plus activations for every method, with gradient checkpointing and flash attention:
    ``(2·L + 34)·s·b·h`` bytes (one checkpoint per layer plus the layer being recomputed;
    Korthikanti et al. 2022) ``+ 8·s·b·V`` bytes of fp32 logits and their gradient, with
    sequence length s, micro-batch b, hidden size h, layers L and vocabulary V from the model's
    config when it is on disk, else from a Llama model of the nearest size;
  - plus 1 GB of CUDA context and allocator slack.

  ``gpus_needed`` is 1 when that fits on the GPU, else the count that fits it with the weights,
  gradients and optimizer state sharded (FSDP or DeepSpeed ZeRO-3).

The parameter count comes from ``params`` ("8B", "1.5B", "350M"), else from the base model's
config when it is available locally, else from a size in its name ("Llama-3.1-8B").
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from opsmith.errors import InputError, PathNotFoundError

__all__ = [
    "ACTIVATION_FORMULA",
    "ADAPTER_FRACTION",
    "ADAPTER_STATE_BYTES",
    "FULL_STATE_BYTES",
    "GB",
    "MEMORY_FORMULAS",
    "METHODS",
    "OVERHEAD_GB",
    "PRICE_TABLE",
    "REFERENCE_SHAPES",
    "SIZE_LABELS",
    "THROUGHPUT_TABLE",
    "WEIGHT_BYTES",
    "Estimate",
    "GpuSpec",
    "InferenceCost",
    "InferencePrice",
    "Method",
    "MethodEstimate",
    "Offering",
    "PriceTable",
    "ThroughputFigure",
    "ThroughputGpu",
    "ThroughputRule",
    "ThroughputTable",
    "TrainingCost",
    "estimate",
    "load_price_table",
    "load_throughput_table",
    "parse_params",
]

Method = Literal["lora", "qlora", "full"]
METHODS: tuple[Method, ...] = ("lora", "qlora", "full")
GB = 1e9
PRICE_TABLE = Path(__file__).with_name("prices.yaml")
THROUGHPUT_TABLE = Path(__file__).with_name("throughput.yaml")

#: Bytes per parameter for the (frozen or trained) weights, and for gradients + optimizer state.
WEIGHT_BYTES: dict[Method, float] = {"full": 2.0, "lora": 2.0, "qlora": 0.55}
FULL_STATE_BYTES = 14.0  # bf16 gradients 2 + fp32 master weights 4 + Adam moments 8
ADAPTER_FRACTION = 0.005  # LoRA rank 16 on every linear layer
ADAPTER_STATE_BYTES = 16.0  # fp32 adapter weights 4 + gradients 4 + Adam moments 8
OVERHEAD_GB = 1.0
MEMORY_FORMULAS: dict[Method, str] = {
    "full": "16 B/param (bf16 weights 2 + bf16 grads 2 + fp32 master 4 + Adam 8) + activations + 1 GB",
    "lora": "2 B/param bf16 weights + 16 B per adapter param (0.5% of params) + activations + 1 GB",
    "qlora": "0.55 B/param 4-bit weights + 16 B per adapter param (0.5% of params) + activations + 1 GB",
}
ACTIVATION_FORMULA = "(2*L + 34)*s*b*h + 8*s*b*V bytes (gradient checkpointing, flash attention, fp32 logits)"


@dataclass(frozen=True)
class _Shape:
    hidden: int
    layers: int
    vocab: int
    source: str


#: Shapes used for activation memory when the model's config is not on disk.
REFERENCE_SHAPES: dict[float, _Shape] = {
    1e9: _Shape(2048, 16, 128256, "Llama 3.2 1B shape"),
    3e9: _Shape(3072, 28, 128256, "Llama 3.2 3B shape"),
    8e9: _Shape(4096, 32, 128256, "Llama 3.1 8B shape"),
    13e9: _Shape(5120, 40, 32000, "Llama 2 13B shape"),
    70e9: _Shape(8192, 80, 128256, "Llama 3.1 70B shape"),
}
SIZE_LABELS = {1e9: "1B", 3e9: "3B", 8e9: "8B", 13e9: "13B", 70e9: "70B"}


# ----------------------------------------------------------------------------------------------
# Tables


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InferencePrice(_Strict):
    """What a hosted model charges to answer, in dollars per million tokens."""

    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)


class Offering(_Strict):
    """One row of the price table: a hosted fine-tuning offer, with its source and date.

    A row names one model (``model``, ``aliases``) or, with ``params_min_b``/``params_max_b``,
    prices every model in that size range (billions of parameters, the lower bound excluded).
    ``methods`` limits the row to those methods (QLoRA is billed as LoRA); None means all.
    """

    id: str = Field(min_length=1)
    provider: str = Field(min_length=1)
    model: str = Field(min_length=1)
    aliases: list[str] = Field(default_factory=list)
    methods: list[Method] | None = None
    params_min_b: float | None = Field(default=None, ge=0)
    params_max_b: float | None = Field(default=None, gt=0)
    training_per_mtok: float | None = Field(default=None, ge=0)
    base: InferencePrice | None = None
    fine_tuned: InferencePrice | None = None
    source: str = Field(min_length=1)
    as_of: date
    notes: str = ""


class _PriceTableFile(_Strict):
    table_version: str = Field(min_length=1)
    currency: Literal["USD"] = "USD"
    offerings: list[Offering]


class ThroughputFigure(_Strict):
    """A measured tokens/s figure and where it comes from."""

    tokens_per_second: float = Field(gt=0)
    source: str = Field(min_length=1)


class ThroughputRule(_Strict):
    """The rule of thumb for a method: FLOPs per parameter per token, and the MFU reached."""

    flops_per_param_token: float = Field(gt=0)
    mfu: float = Field(gt=0, le=1)


class ThroughputGpu(_Strict):
    """A GPU type: its memory and peak dense tensor TFLOP/s, with their source."""

    memory_gb: float = Field(gt=0)
    peak_tflops: float = Field(gt=0)
    source: str = Field(min_length=1)


class ThroughputTable(_Strict):
    """``throughput.yaml``: tokens/s per GPU type, method and model size (``"8B"``), each a number
    (from the rule of thumb) or a :class:`ThroughputFigure` with its own source."""

    table_version: str
    rule_of_thumb: str
    methods: dict[Method, ThroughputRule]
    gpus: dict[str, ThroughputGpu]
    tokens_per_second: dict[str, dict[Method, dict[str, float | ThroughputFigure]]]


def _read_yaml(path: Path, what: str) -> Any:
    import yaml

    if not path.exists():
        raise PathNotFoundError(path)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        detail = " ".join(str(exc).split())
        raise InputError(f"{what} {path} is not valid YAML ({detail}) — fix the file") from exc


def _validation_message(exc: ValidationError) -> str:
    parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:3]]
    more = f" (and {exc.error_count() - 3} more)" if exc.error_count() > 3 else ""
    return "; ".join(parts) + more


@dataclass(frozen=True)
class PriceTable:
    """A loaded price table: ``version``, ``path`` and its validated ``offerings``."""

    version: str
    path: Path
    offerings: tuple[Offering, ...]


def load_price_table(path: Path | str | None = None) -> PriceTable:
    """The shipped price table, or the file at ``path`` (same shape; unknown keys are errors)."""
    source = Path(path) if path is not None else PRICE_TABLE
    try:
        table = _PriceTableFile.model_validate(_read_yaml(source, "Price table"))
    except ValidationError as exc:
        raise InputError(
            f"Price table {source} is invalid: {_validation_message(exc)} — see the shipped prices.yaml for the shape"
        ) from exc
    return PriceTable(version=table.table_version, path=source, offerings=tuple(table.offerings))


@cache
def load_throughput_table() -> ThroughputTable:
    """The shipped tokens/s table (``throughput.yaml``), validated."""
    return ThroughputTable.model_validate(_read_yaml(THROUGHPUT_TABLE, "Throughput table"))


# ----------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class GpuSpec:
    name: str
    memory_gb: float
    peak_tflops: float
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "memory_gb": self.memory_gb, "peak_tflops": self.peak_tflops, "source": self.source}


@dataclass(frozen=True)
class TrainingCost:
    """Dollars to train on ``training_tokens`` with one offering (or the ``--price-per-mtok`` price)."""

    offering: str
    provider: str
    model: str
    training_per_mtok: float
    training_cost_usd: float
    source: str
    as_of: str | None
    notes: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "offering": self.offering,
            "provider": self.provider,
            "model": self.model,
            "training_per_mtok": self.training_per_mtok,
            "training_cost_usd": self.training_cost_usd,
            "source": self.source,
            "as_of": self.as_of,
            "notes": self.notes,
        }


@dataclass(frozen=True)
class InferenceCost:
    """Dollars per 1,000 queries for the base and the fine-tuned model of one offering."""

    offering: str
    provider: str
    model: str
    base_per_1k_queries_usd: float | None
    fine_tuned_per_1k_queries_usd: float | None
    source: str
    as_of: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "offering": self.offering,
            "provider": self.provider,
            "model": self.model,
            "base_per_1k_queries_usd": self.base_per_1k_queries_usd,
            "fine_tuned_per_1k_queries_usd": self.fine_tuned_per_1k_queries_usd,
            "source": self.source,
            "as_of": self.as_of,
        }


@dataclass(frozen=True)
class MethodEstimate:
    """Memory, throughput and GPU-hours for one method on the chosen GPU."""

    method: Method
    memory_gb: float
    memory: dict[str, float]
    memory_formula: str
    tokens_per_second: float
    throughput_source: str
    gpu_hours: float
    gpus_needed: int | None
    wall_hours: float | None

    @property
    def fits_on_one_gpu(self) -> bool:
        return self.gpus_needed == 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "memory_gb": self.memory_gb,
            "memory": self.memory,
            "memory_formula": self.memory_formula,
            "fits_on_one_gpu": self.fits_on_one_gpu,
            "gpus_needed": self.gpus_needed,
            "tokens_per_second": self.tokens_per_second,
            "throughput_source": self.throughput_source,
            "gpu_hours": self.gpu_hours,
            "wall_hours": self.wall_hours,
        }


@dataclass
class Estimate:
    """Everything :func:`estimate` worked out; ``to_dict()`` is the ``--json`` shape.

    ``training_cost_usd`` is the headline price: the ``--price-per-mtok`` one, else the only
    applicable offering's, else ``None`` (compare the ``costs``).
    """

    data_tokens: int
    epochs: float
    training_tokens: int
    method: Method
    gpu: GpuSpec
    sequence_len: int
    micro_batch_size: int
    base_model: str | None = None
    params: int | None = None
    params_source: str | None = None
    shape_source: str | None = None
    data: dict[str, Any] | None = None
    costs: list[TrainingCost] = field(default_factory=list)
    inference: list[InferenceCost] = field(default_factory=list)
    query: dict[str, int] = field(default_factory=dict)
    methods: dict[str, MethodEstimate] = field(default_factory=dict)
    price_table_version: str | None = None
    price_table_path: str | None = None
    throughput_table_version: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def training_cost_usd(self) -> float | None:
        return self.costs[0].training_cost_usd if len(self.costs) == 1 else None

    @property
    def selected(self) -> MethodEstimate | None:
        return self.methods.get(self.method)

    def to_dict(self) -> dict[str, Any]:
        chosen = self.selected
        return {
            "data": self.data,
            "data_tokens": self.data_tokens,
            "epochs": self.epochs,
            "training_tokens": self.training_tokens,
            "training_cost_usd": self.training_cost_usd,
            "costs": [cost.to_dict() for cost in self.costs],
            "price_table": {"version": self.price_table_version, "path": self.price_table_path},
            "model": {
                "base_model": self.base_model,
                "params": self.params,
                "params_source": self.params_source,
                "shape_source": self.shape_source,
            },
            "method": self.method,
            "gpu": self.gpu.to_dict(),
            "sequence_len": self.sequence_len,
            "micro_batch_size": self.micro_batch_size,
            "memory_gb": chosen.memory_gb if chosen else None,
            "gpu_hours": chosen.gpu_hours if chosen else None,
            "methods": {name: item.to_dict() for name, item in self.methods.items()},
            "activation_formula": ACTIVATION_FORMULA,
            "throughput_table_version": self.throughput_table_version,
            "query": self.query,
            "inference": [item.to_dict() for item in self.inference],
            "notes": self.notes,
        }


# ----------------------------------------------------------------------------------------------
# Parameters and shapes

_SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}
_PARAMS = re.compile(r"^\s*(\d+(?:\.\d+)?(?:e\d+)?)\s*([kmbt]?)\s*$", re.IGNORECASE)
_SIZE_IN_NAME = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)([bm])(?![a-z])", re.IGNORECASE)


def parse_params(text: str | float) -> int:
    """``"8B"`` → 8_000_000_000; also ``"1.5B"``, ``"350M"``, ``"125k"``, ``"7e9"`` and plain numbers."""
    if isinstance(text, int | float):
        value = float(text)
    else:
        match = _PARAMS.match(text)
        if not match:
            raise InputError(f"Cannot read a parameter count from '{text}' — write it like 8B, 1.5B or 350M")
        value = float(match.group(1)) * _SUFFIX[match.group(2).lower()]
    if value < 1:
        raise InputError(f"The parameter count must be positive, not '{text}' — write it like 8B, 1.5B or 350M")
    return round(value)


def _local_config(base_model: str) -> tuple[int, _Shape] | None:
    """Parameter count and shape from a config on disk (counted on the meta device: no weights)."""
    try:
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM

        config = AutoConfig.from_pretrained(base_model, local_files_only=True)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)  # type: ignore[no-untyped-call]
        params = sum(p.numel() for p in model.parameters())
    # Not on disk, not a causal LM, or an architecture this transformers cannot build: all mean
    # "no local config" here, and the caller falls back to the name or asks for --params.
    except Exception:
        return None
    text = getattr(config, "text_config", None) or config
    hidden, layers, vocab = (getattr(text, key, None) for key in ("hidden_size", "num_hidden_layers", "vocab_size"))
    if isinstance(hidden, int) and isinstance(layers, int) and isinstance(vocab, int) and min(hidden, layers, vocab):
        return params, _Shape(hidden, layers, vocab, f"config of {base_model}")
    return params, _reference_shape(params)


def _nearest_size(params: float) -> float:
    return min(REFERENCE_SHAPES, key=lambda size: abs(math.log(size / params)))


def _reference_shape(params: float) -> _Shape:
    return REFERENCE_SHAPES[_nearest_size(params)]


# ----------------------------------------------------------------------------------------------
# Prices


def _matches_model(offering: Offering, base_model: str) -> bool:
    wanted = base_model.lower()
    names = {offering.id.lower(), offering.model.lower(), *(alias.lower() for alias in offering.aliases)}
    return wanted in names or wanted.rsplit("/", 1)[-1] in names


def _in_range(offering: Offering, params: int | None, method: Method) -> bool:
    if offering.params_min_b is None and offering.params_max_b is None:
        return False
    if params is None:
        return False
    billions = params / 1e9
    low = offering.params_min_b or 0.0
    high = offering.params_max_b if offering.params_max_b is not None else math.inf
    billed_as = "lora" if method == "qlora" else method
    return low < billions <= high and (offering.methods is None or billed_as in offering.methods)


def _training_costs(offerings: list[Offering], training_tokens: int) -> list[TrainingCost]:
    return [
        TrainingCost(
            offering=o.id,
            provider=o.provider,
            model=o.model,
            training_per_mtok=o.training_per_mtok,
            training_cost_usd=round(training_tokens / 1e6 * o.training_per_mtok, 2),
            source=o.source,
            as_of=o.as_of.isoformat(),
            notes=o.notes,
        )
        for o in offerings
        if o.training_per_mtok is not None
    ]


def _per_1k_queries(price: InferencePrice | None, prompt_tokens: int, output_tokens: int) -> float | None:
    if price is None:
        return None
    dollars = 1000 * (prompt_tokens * price.input_per_mtok + output_tokens * price.output_per_mtok) / 1e6
    return round(float(dollars), 4)


# ----------------------------------------------------------------------------------------------
# Memory and throughput


def _gpu(name: str) -> GpuSpec:
    table = load_throughput_table()
    found = {key.lower(): key for key in table.gpus}
    key = found.get(name.lower())
    if key is None:
        prefixed = [real for lower, real in found.items() if lower.startswith(f"{name.lower()}-")]
        if len(prefixed) > 1:
            raise InputError(f"GPU '{name}' is ambiguous — use one of: {', '.join(prefixed)}")
        key = prefixed[0] if prefixed else None
    if key is None:
        raise InputError(f"Unknown GPU '{name}' — use one of: {', '.join(table.gpus)}")
    spec = table.gpus[key]
    return GpuSpec(key, spec.memory_gb, spec.peak_tflops, spec.source)


def _throughput(gpu: str, method: Method, params: int) -> tuple[float, str]:
    table = load_throughput_table()
    size = _nearest_size(params)
    figure = table.tokens_per_second[gpu][method][SIZE_LABELS[size]]
    if isinstance(figure, int | float):
        value, source = float(figure), table.rule_of_thumb
    else:
        value, source = figure.tokens_per_second, figure.source
    if size != params:
        value *= size / params
        source = f"{source}; scaled from the {SIZE_LABELS[size]} figure by {SIZE_LABELS[size]}/params"
    return value, source


def _method_estimate(
    method: Method, params: int, shape: _Shape, gpu: GpuSpec, training_tokens: int, sequence_len: int, batch: int
) -> MethodEstimate:
    weights = WEIGHT_BYTES[method] * params / GB
    state_bytes = FULL_STATE_BYTES if method == "full" else ADAPTER_STATE_BYTES * ADAPTER_FRACTION
    state = state_bytes * params / GB
    tokens = sequence_len * batch
    activations = ((2 * shape.layers + 34) * tokens * shape.hidden + 8 * tokens * shape.vocab) / GB
    total = weights + state + activations + OVERHEAD_GB
    fixed = activations + OVERHEAD_GB
    if total <= gpu.memory_gb:
        gpus_needed: int | None = 1
    elif fixed >= gpu.memory_gb:
        gpus_needed = None  # activations alone do not fit: a shorter sequence or smaller batch is needed
    else:
        gpus_needed = math.ceil((weights + state) / (gpu.memory_gb - fixed))
    tokens_per_second, source = _throughput(gpu.name, method, params)
    gpu_hours = training_tokens / tokens_per_second / 3600
    label = "gradients_and_optimizer_gb" if method == "full" else "adapter_state_gb"
    return MethodEstimate(
        method=method,
        memory_gb=round(total, 2),
        memory={
            "weights_gb": round(weights, 2),
            label: round(state, 2),
            "activations_gb": round(activations, 2),
            "overhead_gb": OVERHEAD_GB,
        },
        memory_formula=MEMORY_FORMULAS[method],
        tokens_per_second=round(tokens_per_second, 1),
        throughput_source=source,
        gpu_hours=round(gpu_hours, 4),
        gpus_needed=gpus_needed,
        wall_hours=round(gpu_hours / gpus_needed, 4) if gpus_needed else None,
    )


# ----------------------------------------------------------------------------------------------


def estimate(
    *,
    tokens: int | None = None,
    data: Path | str | None = None,
    fmt: str = "auto",
    epochs: float = 1.0,
    base_model: str | None = None,
    params: str | float | None = None,
    method: Method = "lora",
    gpu: str = "A100-80GB",
    sequence_len: int = 2048,
    micro_batch_size: int = 1,
    price_table: Path | str | None = None,
    price_per_mtok: float | None = None,
    query_prompt_tokens: int = 500,
    query_output_tokens: int = 200,
    fine_tuned_prompt_tokens: int | None = None,
) -> Estimate:
    """Estimate tokens, dollars, GPU-hours and memory for a fine-tuning run (formulas: module docstring).

    Args:
        tokens: tokens in the training data; or ``data``, a JSONL file whose tokens are counted
            (with the base model's tokenizer when it is on disk, else ``chars/4``), not both.
        epochs: passes over the data; training tokens = data tokens × epochs.
        base_model: a model id or folder: picks the price-table rows for hosted models, and gives
            the parameter count and shape when its config is on disk.
        params: parameter count such as ``"8B"``; overrides the one from ``base_model``.
        method: the method whose memory and GPU-hours are the headline (all three are computed).
        gpu: a GPU type from ``throughput.yaml``, case-insensitive; ``L4`` is enough for ``L4-24GB``
            where only one type starts so.
        sequence_len, micro_batch_size: for activation memory.
        price_table: a price table file replacing the shipped one; ``price_per_mtok`` replaces
            every table price with one training price for this run.
        query_prompt_tokens, query_output_tokens, fine_tuned_prompt_tokens: per-query token
            assumptions for the inference cost (the fine-tuned prompt defaults to the same).

    Raises :class:`~opsmith.errors.InputError` for contradictory or invalid arguments, and when
    ``base_model`` gives no parameter count and no price row matches it.
    """
    if (tokens is None) == (data is None):
        raise InputError("Give the data to estimate: a DATA.jsonl file or --tokens N (not both)")
    if tokens is not None and tokens < 1:
        raise InputError(f"--tokens must be at least 1, not {tokens}")
    if epochs <= 0:
        raise InputError(f"--epochs must be positive, not {epochs}")
    if price_per_mtok is not None and price_per_mtok < 0:
        raise InputError(f"--price-per-mtok must not be negative, not {price_per_mtok}")
    if method not in METHODS:
        raise InputError(f"Unknown method '{method}' — use lora, qlora or full")
    if sequence_len < 1 or micro_batch_size < 1:
        raise InputError("--sequence-len and --micro-batch-size must be at least 1")
    gpu_spec = _gpu(gpu)
    notes: list[str] = []

    data_info: dict[str, Any] | None = None
    if data is not None:
        from opsmith.finetune.data import validate_file

        report = validate_file(data, fmt=fmt, base_model=base_model, min_examples=0)
        tokens = report.stats.total_tokens
        data_info = {
            "path": str(report.path),
            "format": report.format,
            "records": report.records,
            "valid": report.valid,
            "errors": len(report.errors),
            "token_counter": report.token_counter,
        }
        if report.errors:
            notes.append(
                f"{data}: {len(report.errors)} rows with errors; tokens count the {report.valid} structurally valid"
                f" rows — run `opsmith finetune validate {data}` to see them"
            )
    assert tokens is not None
    training_tokens = round(tokens * epochs)

    table = load_price_table(price_table)
    matched = [o for o in table.offerings if base_model and _matches_model(o, base_model)]

    count: int | None = None
    params_source: str | None = None
    shape: _Shape | None = None
    if params is not None:
        count, params_source = parse_params(params), "--params"
    # A hosted model in the price table has no config to read (and the look-up imports torch).
    local = _local_config(base_model) if base_model and not matched else None
    if local is not None:
        if count is None:
            count, params_source = local[0], "config.json"
        shape = local[1]
    if count is None and base_model and not matched and (named := _SIZE_IN_NAME.search(base_model)):
        count = parse_params(named.group(1) + named.group(2))
        params_source = "model name"
    if count is None and base_model and not matched:
        raise InputError(
            f"Cannot tell the size of '{base_model}': no config on disk and no size in its name"
            " — pass --params (e.g. --params 8B) or download the model's config.json"
        )

    if price_per_mtok is not None:
        costs = [
            TrainingCost(
                offering="--price-per-mtok",
                provider="(given)",
                model=base_model or "(any)",
                training_per_mtok=price_per_mtok,
                training_cost_usd=round(training_tokens / 1e6 * price_per_mtok, 2),
                source="--price-per-mtok",
                as_of=None,
            )
        ]
        priced = matched or [o for o in table.offerings if _in_range(o, count, method)]
    else:
        if matched:
            priced = matched
        elif count is not None:
            priced = [o for o in table.offerings if _in_range(o, count, method)]
        else:
            priced = [o for o in table.offerings if o.params_min_b is None and o.params_max_b is None]
            notes.append("no model given: listing every per-model price; pass --base-model or --params to narrow it")
        costs = _training_costs(priced, training_tokens)
        if not costs:
            notes.append("no training price in the table applies; pass --price-per-mtok USD for a dollar figure")

    fine_tuned_prompt = query_prompt_tokens if fine_tuned_prompt_tokens is None else fine_tuned_prompt_tokens
    inference = [
        InferenceCost(
            offering=o.id,
            provider=o.provider,
            model=o.model,
            base_per_1k_queries_usd=_per_1k_queries(o.base, query_prompt_tokens, query_output_tokens),
            fine_tuned_per_1k_queries_usd=_per_1k_queries(o.fine_tuned, fine_tuned_prompt, query_output_tokens),
            source=o.source,
            as_of=o.as_of.isoformat(),
        )
        for o in priced
        if o.base is not None or o.fine_tuned is not None
    ]

    methods: dict[str, MethodEstimate] = {}
    if count is not None:
        shape = shape or _reference_shape(count)
        for name in METHODS:
            methods[name] = _method_estimate(
                name, count, shape, gpu_spec, training_tokens, sequence_len, micro_batch_size
            )
        chosen = methods[method]
        if chosen.gpus_needed is None:
            notes.append(
                f"{method}: activations alone exceed one {gpu_spec.name} — lower --sequence-len or --micro-batch-size"
            )
        elif chosen.gpus_needed > 1:
            notes.append(
                f"{method} needs {chosen.gpus_needed}× {gpu_spec.name} with sharding (FSDP or DeepSpeed ZeRO-3):"
                " export the run with `opsmith finetune export-axolotl`"
            )
    else:
        notes.append("GPU-hours and memory need a parameter count: pass --params (hosted models do not publish one)")

    return Estimate(
        data_tokens=tokens,
        epochs=epochs,
        training_tokens=training_tokens,
        method=method,
        gpu=gpu_spec,
        sequence_len=sequence_len,
        micro_batch_size=micro_batch_size,
        base_model=base_model,
        params=count,
        params_source=params_source,
        shape_source=shape.source if shape and count is not None else None,
        data=data_info,
        costs=costs,
        inference=inference,
        query={
            "prompt_tokens": query_prompt_tokens,
            "output_tokens": query_output_tokens,
            "fine_tuned_prompt_tokens": fine_tuned_prompt,
        },
        methods=methods,
        price_table_version=table.version,
        price_table_path=str(table.path),
        throughput_table_version=load_throughput_table().table_version,
        notes=notes,
    )
