"""Structured output: a pydantic model or JSON Schema in, a validated object out.

One call to :func:`complete_structured` goes like this:

1. :func:`strict_schema` reduces the schema to the subset that every provider's native
   enforcement accepts (Anthropic ``output_config.format``, OpenAI ``response_format``
   with ``strict``, vLLM and Ollama through the OpenAI-compatible path), and that reduced
   schema is sent as ``json_schema``.
2. The reply is parsed as JSON and validated against the *full* schema: the pydantic
   model, or the original JSON Schema with ``jsonschema``. Bounds dropped in step 1
   (``minimum``, ``minLength``, ``pattern``, ...) are enforced here.
3. Invalid JSON or a schema violation is sent back to the model with the errors, up to
   ``max_attempts`` calls. Nothing else is re-asked. A reply cut off at the token limit is
   its own error, because asking again with the same limit would be cut off again. A
   provider error (timeout, outage, rate limit, auth) propagates at once: the provider
   already retried the request (``OPSMITH_LLM_MAX_RETRIES``, see :mod:`opsmith.llm._http`),
   and retrying here again would multiply the two budgets.
4. The provider's deadline (``OPSMITH_LLM_DEADLINE``) bounds the whole structured call, not
   each attempt: re-asks and the provider's retries share one budget counted from the first
   request (:func:`~opsmith.llm._deadline.shared_deadline`). A call that runs out of it
   raises :class:`~opsmith.errors.ProviderDeadlineError`.

So against a server that always fails, one structured call sends ``1 + llm_max_retries``
requests, as a plain call does; against one that answers, at most ``llm_max_attempts`` calls
(each with its own transport retries), all within ``llm_deadline``.

Every call and every attempt can be written to a :class:`~opsmith.llm.calllog.CallLog`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from pydantic import BaseModel, ValidationError

from opsmith.errors import StructuredOutputError, TemplateError, TruncatedOutputError
from opsmith.llm._base import ChatModel, ChatResponse, Message, Usage
from opsmith.llm._deadline import shared_deadline

if TYPE_CHECKING:
    from opsmith.llm.calllog import CallLog

__all__ = [
    "MAX_REASK_ERRORS",
    "StructuredResult",
    "TextResult",
    "complete_structured",
    "complete_text",
    "schema_hash",
    "strict_schema",
    "validate_json_schema",
]

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

#: Validation errors quoted back to the model per re-ask; the rest are counted.
MAX_REASK_ERRORS = 20

# --------------------------------------------------------------------------------------------
# Schema reduction
# --------------------------------------------------------------------------------------------

#: Keywords that carry no constraint; dropped without being reported.
_ANNOTATIONS = frozenset(
    {
        "title",
        "default",
        "examples",
        "$comment",
        "$schema",
        "$id",
        "$anchor",
        "$defs",
        "definitions",
        "deprecated",
        "readOnly",
        "writeOnly",
        "discriminator",
    }
)
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
    "array": (list,),
    "object": (dict,),
}


def strict_schema(schema: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Reduce ``schema`` to the JSON Schema subset all supported providers enforce natively.

    Every object gets ``additionalProperties: false`` and lists all its properties in
    ``required``; ``$ref`` pointers into the schema are inlined (and ``$defs`` removed);
    ``const`` becomes a one-value ``enum``; ``oneOf`` becomes ``anyOf``; a list of types
    becomes an ``anyOf`` of single types. What is kept: ``type``, ``properties``,
    ``required``, ``additionalProperties``, ``items``, ``enum``, ``anyOf``, ``description``.
    Every other constraint (``minimum``, ``maxLength``, ``pattern``, ``format``,
    ``minItems``, ``uniqueItems``, ...) is dropped and reported; annotations (``title``,
    ``default``, ``examples``) are dropped silently. The input is not changed.

    Returns:
        The reduced schema, and the JSON-pointer path of every dropped constraint
        (``/properties/line/minimum``), which validation must enforce after the call.

    Raises:
        TemplateError: the schema is recursive, has a ``$ref`` that does not resolve inside
        it, or has a ``false`` subschema; none of these can be sent to every provider.
    """
    reducer = _Reducer(schema)
    return reducer.reduce(schema, ""), reducer.dropped


def schema_hash(schema: Mapping[str, Any]) -> str:
    """First 16 hex digits of the SHA-256 of ``schema`` as canonical JSON (sorted keys, no spaces)."""
    canonical = json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


