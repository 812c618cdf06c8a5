"""Cost estimates: the $40 regression, price tables, GPU-hours, memory and parameter counts."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import pytest
import yaml

from opsmith.errors import InputError, PathNotFoundError
from opsmith.finetune.data import validate_file
from opsmith.finetune.estimate import (
    METHODS,
    InferencePrice,
    Offering,
    ThroughputFigure,
    ThroughputTable,
    estimate,
    load_price_table,
    load_throughput_table,
    parse_params,
)

SIZES = ["1B", "3B", "8B", "13B", "70B"]


# -- the regression: $8 per 1M training tokens, 10,000 examples × 500 tokens, 1 epoch → 5M tokens, $40


def test_regression_forty_dollars_from_a_token_count() -> None:
    result = estimate(tokens=10_000 * 500, epochs=1, price_per_mtok=8)
    assert result.training_tokens == 5_000_000
    assert result.training_cost_usd == 40.00
    assert [(c.offering, c.training_per_mtok, c.training_cost_usd) for c in result.costs] == [
        ("--price-per-mtok", 8, 40.0)
    ]


@pytest.fixture(scope="module")
def five_million_token_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10,000 distinct alpaca rows of exactly 500 tokens each under the chars/4 approximation."""
    rng = random.Random(3)
    words = [f"{rng.choice(['pod', 'node', 'disk', 'lag', 'cert'])}{n}" for n in range(3000)]

    def text(chars: int) -> str:
        out = ""
        while len(out) < chars:
            out += rng.choice(words) + " "
        return out[:chars]

    path = tmp_path_factory.mktemp("regression") / "ten-thousand.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        for _ in range(10_000):
            # No input: the prompt is the instruction, 1,000 characters = 250 tokens; the output another 250.
            handle.write(json.dumps({"instruction": text(1000), "output": text(1000)}) + "\n")
    return path


@pytest.mark.slow  # writes and validates ten thousand rows (five million tokens)
def test_regression_forty_dollars_from_a_data_file(five_million_token_file: Path) -> None:
    report = validate_file(five_million_token_file)
    assert report.ok
    assert report.valid == 10_000
    assert report.stats.total_tokens == 5_000_000
    assert report.stats.prompt_tokens.min == report.stats.prompt_tokens.max == 250

    result = estimate(data=five_million_token_file, price_per_mtok=8)
    assert (result.data_tokens, result.training_tokens, result.training_cost_usd) == (5_000_000, 5_000_000, 40.0)
    assert result.data is not None
    assert result.data["token_counter"] == "approx: chars/4"


def test_regression_forty_dollars_from_the_shipped_table() -> None:
    # The legacy gpt-3.5-turbo fine-tuning price, $8 per 1M training tokens, is where the example comes from.
    result = estimate(tokens=10_000 * 500, base_model="gpt-3.5-turbo")
    assert result.training_cost_usd == 40.0
    assert [c.offering for c in result.costs] == ["openai/gpt-3.5-turbo-0125"]


def test_epochs_multiply_tokens_and_cost() -> None:
    result = estimate(tokens=5_000_000, epochs=3, price_per_mtok=8)
    assert (result.training_tokens, result.training_cost_usd) == (15_000_000, 120.0)
    half = estimate(tokens=5_000_000, epochs=0.5, price_per_mtok=8)
    assert (half.training_tokens, half.training_cost_usd) == (2_500_000, 20.0)


# -- price tables


def test_the_shipped_price_table_is_sourced_and_dated() -> None:
    table = load_price_table()
    assert table.version
    ids = [o.id for o in table.offerings]
    assert len(ids) == len(set(ids)) >= 10
    for offering in table.offerings:
        assert offering.source.startswith("https://")
        assert offering.as_of.year >= 2024
        assert offering.training_per_mtok is not None or offering.base is not None
    providers = {o.provider for o in table.offerings}
    assert {"OpenAI", "Together AI", "Fireworks AI"} <= providers


