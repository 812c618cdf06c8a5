"""``opsmith finetune train / export-axolotl / merge`` from the command line, on a tiny model built in code."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from clitools import Run, assert_one_error_line

from opsmith.finetune.tiny import build_tiny_llama

ROWS = [
    {"instruction": "Summarise the alert.", "input": f"NodeDiskPressure on node-{n}", "output": f"sev{n % 3 + 1} disk"}
    for n in range(6)
]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch", reason="needs the train extra (torch)")
    texts = [f"{row['instruction']} {row['input']} {row['output']}" for row in ROWS]
    return build_tiny_llama(tmp_path_factory.mktemp("cli-tiny") / "model", texts=texts)


LONG = {"instruction": "Summarise the alert.", "input": "disk full " * 150, "output": "sev1"}


def _write_config(folder: Path, tiny_model: Path, rows: list[dict[str, str]] = ROWS, **extra: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    config = {
        "base_model": str(tiny_model),
        "datasets": [{"path": "data.jsonl", "type": "alpaca"}],
        "sequence_len": 256,
        "output_dir": "out",
        "micro_batch_size": 2,
        "gradient_accumulation_steps": 1,
        "max_steps": 2,
        "learning_rate": 0.005,
        "save_strategy": "no",
        **extra,
    }
    path = folder / "finetune.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.mark.slow  # trains the tiny model
def test_train_json_writes_the_adapter_and_report(cli_ok: Callable[..., Run], tiny_model: Path, tmp_path: Path) -> None:
    config = _write_config(tmp_path, tiny_model)
    report = cli_ok("finetune", "train", "--config", str(config), "--json").json()
    out = tmp_path / "out"
    assert report["output_dir"] == str(out)
    assert report["steps"] == 2
    assert report["train_examples"] == 6
    assert report["dropped_rows"] == 0
    assert len(report["losses"]) == 2
    assert report["tokens_per_second"] > 0
    assert (out / "adapter_model.safetensors").is_file()
    assert (out / "finetune.yaml").is_file()
    assert json.loads((out / "train_report.json").read_text()) == report
    assert (out / "loss.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow  # trains the tiny model
def test_train_prints_a_summary_and_warns_about_dropped_rows(
    cli_ok: Callable[..., Run], tiny_model: Path, tmp_path: Path
) -> None:
    config = _write_config(tmp_path, tiny_model, [*ROWS, LONG])
    run = cli_ok("finetune", "train", "--config", str(config))
    assert "Trained a LoRA adapter" in run.stdout
    assert "2 steps" in run.stdout
    assert "1 dropped" in run.stdout
    assert "loss" in run.stdout
    assert "tokens/s" in run.stdout
    assert "opsmith finetune merge --adapter" in run.stdout
    assert "1 row(s) longer than sequence_len=256 were dropped" in run.stderr


@pytest.mark.parametrize(
    ("extra", "fragments", "code"),
    [
        ({"lora_rank": 4}, ("unknown key 'lora_rank'", "did you mean 'lora_r'?"), 2),
        ({"val_set_size": 1}, ("'val_set_size'",), 2),
    ],
)
def test_bad_config_is_one_red_line(
    cli_main: Callable[..., Run],
    tiny_model: Path,
    tmp_path: Path,
    extra: dict[str, object],
    fragments: tuple[str, ...],
    code: int,
) -> None:
    config = _write_config(tmp_path, tiny_model, **extra)
    run = cli_main("finetune", "train", "--config", str(config))
    assert_one_error_line(run, *fragments)
    assert run.exit_code == code
    assert run.stdout == ""


def test_missing_config_and_resume_without_checkpoint(
    cli_main: Callable[..., Run], tiny_model: Path, tmp_path: Path
) -> None:
    run = cli_main("finetune", "train", "--config", str(tmp_path / "nope.yaml"))
    assert_one_error_line(run, "Path not found", "nope.yaml")
    assert run.exit_code == 2
    config = _write_config(tmp_path, tiny_model)
    run = cli_main("finetune", "train", "--config", str(config), "--resume")
    assert_one_error_line(run, "No checkpoint to resume from", "run without --resume")
    assert run.exit_code == 2


def test_export_axolotl_writes_the_yaml(cli_ok: Callable[..., Run], tiny_model: Path, tmp_path: Path) -> None:
    config = _write_config(tmp_path, tiny_model)
    target = tmp_path / "cluster" / "axolotl.yaml"
    run = cli_ok("finetune", "export-axolotl", "--config", str(config), "-o", str(target))
    assert "accelerate launch -m axolotl.cli.train" in run.stdout
    exported = yaml.safe_load(target.read_text(encoding="utf-8"))
    assert exported["adapter"] == "lora"
    assert exported["max_steps"] == 2
    assert exported["datasets"] == [{"path": str(tmp_path / "data.jsonl"), "ds_type": "json", "type": "alpaca"}]
    as_json = cli_ok("finetune", "export-axolotl", "--config", str(config), "-o", str(target), "--json").json()
    assert as_json["config"] == exported
    assert as_json["output"] == str(target)


@pytest.mark.slow  # trains the tiny model
def test_merge_after_train(
    cli_ok: Callable[..., Run], cli_main: Callable[..., Run], tiny_model: Path, tmp_path: Path
) -> None:
    config = _write_config(tmp_path, tiny_model)
    cli_ok("finetune", "train", "--config", str(config), "--json")
    merged = tmp_path / "merged"
    report = cli_ok("finetune", "merge", "--adapter", str(tmp_path / "out"), "-o", str(merged), "--json").json()
    assert report["base_model"] == str(tiny_model)
    assert "model.safetensors" in report["files"]
    assert (merged / "model.safetensors").is_file()
    again = cli_main("finetune", "merge", "--adapter", str(tmp_path / "out"), "-o", str(merged))
    assert_one_error_line(again, "not empty")
    missing = cli_main("finetune", "merge", "--adapter", str(tmp_path / "nothing"), "-o", str(tmp_path / "m2"))
    assert_one_error_line(missing, "Path not found")


def test_help_lists_the_commands(cli_ok: Callable[..., Run]) -> None:
    text = cli_ok("finetune", "--help").stdout
    for command in ("train", "export-axolotl", "merge"):
        assert command in text
