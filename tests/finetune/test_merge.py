"""merge: the adapter folded into the base weights gives the same logits as base + adapter."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from opsmith.errors import InputError, PathNotFoundError
from opsmith.finetune.merge import adapter_base_model, merge


def _logits(model: Any, ids: list[int]) -> Any:
    import torch

    model.eval()
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits


def test_merged_model_matches_base_plus_adapter(trained_adapter: Path, tiny_model: Path, tmp_path: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    report = merge(trained_adapter, tmp_path / "merged")
    assert report.base_model == str(tiny_model)
    files = set(report.files)
    assert "model.safetensors" in files
    assert "config.json" in files
    assert "tokenizer.json" in files
    assert not any(name.startswith("adapter_") for name in files)

    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "merged")
    ids = tokenizer("NodeDiskPressure on node-3: disk at 91%")["input_ids"]
    with_adapter = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), trained_adapter)
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    expected = _logits(with_adapter, ids)
    torch.testing.assert_close(_logits(merged, ids), expected, atol=1e-5, rtol=0)
    # ...and the adapter changed something, so the comparison means something.
    assert not torch.allclose(_logits(AutoModelForCausalLM.from_pretrained(tiny_model), ids), expected, atol=1e-4)
    assert report.parameters == sum(p.numel() for p in merged.parameters())


def test_base_model_override(trained_adapter: Path, tiny_model: Path, tmp_path: Path) -> None:
    moved = shutil.copytree(tiny_model, tmp_path / "moved-base")
    report = merge(trained_adapter, tmp_path / "merged", base_model=str(moved))
    assert report.base_model == str(moved)
    assert adapter_base_model(trained_adapter) == str(tiny_model)


def test_bad_adapter_folders_are_one_line_errors(trained_adapter: Path, tmp_path: Path) -> None:
    with pytest.raises(PathNotFoundError):
        merge(tmp_path / "missing", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"has no adapter_config\.json"):
        merge(tmp_path / "empty", tmp_path / "out")
    with pytest.raises(InputError, match="Refusing to merge into the adapter folder"):
        merge(trained_adapter, trained_adapter)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    with pytest.raises(InputError, match="not empty"):
        merge(trained_adapter, tmp_path / "full")


def test_unloadable_base_model_names_the_remedy(trained_adapter: Path, tmp_path: Path) -> None:
    adapter = shutil.copytree(trained_adapter, tmp_path / "adapter")
    config = json.loads((adapter / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(tmp_path / "gone")
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(InputError, match="pass --base-model"):
        merge(adapter, tmp_path / "out")
