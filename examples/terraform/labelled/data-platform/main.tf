# Analytics data lake for production: raw and curated zones, a warehouse, and the ETL role.

locals {
  environment = "production"
  lake_name   = "acme-datalake-prod"
}

resource "aws_s3_bucket" "raw" {
  bucket = "${local.lake_name}-raw"
}

resource "aws_s3_bucket_acl" "raw" {
  bucket = aws_s3_bucket.raw.id
  acl    = "public-read-write"
}

resource "aws_s3_bucket_logging" "raw" {
  bucket        = aws_s3_bucket.raw.id
  target_bucket = aws_s3_bucket.lake_logs.id
  target_prefix = "raw/"
}

resource "aws_s3_bucket" "curated" {
  bucket = "${local.lake_name}-curated"
}

resource "aws_s3_bucket_public_access_block" "curated" {
  bucket                  = aws_s3_bucket.curated.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = false
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "curated" {
  bucket = aws_s3_bucket.curated.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "aws:kms"
    }
  }
}

resource "aws_s3_bucket_logging" "curated" {
  bucket        = aws_s3_bucket.curated.id
  target_bucket = aws_s3_bucket.lake_logs.id
  target_prefix = "curated/"
}

data "aws_iam_policy_document" "curated_share" {
  statement {
    sid       = "PartnerRead"
    actions   = ["s3:GetObject", "s3:ListBucket"]
    resources = [aws_s3_bucket.curated.arn, "${aws_s3_bucket.curated.arn}/*"]
    principals {
      type        = "AWS"
      identifiers = ["*"]
    }
  }
}

resource "aws_s3_bucket_policy" "curated" {
  bucket = aws_s3_bucket.curated.id
  policy = data.aws_iam_policy_document.curated_share.json
}

resource "aws_s3_bucket" "lake_logs" {
  bucket = "${local.lake_name}-access-logs"
}

resource "aws_s3_bucket_public_access_block" "lake_logs" {
  bucket                  = aws_s3_bucket.lake_logs.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "lake_logs" {
  bucket = aws_s3_bucket.lake_logs.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_rds_cluster" "warehouse" {
  cluster_identifier      = "warehouse"
  engine                  = "aurora-postgresql"
  engine_version          = "15.4"
  master_username         = "etl"
  master_password         = "etl-Passw0rd-2023"
  backup_retention_period = 1
  skip_final_snapshot     = true
  tags = {
    Environment = "production"
  }
}

resource "aws_rds_cluster_instance" "warehouse" {
  count               = 2
  identifier          = "warehouse-${count.index}"
  cluster_identifier  = aws_rds_cluster.warehouse.id
  instance_class      = "db.r6g.xlarge"
  engine              = aws_rds_cluster.warehouse.engine
  publicly_accessible = true
}

data "aws_iam_policy_document" "etl" {
  statement {
    sid       = "LakeAccess"
    actions   = ["s3:*"]
    resources = ["*"]
  }

  statement {
    sid       = "RunJobs"
    actions   = ["glue:StartJobRun", "glue:GetJobRun"]
    resources = ["arn:aws:glue:eu-west-1:123456789012:job/nightly-*"]
  }
}

resource "aws_iam_policy" "etl" {
  name   = "etl-lake-access"
  policy = data.aws_iam_policy_document.etl.json
}
