"""What counts as a secret in Terraform source, and redaction before anything is sent to an LLM.

One detector, :func:`find_secrets`, drives both rule ``OPS-S013`` (hardcoded secrets) and
:func:`redact`, so whatever the rule flags is exactly what never leaves the machine. It
scans the whole text, heredocs, comments and files that do not parse included, for:

* known token formats: the regex plugins of Yelp's ``detect-secrets`` (AWS, GitHub, GitLab,
  Slack, Stripe, Twilio, SendGrid, JWT, npm, PyPI, OpenAI, Azure storage keys, URLs with a
  password ...; its ``name = value`` patterns are left to the assignment rules below), plus
  formats it lacks (:data:`_EXTRA_FORMATS`: Google, Vault, Terraform Cloud, new OpenAI and
  Anthropic keys ...) and private key blocks, BEGIN to END;
* webhook URLs (Slack, Discord, Teams, Google Chat ...) and secret query parameters
  (``?sig=``, ``&token=``);
* ``Authorization: Bearer …``/``Basic …`` headers and password flags (``--password=…``,
  mysql's ``-p'…'``);
* assignments in any syntax (HCL, JSON, YAML, shell ``export X=…``): any literal value for a
  name that always holds a secret (``password``, ``db_pass``, ``API_TOKEN``, ``client_secret``
  ...), a high-entropy value for a name that only might (``*key*``, ``*token*``, ``*auth*``),
  and ``{name = "DB_PASSWORD", value = "…"}`` pairs;
* from the parsed blocks: the ``default`` of a variable that is secret-named or
  ``sensitive = true``, and the ``value`` of a ``SecureString`` SSM parameter.

Interpolations (``${…}``), references (``var.x``, ``aws_iam_access_key.x.secret``), shell
variables, ARNs, placeholders and names such as ``secret_name`` or ``kms_key_id`` are not
secrets. Redaction keeps every line in place (a secret becomes ``<redacted>`` on the line it
was on), so line numbers in the LLM's answer still point at the real file.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any, cast

from opsmith.review.hcl import Block, TfFile, Value, is_literal

__all__ = ["REDACTED", "Secret", "find_secrets", "is_secret_name", "redact"]

REDACTED = "<redacted>"


@dataclass(frozen=True)
class Secret:
    """One secret in a file: its span in ``TfFile.text`` (``start``, ``end``), its line and why.

    A private key block gives one :class:`Secret` per line it covers; only the first has
    ``first`` set, so the rule reports the block once.
    """

    line: int
    start: int
    end: int
    issue: str
    first: bool = True


# Names --------------------------------------------------------------------------------------

#: A name whose last word is one of these always holds a secret (``db_pass``, ``SLACK_TOKEN``).
_SECRET_WORDS = frozenset(
    {"password", "passwd", "pwd", "pw", "pass", "passphrase", "passcode", "secret", "token", "apikey"}
    | {"credential", "credentials", "creds", "contrasena", "contraseña"}
)
#: Long words that also count at the end of a glued name (``dbpassword``, ``githubtoken``).
_SECRET_SUFFIXES = ("password", "passwd", "passphrase", "secret", "token", "apikey")
#: ... and these last two words (``api_key``, ``client_secret`` is covered by ``secret``).
_SECRET_PAIRS = frozenset(
    {"api", "access", "secret", "private", "auth", "license", "master", "signing", "encryption", "account"}
    | {"service", "routing", "integration", "shared", "app", "client", "admin", "root", "hmac", "session"}
)
#: Words that make a name hold something else: a name, an id, a length, a path, a switch.
_NOT_SECRET_LAST = frozenset(
    {"name", "names", "id", "ids", "arn", "arns", "type", "types", "length", "len", "ttl", "expiry", "expiration"}
    | {"expires", "duration", "file", "filename", "path", "version", "versions", "rotation", "policy", "enabled"}
    | {"enable", "count", "algorithm", "size", "min", "max", "format", "prefix", "suffix", "ref", "url", "uri"}
    | {"endpoint", "host", "hostname", "port", "region", "header", "mode", "pattern", "regex", "required", "reset"}
    | {"pair", "public", "location", "source", "spec", "age", "days", "hours", "seconds", "interval", "label"}
    | {"validity", "units", "hash"}
)
#: Terraform arguments that end like a secret's but hold none.
_NOT_SECRETS = frozenset(
    {"creation_token", "client_token", "idempotency_token", "token_type", "public_key", "ssh_public_key"}
)
#: Words that make a name *possibly* secret: its value counts only if it looks random.
_MAYBE_SECRET = ("key", "token", "secret", "pass", "auth", "cred", "private")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def _words(name: str) -> list[str]:
    return [w for w in re.split(r"[^a-zA-Z0-9ñ]+", _CAMEL.sub("_", name).lower()) if w]


def is_secret_name(name: str) -> bool:
    """True for names that hold a secret whatever their value: password, db_pass, SLACK_TOKEN, apiKey ..."""
    words = _words(name)
    if not words or "_".join(words) in _NOT_SECRETS:
        return False
    last = words[-1]
    # Whoever holds a webhook URL can post as the integration.
    if ("webhook" in words or "webhooks" in words) and last in {"webhook", "webhooks", "url", "uri"}:
        return True
    if last in _NOT_SECRET_LAST:
        return False
    if last in _SECRET_WORDS or any(last.endswith(s) for s in _SECRET_SUFFIXES):
        return True
    return last == "key" and len(words) >= 2 and words[-2] in _SECRET_PAIRS


@lru_cache(maxsize=4096)
def _name_kind(name: str) -> str | None:
    """``"secret"`` (any value counts), ``"maybe"`` (a random-looking value counts) or None."""
    if is_secret_name(name):
        return "secret"
    words = _words(name)
    if not words or "_".join(words) in _NOT_SECRETS or words[-1] in _NOT_SECRET_LAST:
        return None
    joined = "".join(words)
    return "maybe" if any(word in joined for word in _MAYBE_SECRET) else None


# Values -------------------------------------------------------------------------------------

_REFERENCE = re.compile(
    r"^(?:(?:var|local|module|data|each|count|self|path|terraform)\.|[a-z][a-z0-9]*_[a-z0-9_]+\.[A-Za-z_])"
)
_NOT_VALUES = frozenset(
    {"true", "false", "null", "none", "nil", "yes", "no", "on", "off", "undefined", "bearer", "basic"}
    # Cognito's token_validity_units { access_token = "hours" }
    | {"seconds", "minutes", "hours", "days"}
)
_PLACEHOLDER = re.compile(r"^<[^<>]*>$|^[*xX.•#-]+$")
_PATH = re.compile(r"^(?:/|\./|\.\./|~/)[\w./@+-]*$")
_FILENAME = re.compile(r"\.[a-z]{2,5}$")


def _is_literal_secret(value: str, *, quoted: bool) -> bool:
    """True unless ``value`` is empty, computed (``${…}``, ``$VAR``, ``var.x``) or obviously not a secret."""
    text = value.strip()
    if not text or text == REDACTED or text.lower() in _NOT_VALUES:
        return False
    if any(mark in text for mark in ("${", "%{", "$(", "{{", "<%")) or text.startswith("$"):
        return False
    if not quoted and (_REFERENCE.match(text) or text.startswith(("<<", "[", "{", "(")) or "(" in text):
        return False
    if text.isdigit() and len(text) < 4:
        return False
    return not (text.lower().startswith("arn:") or _PLACEHOLDER.match(text) or _PATH.match(text))


def _entropy(text: str) -> float:
    counts: dict[str, int] = {}
    for char in text:
        counts[char] = counts.get(char, 0) + 1
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def _looks_random(value: str) -> bool:
    """A token rather than a word: long, no spaces, mixed characters and close to maximal entropy.

    detect-secrets' entropy plugins use fixed limits (4.5 bits for base64, 3.0 for hex), which
    a 20-character token cannot reach; the limit here follows the length instead.
    """
    text = value.strip()
    if len(text) < 16 or any(c.isspace() for c in text) or _FILENAME.search(text) or "://" in text:
        return False
    has_digit = any(c.isdigit() for c in text)
    has_lower, has_upper = any(c.islower() for c in text), any(c.isupper() for c in text)
    if re.fullmatch(r"[0-9a-fA-F]+", text):
        return len(text) >= 20 and has_digit and not text.isdigit() and _entropy(text) >= 3.0
    if not has_digit or (not (has_lower and has_upper) and len(text) < 24):
        return False
    return _entropy(text) >= min(4.5, math.log2(len(text)) - 0.7)


# Line patterns ------------------------------------------------------------------------------

#: detect-secrets plugins not used: a public IP is no secret, keyword/entropy scanning is done
#: here with Terraform's names and references in mind, private keys are redacted as blocks.
_SKIPPED_PLUGINS = frozenset(
    {"Public IP (ipv4)", "Private Key", "Secret Keyword", "Base64 High Entropy String", "Hex High Entropy String"}
)

#: Token formats detect-secrets 1.5 does not know (formats as published by each vendor). Each
#: starts with its literal prefix, which lets ``re`` skip ahead fast; the word boundary before it
#: is checked after the match.
_EXTRA_FORMATS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("Google API key", re.compile(r"AIza[0-9A-Za-z_-]{35}")),
    ("GitHub token", re.compile(r"github_pat_[A-Za-z0-9_]{50,}")),
    ("Slack token", re.compile(r"x(?:ox[abposr]|app)-[A-Za-z0-9-]{10,}")),
    ("OpenAI API key", re.compile(r"sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{20,}")),
    ("Anthropic API key", re.compile(r"sk-ant-[a-z]+[0-9]*-[A-Za-z0-9_-]{20,}")),
    ("Stripe key", re.compile(r"[rs]k_(?:live|test)_[0-9A-Za-z]{16,}")),
    ("HashiCorp Vault token", re.compile(r"hv[sbr]\.[A-Za-z0-9_-]{24,}")),
    ("Terraform Cloud token", re.compile(r"[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=-]{60,}")),
    ("DigitalOcean token", re.compile(r"do[opr]_v1_[a-f0-9]{64}")),
    ("Shopify token", re.compile(r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}")),
)
_URL_END = r"[^\s\"'<>`\\]+"
#: Webhook URLs: whoever holds one can post as the integration, so the path is the secret.
_WEBHOOKS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "Slack webhook URL",
        re.compile(rf"(?i)https://hooks\.slack\.com/(?P<secret>(?:services|workflows|triggers)/{_URL_END})"),
    ),
    (
        "Discord webhook URL",
        re.compile(rf"(?i)https://(?:[a-z]+\.)?discord(?:app)?\.com/api/webhooks/(?P<secret>{_URL_END})"),
    ),
    ("Teams webhook URL", re.compile(rf"(?i)https://[a-z0-9.-]*webhook\.office\.com/(?P<secret>{_URL_END})")),
    ("Teams webhook URL", re.compile(rf"(?i)https://outlook\.office(?:365)?\.com/webhook/(?P<secret>{_URL_END})")),
    ("Teams workflow URL", re.compile(rf"(?i)https://[a-z0-9.-]+\.logic\.azure\.com(?::\d+)?/(?P<secret>{_URL_END})")),
    ("Google Chat webhook URL", re.compile(rf"(?i)https://chat\.googleapis\.com/v1/spaces/(?P<secret>{_URL_END})")),
    ("Mattermost webhook URL", re.compile(r"(?i)https?://[^\s/\"']+/hooks/(?P<secret>[a-z0-9]{26})\b")),
)
_URL_CREDENTIALS = re.compile(r"(?i)\b[a-z][a-z0-9+.-]{0,30}://[^\s:/@\"'<>]*:(?P<secret>[^\s@\"'<>/]+)@[^\s\"'<>]")
_QUERY_SECRET = re.compile(
    r"(?i)[?&](?:sig|signature|token|access_token|api_?key|key|code|secret|password|x-amz-signature"
    r"|x-amz-security-token)=(?P<secret>[^&\s\"'<>#]{8,})"
)
_AUTH_HEADER = re.compile(
    r"(?i)\bauthorization[\"']?[ \t]*[:=][ \t]*[\"']?(?:bearer|basic|token)[ \t]+(?P<secret>[^\s\"'\\]{6,})"
)
_BEARER = re.compile(r"(?i)\b(?:bearer|basic)[ \t]+(?P<secret>[A-Za-z0-9._~+/-]{8,}=*)")
_PASSWORD_FLAG = re.compile(
    r"(?i)(?<![\w-])--?[\w-]*(?:password|passwd|pass|secret|token|api-key|apikey)(?:=|[ \t]+)"
    r"(?:'(?P<single>[^'\n]+)'|\"(?P<double>[^\"\n]+)\"|(?P<bare>[^\s'\"`;|&)]+))"
)
#: mysql and friends take ``-pSECRET`` glued to the flag; sshpass takes ``-p SECRET``.
_SHORT_PASSWORD_FLAG = re.compile(
    r"(?<![\w-])-p(?:'(?P<single>[^'\n]+)'|\"(?P<double>[^\"\n]+)\"|(?P<bare>[^\s'\"`;|&)]+))"
)
_MYSQL = re.compile(r"(?i)\b(?:mysql|mysqldump|mysqladmin|mariadb|mariadb-dump|mysqlsh)\b")
_SSHPASS = re.compile(
    r"(?<![\w-])sshpass[ \t]+-p[ \t]*(?:'(?P<single>[^'\n]+)'|\"(?P<double>[^\"\n]+)\"|(?P<bare>[^\s'\"`;|&)]+))"
)
#: ``name = value`` in HCL, JSON, YAML, shell, ini and properties syntax.
_ASSIGNMENT = re.compile(
    r"""(?<![\w.:/$@-])(?<!\$\{)
    (?P<quote>\\?["']?)(?P<name>[A-Za-z_][\w.-]*)(?P=quote)
    [ \t]*(?::=|=>|=(?![=~])|:(?=[ \t"'\\]))[ \t]*
    (?:\\"(?P<escaped>(?:[^"\\\n]|\\[^"\n])*)\\"
      |"(?P<double>(?:[^"\\\n]|\\.)*)"
      |'(?P<single>[^'\n]*)'
      |(?P<bare>(?![\[{(<])[^\s,;'"`#}\])]+))""",
    re.X,
)
_NAME_VALUE = re.compile(r"""(?P<quote>\\?["']?)name(?P=quote)[ \t]*[=:][ \t]*\\?["'](?P<name>[\w.-]+)\\?["']""", re.I)
_VALUE_AFTER_NAME = re.compile(
    r"""(?P<quote>\\?["']?)value(?P=quote)[ \t]*[=:][ \t]*
    (?:\\"(?P<escaped>(?:[^"\\\n]|\\[^"\n])*)\\"|"(?P<double>(?:[^"\\\n]|\\.)*)"|'(?P<single>[^'\n]*)'
      |(?P<bare>[^\s,;'"`#}\])]+))""",
    re.I | re.X,
)
_PRIVATE_KEY_BEGIN = re.compile(r"-----BEGIN ([A-Z0-9]+ )*PRIVATE KEY( BLOCK)?-----|PuTTY-User-Key-File-\d")
_PRIVATE_KEY_END = re.compile(r"-----END ([A-Z0-9]+ )*PRIVATE KEY( BLOCK)?-----")
_ARN = re.compile(r"\barn:[\w-]+:[^\s\"']*")
_LINE_BREAK = re.compile(r"\r\n|[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


#: Bounded stand-ins for detect-secrets patterns that backtrack quadratically on hostile input
#: (``.+`` or ``[…]*`` before a literal): same matches on real tokens, linear time on ``////…``.
_LINEAR_PATTERNS = {
    "NPM tokens": (re.compile(r"/:_authToken=[ \t]*((npm_[A-Za-z0-9]{36})|([A-Fa-f0-9-]{36}))"),),
    "OpenAI Token": (re.compile(r"sk-[A-Za-z0-9_-]{0,200}?[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}"),),
}


#: How ``RegexBasedDetector.build_assignment_regex`` patterns begin (``ibm_api_key = "…"``):
#: the name rules here cover those assignments, and these patterns are the slowest to run.
_ASSIGNMENT_STYLE = r"(?:(?<=\W)|(?<=^))"


@dataclass(frozen=True)
class _Plugin:
    secret_type: str
    patterns: tuple[re.Pattern[str], ...]
    #: The plugin's own check of a found token, when it has one (JWT: the parts must decode).
    check: Callable[[str], Iterable[str]] | None


@cache
def _plugins() -> tuple[_Plugin, ...]:
    """detect-secrets' regex plugins (imported on first use: it pulls in requests)."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.plugins.base import RegexBasedDetector

    classes = cast("dict[str, type[Any]]", get_mapping_from_secret_type_to_class())
    found = []
    for secret_type, plugin_class in sorted(classes.items()):
        if secret_type in _SKIPPED_PLUGINS or not issubclass(plugin_class, RegexBasedDetector):
            continue
        plugin = plugin_class()
        patterns = tuple(
            p for p in _LINEAR_PATTERNS.get(secret_type, plugin.denylist) if not p.pattern.startswith(_ASSIGNMENT_STYLE)
        )
        own_check = plugin_class.analyze_string is not RegexBasedDetector.analyze_string
        found.append(_Plugin(secret_type, patterns, plugin.analyze_string if own_check else None))
    return tuple(found)


class _Scan:
    """Offsets -> lines for one text, and the spans found so far."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.spans: list[tuple[int, int, str, bool]] = []
        self.arns = [m.span() for m in _ARN.finditer(text)]
        self.arn_starts = [a for a, _ in self.arns]

    def line_of(self, offset: int) -> int:
        return bisect_right(self.starts, offset)

    def in_arn(self, start: int, end: int) -> bool:
        index = bisect_right(self.arn_starts, start) - 1
        return index >= 0 and end <= self.arns[index][1]

    def trim(self, start: int, end: int) -> tuple[int, int]:
        """Drop what a pattern matched around the secret: quotes, separators, line breaks."""
        while start < end and self.text[start] in " \t\r\n=:\"'":
            start += 1
        while end > start and self.text[end - 1] in " \t\r\n\"',":
            end -= 1
        return start, end

    def add(self, start: int, end: int, issue: str, *, first: bool = True) -> None:
        start, end = self.trim(start, end)
        if start < end and not self.in_arn(start, end):
            self.spans.append((start, end, issue, first))


def _group_span(match: re.Match[str]) -> tuple[int, int]:
    """The span of the secret in a match: the ``secret`` group, else a group that ends the match
    (``key = "(value)"``, ``user:(password)@``), else the whole match (``(glpat|gldt)-…``)."""
    if "secret" in match.re.groupindex:
        return match.span("secret")
    for index in range(match.re.groups, 0, -1):
        if match.group(index) and match.end(index) >= match.end() - 1:
            return match.span(index)
    return match.span()


_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.+/=")
_TOKEN_CHAR = re.compile(r"[A-Za-z0-9_-]")
_NOT_IN_TOKEN = re.compile(r"[\s\"'`<>\\]")


def _token_end(text: str, position: int) -> int:
    while position < len(text) and text[position] in _TOKEN_CHARS:
        position += 1
    return position


def _value(match: re.Match[str]) -> tuple[str, tuple[int, int], bool]:
    """(value, its span, whether it was quoted) from a pattern whose last groups are the value forms."""
    group = match.lastgroup or "bare"
    return match.group(group), match.span(group), group != "bare"


def _scan_formats(scan: _Scan) -> None:
    text = scan.text
    for plugin in _plugins():
        for pattern in plugin.patterns:
            covered = 0
            for match in pattern.finditer(text):
                if match.start() < covered:
                    continue  # inside the token the previous match was extended over
                start, end = scan.trim(*_group_span(match))
                # A token holds no space or quote ...
                cut = _NOT_IN_TOKEN.search(text, start, end)
                end = cut.start() if cut is not None else end
                # ... and runs to its last token character (the JWT pattern stops before the signature).
                end = _token_end(text, end)
                covered = end
                if plugin.check is None or any(plugin.check(text[start:end])):
                    scan.add(start, end, f"{plugin.secret_type} hardcoded in the configuration")
    for kind, pattern in _EXTRA_FORMATS:
        for match in pattern.finditer(text):
            if match.start() == 0 or not _TOKEN_CHAR.match(text, match.start() - 1):
                scan.add(*_group_span(match), f"{kind} hardcoded in the configuration")
    for kind, pattern in _WEBHOOKS:
        for match in pattern.finditer(text):
            scan.add(*_group_span(match), f"{kind} hardcoded in the configuration")
    for match in _URL_CREDENTIALS.finditer(text):
        if _is_literal_secret(match.group("secret"), quoted=True):
            scan.add(*match.span("secret"), "URL with a hardcoded password")
    for match in _QUERY_SECRET.finditer(text):
        if _is_literal_secret(match.group("secret"), quoted=True):
            scan.add(*match.span("secret"), "Secret query parameter hardcoded in a URL")


def _scan_commands(scan: _Scan) -> None:
    text = scan.text
    for match in _AUTH_HEADER.finditer(text):
        if _is_literal_secret(match.group("secret"), quoted=True):
            scan.add(*match.span("secret"), "Authorization header with a hardcoded credential")
    for match in _BEARER.finditer(text):
        if _looks_random(match.group("secret")) or any(c.isdigit() for c in match.group("secret")):
            scan.add(*match.span("secret"), "Authorization header with a hardcoded credential")
    for match in _PASSWORD_FLAG.finditer(text):
        value, span, quoted = _value(match)
        if _is_literal_secret(value, quoted=quoted) and not value.startswith("-"):
            scan.add(*span, "Password passed on a command line")
    mysql_lines = {scan.line_of(m.start()) for m in _MYSQL.finditer(text)}
    for match in _SHORT_PASSWORD_FLAG.finditer(text):
        value, span, quoted = _value(match)
        if scan.line_of(match.start()) in mysql_lines and _is_literal_secret(value, quoted=quoted):
            scan.add(*span, "Password passed on a command line")
    for match in _SSHPASS.finditer(text):
        value, span, quoted = _value(match)
        if _is_literal_secret(value, quoted=quoted):
            scan.add(*span, "Password passed on a command line")


def _scan_assignments(scan: _Scan) -> None:
    text = scan.text
    for match in _ASSIGNMENT.finditer(text):
        name = match.group("name")
        kind = _name_kind(name)
        if kind is None:
            continue
        value, span, quoted = _value(match)
        if not _is_literal_secret(value, quoted=quoted):
            continue
        if kind == "secret":
            scan.add(*span, f"Hardcoded value for {name}")
        elif _looks_random(value):
            scan.add(*span, f"High-entropy value for {name}")
    # {name = "DB_PASSWORD", value = "…"}: container environments, helm `set` blocks.
    for match in _NAME_VALUE.finditer(text):
        if _name_kind(match.group("name")) != "secret":
            continue
        # The value sits in the same object: before its closing brace, within a few lines.
        following = scan.line_of(match.start()) + 3
        window_end = scan.starts[following] if following < len(scan.starts) else len(text)
        window_end = min(window_end, match.end() + 400)
        closing = text.find("}", match.end(), window_end)
        window_end = closing if closing != -1 else window_end
        found = _VALUE_AFTER_NAME.search(text, match.end(), window_end)
        if found is not None:
            value, span, quoted = _value(found)
            if _is_literal_secret(value, quoted=quoted):
                scan.add(*span, f"Hardcoded value for {match.group('name')}")


def _scan_private_keys(scan: _Scan) -> None:
    text = scan.text
    position = 0
    while (begin := _PRIVATE_KEY_BEGIN.search(text, position)) is not None:
        end_match = _PRIVATE_KEY_END.search(text, begin.end())
        end = end_match.end() if end_match is not None else len(text)
        first = True
        # One span per line, so the redacted block keeps its lines.
        for piece in re.finditer(r"[^\n]+", text[begin.start() : end]):
            start = begin.start() + piece.start()
            scan.add(start, begin.start() + piece.end(), "Private key embedded in the configuration", first=first)
            first = False
        position = end


def _string_spans(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """Contents of the quoted strings between ``start`` and ``end`` that are values, not object keys."""
    for match in re.finditer(r'"((?:[^"\\\n]|\\.)*)"(?![ \t]*[=:])', text[start:end]):
        if match.group(1) and _is_literal_secret(match.group(1), quoted=True):
            yield start + match.start(1), start + match.end(1)


def _scan_structure(scan: _Scan, tf: TfFile) -> None:
    """What only the parsed blocks show: a secret variable's default, a SecureString parameter's value."""
    if tf.problem is not None:
        _scan_variables_unparsed(scan)
    for top in tf.blocks:
        if top.type == "variable" and (is_secret_name(top.name) or top.get("sensitive") is True):
            _add_value(scan, top, "default", f"Variable {top.name} has a hardcoded default secret")
        elif top.kind == "aws_ssm_parameter" and str(top.get("type", "")).lower() == "securestring":
            _add_value(scan, top, "value", f"SecureString parameter {top.name} has a hardcoded value")


def _add_value(scan: _Scan, block: Block, name: str, issue: str) -> None:
    attribute = block.attr(name)
    if attribute is None or not _has_literal(attribute.value):
        return
    first = scan.starts[attribute.line - 1]
    last = scan.starts[attribute.end_line] - 1 if attribute.end_line < len(scan.starts) else len(scan.text)
    source = scan.text[first:last]
    heredoc = re.search(r"<<-?([A-Za-z_][\w-]*)[ \t]*\n", source)
    if heredoc is not None:
        # The heredoc's body lines, not its markers.
        body_start = first + heredoc.end()
        body_end = scan.starts[attribute.end_line - 1] - 1
        for piece in re.finditer(r"[^\n]+", scan.text[body_start:body_end]):
            scan.add(body_start + piece.start(), body_start + piece.end(), issue)
        return
    offset = first + source.find("=") + 1 if attribute.line == attribute.end_line else first
    for start, end in _string_spans(scan.text, offset, last):
        scan.add(start, end, issue)


#: ``variable "NAME" {`` ... ``}`` at the start of a line, for files that do not parse.
_VARIABLE_BLOCK = re.compile(r'(?m)^variable[ \t]+"(?P<name>[^"\n]+)"[ \t]*\{(?P<body>(?:.*\n){0,50}?)^\}')
_DEFAULT_LINE = re.compile(r"(?m)^[ \t]*default[ \t]*=(?P<value>.*)$")


def _scan_variables_unparsed(scan: _Scan) -> None:
    """Best effort without a parse tree: quoted values on a secret variable's ``default =`` line."""
    for block in _VARIABLE_BLOCK.finditer(scan.text):
        sensitive = re.search(r"(?m)^[ \t]*sensitive[ \t]*=[ \t]*true\b", block.group("body"))
        if not (is_secret_name(block.group("name")) or sensitive):
            continue
        for line in _DEFAULT_LINE.finditer(scan.text, block.start("body"), block.end("body")):
            for start, end in _string_spans(scan.text, line.start("value"), line.end("value")):
                scan.add(start, end, f"Variable {block.group('name')} has a hardcoded default secret")


def _has_literal(value: Value) -> bool:
    if isinstance(value, str):
        return is_literal(value) and bool(value.strip())
    if isinstance(value, dict):
        return any(_has_literal(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_literal(v) for v in value)
    return False


def find_secrets(tf: TfFile) -> list[Secret]:
    """Every secret in ``tf``'s text, in file order (spans never overlap and never cross a line)."""
    scan = _Scan(tf.text)
    _scan_private_keys(scan)
    _scan_formats(scan)
    _scan_commands(scan)
    _scan_assignments(scan)
    _scan_structure(scan, tf)
    secrets: list[Secret] = []
    for start, end, issue, first in sorted(scan.spans, key=lambda s: (s[0], -s[1])):
        if secrets and start < secrets[-1].end:
            # Overlapping finds (a token inside a password value): one span, the first issue.
            previous = secrets[-1]
            if end > previous.end:
                secrets[-1] = Secret(previous.line, previous.start, end, previous.issue, previous.first)
            continue
        secrets.append(Secret(scan.line_of(start), start, end, issue, first))
    return secrets


def redact(tf: TfFile) -> tuple[str, int]:
    """``tf``'s text with every secret :func:`find_secrets` reports replaced by ``<redacted>``, and how many.

    The number of lines never changes.
    """
    text = tf.text
    secrets = find_secrets(tf)
    pieces: list[str] = []
    position = 0
    for secret in secrets:
        pieces.append(text[position : secret.start])
        # A line break inside a value (a form feed in a password) is kept, so no line can shift.
        pieces.append(REDACTED + "".join(_LINE_BREAK.findall(text, secret.start, secret.end)))
        position = secret.end
    pieces.append(text[position:])
    return "".join(pieces), len(secrets)
