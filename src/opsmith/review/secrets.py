"""What counts as a secret in Terraform source, and redaction before anything is sent to an LLM.

The same patterns drive rule ``OPS-S013`` (hardcoded secrets) and :func:`redact`, so
whatever the rule would flag is also what never leaves the machine. Redaction keeps every
line in place (a secret becomes ``<redacted>`` on the line it was on), so line numbers in
the LLM's answer still point at the real file.
"""

from __future__ import annotations

import re

from opsmith.review.hcl import Block, TfFile, is_literal

__all__ = ["REDACTED", "is_secret_name", "redact", "secret_in"]

REDACTED = "<redacted>"

AWS_KEY = re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")
PRIVATE_KEY_BEGIN = re.compile(r"-----BEGIN ([A-Z0-9]+ )*PRIVATE KEY( BLOCK)?-----")
PRIVATE_KEY_END = re.compile(r"-----END ([A-Z0-9]+ )*PRIVATE KEY( BLOCK)?-----")
#: ``secret_key = AbC...`` inside scripts, user data and JSON.
SECRET_ASSIGN = re.compile(
    r"(?i)(aws_secret_access_key|secret_access_key|secret_key|password|passwd)(['\"]?\s*[=:]\s*['\"]?)"
    r"([A-Za-z0-9/+=!@#$%^&*_.-]{8,})"
)
_SECRET_NAME = re.compile(
    r"(password|passwd|pwd|secret|secret_key|access_key|api_key|apikey|auth_token|access_token|token|private_key"
    r"|client_secret|secret_string|credentials?)$"
)
#: Names that end like a secret's but hold none (idempotency tokens, names, types).
_NOT_SECRETS = frozenset({"creation_token", "client_token", "idempotency_token", "secret_name", "token_type"})
#: ``name = "value"`` / ``"name": "value"`` anywhere on a line, for redaction.
_NAMED_VALUE = re.compile(
    r'(?P<head>(?<![A-Za-z0-9_-])"?(?P<name>[A-Za-z0-9_-]+)"?\s*[=:]\s*)"(?P<value>(?:[^"\\]|\\.)*)"'
)


def is_secret_name(name: str) -> bool:
    """True for argument or key names that hold secrets: password, secret_key, SLACK_TOKEN ..."""
    normalised = name.replace("-", "_").lower()
    return normalised not in _NOT_SECRETS and bool(_SECRET_NAME.search(normalised))


def secret_in(text: str, name: str, top: Block) -> tuple[str, str] | None:
    """(issue, the secret text) when string ``text``, set under ``name`` in block ``top``, holds a secret."""
    if match := AWS_KEY.search(text):
        return "AWS access key ID hardcoded in the configuration", match.group(0)
    if match := PRIVATE_KEY_BEGIN.search(text):
        return "Private key embedded in the configuration", match.group(0)
    if (match := SECRET_ASSIGN.search(text)) and _is_value(match.group(3)):
        return "Credential assignment hardcoded in a script or template", match.group(3)
    if not is_literal(text) or not text.strip():
        return None
    if top.type == "variable" and name == "default" and is_secret_name(top.name):
        return f"Variable {top.name} has a hardcoded default secret", text
    if is_secret_name(name):
        return f"Hardcoded value for {name}", text
    return None


def redact(tf: TfFile) -> tuple[str, int]:
    """``tf``'s text with every secret replaced by ``<redacted>``, and how many were replaced.

    Patterns run on every line (so a file that failed to parse is covered too), then the
    parsed blocks add what only structure shows, such as the default of a variable named
    ``db_password``. The number of lines never changes.
    """
    lines = tf.text.splitlines()
    count = 0
    in_key = False
    for index, line in enumerate(lines):
        original = line
        if in_key or PRIVATE_KEY_BEGIN.search(line):
            # The whole key block, marker lines included, one <redacted> per line.
            in_key = not PRIVATE_KEY_END.search(line)
            indent = line[: len(line) - len(line.lstrip())]
            line = indent + REDACTED
        else:
            line = AWS_KEY.sub(REDACTED, line)
            line = SECRET_ASSIGN.sub(
                lambda m: m.group(1) + m.group(2) + REDACTED if _is_value(m.group(3)) else m.group(0), line
            )
            line = _NAMED_VALUE.sub(_redact_named, line)
        if line != original:
            count += 1
            lines[index] = line
    for top in tf.blocks:
        count += _redact_structure(top, lines)
    return "\n".join(lines) + ("\n" if tf.text.endswith("\n") else ""), count


_REFERENCE = re.compile(r"^(var|local|module|data|[a-z0-9]+_[a-z0-9_]+)\.[A-Za-z_]")


def _is_value(text: str) -> bool:
    """A literal secret, not an interpolation or a reference such as var.db_password."""
    return "${" not in text and not _REFERENCE.match(text)


def _redact_named(match: re.Match[str]) -> str:
    if is_secret_name(match.group("name")) and _is_plain(match.group("value")):
        return match.group("head") + f'"{REDACTED}"'
    return match.group(0)


def _is_plain(value: str) -> bool:
    return bool(value) and value != REDACTED and "${" not in value


def _redact_structure(top: Block, lines: list[str]) -> int:
    """Redact literal values the line patterns cannot see (a secret-named variable's default)."""
    count = 0
    for block in top.walk():
        for attribute in block.attributes.values():
            value = attribute.value
            if not (isinstance(value, str) and is_literal(value) and value.strip()):
                continue
            found = secret_in(value, attribute.name, top)
            if found is None:
                continue
            needle = found[1]
            for number in range(attribute.line, min(attribute.end_line, len(lines)) + 1):
                if needle and needle in lines[number - 1]:
                    lines[number - 1] = lines[number - 1].replace(needle, REDACTED)
                    count += 1
    return count
