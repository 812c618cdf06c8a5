"""The local_hf provider on a tiny Llama built in code: prompt, decoding, streaming, adapters, registry."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from opsmith.config import load_settings
from opsmith.errors import ConfigError, ProviderDeadlineError, ProviderError
from opsmith.finetune.tiny import build_tiny_llama
from opsmith.llm import ChatModel, Message, StreamEvent, get_chat_model
from opsmith.llm.local_hf import FALLBACK_STOP, LocalHFChatModel, _StopHoldback, fallback_prompt

torch = pytest.importorskip("torch")

MESSAGES = [
    Message("system", "You summarise alerts."),
    Message("user", "postgres replication lag on replica, severity warning"),
]


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("local-hf-tiny"))


@pytest.fixture(scope="module")
def adapter_path(tiny_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter whose B matrices are non-zero, so it really changes the model's outputs."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_path, local_files_only=True)
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    folder = tmp_path_factory.mktemp("local-hf-adapter")
    peft_model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def model(tiny_path: Path) -> LocalHFChatModel:
    return LocalHFChatModel(tiny_path, max_tokens=12, device="cpu")


def _logits(hf_model: Any, ids: list[int]) -> Any:
    with torch.inference_mode():
        return hf_model(input_ids=torch.tensor([ids])).logits


def test_implements_the_chat_model_seam(model: LocalHFChatModel, tiny_path: Path) -> None:
    assert isinstance(model, ChatModel)
    assert (model.provider, model.model, model.device) == ("local_hf", str(tiny_path), "cpu")
    assert model.hf_model.dtype == torch.float32


def test_complete_returns_text_usage_and_latency(model: LocalHFChatModel) -> None:
    expected_prompt = model.tokenizer.apply_chat_template(
        [{"role": m.role, "content": m.content} for m in MESSAGES], add_generation_prompt=True, tokenize=True
    )["input_ids"]
    response = model.complete(MESSAGES)
    assert isinstance(response.text, str)
    assert response.usage.input_tokens == len(expected_prompt)
    assert 1 <= response.usage.output_tokens <= 12
    assert response.stop_reason in {"end", "max_tokens"}
    assert response.latency_ms > 0
    assert response.model == model.model


def test_the_prompt_is_the_chat_template(model: LocalHFChatModel, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, Any]] = []
    real: Callable[..., Any] = model.tokenizer.apply_chat_template

    def spy(conversation: Any, **kwargs: Any) -> Any:
        seen.append({"conversation": conversation, **kwargs})
        return real(conversation, **kwargs)

    monkeypatch.setattr(model.tokenizer, "apply_chat_template", spy)
    ids = model.prompt_ids(MESSAGES)
    assert seen[0]["conversation"] == [{"role": m.role, "content": m.content} for m in MESSAGES]
    assert seen[0]["add_generation_prompt"] is True
    text = model.tokenizer.decode(ids)
    assert text == (
        "<|system|>\nYou summarise alerts.<|end|>\n"
        "<|user|>\npostgres replication lag on replica, severity warning<|end|>\n<|assistant|>\n"
    )


def test_max_tokens_cuts_off_and_says_so(model: LocalHFChatModel) -> None:
    # The seeded random model does not emit EOS in its first tokens for this prompt.
    response = model.complete(MESSAGES, max_tokens=3)
    assert (response.usage.output_tokens, response.stop_reason, response.truncated) == (3, "max_tokens", True)


def test_greedy_decoding_is_deterministic(model: LocalHFChatModel) -> None:
    first = model.complete(MESSAGES, temperature=0.0)
    second = model.complete(MESSAGES)
    assert first.text == second.text
    assert first.usage == second.usage


def test_sampling_runs_when_temperature_is_positive(model: LocalHFChatModel) -> None:
    torch.manual_seed(0)
    first = model.complete(MESSAGES, temperature=1.0)
    torch.manual_seed(0)
    second = model.complete(MESSAGES, temperature=1.0)
    assert first.text == second.text  # same seed, same sample
    assert first.usage.input_tokens == len(model.prompt_ids(MESSAGES))


def test_stream_deltas_join_to_the_complete_text(model: LocalHFChatModel) -> None:
    expected = model.complete(MESSAGES, max_tokens=12)
    events: list[StreamEvent] = list(model.stream(MESSAGES, max_tokens=12))
    deltas = [e.delta for e in events if e.delta]
    final = events[-1].response
    assert final is not None
    assert all(e.response is None for e in events[:-1])
    assert "".join(deltas) == expected.text == final.text
    assert (final.usage, final.stop_reason) == (expected.usage, expected.stop_reason)


def test_closing_a_stream_early_stops_generation(model: LocalHFChatModel, monkeypatch: pytest.MonkeyPatch) -> None:
    generated: list[int] = []
    real = model._generate

    def record(prepared: Any, **kwargs: Any) -> list[int]:
        ids: list[int] = real(prepared, **kwargs)
        generated.append(len(ids))
        return ids

    monkeypatch.setattr(model, "_generate", record)
    stream = model.stream(MESSAGES, max_tokens=400)
    assert next(stream).delta
    stream.close()  # sets the cancel flag and joins the generating thread
    assert generated
    assert generated[0] < 400
    # The lock was released: the next call runs.
    assert model.complete(MESSAGES, max_tokens=2).usage.output_tokens == 2


@pytest.mark.parametrize("stream", [False, True])
def test_generation_is_cut_at_the_deadline(tiny_path: Path, monkeypatch: pytest.MonkeyPatch, stream: bool) -> None:
    # A budget far shorter than one generate() call: the stopping criterion ends it at the first token.
    slow = LocalHFChatModel(tiny_path, max_tokens=400, deadline=1e-4, device="cpu")
    generated: list[int] = []
    real = slow._generate

    def record(prepared: Any, **kwargs: Any) -> list[int]:
        ids: list[int] = real(prepared, **kwargs)
        generated.append(len(ids))
        return ids

    monkeypatch.setattr(slow, "_generate", record)
    call = (lambda: list(slow.stream(MESSAGES))) if stream else (lambda: slow.complete(MESSAGES))
    with pytest.raises(ProviderDeadlineError, match=r"still generating at the 0.0001s deadline.*OPSMITH_LLM_DEADLINE"):
        call()
    assert len(generated) == 1
    assert generated[0] < 400
    # The lock was released: a call with room to finish runs.
    slow.deadline = 600.0
    assert slow.complete(MESSAGES, max_tokens=2).usage.output_tokens == 2


def test_json_schema_is_accepted_and_ignored(model: LocalHFChatModel) -> None:
    schema = {"type": "object", "properties": {"title": {"type": "string"}}}
    assert model.complete(MESSAGES, json_schema=schema).text == model.complete(MESSAGES).text


def test_a_prompt_longer_than_the_context_is_a_provider_error(model: LocalHFChatModel) -> None:
    long = [Message("user", "replica " * 600)]
    with pytest.raises(ProviderError, match=r"512-token context — send less text"):
        model.complete(long)


def test_without_a_chat_template_the_plain_fallback_is_used(tiny_path: Path) -> None:
    plain = LocalHFChatModel(tiny_path, max_tokens=4, device="cpu")
    plain.tokenizer.chat_template = None
    assert not plain.has_chat_template
    text = fallback_prompt([*MESSAGES, Message("assistant", "ok"), Message("user", "more?")])
    assert text == (
        "System: You summarise alerts.\n\nUser: postgres replication lag on replica, severity warning"
        "\n\nAssistant: ok\n\nUser: more?\n\nAssistant:"
    )
    assert plain.prompt_ids(MESSAGES) == plain.tokenizer(fallback_prompt(MESSAGES))["input_ids"]
    response = plain.complete(MESSAGES)
    assert response.usage.input_tokens == len(plain.prompt_ids(MESSAGES))
    assert "".join(e.delta for e in plain.stream(MESSAGES)) == response.text


def test_fallback_stops_where_the_model_starts_a_user_turn(tiny_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = LocalHFChatModel(tiny_path, device="cpu")
    plain.tokenizer.chat_template = None
    reply = plain.tokenizer(" restart the replica\nUser: and then?", add_special_tokens=False)["input_ids"]
    monkeypatch.setattr(plain, "_generate", lambda prepared, **kwargs: reply)
    response = plain.complete(MESSAGES)
    assert (response.text, response.stop_reason) == (" restart the replica", "stop_sequence")
    assert response.usage.output_tokens == len(reply)


def test_stop_holdback_never_streams_the_stop_string() -> None:
    held = _StopHoldback(FALLBACK_STOP)
    pieces = [held.feed(p) for p in ["restart", " it\n", "Us", "er: next"]]
    assert "".join(pieces) == "restart it"
    assert held.stopped
    assert held.flush() == ""
    partial = _StopHoldback(FALLBACK_STOP)
    assert partial.feed("done\nUs") == "done"
    assert partial.flush() == "\nUs"  # the stream ended: what looked like a stop was text
    assert _StopHoldback(None).feed("as is\nUser:") == "as is\nUser:"


def test_adapter_changes_outputs_like_peft_does(model: LocalHFChatModel, tiny_path: Path, adapter_path: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    tuned = LocalHFChatModel(tiny_path, adapter_path, max_tokens=12, device="cpu")
    assert tuned.model == f"{tiny_path}+{adapter_path}"
    ids = tuned.prompt_ids(MESSAGES)
    assert ids == model.prompt_ids(MESSAGES)

    reference = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_path, local_files_only=True), adapter_path
    ).eval()
    tuned_logits = _logits(tuned.hf_model, ids)
    assert torch.allclose(tuned_logits, _logits(reference, ids), atol=1e-6)
    assert not torch.allclose(tuned_logits, _logits(model.hf_model, ids), atol=1e-3)

    with torch.inference_mode():
        expected = reference.generate(
            input_ids=torch.tensor([ids]), max_new_tokens=12, do_sample=False, pad_token_id=0, eos_token_id=[2, 7]
        )[0, len(ids) :]
    assert tuned.complete(MESSAGES).text == tuned.tokenizer.decode(expected, skip_special_tokens=True)


def test_registry_builds_it_from_settings(tiny_path: Path, adapter_path: Path) -> None:
    built = get_chat_model(
        load_settings(provider="local_hf", model=str(tiny_path), adapter=adapter_path, llm_max_tokens=5)
    )
    assert isinstance(built, LocalHFChatModel)
    assert (built.base_model, built.adapter, built.max_tokens) == (str(tiny_path), adapter_path, 5)
    assert built.complete(MESSAGES).usage.output_tokens <= 5


def test_registry_reads_the_env(tiny_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSMITH_PROVIDER", "local_hf")
    monkeypatch.setenv("OPSMITH_MODEL", str(tiny_path))
    monkeypatch.setenv("OPSMITH_LLM_DEADLINE", "42")
    built = get_chat_model(load_settings())
    assert isinstance(built, LocalHFChatModel)
    assert built.adapter is None
    assert built.deadline == 42.0


def test_registry_without_a_model_names_the_setting() -> None:
    with pytest.raises(ConfigError, match=r"set OPSMITH_MODEL or pass --model PATH"):
        get_chat_model(load_settings(provider="local_hf"))


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("./no/such/model", r"Model path not found: ./no/such/model — check OPSMITH_MODEL"),
        ("acme/not-downloaded-model", r"from local files .* download it first with `hf download"),
    ],
)
def test_a_model_that_is_not_on_disk_is_a_config_error(name: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        LocalHFChatModel(name)


def test_a_folder_that_is_not_a_model_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"not a transformers model folder \(no config.json\)"):
        LocalHFChatModel(tmp_path)


def test_a_bad_adapter_folder_is_a_config_error(tiny_path: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"Adapter folder not found: .* --adapter"):
        LocalHFChatModel(tiny_path, tmp_path / "missing")
    with pytest.raises(ConfigError, match=r"not a LoRA adapter folder \(no adapter_config.json\)"):
        LocalHFChatModel(tiny_path, tmp_path)


def test_a_local_teacher_for_distill_ignores_the_ask_adapter(tiny_path: Path, adapter_path: Path) -> None:
    from opsmith.finetune.distill import load_teacher

    teacher = load_teacher(f"local_hf:{tiny_path}", load_settings(adapter=adapter_path, llm_max_tokens=3))
    assert isinstance(teacher, LocalHFChatModel)
    assert (teacher.model, teacher.adapter, teacher.max_tokens) == (str(tiny_path), None, 3)
