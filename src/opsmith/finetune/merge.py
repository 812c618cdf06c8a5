"""Fold a LoRA adapter into its base model's weights: one plain model folder for vLLM or TGI.

The base model is the one the adapter was trained on, read from ``base_model_name_or_path``
in the adapter's ``adapter_config.json`` (``opsmith finetune train`` records an absolute path
for local models); pass ``base_model`` to point elsewhere, e.g. after moving the files. The
merged weights keep the base model's dtype and are written as safetensors (the only format
transformers 5 writes), with the tokenizer (the adapter folder's copy when it has one).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from opsmith.errors import InputError, PathNotFoundError

__all__ = ["MergeReport", "adapter_base_model", "merge"]

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")


@dataclass
class MergeReport:
    """Where the merged model went and what it came from."""

    output_dir: str
    base_model: str
    adapter_dir: str
    parameters: int
    seconds: float
    files: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def adapter_base_model(adapter_dir: Path | str) -> str:
    """The base model an adapter folder names in its ``adapter_config.json``."""
    adapter = Path(adapter_dir)
    if not adapter.is_dir():
        raise PathNotFoundError(adapter)
    config_file = adapter / "adapter_config.json"
    if not config_file.is_file():
        raise InputError(
            f"{adapter} has no adapter_config.json — point --adapter at the output_dir of `opsmith finetune train`"
        )
    try:
        base = json.loads(config_file.read_text(encoding="utf-8")).get("base_model_name_or_path")
    except json.JSONDecodeError as exc:
        raise InputError(f"{config_file} is not valid JSON ({exc.msg}) — re-save the adapter") from exc
    if not base:
        raise InputError(f"{config_file} does not name its base model — pass --base-model")
    return str(base)


def merge(adapter_dir: Path | str, output_dir: Path | str, *, base_model: str | None = None) -> MergeReport:
    """Merge the LoRA adapter in ``adapter_dir`` into its base model and save it to ``output_dir``.

    Args:
        adapter_dir: a folder with ``adapter_config.json`` and the adapter weights.
        output_dir: a new or empty folder for the merged model and tokenizer.
        base_model: the base model path or id, overriding the one the adapter records.

    Returns:
        A :class:`MergeReport`.
    """
    started = time.perf_counter()
    adapter = Path(adapter_dir)
    recorded = adapter_base_model(adapter)
    base = base_model or recorded
    output = Path(output_dir)
    if output.resolve() == adapter.resolve():
        raise InputError(f"Refusing to merge into the adapter folder {adapter} — pass another -o folder")
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise InputError(f"{output} already exists and is not empty — pass a new folder to -o")

    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        model = AutoModelForCausalLM.from_pretrained(base)
    except OSError as exc:
        raise InputError(
            f"Cannot load the base model {base!r} named by {adapter}/adapter_config.json — pass --base-model PATH"
        ) from exc
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    output.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(output)
    has_tokenizer = any((adapter / name).is_file() for name in _TOKENIZER_FILES)
    AutoTokenizer.from_pretrained(str(adapter) if has_tokenizer else base).save_pretrained(output)
    return MergeReport(
        output_dir=str(output),
        base_model=base,
        adapter_dir=str(adapter),
        parameters=sum(p.numel() for p in merged.parameters()),
        seconds=round(time.perf_counter() - started, 3),
        files=sorted(p.name for p in output.iterdir()),
    )