def test_the_tables_load_into_typed_frozen_models() -> None:
    from pydantic import ValidationError

    offerings = load_price_table().offerings
    assert all(isinstance(o, Offering) for o in offerings)
    priced = next(o for o in offerings if o.base is not None)
    assert isinstance(priced.base, InferencePrice)
    with pytest.raises(ValidationError, match="frozen"):
        priced.id = "changed"  # type: ignore[misc]
    assert isinstance(load_throughput_table(), ThroughputTable)
    # A measured figure keeps its own source; a bare number is a rule-of-thumb figure.
    table = ThroughputTable.model_validate(
        {
            "table_version": "t",
            "rule_of_thumb": "r",
            "methods": {"lora": {"flops_per_param_token": 4, "mfu": 0.3}},
            "gpus": {"L4-24GB": {"memory_gb": 24, "peak_tflops": 121, "source": "datasheet"}},
            "tokens_per_second": {
                "L4-24GB": {"lora": {"8B": {"tokens_per_second": 900, "source": "our run"}, "1B": 5}}
            },
        }
    )
    figures = table.tokens_per_second["L4-24GB"]["lora"]
    assert figures["8B"] == ThroughputFigure(tokens_per_second=900, source="our run")
    assert figures["1B"] == 5


def test_a_price_table_file_replaces_the_shipped_one(tmp_path: Path) -> None:
    table = {
        "table_version": "team-2025-09",
        "offerings": [
            {
                "id": "internal/llama-8b",
                "provider": "Our GPU pool",
                "model": "acme/llama-8b-ops",
                "training_per_mtok": 2.5,
                "base": {"input_per_mtok": 0.1, "output_per_mtok": 0.2},
                "fine_tuned": {"input_per_mtok": 0.1, "output_per_mtok": 0.2},
                "source": "finance sheet Q3",
                "as_of": "2025-09-01",
            }
        ],
    }
    path = tmp_path / "prices.yaml"
    path.write_text(yaml.safe_dump(table))
    result = estimate(tokens=4_000_000, base_model="acme/llama-8b-ops", price_table=path, params="8B")
    assert result.training_cost_usd == 10.0
    assert result.price_table_version == "team-2025-09"
    assert result.costs[0].source == "finance sheet Q3"
    assert result.costs[0].as_of == "2025-09-01"
    assert [(i.base_per_1k_queries_usd, i.fine_tuned_per_1k_queries_usd) for i in result.inference] == [
        (0.09, 0.09)  # 1000 × (500 × 0.1 + 200 × 0.2) / 1e6
    ]
    # The shipped OpenAI rows are gone with the replaced table.
    assert estimate(tokens=1, base_model="gpt-4o-mini", price_table=path, params="8B").costs == []


def test_an_invalid_price_table_names_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    row = {"id": "a", "provider": "p", "model": "m", "trainng_per_mtok": 3, "source": "s", "as_of": "2025-01-01"}
    path.write_text(yaml.safe_dump({"table_version": "x", "offerings": [row]}))
    with pytest.raises(InputError, match=r"offerings\.0\.trainng_per_mtok: Extra inputs are not permitted"):
        estimate(tokens=1, price_table=path)
    path.write_text("offerings: [unclosed")
    with pytest.raises(InputError, match="not valid YAML"):
        estimate(tokens=1, price_table=path)
    with pytest.raises(PathNotFoundError):
        estimate(tokens=1, price_table=tmp_path / "missing.yaml")


def test_price_per_mtok_overrides_the_table_for_one_run() -> None:
    table_price = estimate(tokens=2_000_000, base_model="gpt-4o-mini")
    row = next(o for o in load_price_table().offerings if o.id == "openai/gpt-4o-mini-2024-07-18")
    assert table_price.training_cost_usd == round(2 * row.training_per_mtok, 2)
    overridden = estimate(tokens=2_000_000, base_model="gpt-4o-mini", price_per_mtok=1.25)
    assert overridden.training_cost_usd == 2.5
    assert [c.source for c in overridden.costs] == ["--price-per-mtok"]
    assert overridden.inference == table_price.inference  # inference prices still come from the table


def test_size_tiers_pick_the_rows_for_the_size_and_method() -> None:
    lora_8b = {c.offering for c in estimate(tokens=1_000_000, params="8B").costs}
    assert lora_8b == {"together/sft-lora-up-to-16b", "fireworks/sft-up-to-16b"}
    full_70b = {c.offering for c in estimate(tokens=1_000_000, params="70B", method="full").costs}
    assert full_70b == {"together/sft-full-70b-100b"}
    qlora_8b = {c.offering for c in estimate(tokens=1_000_000, params="8B", method="qlora").costs}
    assert qlora_8b == lora_8b  # hosted services bill a QLoRA run as LoRA
    assert estimate(tokens=1_000_000, params="8B").training_cost_usd is None  # two offers: compare them


