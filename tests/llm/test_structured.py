"""Structured output: schema reduction, parsing, re-asks, truncation, provider errors, and the wire."""

from __future__ import annotations

import copy
import json
from typing import Any, Literal

import httpx
import pytest
from pydantic import BaseModel, Field

from opsmith.config import load_settings
from opsmith.errors import (
    ProviderAuthError,
    ProviderRateLimitError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    StructuredOutputError,
    TemplateError,
    TruncatedOutputError,
)
from opsmith.llm import Message, Usage
from opsmith.llm.anthropic import AnthropicChatModel
from opsmith.llm.openai_compat import OpenAIChatModel
from opsmith.llm.structured import (
    StructuredResult,
    complete_structured,
    complete_text,
    schema_hash,
    strict_schema,
)
from opsmith.prompts import load_template
from opsmith.testing import FakeChatModel

ASK = [Message("system", "You review Terraform."), Message("user", "Review this.")]


class Finding(BaseModel):
    severity: Literal["critical", "warning"]
    line: int = Field(ge=1)
    file: str
    resource: str | None = None
    issue: str = Field(min_length=1)
    fix: str = Field(min_length=1)


class Review(BaseModel):
    security: list[Finding]
    cost: list[Finding]
    correctness: list[Finding]


FINDING = {
    "severity": "critical",
    "line": 3,
    "file": "main.tf",
    "resource": "aws_s3_bucket.logs",
    "issue": "Bucket is public.",
    "fix": "Set acl = private.",
}
VALID = json.dumps({"security": [FINDING], "cost": [], "correctness": []})


def review_with(**changes: Any) -> str:
    return json.dumps({"security": [{**FINDING, **changes}], "cost": [], "correctness": []})


# --- re-asks ---------------------------------------------------------------------------------


def test_invalid_json_then_valid_reasks_with_the_parse_error() -> None:
    fake = FakeChatModel(["{'security': oops", VALID])

    result = complete_structured(fake, ASK, Review)

    assert isinstance(result, StructuredResult)
    assert isinstance(result.value, Review)
    assert result.value.security[0].resource == "aws_s3_bucket.logs"
    assert result.raw == VALID
    assert len(fake.calls) == 2
    assert result.attempts == 2
    assert result.usage == Usage(20, 10)
    second = fake.calls[1]["messages"]
    assert second[: len(ASK)] == ASK
    assert second[-2] == Message("assistant", "{'security': oops")
    assert second[-1].role == "user"
    assert "not JSON" in second[-1].content
    assert "Expecting property name enclosed in double quotes" in second[-1].content


def test_schema_violation_is_reasked_with_the_error_path() -> None:
    fake = FakeChatModel([review_with(severity="high"), VALID])

    result = complete_structured(fake, ASK, Review)

    assert result.attempts == 2
    reask = fake.calls[1]["messages"][-1].content
    assert "security[0].severity" in reask
    assert "'critical' or 'warning'" in reask
    assert "only the corrected JSON" in reask


def test_the_prompt_does_not_grow_with_each_reask() -> None:
    fake = FakeChatModel(["nope", "still nope", VALID])

    complete_structured(fake, ASK, Review)

    third = fake.calls[2]["messages"]
    assert len(third) == len(ASK) + 2
    assert third[-2].content == "still nope"


def test_every_attempt_invalid_raises_with_attempts_last_output_errors_and_usage() -> None:
    outputs = ["prose, no json", review_with(line=0), review_with(severity="high")]
    fake = FakeChatModel(outputs)

    with pytest.raises(StructuredOutputError) as caught:
        complete_structured(fake, ASK, Review)

    error = caught.value
    assert type(error) is StructuredOutputError
    assert error.attempts == 3
    assert len(fake.calls) == 3
    assert error.last_output == outputs[-1]
    assert any("security[0].severity" in e for e in error.errors)
    assert error.usage == Usage(30, 15)
    assert "3 attempts" in str(error)
    assert "--max-attempts" in str(error)
    assert "\n" not in str(error)


def test_max_attempts_sets_the_validation_budget() -> None:
    fake = FakeChatModel(["nope"])
    with pytest.raises(StructuredOutputError) as caught:
        complete_structured(fake, ASK, Review, max_attempts=5)
    assert caught.value.attempts == 5
    assert len(fake.calls) == 5
    with pytest.raises(ValueError, match="max_attempts"):
        complete_structured(fake, ASK, Review, max_attempts=0)


