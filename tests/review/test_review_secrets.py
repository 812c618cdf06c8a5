"""Redaction before anything is sent: every secret shape, line numbers unchanged."""

from __future__ import annotations

import textwrap

from opsmith.review.hcl import parse_text
from opsmith.review.secrets import REDACTED, is_secret_name, redact

SECRETS = [
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
    for secret in SECRETS:
        assert secret not in text, secret
    assert count >= len(SECRETS)
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


def test_secret_names() -> None:
    assert all(is_secret_name(n) for n in ["password", "master_password", "secret_key", "SLACK_TOKEN", "api-key"])
    assert not any(is_secret_name(n) for n in ["creation_token", "secret_name", "password_length", "token_type"])
