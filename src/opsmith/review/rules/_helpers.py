"""Small helpers the rules share: truthiness of HCL values, IAM statements, line lookups."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from opsmith.review.hcl import Attribute, Block, Expr, HclList, HclObject, Value, is_literal
from opsmith.review.module import Module

_DOC_REF = re.compile(r"^data\.aws_iam_policy_document\.([A-Za-z0-9_-]+)\.json$")


def is_true(value: Value) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def is_false(value: Value) -> bool:
    return value is False or (isinstance(value, str) and value.strip().lower() == "false")


def as_list(value: Value) -> list[Value]:
    """A list value as is, a single value as a one-item list, None as empty."""
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def literal_strings(value: Value) -> list[str]:
    """The literal strings in ``value`` (a string or a list of them); computed parts are skipped."""
    return [v for v in as_list(value) if isinstance(v, str) and is_literal(v)]


def item_line(attribute: Attribute, index: int) -> int:
    value = attribute.value
    return value.line_of(index, attribute.line) if isinstance(value, HclList) else attribute.line


def as_int(value: Value) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def iter_strings(value: Value, line: int) -> Iterator[tuple[str, int, str | None]]:
    """Every string inside ``value`` with its best-known line and the key it sits under."""
    if isinstance(value, str):
        yield value, line, None
    elif isinstance(value, HclObject):
        for key, item in value.items():
            for text, at, inner_key in iter_strings(item, value.key_lines.get(key, line)):
                yield text, at, inner_key if inner_key is not None else key
    elif isinstance(value, dict):
        for key, item in value.items():
            for text, at, inner_key in iter_strings(item, line):
                yield text, at, inner_key if inner_key is not None else str(key)
    elif isinstance(value, list):
        lines = value.item_lines if isinstance(value, HclList) else []
        for index, item in enumerate(value):
            yield from iter_strings(item, lines[index] if index < len(lines) else line)
    elif isinstance(value, Expr):
        for arg in value.args:
            yield from iter_strings(arg, line)


# IAM policy statements ----------------------------------------------------------------------


@dataclass
class Statement:
    """One IAM statement, normalised from a policy document block or JSON."""

    block: Block
    line: int
    effect: str = "Allow"
    actions: list[str] = field(default_factory=list)
    action_line: int = 0
    not_actions: bool = False
    resources: list[str] = field(default_factory=list)
    resource_line: int = 0
    principals: list[str] = field(default_factory=list)
    principal_line: int = 0
    has_condition: bool = False

    @property
    def allows(self) -> bool:
        return self.effect.strip().lower() == "allow"


def document_statements(document: Block) -> list[Statement]:
    """Statements of a ``data "aws_iam_policy_document"`` block."""
    out = []
    for block in document.children("statement"):
        effect = block.get("effect", "Allow")
        statement = Statement(block=document, line=block.line, effect=effect if isinstance(effect, str) else "Allow")
        if "actions" in block.attributes:
            statement.actions = literal_strings(block.get("actions"))
            statement.action_line = block.line_of("actions")
        elif "not_actions" in block.attributes:
            statement.not_actions = True
        statement.resources = literal_strings(block.get("resources"))
        statement.resource_line = block.line_of("resources")
        for principals in block.children("principals"):
            kind = principals.get("type")
            identifiers = literal_strings(principals.get("identifiers"))
            if kind == "*" or (kind == "AWS" and "*" in identifiers):
                statement.principals.append("*")
            else:
                statement.principals.extend(identifiers)
            statement.principal_line = principals.line_of("identifiers")
        statement.has_condition = bool(block.children("condition"))
        out.append(statement)
    return out


def policy_statements(block: Block, attribute_name: str, module: Module) -> list[Statement]:
    """Statements of a policy argument: ``jsonencode({...})``, a JSON string or heredoc,
    or a reference to a policy document data block in the same module."""
    attribute = block.attr(attribute_name)
    if attribute is None:
        return []
    value = attribute.value
    if isinstance(value, Expr) and value.call == "jsonencode" and value.args:
        return _json_statements(block, value.args[0], attribute, None)
    if isinstance(value, Expr):
        match = _DOC_REF.match(value.text.strip())
        if match:
            address = f"data.aws_iam_policy_document.{match.group(1)}"
            for document in module.all_blocks:
                if document.address == address:
                    return document_statements(document)
        return []
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except (ValueError, RecursionError):  # not JSON, or nested past what json can decode
            return []
        return _json_statements(block, parsed, attribute, module.source_lines(block.file))
    return []


def _json_statements(block: Block, document: Value, attribute: Attribute, lines: list[str] | None) -> list[Statement]:
    if not isinstance(document, dict):
        return []
    raw = document.get("Statement")
    statements = raw if isinstance(raw, list) else [raw]
    out = []
    cursor = attribute.line
    for index, item in enumerate(statements):
        if not isinstance(item, dict):
            continue
        start = raw.line_of(index, attribute.line) if isinstance(raw, HclList) else attribute.line
        if lines is not None:
            start = _find_line(lines, cursor, attribute.end_line, r'"(Effect|Action|Sid)"') or cursor
            cursor = start + 1

        def key_line(key: str, item: dict[str, Value] = item, start: int = start) -> int:
            if isinstance(item, HclObject) and key in item.key_lines:
                return item.key_lines[key]
            if lines is not None:
                return _find_line(lines, start, attribute.end_line, rf'"{key}"') or start
            return start

        effect = item.get("Effect", "Allow")
        statement = Statement(block=block, line=start, effect=effect if isinstance(effect, str) else "Allow")
        if "Action" in item:
            statement.actions = literal_strings(item.get("Action"))
            statement.action_line = key_line("Action")
        elif "NotAction" in item:
            statement.not_actions = True
        statement.resources = literal_strings(item.get("Resource"))
        statement.resource_line = key_line("Resource")
        principal = item.get("Principal")
        if principal is not None:
            statement.principal_line = key_line("Principal")
            if principal == "*":
                statement.principals = ["*"]
            elif isinstance(principal, dict):
                for values in principal.values():
                    statement.principals.extend(literal_strings(values))
        statement.has_condition = bool(item.get("Condition"))
        out.append(statement)
    return out


def _find_line(lines: list[str], start: int, end: int, pattern: str) -> int | None:
    regex = re.compile(pattern)
    for number in range(max(1, start), min(end, len(lines)) + 1):
        if regex.search(lines[number - 1]):
            return number
    return None


def find_line(module: Module, block: Block, pattern: str, *, start: int | None = None, end: int | None = None) -> int:
    """First line in the block (or ``start``..``end``) matching ``pattern``; the block's line if none."""
    lines = module.source_lines(block.file)
    found = _find_line(lines, start or block.line, end or block.end_line, pattern)
    return found if found is not None else (start or block.line)


def bucket_targets(block: Block, module: Module, attribute: str = "bucket") -> set[str]:
    """The ``aws_s3_bucket`` addresses (and literal names) a ``bucket`` argument points at."""
    attr = block.attr(attribute)
    if attr is None:
        return set()
    targets = {r.address for r in attr.refs if r.address.startswith("aws_s3_bucket.")}
    if isinstance(attr.value, str) and is_literal(attr.value):
        targets.add(attr.value)
    return targets


def bucket_keys(bucket: Block) -> set[str]:
    """How other blocks can name this bucket: its address, and its literal name when it has one."""
    keys = {bucket.address}
    name = bucket.get("bucket")
    if isinstance(name, str) and is_literal(name):
        keys.add(name)
    return keys


def companions(bucket: Block, module: Module, kind: str, attribute: str = "bucket") -> list[Block]:
    """``kind`` resources (e.g. aws_s3_bucket_logging) whose ``bucket`` points at ``bucket``."""
    keys = bucket_keys(bucket)
    return [b for b in module.all_resources(kind) if bucket_targets(b, module, attribute) & keys]