class _Reducer:
    def __init__(self, root: Mapping[str, Any]) -> None:
        self.root = root
        self.dropped: list[str] = []
        self._active_refs: list[str] = []

    def reduce(self, node: Any, path: str) -> dict[str, Any]:
        if node is True:
            return {}
        if not isinstance(node, Mapping):
            raise TemplateError(
                f"The output schema at {path or '/'} is {json.dumps(node)}, not a schema object"
                " — use {} for 'anything' and remove subschemas that allow nothing"
            )
        pushed = 0
        try:
            while "$ref" in node:
                ref = node["$ref"]
                if ref in self._active_refs:
                    raise TemplateError(
                        f"The output schema is recursive ({ref} refers to itself at {path or '/'})"
                        " — provider-enforced schemas must be finite; give the nesting a fixed depth"
                    )
                self._active_refs.append(ref)
                pushed += 1
                siblings = {key: value for key, value in node.items() if key != "$ref"}
                # Keywords beside the $ref (pydantic puts a field's description there) win.
                node = {**self._resolve(ref, path), **siblings}
            if "allOf" in node:
                node = self._merge_all_of(node, path)
            return self._reduce_keywords(node, path)
        finally:
            del self._active_refs[len(self._active_refs) - pushed :]

    def _reduce_keywords(self, node: Mapping[str, Any], path: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in node.items():
            here = f"{path}/{_pointer_escape(key)}"
            if key in ("type", "description"):
                out[key] = value
            elif key == "enum":
                out["enum"] = list(value)
            elif key == "const":
                out["enum"] = [value]
            elif key == "properties":
                out["properties"] = {
                    name: self.reduce(sub, f"{here}/{_pointer_escape(name)}") for name, sub in value.items()
                }
            elif key == "items":
                if isinstance(value, list):  # draft-4 tuple form: no provider enforces it
                    self.dropped.append(here)
                else:
                    out["items"] = self.reduce(value, here)
            elif key in ("anyOf", "oneOf"):
                if key == "oneOf":
                    # anyOf is the portable spelling; "exactly one" is left to validation.
                    self.dropped.append(here)
                branches = out.setdefault("anyOf", [])
                branches.extend(self.reduce(sub, f"{here}/{index}") for index, sub in enumerate(value))
            elif key == "required":
                pass  # recomputed below: strict mode wants every property listed
            elif key == "additionalProperties":
                if value is not False:
                    self.dropped.append(here)
            elif key not in _ANNOTATIONS:
                self.dropped.append(here)

        types = out.get("type")
        type_list = types if isinstance(types, list) else [types] if isinstance(types, str) else []
        if "properties" in out and not type_list:
            out["type"] = "object"
            type_list = ["object"]
        if "object" in type_list:
            properties = out.setdefault("properties", {})
            out["required"] = list(properties)
            out["additionalProperties"] = False
        if isinstance(types, list):
            return _split_types(out, type_list)
        return out

    def _resolve(self, ref: Any, path: str) -> Mapping[str, Any]:
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise TemplateError(
                f"The output schema's $ref {ref!r} at {path or '/'} points outside the schema"
                " — move the definition under $defs and refer to it as #/$defs/NAME"
            )
        target: Any = self.root
        for part in ref[1:].split("/")[1:] if ref != "#" else []:
            key = part.replace("~1", "/").replace("~0", "~")
            if isinstance(target, Mapping) and key in target:
                target = target[key]
            elif isinstance(target, list) and key.isdigit() and int(key) < len(target):
                target = target[int(key)]
            else:
                raise TemplateError(
                    f"The output schema's $ref {ref!r} at {path or '/'} does not resolve — check the name under $defs"
                )
        if not isinstance(target, Mapping):
            raise TemplateError(f"The output schema's $ref {ref!r} does not point at a schema object — fix the $ref")
        return target

    def _merge_all_of(self, node: Mapping[str, Any], path: str) -> dict[str, Any]:
        parts = node["allOf"]
        if len(parts) > 1:
            # Merging is exact for object parts and loose otherwise; validation has the last word.
            self.dropped.append(f"{path}/allOf")
        merged: dict[str, Any] = {key: value for key, value in node.items() if key != "allOf"}
        for index, part in enumerate(parts):
            seen: set[str] = set()
            while isinstance(part, Mapping) and "$ref" in part:
                if part["$ref"] in seen or part["$ref"] in self._active_refs:
                    raise TemplateError(
                        f"The output schema is recursive ({part['$ref']} in {path or '/'}/allOf)"
                        " — provider-enforced schemas must be finite; give the nesting a fixed depth"
                    )
                seen.add(str(part["$ref"]))
                part = {
                    **self._resolve(part["$ref"], f"{path}/allOf/{index}"),
                    **{k: v for k, v in part.items() if k != "$ref"},
                }
            if not isinstance(part, Mapping):
                continue
            for key, value in part.items():
                if key == "properties":
                    merged["properties"] = {**merged.get("properties", {}), **value}
                else:
                    merged.setdefault(key, value)
        return merged


def _split_types(node: dict[str, Any], types: list[str]) -> dict[str, Any]:
    """``{"type": ["string", "null"], ...}`` as ``{"anyOf": [{"type": "string"}, {"type": "null"}]}``."""
    if len(types) == 1:
        return {**node, "type": types[0]}
    branches: list[dict[str, Any]] = []
    for kind in types:
        branch: dict[str, Any] = {"type": kind}
        if kind == "object":
            for key in ("properties", "required", "additionalProperties"):
                branch[key] = node[key]
        if kind == "array" and "items" in node:
            branch["items"] = node["items"]
        if "enum" in node:
            values = [value for value in node["enum"] if _is_json_type(value, kind)]
            if not values:
                continue  # no allowed value has this type, so the branch could never match
            branch["enum"] = values
        branches.append(branch)
    reduced: dict[str, Any] = {"anyOf": branches}
    if "description" in node:
        reduced["description"] = node["description"]
    return reduced


def _is_json_type(value: Any, kind: str) -> bool:
    if isinstance(value, bool):
        return kind == "boolean"
    return isinstance(value, _JSON_TYPES.get(kind, ()))


def _pointer_escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


# --------------------------------------------------------------------------------------------
# Parsing and validation
# --------------------------------------------------------------------------------------------

_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\r?\n(.*?)\r?\n?[ \t]*```", re.DOTALL)


class _NotJSON(ValueError):
    """The reply holds no single, cleanly extractable JSON value."""


def _parse_json(text: str) -> Any:
    """The JSON value in ``text``: the whole text, one fenced block, or one value amid bracket-free prose."""
    stripped = text.strip()
    if not stripped:
        raise _NotJSON("the reply is empty")
    try:
        return json.loads(stripped)
    except json.JSONDecodeError as exc:
        whole_error = exc
    fences = _FENCE.findall(stripped)
    if len(fences) > 1:
        raise _NotJSON("the reply holds several code blocks; send exactly one JSON value")
    if fences:
        try:
            return json.loads(fences[0])
        except json.JSONDecodeError as exc:
            raise _NotJSON(f"the JSON in the code block is invalid: {exc}") from exc
    starts = [index for index in (stripped.find("{"), stripped.find("[")) if index >= 0]
    if not starts:
        raise _NotJSON(f"the reply is not JSON ({whole_error.msg}); it begins {stripped[:40]!r}")
    start = min(starts)
    try:
        value, end = json.JSONDecoder().raw_decode(stripped, start)
    except json.JSONDecodeError as exc:
        raise _NotJSON(f"the reply is not valid JSON: {exc}") from exc
    # Conservative: any bracket in the surrounding prose may be a second (or partial) value.
    if any(char in "{}[]" for char in stripped[:start] + stripped[end:]):
        raise _NotJSON("the reply mixes JSON with other bracketed text; send only the JSON value")
    return value


def _location(parts: Sequence[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(root)"


def validate_json_schema(schema: Mapping[str, Any]) -> Callable[[Any], list[str]]:
    """A checker that lists ``path: message`` for each way a value breaks ``schema``.

    Uses the schema's own draft (2020-12 when it names none) and checks ``format`` where
    jsonschema has a checker for it (ipv4, ipv6, email, date, uuid, regex, ... out of the box).

    Raises:
        TemplateError: ``schema`` is not a valid JSON Schema.
    """
    import jsonschema

    validator_cls = jsonschema.validators.validator_for(schema)
    try:
        validator_cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = _location(list(exc.absolute_path))
        raise TemplateError(f"The output schema is not valid JSON Schema ({where}: {exc.message}) — fix it") from exc
    validator = validator_cls(schema, format_checker=validator_cls.FORMAT_CHECKER)

    def check(value: Any) -> list[str]:
        found = sorted(validator.iter_errors(value), key=lambda e: [str(p) for p in e.absolute_path])
        return [f"{_location(list(error.absolute_path))}: {error.message}" for error in found]

    return check


def _pydantic_errors(exc: ValidationError) -> list[str]:
    return [f"{_location(list(error['loc']))}: {error['msg']}" for error in exc.errors(include_url=False)]


def _reask(errors: list[str]) -> str:
    shown = errors[:MAX_REASK_ERRORS]
    lines = "\n".join(f"- {error}" for error in shown)
    more = f"\n- ... and {len(errors) - len(shown)} more" if len(errors) > len(shown) else ""
    return (
        "Your previous reply could not be used:\n"
        f"{lines}{more}\n"
        "Reply again with only the corrected JSON, matching the schema exactly: no prose, no code fences."
    )


# --------------------------------------------------------------------------------------------
# Calls
# --------------------------------------------------------------------------------------------


@dataclass
class StructuredResult(Generic[T]):
    """A validated structured answer.

    Attributes:
        value: The validated output: a model instance, or plain JSON data for a schema dict.
        raw: The raw reply text that validated.
        attempts: Calls that produced output, re-asks included (the provider's retries are not).
        usage: Tokens summed over all attempts.
        latency_ms: Provider time summed over all attempts.
        call_id: The call's id in the call log, when one was given.
    """

    value: T
    raw: str
    attempts: int
    usage: Usage
    latency_ms: float
    call_id: str | None = None


@dataclass
class TextResult:
    """A free-text answer from :func:`complete_text`; fields as in :class:`StructuredResult`."""

    text: str
    usage: Usage
    latency_ms: float
    stop_reason: str
    call_id: str | None = None
    attempts: int = 1


@overload
def complete_structured(
    chat_model: ChatModel,
    messages: Sequence[Message],
    output: type[M],
    *,
    max_attempts: int = ...,
    max_tokens: int | None = ...,
    temperature: float | None = ...,
    log: CallLog | None = ...,
    log_context: Mapping[str, Any] | None = ...,
) -> StructuredResult[M]: ...


@overload
def complete_structured(
    chat_model: ChatModel,
    messages: Sequence[Message],
    output: Mapping[str, Any],
    *,
    max_attempts: int = ...,
    max_tokens: int | None = ...,
    temperature: float | None = ...,
    log: CallLog | None = ...,
    log_context: Mapping[str, Any] | None = ...,
) -> StructuredResult[Any]: ...


def complete_structured(
    chat_model: ChatModel,
    messages: Sequence[Message],
    output: type[BaseModel] | Mapping[str, Any],
    *,
    max_attempts: int = 3,
    max_tokens: int | None = None,
    temperature: float | None = None,
    log: CallLog | None = None,
    log_context: Mapping[str, Any] | None = None,
) -> StructuredResult[Any]:
    """Ask ``chat_model`` for JSON matching ``output`` and return it validated.

    Args:
        chat_model: The provider.
        messages: The conversation; re-asks are appended to a copy.
        output: A pydantic model class (validated with ``model_validate``) or a JSON Schema
            dict (validated with ``jsonschema`` against the schema as given, not the reduced one).
        max_attempts: Calls allowed in total for getting valid output (first call included).
            Only invalid output uses one up; transport retries are the provider's own.
        max_tokens: Output cap per call; None means the provider's default.
        temperature: Sampling temperature; None means the provider's default.
        log: Where to record the call and each attempt.
        log_context: ``template_id`` and ``template_version`` for the log; other keys are
            stored with the call as context.

    Returns:
        The validated value, the raw text, attempts, summed usage and latency, and the call id.

    Raises:
        TruncatedOutputError: a reply stopped at the token limit.
        StructuredOutputError: no attempt produced valid output; carries ``attempts``,
            ``last_output``, ``errors`` and total ``usage``.
        ProviderError: as the provider raised it, at once (after the provider's own retries).
        ProviderDeadlineError: the whole call, re-asks included, ran past the provider's deadline.
    """
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    if isinstance(output, type) and issubclass(output, BaseModel):
        model_cls = output
        schema: Mapping[str, Any] = output.model_json_schema()

        def check(data: Any) -> tuple[Any, list[str]]:
            try:
                return model_cls.model_validate(data), []
            except ValidationError as exc:
                return None, _pydantic_errors(exc)

        what = output.__name__
    elif isinstance(output, Mapping):
        schema = output
        check_schema = validate_json_schema(output)

        def check(data: Any) -> tuple[Any, list[str]]:
            errors = check_schema(data)
            return (None if errors else data), errors

        what = "the output schema"
    else:
        raise TypeError(f"output must be a pydantic model class or a JSON Schema dict, not {type(output).__name__}")

    reduced, _dropped = strict_schema(schema)
    call_id = _start_log(chat_model, log, log_context, schema_hash(reduced))
    base = list(messages)
    conversation = base
    usage = Usage()
    latency_ms = 0.0
    attempts = 0
    raw = ""
    errors: list[str] = []
    try:
        with shared_deadline():
            while attempts < max_attempts:
                response = chat_model.complete(
                    conversation, max_tokens=max_tokens, temperature=temperature, json_schema=reduced
                )
                attempts += 1
                usage = usage + response.usage
                latency_ms += response.latency_ms
                raw = response.text
                if response.truncated:
                    errors = [_truncation_error(response)]
                    _log_attempt(log, call_id, attempts, response, errors)
                    raise TruncatedOutputError(
                        _truncated_message(chat_model, max_tokens, "JSON"),
                        attempts=attempts,
                        last_output=raw,
                        errors=errors,
                        usage=usage,
                    )
                try:
                    value, errors = check(_parse_json(raw))
                except _NotJSON as exc:
                    value, errors = None, [f"not JSON: {exc}"]
                _log_attempt(log, call_id, attempts, response, errors)
                if not errors:
                    if log is not None and call_id is not None:
                        log.finish(call_id, ok=True, error=None)
                    return StructuredResult(value, raw, attempts, usage, latency_ms, call_id)
                # Only the latest failed reply goes back, so a long re-ask chain does not grow the prompt.
                conversation = [
                    *base,
                    Message("assistant", raw.strip() or "(empty reply)"),
                    Message("user", _reask(errors)),
                ]
            logged = f"; every reply is in `opsmith logs show {call_id}`" if call_id else ""
            raise StructuredOutputError(
                f"{chat_model.provider} model {chat_model.model} gave no output matching {what} in {attempts}"
                f" attempt{'s' if attempts != 1 else ''} (last problem: {_one_line(errors[0])})"
                f" — retry, use a stronger model (OPSMITH_MODEL) or allow more attempts (--max-attempts){logged}",
                attempts=attempts,
                last_output=raw,
                errors=errors,
                usage=usage,
            )
    except BaseException as exc:
        if log is not None and call_id is not None:
            log.finish(call_id, ok=False, error=_one_line(str(exc)) or type(exc).__name__)
        raise


def complete_text(
    chat_model: ChatModel,
    messages: Sequence[Message],
    *,
    max_tokens: int | None = None,
    temperature: float | None = None,
    log: CallLog | None = None,
    log_context: Mapping[str, Any] | None = None,
) -> TextResult:
    """One free-text call with the same truncation check and logging (no retries of its own).

    Raises:
        TruncatedOutputError: the reply stopped at the token limit (``last_output`` holds it).
        ProviderError: as in :func:`complete_structured`.
    """
    call_id = _start_log(chat_model, log, log_context, None)
    try:
        response = chat_model.complete(list(messages), max_tokens=max_tokens, temperature=temperature)
        errors = [_truncation_error(response)] if response.truncated else []
        _log_attempt(log, call_id, 1, response, errors)
        if response.truncated:
            raise TruncatedOutputError(
                _truncated_message(chat_model, max_tokens, "answer"),
                attempts=1,
                last_output=response.text,
                errors=errors,
                usage=response.usage,
            )
        if log is not None and call_id is not None:
            log.finish(call_id, ok=True, error=None)
        return TextResult(response.text, response.usage, response.latency_ms, response.stop_reason, call_id)
    except BaseException as exc:
        if log is not None and call_id is not None:
            log.finish(call_id, ok=False, error=_one_line(str(exc)) or type(exc).__name__)
        raise


def _start_log(
    chat_model: ChatModel, log: CallLog | None, context: Mapping[str, Any] | None, hashed: str | None
) -> str | None:
    if log is None:
        return None
    context = dict(context or {})
    version = context.get("template_version")
    return log.start(
        provider=chat_model.provider,
        model=chat_model.model,
        template_id=context.get("template_id"),
        template_version=version if isinstance(version, int) else None,
        schema_hash=hashed,
        context={k: v for k, v in context.items() if k not in ("template_id", "template_version")} or None,
    )


def _log_attempt(
    log: CallLog | None, call_id: str | None, number: int, response: ChatResponse, errors: list[str]
) -> None:
    if log is not None and call_id is not None:
        log.attempt(
            call_id,
            number=number,
            raw_output=response.text,
            errors=errors,
            usage=response.usage,
            latency_ms=response.latency_ms,
            stop_reason=response.stop_reason,
        )


def _truncation_error(response: ChatResponse) -> str:
    return f"the reply stopped at the token limit (stop reason {response.stop_reason})"


def _truncated_message(chat_model: ChatModel, max_tokens: int | None, what: str) -> str:
    limit = f"max_tokens={max_tokens}" if max_tokens is not None else "the provider's default max_tokens"
    return (
        f"{chat_model.provider} model {chat_model.model} stopped at the token limit ({limit}) before finishing"
        f" the {what} — raise OPSMITH_LLM_MAX_TOKENS (or the template's params.max_tokens), or send less input"
    )


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
