resource "aws_sqs_queue" "events" {
  name                       = "${local.name}-events"
  visibility_timeout_seconds =
  message_retention_seconds  = 86400
}