@pytest.mark.parametrize(
    ("bad", "hint"),
    [
        (json.dumps({"security": [], "cost": []}), "correctness: Field required"),
        ("I reviewed the code and found nothing worth reporting.", "not JSON"),
        ('{"security": [{"severity": "critical", "line": 3', "not JSON"),
        (VALID[:-1] + ', "extra": {"security": []}', "not JSON"),
        ("Finding one: {}. Finding two: {}.", "not JSON"),
        ("```json\n{}\n```\nand\n```json\n{}\n```", "several code blocks"),
        ("", "empty"),
        (review_with(line="three"), "security[0].line"),
        (json.dumps([FINDING]), "(root)"),
    ],
    ids=[
        "missing-key",
        "prose",
        "partial",
        "broken",
        "two-values",
        "two-fences",
        "empty",
        "wrong-type",
        "array-not-object",
    ],
)
def test_unusable_output_is_reasked(bad: str, hint: str) -> None:
    fake = FakeChatModel([bad, VALID])

    result = complete_structured(fake, ASK, Review)

    assert result.attempts == 2
    assert hint in fake.calls[1]["messages"][-1].content
    # An empty reply still goes back as a non-empty assistant turn (Anthropic rejects empty ones).
    assert fake.calls[1]["messages"][-2].content == (bad.strip() or "(empty reply)")


@pytest.mark.parametrize(
    "wrapped",
    [
        f"```json\n{VALID}\n```",
        f"```\n{VALID}\n```",
        f"Here is the review:\n```json\n{VALID}\n```\nLet me know if you need more.",
        f"Here is the review: {VALID} Hope this helps.",
        f"\n\n  {VALID}  \n",
    ],
    ids=["fence", "bare-fence", "fence-in-prose", "prose-around", "whitespace"],
)
def test_one_cleanly_extractable_value_is_accepted_first_time(wrapped: str) -> None:
    fake = FakeChatModel([wrapped])

    result = complete_structured(fake, ASK, Review)

    assert result.attempts == 1
    assert result.value.security[0].line == 3
    assert result.raw == wrapped


# --- truncation --------------------------------------------------------------------------------


@pytest.mark.parametrize("stop_reason", ["max_tokens", "length"])
def test_truncated_output_raises_at_once(stop_reason: str) -> None:
    fake = FakeChatModel([VALID[:40]], stop_reason=stop_reason)

    with pytest.raises(TruncatedOutputError) as caught:
        complete_structured(fake, ASK, Review, max_tokens=64)

    error = caught.value
    assert isinstance(error, StructuredOutputError)
    assert len(fake.calls) == 1
    assert fake.calls[0]["max_tokens"] == 64
    assert error.attempts == 1
    assert error.last_output == VALID[:40]
    assert error.usage == Usage(10, 5)
    assert "max_tokens=64" in str(error)
    assert "OPSMITH_LLM_MAX_TOKENS" in str(error)


def test_truncation_after_a_reask_carries_the_total_usage() -> None:
    class Flaky(FakeChatModel):
        def complete(self, *args: Any, **kwargs: Any) -> Any:
            response = super().complete(*args, **kwargs)
            response.stop_reason = "max_tokens" if len(self.calls) == 2 else "end"
            return response

    fake = Flaky(["not json", "{"])
    with pytest.raises(TruncatedOutputError) as caught:
        complete_structured(fake, ASK, Review)
    assert caught.value.attempts == 2
    assert caught.value.usage == Usage(20, 10)


# --- provider errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        ProviderUnavailableError("down", provider="fake", status=503),
        ProviderTimeoutError("slow", provider="fake"),
        ProviderRateLimitError("busy", provider="fake", status=429),
        ProviderAuthError("bad key — check ANTHROPIC_API_KEY", provider="fake", status=401),
    ],
    ids=["unavailable", "timeout", "rate-limit", "auth"],
)
def test_provider_errors_propagate_at_once(error: Exception) -> None:
    # The provider has already retried what is worth retrying; a second loop here would multiply it.
    fake = FakeChatModel([VALID], errors=[error])

    with pytest.raises(type(error)) as caught:
        complete_structured(fake, ASK, Review, max_attempts=3)

    assert caught.value is error
    assert len(fake.calls) == 1


