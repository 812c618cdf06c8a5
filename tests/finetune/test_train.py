"""LoRA training on a tiny Llama built in code: loss, weights, masks, save/reload, resume, outputs, config."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from opsmith.errors import ConfigError, InputError, PathNotFoundError
from opsmith.finetune.config import FinetuneConfig, config_from_dict, load_config
from opsmith.finetune.train import (
    TrainingRun,
    TrainProgress,
    TrainReport,
    alpaca_prompt,
    prepare_run,
    set_pad_token,
    tokenize_chat,
    train,
)

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Trained:
    """One memorisation run shared by the tests that only read its results."""

    run: TrainingRun
    report: TrainReport
    base_before: dict[str, Any]
    adapter_before: dict[str, Any]
    progress: list[TrainProgress]


def _split_state(model: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    base, adapter = {}, {}
    for name, tensor in model.state_dict().items():
        (adapter if "lora_" in name else base)[name] = tensor.detach().clone()
    return base, adapter


@pytest.fixture(scope="session")
def trained(
    tiny_model: Path,
    tmp_path_factory: pytest.TempPathFactory,
    alert_rows: list[dict[str, str]],
    long_row: dict[str, str],
    jsonl_writer: Callable[..., Path],
    make_config: Callable[..., FinetuneConfig],
) -> Trained:
    folder = tmp_path_factory.mktemp("trained")
    data = jsonl_writer(folder / "alerts.jsonl", [*alert_rows, long_row])
    config = make_config(
        tiny_model, data, folder / "out", max_steps=40, val_set_size=2, eval_steps=20, save_strategy="no"
    )
    progress: list[TrainProgress] = []
    with pytest.MonkeyPatch.context() as mp:  # session fixtures run before the per-test isolation
        mp.setenv("HF_HUB_OFFLINE", "1")
        run = prepare_run(config, progress=progress.append)
        base_before, adapter_before = _split_state(run.model)
        report = run.train()
    return Trained(run, report, base_before, adapter_before, progress)


def _logits(model: Any, input_ids: list[int]) -> Any:
    import torch

    model.eval()
    with torch.no_grad():
        return model(input_ids=torch.tensor([input_ids])).logits


# -- learning ------------------------------------------------------------------------------------


@pytest.mark.slow  # the shared LoRA training run
def test_loss_falls_on_a_memorisation_set(trained: Trained) -> None:
    report = trained.report
    assert report.steps == 40
    assert [p["step"] for p in report.losses] == list(range(1, 41))
    assert report.final_loss is not None
    assert report.first_loss is not None
    assert report.final_loss < 0.7 * report.first_loss, (report.first_loss, report.final_loss)


@pytest.mark.slow  # the shared LoRA training run
def test_base_weights_unchanged_and_adapter_weights_moved(trained: Trained) -> None:
    import torch

    base_after, adapter_after = _split_state(trained.run.model)
    assert base_after.keys() == trained.base_before.keys()
    assert all(torch.equal(base_after[name], trained.base_before[name]) for name in base_after)
    assert adapter_after.keys() == trained.adapter_before.keys()
    assert adapter_after
    moved = [name for name in adapter_after if not torch.equal(adapter_after[name], trained.adapter_before[name])]
    assert sorted(moved) == sorted(adapter_after)  # every LoRA A and B matrix was trained
    # lora_target_linear: every linear layer of both blocks, never lm_head (TRL's fused loss reads it directly).
    targets = {name.split(".lora_")[0].rsplit(".", 1)[-1] for name in adapter_after}
    assert targets == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


@pytest.mark.slow  # the shared LoRA training run
def test_eval_loss_reported_on_the_held_out_rows(trained: Trained) -> None:
    report = trained.report
    assert (report.train_examples, report.eval_examples) == (8, 2)
    assert [p["step"] for p in report.eval_losses] == [20, 40]


@pytest.mark.slow  # the shared LoRA training run
def test_progress_is_reported_after_every_step(trained: Trained) -> None:
    steps = [p.step for p in trained.progress]
    assert steps == list(range(1, 41))
    assert {p.total_steps for p in trained.progress} == {40}
    assert trained.progress[-1].loss == pytest.approx(trained.report.final_loss)


# -- masking -------------------------------------------------------------------------------------


def test_labels_are_minus_100_exactly_on_prompt_tokens(trained: Trained, alert_rows: list[dict[str, str]]) -> None:
    tokenizer = trained.run.tokenizer
    dataset = trained.run.trainer.train_dataset
    eos = tokenizer.eos_token_id
    by_prompt = {alpaca_prompt(row): row["output"] for row in alert_rows}
    assert len(dataset) == 8
    for item in dataset:
        ids, labels = item["input_ids"], item["labels"]
        start = next(i for i, label in enumerate(labels) if label != -100)
        assert all(label == -100 for label in labels[:start])
        assert labels[start:] == ids[start:]  # every completion token, none masked
        prompt = tokenizer.decode(ids[:start])
        assert prompt in by_prompt
        assert ids[-1] == eos  # EOS closes the completion and is learned
        assert tokenizer.decode(ids[start:-1]) == by_prompt[prompt]
    # The collator pads with pad (not EOS) and with -100 labels.
    batch = trained.run.trainer.data_collator([dataset[0], dataset[1]])
    short = 0 if len(dataset[0]["input_ids"]) < len(dataset[1]["input_ids"]) else 1
    length = len(dataset[short]["input_ids"])
    assert tokenizer.pad_token_id != eos
    assert (batch["labels"][short, length:] == -100).all()
    assert (batch["input_ids"][short, length:] == tokenizer.pad_token_id).all()
    assert (batch["attention_mask"][short, length:] == 0).all()


def test_train_on_inputs_trains_every_token(config_for: Callable[..., FinetuneConfig]) -> None:
    run = prepare_run(config_for(train_on_inputs=True))
    for item in run.trainer.train_dataset:
        assert item["labels"] == item["input_ids"]


def test_chat_rows_train_every_assistant_turn_and_eos(tiny_model: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    messages = [
        {"role": "system", "content": "You summarise alerts."},
        {"role": "user", "content": "NodeDiskPressure on node-3"},
        {"role": "assistant", "content": "sev2 disk"},
        {"role": "user", "content": "and now?"},
        {"role": "assistant", "content": "sev1 node down"},
    ]
    example = tokenize_chat(messages, tokenizer)
    trained_runs, current, previous = [], [], 0
    for token, flag in zip(example.input_ids, example.completion_mask, strict=True):
        if flag:
            current.append(token)
        elif previous:
            trained_runs.append(current)
            current = []
        previous = flag
    if current:
        trained_runs.append(current)
    decoded = [tokenizer.decode(run) for run in trained_runs]
    assert decoded == ["sev2 disk<|end|>\n", "sev1 node down<|end|>\n</s>"]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False) + tokenizer.eos_token
    assert tokenizer.decode(example.input_ids) == rendered


@pytest.mark.slow  # trains the tiny model
def test_chat_dataset_trains(
    tiny_model: Path, chat_file: Path, tmp_path: Path, make_config: Callable[..., FinetuneConfig]
) -> None:
    config = make_config(tiny_model, chat_file, tmp_path / "out", save_strategy="no", max_steps=2)
    config = config.model_copy(update={"datasets": [config.datasets[0].model_copy(update={"type": "chat"})]})
    run = prepare_run(config)
    item = run.trainer.train_dataset[0]
    start = next(i for i, label in enumerate(item["labels"]) if label != -100)
    assert run.tokenizer.decode(item["input_ids"][:start]).endswith("<|assistant|>\n")
    assert run.train().steps == 2


def test_pad_token_falls_back_to_unk_never_silently_to_eos(tiny_model: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    assert set_pad_token(tokenizer) == "<pad>"
    tokenizer.pad_token = tokenizer.eos_token
    assert set_pad_token(tokenizer) == "<unk>"
    assert tokenizer.pad_token == "<unk>"


# -- over-length rows ----------------------------------------------------------------------------


@pytest.mark.slow  # the shared LoRA training run
def test_over_length_rows_are_dropped_and_counted(trained: Trained) -> None:
    report = trained.report
    assert report.dropped_rows == 1
    (path, count), *_ = report.dropped_by_dataset.items()
    assert path.endswith("alerts.jsonl")
    assert count == 1
    assert all(len(item["input_ids"]) <= 256 for item in trained.run.trainer.train_dataset)


def test_no_rows_left_is_an_error(config_for: Callable[..., FinetuneConfig]) -> None:
    with pytest.raises(InputError, match="No training rows left"):
        prepare_run(config_for(sequence_len=8))


# -- save, reload, resume ------------------------------------------------------------------------


@pytest.mark.slow  # the shared LoRA training run
def test_save_then_reload_gives_identical_logits(trained: Trained, tiny_model: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    ids = trained.run.trainer.train_dataset[0]["input_ids"]
    expected = _logits(trained.run.model, ids)
    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    reloaded = PeftModel.from_pretrained(base, trained.report.output_dir)
    assert torch.equal(_logits(reloaded, ids), expected)


@pytest.mark.slow  # trains the tiny model twice
def test_resume_continues_from_the_last_checkpoint(config_for: Callable[..., FinetuneConfig]) -> None:
    first = train(config_for(max_steps=4, save_steps=2))
    output = Path(first.output_dir)
    assert first.steps == 4
    assert first.resumed_from is None
    assert {p.name for p in output.glob("checkpoint-*")} == {"checkpoint-2", "checkpoint-4"}

    second = train(config_for(max_steps=6, save_steps=2), resume=True)
    assert second.resumed_from == str(output / "checkpoint-4")
    assert (second.start_step, second.steps) == (4, 6)
    assert [p["step"] for p in second.losses] == [1, 2, 3, 4, 5, 6]  # steps 1-4 come from the checkpoint
    assert second.losses[:4] == first.losses
    assert 0 < second.train_tokens < first.train_tokens  # two steps this time, not six
    saved = json.loads((output / "train_report.json").read_text())
    assert (saved["start_step"], saved["steps"]) == (4, 6)


def test_resume_without_a_checkpoint_says_so(config_for: Callable[..., FinetuneConfig]) -> None:
    with pytest.raises(InputError, match="No checkpoint to resume from"):
        train(config_for(max_steps=1, save_strategy="no"), resume=True)


@pytest.mark.slow  # trains the tiny model
def test_sample_packing_trains(config_for: Callable[..., FinetuneConfig]) -> None:
    run = prepare_run(config_for(sample_packing=True, max_steps=2, save_strategy="no"))
    assert "seq_lengths" in run.trainer.train_dataset.column_names
    assert len(run.trainer.train_dataset) < 10  # rows were packed together
    assert run.train().steps == 2


# -- outputs -------------------------------------------------------------------------------------


@pytest.mark.slow  # the shared LoRA training run
def test_outputs_are_written(trained: Trained) -> None:
    output = Path(trained.report.output_dir)
    assert (output / "adapter_model.safetensors").is_file()
    adapter_config = json.loads((output / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == trained.run.config.base_model
    assert (output / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    saved = json.loads((output / "train_report.json").read_text())
    assert saved == json.loads(json.dumps(trained.report.to_dict()))
    assert saved["steps"] == 40
    assert saved["train_tokens"] > 0
    assert saved["tokens_per_second"] > 0
    assert saved["peak_memory_mb"] > 0
    assert saved["peak_memory_kind"] == "process_max_rss"
    assert saved["device"] == "cpu"
    assert saved["bf16"] is False
    assert saved["wall_seconds"] >= saved["train_seconds"] > 0
    assert len(saved["losses"]) == 40
    assert saved["final_eval_loss"] == saved["eval_losses"][-1]["loss"]

    resolved = load_config(output / "finetune.yaml")
    assert resolved == trained.run.config


# -- config --------------------------------------------------------------------------------------


def test_unknown_key_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "finetune.yaml"
    path.write_text("base_model: m\ndatasets: [{path: d.jsonl, type: alpaca}]\nlora_rank: 16\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "unknown key 'lora_rank'" in message
    assert "did you mean 'lora_r'?" in message
    assert "\n" not in message


def test_unknown_key_inside_a_dataset_names_its_position() -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'datasets\[0\]\.format'"):
        config_from_dict({"base_model": "m", "datasets": [{"path": "d", "type": "alpaca", "format": "x"}]})


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"lora_target_linear": True, "lora_target_modules": ["q_proj"]}, "mutually exclusive"),
        ({"val_set_size": 1}, "'val_set_size'"),
        ({"eval_steps": 5}, "eval_steps needs a validation split"),
        ({"save_steps": 5, "save_strategy": "epoch"}, "save_steps needs save_strategy: steps"),
        ({"datasets": [{"path": "d", "type": "sharegpt"}]}, "'datasets[0].type'"),
        ({"micro_batch_size": 0}, "'micro_batch_size'"),
    ],
)
def test_invalid_values_are_one_line_errors(overrides: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_dict({"base_model": "m", "datasets": [{"path": "d", "type": "alpaca"}], **overrides})
    assert fragment in str(caught.value)
    assert "\n" not in str(caught.value)


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    folder = tmp_path / "project"
    (folder / "tiny").mkdir(parents=True)
    path = folder / "finetune.yaml"
    path.write_text(
        "base_model: ./tiny\ndatasets: [{path: data/a.jsonl, type: alpaca}]\noutput_dir: runs/one\n", encoding="utf-8"
    )
    config = load_config(path)
    assert config.base_model == str(folder / "tiny")
    assert config.datasets[0].path == folder / "data" / "a.jsonl"
    assert config.output_dir == folder / "runs" / "one"
    assert config.lora_target_linear is True
    assert config.save_strategy == "epoch"

    hub = tmp_path / "hub.yaml"
    hub.write_text("base_model: Qwen/Qwen2.5-0.5B\ndatasets: [{path: a.jsonl, type: chat}]\n", encoding="utf-8")
    assert load_config(hub).base_model == "Qwen/Qwen2.5-0.5B"


def test_missing_config_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(PathNotFoundError):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("base_model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_bad_data_line_is_reported_with_its_number(
    config_for: Callable[..., FinetuneConfig], tmp_path: Path, alert_rows: list[dict[str, str]]
) -> None:
    data = tmp_path / "broken.jsonl"
    data.write_text(json.dumps(alert_rows[0]) + "\n{not json\n", encoding="utf-8")
    config = config_for()
    config = config.model_copy(update={"datasets": [config.datasets[0].model_copy(update={"path": data})]})
    with pytest.raises(InputError, match=r"broken\.jsonl:2: invalid JSON"):
        prepare_run(config)


# -- the shipped example -------------------------------------------------------------------------


@pytest.mark.slow  # trains the tiny model
def test_example_config_trains_the_tiny_model(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="needs the train extra (torch)")
    from opsmith.finetune.tiny import build_tiny_llama

    example = REPO / "examples" / "finetune"
    raw = yaml.safe_load((example / "finetune.yaml").read_text(encoding="utf-8"))
    missing = [d["path"] for d in raw["datasets"] if not (example / d["path"]).is_file()]
    assert not missing, f"examples/finetune/finetune.yaml names missing data files: {missing}"
    for item in example.glob("*.jsonl"):
        shutil.copy(item, tmp_path / item.name)
    # The model as examples/finetune/README.md builds it.
    with (example / "alert-summaries.alpaca.jsonl").open(encoding="utf-8") as texts:
        build_tiny_llama(tmp_path / "tiny-model", texts=texts, vocab_size=2048)
    (tmp_path / "finetune.yaml").write_text(yaml.safe_dump(raw | {"max_steps": 3}), encoding="utf-8")
    config = load_config(tmp_path / "finetune.yaml")
    assert config.base_model == str(tmp_path / "tiny-model")
    assert config.output_dir.is_relative_to(tmp_path)
    report = train(config)
    assert report.steps == 3
    assert report.dropped_rows == 0
    assert report.train_examples + report.eval_examples == len(raw_rows(example / raw["datasets"][0]["path"]))


def raw_rows(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
