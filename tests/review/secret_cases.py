"""A realistic module with secrets of 30 kinds planted in it, and the lines each one is on.

The secrets are fake but format-valid, and built here from random characters so the
repository itself holds nothing a secret scanner would take for a live credential.
"""

from __future__ import annotations

import base64
import json
import random
import string
from dataclasses import dataclass

_RNG = random.Random(20_11)
_ALNUM = string.ascii_letters + string.digits
_UPPER = string.ascii_uppercase + string.digits
_LOWER = string.ascii_lowercase + string.digits


def _token(length: int, alphabet: str = _ALNUM) -> str:
    return "".join(_RNG.choice(alphabet) for _ in range(length))


def _b64url(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _uuid() -> str:
    return "-".join(_token(n, "0123456789abcdef") for n in (8, 4, 4, 4, 12))


#: kind -> the secret. Prefixes are split so no literal here matches a scanner's pattern.
SECRETS: dict[str, str] = {
    "aws_access_key_id": "AK" + "IA" + _token(16, _UPPER),
    "aws_secret_access_key": _token(40, _ALNUM + "/+"),
    "vault_token": "hv" + "s." + _token(90, _ALNUM + "_-"),
    "variable_default": "Vd-" + _token(14),
    "sensitive_variable_default": "boot-" + _token(18),
    "slack_webhook": "T" + _token(10, _UPPER) + "/B" + _token(10, _UPPER) + "/" + _token(24),
    "discord_webhook": _token(18, string.digits) + "/" + _token(68, _ALNUM + "_-"),
    "teams_webhook": f"{_uuid()}@{_uuid()}/IncomingWebhook/{_token(32, '0123456789abcdef')}/{_uuid()}",
    "gitlab_token": "gl" + "pat-" + _token(20, _ALNUM + "_-"),
    "jwt": ".".join(
        [_b64url({"alg": "HS256", "typ": "JWT"}), _b64url({"sub": "deploy", "iat": 1_700_000_000}), _token(43, _ALNUM)]
    ),
    "high_entropy_key": _token(32),
    "azure_account_key": _token(86, _ALNUM + "+/") + "==",
    "sas_signature": _token(43, _ALNUM) + "%3D",
    "google_api_key": "AI" + "za" + _token(35, _ALNUM + "_-"),
    "stripe_key_in_ssm": "sk" + "_live_" + _token(24),
    "securestring_value": "quartz-" + _token(12),
    "shell_api_key": _token(32),
    "github_token": "gh" + "p_" + _token(36),
    "bearer_token": _token(40, _ALNUM + "._-"),
    "mysql_password": "Rt7!q" + _token(11),
    "postgres_url_password": "pg" + _token(16),
    "npm_token": "np" + "m_" + _token(36),
    "basic_auth": base64.b64encode(("deploy:" + _token(16)).encode()).decode(),
    "ecs_environment_password": "ecs-" + _token(16),
    "openai_key": "sk" + "-proj-" + _token(64, _ALNUM + "_-"),
    "slack_bot_token": "xo" + "xb-" + _token(12, string.digits) + "-" + _token(13, string.digits) + "-" + _token(24),
    "sendgrid_key": "S" + "G." + _token(22, _ALNUM + "_-") + "." + _token(43, _ALNUM + "_-"),
    "twilio_key": "S" + "K" + _token(32, _LOWER),
    "private_key": base64.b64encode(bytes(_RNG.randrange(256) for _ in range(48))).decode(),
    "cli_password_flag": "Fly-" + _token(15),
    "jsonencode_password": "Js0n-" + _token(15),
}

SOURCE = """\
terraform {{
  required_providers {{
    aws = {{
      source  = "hashicorp/aws"
      version = "~> 5.0"
    }}
  }}
}}

provider "aws" {{
  region     = "eu-west-1"
  access_key = "{aws_access_key_id}"
  secret_key = "{aws_secret_access_key}"
}}

provider "vault" {{
  address = "https://vault.internal:8200"
  token   = "{vault_token}"
}}

variable "db_pass" {{
  type    = string
  default = "{variable_default}"
}}

variable "bootstrap" {{
  type      = string
  sensitive = true
  default   = "{sensitive_variable_default}"
}}

variable "db_user" {{
  type    = string
  default = "app"
}}

locals {{
  name           = "acme"
  alerts_webhook = "https://hooks.slack.com/services/{slack_webhook}"
  discord_hook   = "https://discord.com/api/webhooks/{discord_webhook}"
  teams_hook     = "https://acme.webhook.office.com/webhookb2/{teams_webhook}"
  deploy_tokens  = {{ gitlab = "{gitlab_token}" }}
  session_header = "{jwt}"
  hmac_key_v2    = "{high_entropy_key}"
  storage_conn   = "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey={azure_account_key};EndpointSuffix=x"
  export_url     = "https://acme.blob.core.windows.net/exports?sv=2022-11-02&sp=r&se=2030-01-01&sig={sas_signature}"
  geocode_url    = "https://maps.googleapis.com/maps/api/geocode/json?key={google_api_key}"
  secret_name    = "prod/app/db"
  kms_key_id     = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
  docs_url       = "https://example.com/docs?page=2&token_type=bearer"
  db_url         = "postgres://${{var.db_user}}:${{var.db_pass}}@db.internal:5432/app"
}}

resource "aws_ssm_parameter" "stripe" {{
  name  = "/app/stripe"
  type  = "String"
  value = "{stripe_key_in_ssm}"
}}

resource "aws_ssm_parameter" "license" {{
  name  = "/app/license"
  type  = "SecureString"
  value = "{securestring_value}"
}}

resource "aws_instance" "web" {{
  ami           = "ami-0c55b159cbfafe1f0"
  instance_type = "t3.micro"
  user_data     = <<-EOF
    #!/bin/bash
    set -euo pipefail
    export API_KEY={shell_api_key}
    export GITHUB_TOKEN={github_token}
    curl -s -H "Authorization: Bearer {bearer_token}" https://api.internal/bootstrap
    mysql -h db.internal -u app -p'{mysql_password}' app < /opt/schema.sql
    echo "DATABASE_URL=postgres://app:{postgres_url_password}@db.internal:5432/app" >> /etc/app.env
    echo "//registry.npmjs.org/:_authToken={npm_token}" > /root/.npmrc
    curl -H "Authorization: Basic {basic_auth}" https://artifacts.internal/pkg.tgz -o /tmp/pkg.tgz
    mkdir -p /var/lib/app
    curl -H "Authorization: Bearer $TOKEN" -d "secret_name=${{local.secret_name}}" https://api.internal/hook
  EOF
  tags = {{
    Name = "web"
  }}
}}

resource "aws_ecs_task_definition" "app" {{
  family = "app"
  container_definitions = jsonencode([{{
    name  = "app"
    image = "acme/app:1.4.2"
    environment = [
      {{ name = "LOG_LEVEL", value = "info" }},
      {{ name = "DB_PASSWORD", value = "{ecs_environment_password}" }},
      {{ name = "OPENAI_API_KEY", value = "{openai_key}" }},
    ]
    secrets = [{{ name = "STRIPE_KEY", valueFrom = aws_ssm_parameter.stripe.arn }}]
  }}])
}}

resource "aws_lambda_function" "notifier" {{
  function_name = "notifier"
  role          = aws_iam_role.lambda.arn
  handler       = "index.handler"
  runtime       = "nodejs20.x"
  filename      = "notifier.zip"
  environment {{
    variables = {{
      SLACK_BOT      = "{slack_bot_token}"
      MAIL_RELAY     = templatefile("${{path.module}}/relay.tpl", {{ relay = "{sendgrid_key}" }})
      TWILIO_API_SID = "{twilio_key}"
      SECRET_ARN     = aws_secretsmanager_secret.app.arn
      DB_PASSWORD    = var.db_pass
    }}
  }}
}}

resource "aws_iam_role" "lambda" {{
  name = "notifier"
  assume_role_policy = jsonencode({{
    Version = "2012-10-17"
    Statement = [{{
      Effect    = "Allow"
      Action    = "sts:AssumeRole"
      Principal = {{ Service = "lambda.amazonaws.com" }}
    }}]
  }})
}}

resource "aws_iam_role_policy" "read_secret" {{
  role = aws_iam_role.lambda.id
  policy = jsonencode({{
    Version = "2012-10-17"
    Statement = [{{
      Effect   = "Allow"
      Action   = ["secretsmanager:GetSecretValue"]
      Resource = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/app/db-AbC123"
    }}]
  }})
}}

resource "aws_secretsmanager_secret" "app" {{
  name = "prod/app/db"
}}

resource "aws_secretsmanager_secret_version" "app" {{
  secret_id     = aws_secretsmanager_secret.app.id
  secret_string = jsonencode({{ username = "app", password = "{jsonencode_password}" }})
}}

resource "aws_iam_access_key" "ci" {{
  user = "ci"
}}

resource "aws_iam_server_certificate" "legacy" {{
  name             = "legacy"
  certificate_body = file("legacy.crt")
  private_key      = <<-EOT
    -----BEGIN RSA PRIVATE KEY-----
    {private_key}
    -----END RSA PRIVATE KEY-----
  EOT
}}

resource "null_resource" "migrate" {{
  provisioner "local-exec" {{
    command = "flyway -url=jdbc:postgresql://db.internal/app -user=app -password={cli_password_flag} migrate"
    environment = {{
      PGHOST     = "db.internal"
      CI_SECRET  = aws_iam_access_key.ci.secret
    }}
  }}
}}

output "ci_secret" {{
  value     = aws_iam_access_key.ci.secret
  sensitive = true
}}
"""


@dataclass(frozen=True)
class Planted:
    """The module's text, the line each secret is on, and every line redaction must touch."""

    text: str
    lines: dict[str, int]

    @property
    def secret_lines(self) -> set[int]:
        """Where OPS-S013 must fire: one line per secret (a key block's BEGIN line)."""
        return set(self.lines.values())

    @property
    def redacted_lines(self) -> set[int]:
        """Lines that must carry ``<redacted>``: the secrets' lines and the whole private key block."""
        begin = self.lines["private_key"]
        return self.secret_lines | {begin + 1, begin + 2}


def planted_module() -> Planted:
    text = SOURCE.format(**SECRETS)
    lines = text.splitlines()
    found: dict[str, int] = {}
    for kind, secret in SECRETS.items():
        numbers = [n for n, line in enumerate(lines, start=1) if secret in line]
        assert len(numbers) == 1, (kind, numbers)
        found[kind] = numbers[0]
    # The rule reports a key block on its BEGIN line, the line above the key material.
    found["private_key"] -= 1
    return Planted(text, found)
