"""Secrets: one detector for OPS-S013 and for redaction; nothing planted ever reaches the LLM's server."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from reviewtools import hits, write_tf
from secret_cases import SECRETS, planted_module

from loopback import QuietHandler, send_json, serve
from opsmith.config import Settings, load_settings
from opsmith.llm.registry import get_chat_model
from opsmith.review import review
from opsmith.review.hcl import parse_text
from opsmith.review.secrets import REDACTED, find_secrets, is_secret_name, redact

OLD_SECRETS = [
    "AKIAIOSFODNN7EXAMPLE",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "hunter2hunter2",
    "xoxb-0000-secret-token",
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
    "s3cr3t-from-json",
    "Sup3rS3cret!",
]

SOURCE = textwrap.dedent(
    """\
    provider "aws" {
      access_key = "AKIAIOSFODNN7EXAMPLE"
      secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    }
    variable "db_password" {
      default = "Sup3rS3cret!"
    }
    resource "aws_db_instance" "db" {
      password = "hunter2hunter2"
      username = var.db_user
      manage_master_user_password = true
    }
    resource "aws_lambda_function" "fn" {
      environment {
        variables = {
          SLACK_TOKEN = "xoxb-0000-secret-token"
        }
      }
    }
    resource "aws_iam_server_certificate" "c" {
      private_key = <<-EOT
        -----BEGIN RSA PRIVATE KEY-----
        MIIEvQIBADANBgkqhkiG9w0BAQEFAASC
        -----END RSA PRIVATE KEY-----
      EOT
      user_data = <<-EOT
        {"password": "s3cr3t-from-json", "host": "db.internal"}
      EOT
    }
    """
)


def test_every_secret_is_replaced_and_lines_stay_put() -> None:
    tf = parse_text(SOURCE, name="main.tf")
    text, count = redact(tf)
    for secret in OLD_SECRETS:
        assert secret not in text, secret
    assert count >= len(OLD_SECRETS)
    assert len(text.splitlines()) == len(SOURCE.splitlines())
    lines = text.splitlines()
    assert lines[1] == f'  access_key = "{REDACTED}"'
    assert lines[5] == f'  default = "{REDACTED}"'
    assert lines[9] == "  username = var.db_user"  # references are not secrets
    assert lines[10] == "  manage_master_user_password = true"
    assert lines[26] == '    {"password": "<redacted>", "host": "db.internal"}'


def test_files_that_do_not_parse_are_still_redacted() -> None:
    tf = parse_text(
        'provider "aws" {\n  secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"\n  oops =\n', name="x.tf"
    )
    assert tf.problem is not None
    text, _ = redact(tf)
    assert "wJalrXUtnFEMI" not in text


def test_a_secret_variable_default_is_redacted_when_the_file_does_not_parse() -> None:
    source = (
        'variable "db_pass" {\n  default = "Vd-8fJ2kq9"\n}\nvariable "region" {\n  default = "eu-west-1"\n}\noops =\n'
    )
    tf = parse_text(source, name="x.tf")
    assert tf.problem is not None
    text, _ = redact(tf)
    assert text.splitlines()[1] == f'  default = "{REDACTED}"'
    assert '"eu-west-1"' in text


def test_secret_names() -> None:
    assert all(
        is_secret_name(n)
        for n in ["password", "master_password", "secret_key", "SLACK_TOKEN", "api-key", "db_pass", "apiKey"]
    )
    assert all(is_secret_name(n) for n in ["GITHUB_TOKEN", "client_secret", "slack_webhook_url", "dbPassword"])
    assert not any(
        is_secret_name(n)
        for n in ["creation_token", "secret_name", "password_length", "token_type", "kms_key_id", "bypass", "key"]
    )


# Every kind planted in a realistic module -----------------------------------------------------


def test_planted_module_has_at_least_twenty_kinds_of_secret() -> None:
    planted = planted_module()
    assert len(SECRETS) >= 20
    assert len(planted.secret_lines) == len(SECRETS)  # one per line, so a line proves a kind was caught


def test_every_planted_secret_is_found_on_its_line_and_nothing_else() -> None:
    planted = planted_module()
    tf = parse_text(planted.text, name="main.tf")
    assert tf.problem is None
    found = {s.line for s in find_secrets(tf) if s.first}
    missed = {kind: line for kind, line in planted.lines.items() if line not in found}
    assert missed == {}
    assert found - planted.secret_lines == set()  # no false positive among the ordinary lines


def test_redaction_removes_every_planted_secret_and_touches_only_their_lines() -> None:
    planted = planted_module()
    tf = parse_text(planted.text, name="main.tf")
    text, _ = redact(tf)
    assert_no_piece_of_any_secret(text)
    original, redacted = planted.text.splitlines(), text.splitlines()
    assert len(redacted) == len(original)
    changed = {n for n, (a, b) in enumerate(zip(original, redacted, strict=True), start=1) if a != b}
    assert changed == planted.redacted_lines
    assert all(REDACTED in redacted[n - 1] for n in changed)


def test_the_rule_reports_every_planted_secret_on_its_line(tmp_path: Path, settings: Settings) -> None:
    planted = planted_module()
    folder = tmp_path / "infra"
    folder.mkdir()
    (folder / "main.tf").write_text(planted.text)
    result = review([folder], settings=settings, use_llm=False)
    found = hits(result, "OPS-S013")
    assert {f.line for f in found} == planted.secret_lines
    assert len(found) == len(planted.secret_lines)
    by_line = {f.line: f for f in found}
    assert by_line[planted.lines["stripe_key_in_ssm"]].resource == "aws_ssm_parameter.stripe"
    assert by_line[planted.lines["slack_webhook"]].resource == "local.alerts_webhook"
    assert "Stripe" in by_line[planted.lines["stripe_key_in_ssm"]].issue  # detect-secrets' plugin named it


@pytest.mark.parametrize(
    "line",
    [
        'password = "hunter2hunter2"',
        '"db_pass" = "Vd-abc123"',
        'dbPassword: "Sup3rS3cret"',
        r"{\"password\": \"s3cr3t-esc\"}",
        "PASS=hunter2hunter2",
        "spring.datasource.password=Hunter2!",
        "-e MYSQL_ROOT_PASSWORD=rootpw123",
        '"Authorization" = "Bearer abcdef123456"',
        "Authorization: Token 9f86d081884c7d659a2f",
        "-H 'X-Api-Key: a1b2c3d4e5f6'",
        "sshpass -p 'pa55word' ssh host",
        "mysqldump -uroot -pS3cret db",
        "psql --password=Sup3r postgres",
        "redis://:p4ssw0rd@cache.internal:6379",
        "https://x-access-token:abcdef1234567890@github.com/acme/x.git",
        "https://outlook.office.com/webhook/abc-def/IncomingWebhook/123/456",
        'webhook_url = "https://alerts.example.com/hook/8f14e45fceea167a5a36dedd4bea2543"',
        "ANTHROPIC_API_KEY=sk-" + "ant-api03-abcdefghijklmnopqrstuvwxyz0123456789",
        'app_signing_key = "k9Jd93LxPq2mZr7Tb4Nw"',
    ],
)
def test_secret_shapes(line: str) -> None:
    tf = parse_text(line + "\n", name="x.tf")
    assert find_secrets(tf), line
    assert REDACTED in redact(tf)[0]


@pytest.mark.parametrize(
    "line",
    [
        "password = var.db_password",
        "password = random_password.db.result",
        "secret_key = aws_iam_access_key.ci.secret",
        "token = data.aws_eks_cluster_auth.this.token",
        'api_key = "${var.api_key}"',
        'secret_name = "prod/app/db"',
        'kms_key_id = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"',
        'key_name = "deployer-key-2023"',
        'key = "Environment"',
        'creation_token = "shared-fs"',
        'Resource = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-pass-AbC123"',
        'topic = "arn:aws:sns:eu-west-1:123456789012:alerts-topic-for-the-production-platform-team"',
        'url = "https://example.com/api?page=2"',
        "export API_KEY=$(aws ssm get-parameter --name /app/key --with-decryption --output text)",
        'export DB_PASSWORD="${db_password}"',
        'curl -H "Authorization: Bearer $TOKEN" https://x',
        'echo "Use basic authentication for the proxy"',
        "mkdir -p /var/lib/mysql",
        "docker login --password-stdin < /run/secrets/token",
        "password_length = 32",
        '"Action": ["secretsmanager:GetSecretValue", "kms:Decrypt"]',
        'etag = "d41d8cd98f00b204e9800998ecf8427e"',
        'public_key = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 user@host"',
        '"token.actions.githubusercontent.com:sub": "repo:acme/infra:ref:refs/heads/main"',
        'password = ""',
        'password = "<your-password>"',
        'authorization = "NONE"',
        'access_token = "hours"',
        "generate_secret = true",
        '{ name = "DB_PASSWORD", value = var.db_password }',
        'secrets = [{ name = "DB_PASSWORD", valueFrom = aws_ssm_parameter.db.arn }]',
        'object_key = "releases/app-7f3a9c1e2b4d.zip"',
        'PGPASSWORD="$DB_PASSWORD" psql -h db -U app',
        "ssh -p 2222 deploy@host",
        "password = each.value.password",
        'token = lookup(var.tokens, "ci")',
        'db_password_ssm_path = "/prod/db/password"',
    ],
)
def test_not_secrets(line: str) -> None:
    tf = parse_text(line + "\n", name="x.tf")
    assert [tf.text[s.start : s.end] for s in find_secrets(tf)] == []


# At the wire: a real OpenAI-compatible server on loopback records what opsmith sends ----------


def assert_no_piece_of_any_secret(text: str, size: int = 10) -> None:
    """No secret, and no ``size``-character piece of one (a half-redacted token), is in ``text``."""
    for kind, secret in SECRETS.items():
        pieces = {secret[i : i + size] for i in range(max(1, len(secret) - size + 1))}
        leaked = sorted(piece for piece in pieces if piece in text)
        assert not leaked, (kind, leaked[:3])


def reply_for(prompt: str) -> dict[str, Any]:
    """The model's answer: one cost finding on every numbered line that shows ``<redacted>``.

    Each finding's line is read off the prompt, so the findings only land on the real secret
    lines if the redacted source kept every line where it was.
    """
    findings = []
    file = None
    for line in prompt.splitlines():
        if line.startswith("# file: "):
            file = line.removeprefix("# file: ").strip()
        number, bar, rest = line.partition(" | ")
        if bar and number.strip().isdigit() and REDACTED in rest:
            n = int(number)
            findings.append(
                {
                    "severity": "warning",
                    "line": n,
                    "file": file,
                    "resource": None,
                    "issue": f"L{n} hides a value the reviewer cannot see",
                    "fix": "Read it from a sensitive variable.",
                }
            )
    return {"security": [], "cost": findings, "correctness": []}


class _ChatServer(QuietHandler):
    bodies: ClassVar[list[bytes]] = []
    replies: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        self.bodies.append(body)
        # The last message holds the code; earlier ones are the template's worked example.
        reply = reply_for(json.loads(body)["messages"][-1]["content"])
        self.replies.append(reply)
        payload = {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1_730_000_000,
            "model": "local-model",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": json.dumps(reply)},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150},
        }
        send_json(self, payload)


@pytest.fixture
def chat_server() -> Iterator[str]:
    _ChatServer.bodies, _ChatServer.replies = [], []
    with serve(_ChatServer) as url:
        yield f"{url}/v1"


def test_no_planted_secret_reaches_an_openai_compatible_server(chat_server: str, tmp_path: Path) -> None:
    planted = planted_module()
    folder = write_tf(tmp_path / "infra", {"outputs.tf": 'output "region" {\n  value = "eu-west-1"\n}\n'})
    (folder / "main.tf").write_text(planted.text)
    settings = load_settings(provider="openai", base_url=chat_server, model="local-model")
    chat_model = get_chat_model(settings)
    try:
        result = review([folder], settings=settings, chat_model=chat_model)
    finally:
        chat_model.close()

    assert _ChatServer.bodies, "the review never called the server"
    assert result.warnings == []
    for body in _ChatServer.bodies:
        assert_no_piece_of_any_secret(body.decode())
        assert_no_piece_of_any_secret("\n".join(m["content"] for m in json.loads(body)["messages"]))
    # The prompt's numbered lines are the file's lines: the model saw <redacted> exactly where
    # the secrets are, so its findings (and the rule's) point at the real lines.
    llm = [f for f in result.findings if f.source == "llm"]
    assert {(f.file, f.line) for f in llm} == {("main.tf", n) for n in planted.redacted_lines}
    assert result.dropped_llm_findings == 0
    assert {f.line for f in hits(result, "OPS-S013")} == planted.secret_lines
    assert all(f.file == "main.tf" for f in hits(result, "OPS-S013"))