def test_a_provider_error_on_a_reask_ends_the_call() -> None:
    fake = FakeChatModel(["nope", VALID], errors=[None, ProviderUnavailableError("down", provider="fake")])

    with pytest.raises(ProviderUnavailableError):
        complete_structured(fake, ASK, Review, max_attempts=3)

    assert len(fake.calls) == 2


# --- JSON Schema outputs ----------------------------------------------------------------------------

SUMMARY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Summary",
    "properties": {
        "title": {"type": "string", "minLength": 1, "maxLength": 80},
        "severity": {"type": "string", "enum": ["sev1", "sev2", "sev3", "sev4"]},
        "next_steps": {"type": "array", "items": {"type": "string"}, "minItems": 1},
    },
    "required": ["title", "severity"],
}


def test_dict_schema_is_validated_against_the_original_schema() -> None:
    empty_title = json.dumps({"title": "", "severity": "sev2", "next_steps": ["page the DBA"]})
    good = json.dumps({"title": "Replica lag on orders-db", "severity": "sev3", "next_steps": ["check lag"]})
    fake = FakeChatModel([empty_title, good])

    result = complete_structured(fake, ASK, SUMMARY_SCHEMA)

    reduced, dropped = strict_schema(SUMMARY_SCHEMA)
    # minLength was not sent to the provider, yet "" was still rejected.
    assert "minLength" not in json.dumps(fake.calls[0]["json_schema"])
    assert "/properties/title/minLength" in dropped
    assert fake.calls[0]["json_schema"] == reduced
    assert result.attempts == 2
    assert "title" in fake.calls[1]["messages"][-1].content
    assert "non-empty" in fake.calls[1]["messages"][-1].content
    assert result.value == json.loads(good)


def test_dict_schema_checks_formats() -> None:
    schema = {"type": "object", "properties": {"ip": {"type": "string", "format": "ipv4"}}}
    fake = FakeChatModel(['{"ip": "10.0.0.300"}', '{"ip": "10.0.0.3"}'])

    result = complete_structured(fake, ASK, schema)

    assert result.attempts == 2
    assert "'10.0.0.300' is not a 'ipv4'" in fake.calls[1]["messages"][-1].content
    assert fake.calls[0]["json_schema"]["properties"]["ip"] == {"type": "string"}


def test_invalid_dict_schema_is_a_template_error() -> None:
    with pytest.raises(TemplateError, match="not valid JSON Schema"):
        complete_structured(FakeChatModel([VALID]), ASK, {"type": "objekt"})


def test_model_schema_is_reduced_before_it_is_sent() -> None:
    fake = FakeChatModel([VALID])

    complete_structured(fake, ASK, Review, max_tokens=300, temperature=0.0)

    call = fake.calls[0]
    assert call["json_schema"] == strict_schema(Review.model_json_schema())[0]
    assert "$defs" not in json.dumps(call["json_schema"])
    assert (call["max_tokens"], call["temperature"]) == (300, 0.0)


def test_output_must_be_a_model_or_a_schema() -> None:
    with pytest.raises(TypeError, match="pydantic model class or a JSON Schema"):
        complete_structured(FakeChatModel([VALID]), ASK, "Review")  # type: ignore[call-overload]


# --- strict_schema -----------------------------------------------------------------------------------


