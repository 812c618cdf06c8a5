resource "aws_s3_bucket" "assets" {
  bucket = "${local.name}-assets"
  acl    = "public-read"
  tags   = local.tags
}

resource "aws_s3_bucket_policy" "assets" {
  bucket = aws_s3_bucket.assets.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "PublicRead"
        Effect    = "Allow"
        Principal = "*"
        Action    = "s3:GetObject"
        Resource  = "${aws_s3_bucket.assets.arn}/*"
      },
    ]
  })
}

# Receives CloudTrail logs, but keeps them forever.
resource "aws_s3_bucket" "audit_logs" {
  bucket = "${local.name}-audit-logs"
  tags   = local.tags
}

resource "aws_s3_bucket_public_access_block" "audit_logs" {
  bucket                  = aws_s3_bucket.audit_logs.id
  block_public_acls       = true
  block_public_policy     = false
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "audit_logs" {
  bucket = aws_s3_bucket.audit_logs.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_cloudtrail" "main" {
  name           = "${local.name}-trail"
  s3_bucket_name = aws_s3_bucket.audit_logs.id
  enable_logging = false
}
