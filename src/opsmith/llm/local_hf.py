"""A local Hugging Face causal LM, optionally with a LoRA adapter, behind the ``ChatModel`` seam.

This is how a model tuned with ``opsmith finetune train`` is served to ``ask``, ``review``
and the comparison harness: ``--provider local_hf --model BASE --adapter ADAPTER_DIR``.

* **Loading.** ``model`` is a folder holding ``config.json``, weights and a tokenizer (a merged
  model from ``opsmith finetune merge`` is one), or the name of a model already in the
  Hugging Face cache. Nothing is downloaded (``local_files_only``). ``adapter`` is a PEFT
  adapter folder (``adapter_config.json`` + weights), applied with ``PeftModel``; when the
  folder also holds a tokenizer (training saves one), that tokenizer is used.
* **Prompt.** The tokenizer's chat template when it has one (``add_generation_prompt``). A
  template that rejects the ``system`` role gets the system text prepended to the first user
  message instead. Without a template, the plain-text fallback is::

      System: {system}

      User: {user}

      Assistant: {assistant}

      User: {user}

      Assistant:

  and generation also stops where the model starts a ``User:`` turn of its own.
* **Decoding.** ``temperature`` None or 0 is greedy (deterministic); above 0 samples. It stops
  at EOS (the generation config's EOS ids, plus the tokenizer's, plus an end-of-turn token
  such as ``<|im_end|>`` that the chat template itself writes) or at ``max_tokens`` new
  tokens, capped by the room left in the model's context window.
* **Structured output.** There is no native schema enforcement: ``json_schema`` is accepted
  and ignored. :func:`opsmith.llm.structured.complete_structured` validates the reply and
  re-asks with the errors, which is what makes small local models usable for JSON output.
* **Device.** CUDA when available (bfloat16 where supported, else float16), otherwise CPU in
  float32. Calls are serialised by a lock: one model instance generates one reply at a time.
* **Deadline.** ``deadline`` seconds (``OPSMITH_LLM_DEADLINE``) bound a whole call, the wait
  for the lock included: a stopping criterion ends generation at the next token once it
  passes, and the call raises :class:`~opsmith.errors.ProviderDeadlineError`.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opsmith.errors import ConfigError, ProviderDeadlineError, ProviderError
from opsmith.llm._base import ChatResponse, Message, StreamEvent, Usage
from opsmith.llm._deadline import call_end, time_left

__all__ = ["FALLBACK_STOP", "LocalHFChatModel", "fallback_prompt"]

#: Where generation stops in the plain-text fallback format: the model starting a user turn.
FALLBACK_STOP = "\nUser:"
_FALLBACK_ROLES = {"system": "System", "user": "User", "assistant": "Assistant"}
#: End-of-turn tokens of common chat templates; one is a stop token when the template writes it.
_END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "</s>")


def fallback_prompt(messages: Sequence[Message]) -> str:
    """The documented plain-text prompt for tokenizers without a chat template."""
    turns = [f"{_FALLBACK_ROLES[m.role]}: {m.content.strip()}" for m in messages]
    return "\n\n".join([*turns, "Assistant:"])


@dataclass
class _Prepared:
    input_ids: Any  # torch.Tensor, shape (1, prompt_tokens)
    max_new_tokens: int
    temperature: float | None
    stop_text: str | None


class LocalHFChatModel:
    """A :class:`~opsmith.llm.ChatModel` over a local transformers model plus an optional LoRA adapter.

    Loading happens in ``__init__`` (seconds for a small model, longer for a large one).

    Args:
        model: A model folder, or the name of a model in the local Hugging Face cache.
        adapter: A PEFT LoRA adapter folder to apply on top, or None.
        max_tokens: New-token cap when a call gives none.
        deadline: Seconds for a whole call, waiting for the model included (None: no limit).
        device: ``cuda``, ``cpu``, ... ; None picks CUDA when available.

    Raises:
        ConfigError: the model or adapter cannot be found or loaded from local files.
    """

    provider = "local_hf"

    def __init__(
        self,
        model: str | Path,
        adapter: str | Path | None = None,
        *,
        max_tokens: int = 1024,
        deadline: float | None = 120.0,
        device: str | None = None,
    ) -> None:
        self.base_model = str(model)
        self.adapter = Path(adapter).expanduser() if adapter is not None else None
        # Paths are checked before torch is imported, so a typo fails in milliseconds.
        source, cached = _check_paths(self.base_model, self.adapter)
        import torch

        # Logs and results name the adapter too: base+adapter is a different model from base.
        self.model = f"{self.base_model}+{self.adapter}" if self.adapter else self.base_model
        self.max_tokens = max_tokens
        self.deadline = deadline
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self._lock = threading.Lock()
        self.tokenizer, self.hf_model = _load(source, cached, self.adapter, self.device)
        self._stop_ids = _stop_token_ids(self.tokenizer, self.hf_model)
        pad = self.tokenizer.pad_token_id
        self._pad_id = pad if pad is not None else self._stop_ids[0] if self._stop_ids else 0
        config = self.hf_model.config
        text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
        context = getattr(text_config, "max_position_embeddings", None)
        self.context_tokens: int | None = context if isinstance(context, int) and context > 0 else None

    def __repr__(self) -> str:
        return f"LocalHFChatModel(model={self.base_model!r}, adapter={self.adapter!r}, device={self.device!r})"

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def close(self) -> None:
        """Nothing to release but memory, which goes with the object; here for symmetry with HTTP providers."""

    def prompt_ids(self, messages: Sequence[Message]) -> list[int]:
        """The token ids the model is given for ``messages`` (chat template or fallback format)."""
        return self._encode(messages)[0]

    def complete(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        json_schema: dict[str, Any] | None = None,
    ) -> ChatResponse:
        """Generate a reply; ``json_schema`` is ignored (see the module docstring)."""
        started = time.perf_counter()
        end = call_end(self.deadline)
        prepared = self._prepare(messages, max_tokens, temperature)
        stop = _Stop(end)
        with self._locked(end):
            new_ids = self._generate(prepared, stop=stop)
        if stop.timed_out:
            raise self._deadline_error()
        return self._response(prepared, new_ids, started)

    def stream(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> Iterator[StreamEvent]:
        """Yield text deltas while a background thread generates, then one event with the full response.

        Closing the iterator early stops the generation at the next token.
        """
        from transformers import TextIteratorStreamer

        started = time.perf_counter()
        end = call_end(self.deadline)
        prepared = self._prepare(messages, max_tokens, temperature)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        stop = _Stop(end)
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                with self._locked(end):
                    outcome["ids"] = self._generate(prepared, streamer=streamer, stop=stop)
            except BaseException as exc:  # re-raised in the caller's thread below
                outcome["error"] = exc
                streamer.end()  # type: ignore[no-untyped-call]  # unblocks the loop below

        thread = threading.Thread(target=run, name="opsmith-local-hf", daemon=True)
        thread.start()
        held = _StopHoldback(prepared.stop_text)
        try:
            for piece in streamer:
                delta = held.feed(piece)
                if delta:
                    yield StreamEvent(delta=delta)
                if held.stopped:
                    break
        finally:
            stop.cancel.set()
            thread.join()
        if "error" in outcome:
            raise outcome["error"]
        if stop.timed_out:
            raise self._deadline_error()
        tail = held.flush()
        if tail:
            yield StreamEvent(delta=tail)
        yield StreamEvent(response=self._response(prepared, outcome["ids"], started))

    # -- internals ---------------------------------------------------------------------------

    @contextmanager
    def _locked(self, end: float | None) -> Iterator[None]:
        """Hold the model's lock, waiting for another call's reply no later than ``end``."""
        left = time_left(end)
        if not self._lock.acquire(timeout=-1 if left is None else max(0.0, left)):
            raise self._deadline_error(busy=True)
        try:
            yield
        finally:
            self._lock.release()

    def _deadline_error(self, *, busy: bool = False) -> ProviderDeadlineError:
        deadline = self.deadline or 0.0
        what = "was still busy with another reply" if busy else "was still generating"
        return ProviderDeadlineError(
            f"local_hf model {self.base_model} {what} at the {deadline:g}s deadline"
            " — raise OPSMITH_LLM_DEADLINE, lower OPSMITH_LLM_MAX_TOKENS, or use a GPU or a smaller model",
            provider=self.provider,
            deadline=deadline,
        )

    def _encode(self, messages: Sequence[Message]) -> tuple[list[int], str | None]:
        if not messages:
            raise ProviderError("local_hf got no messages — pass at least one user message", provider=self.provider)
        if not self.has_chat_template:
            text = fallback_prompt(messages)
            return list(self.tokenizer(text)["input_ids"]), FALLBACK_STOP
        chat = [{"role": m.role, "content": m.content} for m in messages]
        try:
            text = self.tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
        except Exception as exc:
            # Some templates (Gemma, Mistral's older ones) raise on a system turn.
            if chat[0]["role"] != "system" or len(chat) < 2:
                raise ProviderError(
                    f"The chat template of {self.base_model} rejected the messages ({exc})"
                    " — check the roles alternate user/assistant",
                    provider=self.provider,
                ) from exc
            merged = [{"role": chat[1]["role"], "content": f"{chat[0]['content']}\n\n{chat[1]['content']}"}, *chat[2:]]
            text = self.tokenizer.apply_chat_template(merged, add_generation_prompt=True, tokenize=False)
        # The template writes its own special tokens (BOS included, where it wants one).
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"]), None

    def _prepare(self, messages: Sequence[Message], max_tokens: int | None, temperature: float | None) -> _Prepared:
        import torch

        ids, stop_text = self._encode(messages)
        limit = self.max_tokens if max_tokens is None else max_tokens
        if limit < 1:
            raise ProviderError(f"max_tokens must be at least 1, got {limit}", provider=self.provider)
        if self.context_tokens is not None:
            room = self.context_tokens - len(ids)
            if room < 1:
                raise ProviderError(
                    f"The prompt has {len(ids)} tokens but {self.base_model} has a {self.context_tokens}-token"
                    " context — send less text (for ask, lower --top-k) or use a model with a longer context",
                    provider=self.provider,
                )
            limit = min(limit, room)
        input_ids = torch.tensor([ids], dtype=torch.long, device=self.device)
        return _Prepared(input_ids, limit, temperature, stop_text)

    def _generate(self, prepared: _Prepared, *, streamer: Any = None, stop: _Stop | None = None) -> Any:
        import torch

        config = copy.deepcopy(self.hf_model.generation_config)
        config.max_new_tokens = prepared.max_new_tokens
        config.max_length = None
        config.min_new_tokens = None
        config.min_length = 0
        config.eos_token_id = self._stop_ids or None
        config.pad_token_id = self._pad_id
        config.num_beams = 1
        if prepared.temperature:
            config.do_sample = True
            config.temperature = prepared.temperature
        else:
            # Unset the sampling knobs too: a model's config may carry them for sampling.
            config.do_sample = False
            config.temperature = config.top_p = config.top_k = None
        kwargs: dict[str, Any] = {"generation_config": config}
        if streamer is not None:
            kwargs["streamer"] = streamer
        if stop is not None:
            kwargs["stopping_criteria"] = stop.criteria()
        if prepared.stop_text:
            config.stop_strings = [prepared.stop_text]
            kwargs["tokenizer"] = self.tokenizer
        attention_mask = torch.ones_like(prepared.input_ids)
        try:
            with torch.inference_mode():
                output = self.hf_model.generate(input_ids=prepared.input_ids, attention_mask=attention_mask, **kwargs)
        except RuntimeError as exc:  # e.g. CUDA out of memory
            raise ProviderError(
                f"local_hf generation failed ({exc}) — lower max_tokens or send a shorter prompt",
                provider=self.provider,
            ) from exc
        return output[0, prepared.input_ids.shape[1] :].tolist()

    def _response(self, prepared: _Prepared, new_ids: list[int], started: float) -> ChatResponse:
        text = self.tokenizer.decode(new_ids, skip_special_tokens=True)
        if new_ids and new_ids[-1] in self._stop_ids:
            stop_reason = "end"
        elif prepared.stop_text and prepared.stop_text in text:
            stop_reason = "stop_sequence"
        elif len(new_ids) >= prepared.max_new_tokens:
            stop_reason = "max_tokens"
        else:
            stop_reason = "end"
        if prepared.stop_text and prepared.stop_text in text:
            text = text[: text.index(prepared.stop_text)]
        return ChatResponse(
            text=text,
            model=self.model,
            usage=Usage(int(prepared.input_ids.shape[1]), len(new_ids)),
            stop_reason=stop_reason,
            latency_ms=(time.perf_counter() - started) * 1000,
        )


class _StopHoldback:
    """Holds back streamed text that may be the start of the stop string, and cuts at it."""

    def __init__(self, stop: str | None) -> None:
        self.stop = stop
        self.pending = ""
        self.stopped = False

    def feed(self, piece: str) -> str:
        if not self.stop:
            return piece
        self.pending += piece
        at = self.pending.find(self.stop)
        if at >= 0:
            self.stopped = True
            out, self.pending = self.pending[:at], ""
            return out
        keep = next((n for n in range(len(self.stop) - 1, 0, -1) if self.pending.endswith(self.stop[:n])), 0)
        cut = len(self.pending) - keep
        out, self.pending = self.pending[:cut], self.pending[cut:]
        return out

    def flush(self) -> str:
        out, self.pending = ("" if self.stopped else self.pending), ""
        return out


class _Stop:
    """Ends generation at the next token when the caller cancels (``cancel``) or ``end`` passes."""

    def __init__(self, end: float | None) -> None:
        self.end = end
        self.cancel = threading.Event()
        self.timed_out = False

    def criteria(self) -> Any:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        stop = self

        class Criterion(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                if stop.end is not None and time.monotonic() >= stop.end:
                    stop.timed_out = True
                done = stop.timed_out or stop.cancel.is_set()
                return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)

        return StoppingCriteriaList([Criterion()])


def _stop_token_ids(tokenizer: Any, model: Any) -> list[int]:
    ids: list[int] = []
    configured = model.generation_config.eos_token_id
    for value in configured if isinstance(configured, list) else [configured]:
        if isinstance(value, int) and value not in ids:
            ids.append(value)
    if isinstance(tokenizer.eos_token_id, int) and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, str):
        unk = tokenizer.unk_token_id
        for token in _END_OF_TURN:
            if token in template:
                token_id = tokenizer.convert_tokens_to_ids(token)
                if isinstance(token_id, int) and token_id != unk and token_id not in ids:
                    ids.append(token_id)
    return ids


def _looks_like_path(name: str) -> bool:
    # Hub ids are "name" or "org/name"; anything else is meant as a folder.
    return name.startswith((".", "~", "/")) or name.count("/") > 1 or "\\" in name


def _check_paths(model: str, adapter: Path | None) -> tuple[str, bool]:
    """Where to load the model from, and whether that is a Hugging Face cache name."""
    path = Path(model).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ConfigError(
                f"{model} is not a transformers model folder (no config.json)"
                " — pass the folder of a saved model, e.g. the output of `opsmith finetune merge`"
            )
        source, cached = str(path), False
    elif _looks_like_path(model):
        raise ConfigError(f"Model path not found: {model} — check OPSMITH_MODEL / --model")
    else:
        source, cached = model, True
    if adapter is not None:
        if not adapter.is_dir():
            raise ConfigError(f"Adapter folder not found: {adapter} — check OPSMITH_ADAPTER / --adapter")
        if not (adapter / "adapter_config.json").is_file():
            raise ConfigError(
                f"{adapter} is not a LoRA adapter folder (no adapter_config.json)"
                " — pass the output_dir of `opsmith finetune train`"
            )
    return source, cached


def _load(source: str, cached: bool, adapter: Path | None, device: str) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if device.startswith("cuda"):
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    else:
        dtype = torch.float32
    tokenizer_source = str(adapter) if adapter and (adapter / "tokenizer_config.json").is_file() else source
    try:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_source, local_files_only=True)
        hf_model: Any = AutoModelForCausalLM.from_pretrained(source, local_files_only=True, dtype=dtype)
    except (OSError, ValueError) as exc:
        if cached:
            raise ConfigError(
                f"Cannot load model {source!r} from local files ({_first_line(exc)}) — pass a model folder,"
                f" or download it first with `hf download {source}` (opsmith never downloads models)"
            ) from exc
        raise ConfigError(f"Cannot load the model in {source} ({_first_line(exc)}) — check the folder") from exc
    if adapter is not None:
        from peft import PeftModel

        try:
            hf_model = PeftModel.from_pretrained(hf_model, str(adapter), is_trainable=False)
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise ConfigError(
                f"Cannot apply the adapter in {adapter} to {source} ({_first_line(exc)})"
                " — check the adapter was trained on this base model"
            ) from exc
    hf_model.to(device)
    hf_model.eval()
    return tokenizer, hf_model


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