def _objects(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if node.get("type") == "object":
            found.append(node)
        for value in node.values():
            found.extend(_objects(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_objects(value))
    return found


def _keys(node: Any) -> set[str]:
    if isinstance(node, dict):
        keys = set(node)
        for key, value in node.items():
            # Property names are data, not keywords.
            keys |= set().union(*(_keys(v) for v in value.values())) if key == "properties" else _keys(value)
        return keys
    if isinstance(node, list):
        return set().union(*(_keys(v) for v in node)) if node else set()
    return set()


def test_strict_schema_closes_every_object_and_requires_every_property() -> None:
    reduced, _ = strict_schema(Review.model_json_schema())

    objects = _objects(reduced)
    assert len(objects) == 4  # the review and one inlined finding per category
    for node in objects:
        assert node["additionalProperties"] is False
        assert node["required"] == list(node["properties"])
    # "resource" was optional (default None) and is now required, still nullable.
    finding = reduced["properties"]["security"]["items"]
    assert "resource" in finding["required"]
    assert finding["properties"]["resource"] == {"anyOf": [{"type": "string"}, {"type": "null"}]}
    assert finding["properties"]["severity"] == {"type": "string", "enum": ["critical", "warning"]}


def test_strict_schema_drops_and_reports_bounds() -> None:
    reduced, dropped = strict_schema(Review.model_json_schema())

    assert _keys(reduced) <= {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "enum",
        "anyOf",
        "description",
    }
    assert "/properties/security/items/properties/line/minimum" in dropped
    assert "/properties/cost/items/properties/fix/minLength" in dropped
    assert not any(path.endswith(("/title", "/default")) for path in dropped)


def test_strict_schema_handles_every_bound_keyword() -> None:
    bounds = {
        "minimum": 1,
        "maximum": 9,
        "exclusiveMinimum": 0,
        "exclusiveMaximum": 10,
        "multipleOf": 1,
    }
    schema = {
        "type": "object",
        "properties": {
            "n": {"type": "integer", **bounds, "default": 3, "title": "N"},
            "s": {"type": "string", "minLength": 1, "maxLength": 5, "pattern": "^a", "format": "email"},
            "xs": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 3, "uniqueItems": True},
        },
    }
    original = copy.deepcopy(schema)

    reduced, dropped = strict_schema(schema)

    assert schema == original  # the input is not changed
    assert reduced["properties"]["n"] == {"type": "integer"}
    assert reduced["properties"]["s"] == {"type": "string"}
    assert reduced["properties"]["xs"] == {"type": "array", "items": {"type": "string"}}
    assert sorted(dropped) == sorted(
        [f"/properties/n/{k}" for k in bounds]
        + [f"/properties/s/{k}" for k in ("minLength", "maxLength", "pattern", "format")]
        + [f"/properties/xs/{k}" for k in ("minItems", "maxItems", "uniqueItems")]
    )


def test_strict_schema_rewrites_to_the_portable_spelling() -> None:
    schema = {
        "type": "object",
        "properties": {
            "kind": {"const": "review"},
            "note": {"type": ["string", "null"], "description": "optional note"},
            "level": {"type": ["string", "integer"], "enum": ["low", 1, 2]},
            "target": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
            "ref": {"$ref": "#/$defs/thing", "description": "a thing"},
            "meta": {"type": "object", "additionalProperties": {"type": "string"}},
        },
        "$defs": {"thing": {"type": "object", "properties": {"id": {"type": "string"}}, "title": "Thing"}},
    }

    reduced, dropped = strict_schema(schema)

    props = reduced["properties"]
    assert props["kind"] == {"enum": ["review"]}
    assert props["note"] == {"anyOf": [{"type": "string"}, {"type": "null"}], "description": "optional note"}
    assert props["level"] == {"anyOf": [{"type": "string", "enum": ["low"]}, {"type": "integer", "enum": [1, 2]}]}
    assert props["target"] == {"anyOf": [{"type": "string"}, {"type": "integer"}]}
    assert props["ref"] == {
        "type": "object",
        "properties": {"id": {"type": "string"}},
        "description": "a thing",
        "required": ["id"],
        "additionalProperties": False,
    }
    assert props["meta"] == {"type": "object", "properties": {}, "required": [], "additionalProperties": False}
    assert "$defs" not in reduced
    assert set(dropped) == {"/properties/target/oneOf", "/properties/meta/additionalProperties"}


def test_strict_schema_rejects_what_no_provider_can_take() -> None:
    recursive = {"type": "object", "properties": {"child": {"$ref": "#"}}}
    with pytest.raises(TemplateError, match="recursive"):
        strict_schema(recursive)
    with pytest.raises(TemplateError, match="recursive"):
        strict_schema({"$defs": {"a": {"$ref": "#/$defs/a"}}, "allOf": [{"$ref": "#/$defs/a"}]})
    with pytest.raises(TemplateError, match="recursive"):
        strict_schema({"$defs": {"a": {"allOf": [{"$ref": "#/$defs/a"}]}}, "$ref": "#/$defs/a"})
    with pytest.raises(TemplateError, match="does not resolve"):
        strict_schema({"$ref": "#/$defs/missing"})
    with pytest.raises(TemplateError, match="outside the schema"):
        strict_schema({"$ref": "https://example.com/schema.json"})


def test_strict_schema_merges_all_of() -> None:
    schema = {
        "allOf": [
            {"$ref": "#/$defs/base"},
            {"type": "object", "properties": {"extra": {"type": "integer", "minimum": 0}}},
        ],
        "$defs": {"base": {"type": "object", "properties": {"id": {"type": "string"}}}},
    }
    reduced, dropped = strict_schema(schema)
    assert reduced == {
        "type": "object",
        "properties": {"id": {"type": "string"}, "extra": {"type": "integer"}},
        "required": ["id", "extra"],
        "additionalProperties": False,
    }
    assert dropped == ["/allOf", "/properties/extra/minimum"]


def test_strict_schema_inlines_a_def_used_twice() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"$ref": "#/$defs/x"}, "b": {"$ref": "#/$defs/x"}},
        "$defs": {"x": {"type": "string", "maxLength": 3}},
    }
    reduced, dropped = strict_schema(schema)
    assert reduced["properties"] == {"a": {"type": "string"}, "b": {"type": "string"}}
    assert dropped == ["/properties/a/maxLength", "/properties/b/maxLength"]