def test_inference_cost_per_thousand_queries() -> None:
    row = next(o for o in load_price_table().offerings if "gpt-4o-mini" in o.aliases)
    result = estimate(tokens=1, base_model="gpt-4o-mini", fine_tuned_prompt_tokens=150)
    [item] = result.inference
    assert item.base_per_1k_queries_usd == pytest.approx(
        1000 * (500 * row.base.input_per_mtok + 200 * row.base.output_per_mtok) / 1e6
    )
    assert item.fine_tuned_per_1k_queries_usd == pytest.approx(
        1000 * (150 * row.fine_tuned.input_per_mtok + 200 * row.fine_tuned.output_per_mtok) / 1e6
    )
    assert result.query == {"prompt_tokens": 500, "output_tokens": 200, "fine_tuned_prompt_tokens": 150}
    assert result.methods == {}  # no parameter count for a hosted model
    assert any("--params" in note for note in result.notes)


# -- memory and GPU-hours


@pytest.mark.parametrize("gpu", ["A100-80GB", "H100-80GB", "T4-16GB"])
def test_memory_and_gpu_hours_are_present_and_grow_with_model_size(gpu: str) -> None:
    results = [estimate(tokens=10_000_000, params=size, gpu=gpu) for size in SIZES]
    for method in METHODS:
        memory = [r.methods[method].memory_gb for r in results]
        hours = [r.methods[method].gpu_hours for r in results]
        assert all(value > 0 for value in memory + hours)
        assert all(a < b for a, b in itertools.pairwise(memory)), (method, memory)
        assert all(a < b for a, b in itertools.pairwise(hours)), (method, hours)
    for r in results:  # QLoRA needs the least memory, full fine-tuning the most
        assert r.methods["qlora"].memory_gb < r.methods["lora"].memory_gb < r.methods["full"].memory_gb


def test_memory_follows_the_documented_bytes_per_parameter() -> None:
    result = estimate(tokens=1_000_000, params="8B")
    full, lora, qlora = (result.methods[m] for m in ("full", "lora", "qlora"))
    assert full.memory["weights_gb"] + full.memory["gradients_and_optimizer_gb"] == pytest.approx(16 * 8)
    assert lora.memory["weights_gb"] == pytest.approx(2 * 8)
    assert lora.memory["adapter_state_gb"] == pytest.approx(16 * 0.005 * 8)
    assert qlora.memory["weights_gb"] == pytest.approx(0.55 * 8)
    # Activations for the Llama 3.1 8B shape at 2,048 tokens: (2·32 + 34)·s·h + 8·s·V bytes.
    expected = ((2 * 32 + 34) * 2048 * 4096 + 8 * 2048 * 128256) / 1e9
    assert lora.memory["activations_gb"] == pytest.approx(expected, abs=0.01)
    assert lora.memory_gb == pytest.approx(sum(lora.memory.values()), abs=0.02)
    assert "16 B/param" in full.memory_formula
    assert result.shape_source == "Llama 3.1 8B shape"
    longer = estimate(tokens=1_000_000, params="8B", sequence_len=8192)
    assert longer.methods["lora"].memory["activations_gb"] == pytest.approx(4 * expected, abs=0.02)


def test_gpus_needed_when_it_does_not_fit() -> None:
    result = estimate(tokens=1_000_000, params="70B", gpu="A100-80GB")
    full = result.methods["full"]
    assert full.memory_gb > 1000
    assert not full.fits_on_one_gpu
    assert full.gpus_needed is not None
    assert full.gpus_needed >= 14
    assert full.wall_hours == pytest.approx(full.gpu_hours / full.gpus_needed, rel=1e-3)
    assert result.methods["qlora"].fits_on_one_gpu


def test_gpu_hours_come_from_the_throughput_table() -> None:
    table = load_throughput_table()
    result = estimate(tokens=36_000_000, params="8B", gpu="A100-80GB", method="lora")
    figure = table.tokens_per_second["A100-80GB"]["lora"]["8B"]
    assert result.methods["lora"].tokens_per_second == figure
    assert result.methods["lora"].gpu_hours == pytest.approx(36_000_000 / figure / 3600, rel=1e-3)
    assert result.methods["lora"].throughput_source.startswith("rule of thumb")
    # Between sizes the nearest figure scales with size / params.
    between = estimate(tokens=1_000_000, params="7B", gpu="A100-80GB").methods["lora"]
    assert between.tokens_per_second == pytest.approx(figure * 8 / 7, rel=1e-3)
    assert "scaled from the 8B figure" in between.throughput_source


