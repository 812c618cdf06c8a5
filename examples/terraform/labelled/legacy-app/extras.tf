variable "legacy_db_password" {
  type    = string
  default = "changeme123"
}

resource "aws_lambda_function" "notifier" {
  function_name = "legacy-notifier"
  role          = aws_iam_role.notifier.arn
  runtime       = "python3.12"
  handler       = "app.handler"
  filename      = "notifier.zip"

  environment {
    variables = {
      LOG_LEVEL   = "info"
      SLACK_TOKEN = "xoxb-123456789012-abcdefghijklmnop"
    }
  }
}

resource "aws_iam_server_certificate" "legacy" {
  name             = "legacy-cert"
  certificate_body = file("certs/legacy.pem")
  private_key      = <<-EOT
    -----BEGIN RSA PRIVATE KEY-----
    MIIEowIBAAKCAQEAwJ6c3xYkz8nQ0example0example0example0example0exam
    -----END RSA PRIVATE KEY-----
  EOT
}

# Copied from app.tf during a refactor and never removed.
resource "aws_security_group" "legacy_app" {
  name        = "legacy-app-v2"
  description = "Legacy app servers"
}