def test_schema_hash_is_canonical() -> None:
    a = {"type": "object", "properties": {"x": {"type": "string"}}}
    b = {"properties": {"x": {"type": "string"}}, "type": "object"}
    assert schema_hash(a) == schema_hash(b)
    assert len(schema_hash(a)) == 16
    assert int(schema_hash(a), 16) >= 0
    assert schema_hash(a) != schema_hash({"type": "object"})


# --- free text -------------------------------------------------------------------------------------


def test_complete_text_sends_no_schema() -> None:
    fake = FakeChatModel(["Restart the kubelet."])

    result = complete_text(fake, ASK)

    assert (result.text, result.attempts) == ("Restart the kubelet.", 1)
    assert fake.calls[-1]["json_schema"] is None


def test_complete_text_does_not_retry_provider_errors() -> None:
    fake = FakeChatModel(["Restart the kubelet."], errors=[ProviderTimeoutError("slow", provider="fake")])

    with pytest.raises(ProviderTimeoutError):
        complete_text(fake, ASK)

    assert len(fake.calls) == 1


def test_complete_text_truncation_is_an_error() -> None:
    with pytest.raises(TruncatedOutputError, match="OPSMITH_LLM_MAX_TOKENS") as caught:
        complete_text(FakeChatModel(["Restart the"], stop_reason="max_tokens"), ASK)
    assert caught.value.last_output == "Restart the"


# --- at the wire --------------------------------------------------------------------------------------

REVIEW_JSON = json.dumps(
    {
        "security": [],
        "cost": [
            {
                "severity": "warning",
                "line": 3,
                "file": "main.tf",
                "resource": "aws_instance.ci_runner",
                "issue": "m5.8xlarge is far above a CI runner's needs.",
                "fix": 'Set instance_type = "m5.large".',
            }
        ],
        "correctness": [],
    }
)


@pytest.fixture
def review_schema() -> dict[str, Any]:
    schema = load_template("terraform-review", load_settings()).output_schema
    assert schema is not None
    return schema


def test_anthropic_receives_the_reduced_schema_natively(review_schema: dict[str, Any]) -> None:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(
            200,
            json={
                "id": "msg_01",
                "type": "message",
                "role": "assistant",
                "model": "claude-test",
                "content": [{"type": "text", "text": REVIEW_JSON}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": 812, "output_tokens": 96},
            },
        )

    model = AnthropicChatModel("claude-test", "sk-ant-test", transport=httpx.MockTransport(handler))
    result = complete_structured(model, ASK, review_schema, max_tokens=2048, temperature=0.0)

    body = json.loads(requests[0].content)
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": strict_schema(review_schema)[0]}}
    assert body["max_tokens"] == 2048
    assert body["system"] == "You review Terraform."
    assert "minimum" not in json.dumps(body["output_config"])
    assert result.value["cost"][0]["resource"] == "aws_instance.ci_runner"
    assert result.usage == Usage(812, 96)
    assert result.latency_ms > 0


def test_openai_receives_the_reduced_schema_in_strict_mode(review_schema: dict[str, Any]) -> None:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(
            200,
            json={
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "model": "gpt-test",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": REVIEW_JSON, "refusal": None},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 700, "completion_tokens": 90, "total_tokens": 790},
            },
        )

    model = OpenAIChatModel(
        "gpt-test", "sk-test", base_url="http://localhost:8000/v1", transport=httpx.MockTransport(handler)
    )
    result = complete_structured(model, ASK, review_schema)

    body = json.loads(requests[0].content)
    response_format = body["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["strict"] is True
    assert response_format["json_schema"]["schema"] == strict_schema(review_schema)[0]
    assert result.value["cost"][0]["line"] == 3
    assert result.usage == Usage(700, 90)