def test_the_throughput_table_matches_its_documented_rule() -> None:
    table = load_throughput_table()
    sizes = {"1B": 1e9, "3B": 3e9, "8B": 8e9, "13B": 13e9, "70B": 70e9}
    assert set(table.tokens_per_second) == set(table.gpus)
    for gpu, by_method in table.tokens_per_second.items():
        assert set(by_method) == set(METHODS)
        for method, figures in by_method.items():
            assert set(figures) == set(sizes)
            rule = table.methods[method]
            for size, figure in figures.items():
                if isinstance(figure, int | float):  # a rule-of-thumb figure, not a measured one
                    expected = (
                        table.gpus[gpu].peak_tflops * 1e12 * rule.mfu / (rule.flops_per_param_token * sizes[size])
                    )
                    assert figure == pytest.approx(expected, rel=0.01), (gpu, method, size)


@pytest.mark.parametrize(("name", "resolved"), [("a100-80gb", "A100-80GB"), ("L4", "L4-24GB"), ("t4", "T4-16GB")])
def test_gpu_names(name: str, resolved: str) -> None:
    assert estimate(tokens=1, params="1B", gpu=name).gpu.name == resolved


def test_unknown_or_ambiguous_gpu() -> None:
    with pytest.raises(InputError, match=r"Unknown GPU 'V100'.*A100-80GB"):
        estimate(tokens=1, params="1B", gpu="V100")
    with pytest.raises(InputError, match=r"ambiguous.*A100-40GB, A100-80GB"):
        estimate(tokens=1, params="1B", gpu="A100")


# -- parameter counts


@pytest.mark.parametrize(
    ("text", "count"),
    [("8B", 8_000_000_000), ("1.5B", 1_500_000_000), ("350M", 350_000_000), ("70b", 70_000_000_000), ("7e9", 7e9)],
)
def test_parse_params(text: str, count: int) -> None:
    assert parse_params(text) == count


@pytest.mark.parametrize("text", ["eight billion", "8 GB", "-3B", "0"])
def test_parse_params_rejects_nonsense(text: str) -> None:
    with pytest.raises(InputError, match=r"8B, 1\.5B or 350M"):
        parse_params(text)


def test_params_from_a_local_config(tiny_model: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    result = estimate(tokens=1_000_000, base_model=str(tiny_model))
    assert result.params == sum(p.numel() for p in model.parameters())
    assert result.params_source == "config.json"
    assert result.shape_source == f"config of {tiny_model}"
    assert set(result.methods) == set(METHODS)
    assert estimate(tokens=1, base_model=str(tiny_model), params="2B").params == 2_000_000_000


def test_params_from_the_model_name_or_an_error_with_the_remedy() -> None:
    named = estimate(tokens=1_000_000, base_model="meta-llama/Llama-3.1-8B-Instruct")
    assert (named.params, named.params_source) == (8_000_000_000, "model name")
    assert estimate(tokens=1, base_model="Qwen/Qwen2.5-0.5B").params == 500_000_000
    with pytest.raises(InputError, match=r"Cannot tell the size of 'acme/secret-model'.*--params"):
        estimate(tokens=1, base_model="acme/secret-model")


def test_tokens_or_data_but_not_both(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not both"):
        estimate()
    with pytest.raises(InputError, match="not both"):
        estimate(tokens=5, data=tmp_path / "x.jsonl")
    with pytest.raises(PathNotFoundError):
        estimate(data=tmp_path / "x.jsonl")
    with pytest.raises(InputError, match="epochs"):
        estimate(tokens=5, epochs=0)


def test_to_dict_states_the_formulas_and_sources() -> None:
    data = estimate(tokens=5_000_000, params="8B", price_per_mtok=8).to_dict()
    assert (data["training_tokens"], data["training_cost_usd"]) == (5_000_000, 40.0)
    assert data["memory_gb"] == data["methods"]["lora"]["memory_gb"]
    assert data["gpu_hours"] == data["methods"]["lora"]["gpu_hours"]
    for method in METHODS:
        item = data["methods"][method]
        assert item["memory_formula"]
        assert item["throughput_source"]
        assert item["memory"]["activations_gb"] > 0
    assert "(2*L + 34)*s*b*h" in data["activation_formula"]
    assert data["gpu"]["source"].startswith("NVIDIA")
    json.dumps(data)  # serialisable as is
