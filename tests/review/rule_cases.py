"""The failing and passing example of every rule (see ruletools.Case)."""

from __future__ import annotations

from ruletools import Case

_BUCKET_OK = """
resource "aws_s3_bucket" "data" {
  bucket = "acme-data"
}
resource "aws_s3_bucket_public_access_block" "data" {
  bucket                  = aws_s3_bucket.data.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}
"""

CASES: list[Case] = [
    # --- security -------------------------------------------------------------------------
    Case(
        "OPS-S001",
        name="jsonencode",
        failing="""
        resource "aws_iam_policy" "admin" {
          name = "admin"
          policy = jsonencode({
            Version = "2012-10-17"
            Statement = [{
              Effect   = "Allow"
              Action   = "*" # <-
              Resource = "arn:aws:s3:::acme/*"
            }]
          })
        }
        """,
        passing="""
        resource "aws_iam_policy" "reader" {
          name = "reader"
          policy = jsonencode({
            Version = "2012-10-17"
            Statement = [
              { Effect = "Allow", Action = ["s3:GetObject"], Resource = "arn:aws:s3:::acme/*" },
              { Effect = "Deny", Action = "*", Resource = "*" },
            ]
          })
        }
        """,
    ),
    Case(
        "OPS-S001",
        name="policy-document-service-wildcard",
        failing="""
        data "aws_iam_policy_document" "etl" {
          statement {
            actions   = ["s3:*"] # <-
            resources = ["arn:aws:s3:::lake/*"]
          }
        }
        """,
        passing="""
        data "aws_iam_policy_document" "etl" {
          statement {
            actions   = ["s3:GetObject", "s3:PutObject"]
            resources = ["arn:aws:s3:::lake/*"]
          }
        }
        """,
    ),
    Case(
        "OPS-S001",
        name="heredoc-json",
        failing="""
        resource "aws_iam_role_policy" "deploy" {
          name   = "deploy"
          role   = "deploy"
          policy = <<-EOT
            {
              "Version": "2012-10-17",
              "Statement": [
                {"Effect": "Allow", "Action": "ec2:*", "Resource": "arn:aws:ec2:*:*:instance/*"}, # <-
                {"Effect": "Allow", "Action": "*", "Resource": "arn:aws:s3:::x"} # <-
              ]
            }
          EOT
        }
        """,
        passing="""
        resource "aws_iam_role_policy" "deploy" {
          name   = "deploy"
          role   = "deploy"
          policy = <<-EOT
            {"Version": "2012-10-17",
             "Statement": [{"Effect": "Allow", "Action": "ec2:StartInstances", "Resource": "*"}]}
          EOT
        }
        """,
    ),
    Case(
        "OPS-S002",
        failing="""
        data "aws_iam_policy_document" "app" {
          statement {
            actions   = ["s3:PutObject"]
            resources = ["*"] # <-
          }
        }
        """,
        passing="""
        data "aws_iam_policy_document" "app" {
          statement {
            actions   = ["s3:PutObject"]
            resources = ["arn:aws:s3:::acme/uploads/*"]
          }
          statement {
            actions   = ["ec2:DescribeInstances", "sts:GetCallerIdentity"]
            resources = ["*"]
          }
        }
        """,
    ),
    Case(
        "OPS-S003",
        failing="""
        resource "aws_s3_bucket" "site" {
          bucket = "acme-site"
          acl    = "public-read" # <-
        }
        resource "aws_s3_bucket_acl" "site" {
          bucket = aws_s3_bucket.site.id
          acl    = "authenticated-read" # <-
        }
        resource "aws_s3_bucket_acl" "grants" {
          bucket = aws_s3_bucket.site.id
          access_control_policy {
            grant {
              grantee {
                type = "Group"
                uri  = "http://acs.amazonaws.com/groups/global/AllUsers" # <-
              }
              permission = "READ"
            }
            owner {
              id = "abc"
            }
          }
        }
        """,
        passing="""
        resource "aws_s3_bucket" "site" {
          bucket = "acme-site"
          acl    = "private"
        }
        """,
    ),
    Case(
        "OPS-S004",
        failing="""
        resource "aws_s3_bucket" "data" { # <-
          bucket = "acme-data"
        }
        resource "aws_s3_bucket" "logs" {
          bucket = "acme-logs"
        }
        resource "aws_s3_bucket_public_access_block" "logs" {
          bucket                  = aws_s3_bucket.logs.id
          block_public_acls       = true
          block_public_policy     = false # <-
          ignore_public_acls      = true
          restrict_public_buckets = true
        }
        """,
        passing=_BUCKET_OK,
    ),
    Case(
        "OPS-S005",
        failing="""
        resource "aws_s3_bucket_policy" "site" {
          bucket = "acme-site"
          policy = jsonencode({
            Version = "2012-10-17"
            Statement = [{
              Effect    = "Allow"
              Principal = { AWS = "*" } # <-
              Action    = "s3:GetObject"
              Resource  = "arn:aws:s3:::acme-site/*"
            }]
          })
        }
        """,
        passing="""
        resource "aws_s3_bucket_policy" "site" {
          bucket = "acme-site"
          policy = jsonencode({
            Version = "2012-10-17"
            Statement = [{
              Effect    = "Allow"
              Principal = "*"
              Action    = "s3:GetObject"
              Resource  = "arn:aws:s3:::acme-site/*"
              Condition = { StringEquals = { "aws:SourceVpce" = "vpce-0abc" } }
            }]
          })
        }
        """,
    ),
    Case(
        "OPS-S005",
        name="policy-document",
        failing="""
        data "aws_iam_policy_document" "share" {
          statement {
            actions   = ["s3:GetObject"]
            resources = ["arn:aws:s3:::acme-share/*"]
            principals {
              type        = "*"
              identifiers = ["*"] # <-
            }
          }
        }
        resource "aws_s3_bucket_policy" "share" {
          bucket = "acme-share"
          policy = data.aws_iam_policy_document.share.json
        }
        """,
        passing="""
        data "aws_iam_policy_document" "share" {
          statement {
            actions   = ["s3:GetObject"]
            resources = ["arn:aws:s3:::acme-share/*"]
            principals {
              type        = "AWS"
              identifiers = ["arn:aws:iam::123456789012:root"]
            }
          }
        }
        resource "aws_s3_bucket_policy" "share" {
          bucket = "acme-share"
          policy = data.aws_iam_policy_document.share.json
        }
        """,
    ),
    Case(
        "OPS-S006",
        failing="""
        resource "aws_s3_bucket" "data" { # <-
          bucket = "acme-data"
        }
        """,
        passing="""
        resource "aws_s3_bucket" "data" {
          bucket = "acme-data"
        }
        resource "aws_s3_bucket_server_side_encryption_configuration" "data" {
          bucket = aws_s3_bucket.data.id
          rule {
            apply_server_side_encryption_by_default {
              sse_algorithm = "aws:kms"
            }
          }
        }
        """,
    ),
    Case(
        "OPS-S007",
        failing="""
        resource "aws_ebs_volume" "data" {
          availability_zone = "eu-west-1a"
          size              = 10
          encrypted         = false # <-
        }
        resource "aws_instance" "web" { # <-
          ami           = "ami-123"
          instance_type = "t3.micro"
        }
        resource "aws_launch_template" "web" {
          block_device_mappings {
            device_name = "/dev/xvda"
            ebs { # <-
              volume_size = 8
            }
          }
        }
        """,
        passing="""
        resource "aws_ebs_volume" "data" {
          availability_zone = "eu-west-1a"
          size              = 10
          encrypted         = true
        }
        resource "aws_instance" "web" {
          ami           = "ami-123"
          instance_type = "t3.micro"
          root_block_device {
            encrypted = true
          }
        }
        """,
    ),
    Case(
        "OPS-S007",
        name="account-default-encryption",
        failing="""
        resource "aws_ebs_volume" "data" { # <-
          availability_zone = "eu-west-1a"
          size              = 10
        }
        """,
        passing="""
        resource "aws_ebs_encryption_by_default" "on" {
          enabled = true
        }
        resource "aws_ebs_volume" "data" {
          availability_zone = "eu-west-1a"
          size              = 10
        }
        """,
    ),
    Case(
        "OPS-S008",
        failing="""
        resource "aws_db_instance" "db" { # <-
          engine            = "postgres"
          instance_class    = "db.t3.micro"
          allocated_storage = 20
        }
        resource "aws_rds_cluster" "aurora" {
          engine            = "aurora-mysql"
          storage_encrypted = false # <-
        }
        """,
        passing="""
        resource "aws_db_instance" "db" {
          engine            = "postgres"
          instance_class    = "db.t3.micro"
          allocated_storage = 20
          storage_encrypted = true
        }
        resource "aws_db_instance" "replica" {
          instance_class      = "db.t3.micro"
          replicate_source_db = aws_db_instance.db.identifier
        }
        """,
    ),
    Case(
        "OPS-S009",
        failing="""
        resource "aws_efs_file_system" "shared" { # <-
          creation_token = "shared"
        }
        """,
        passing="""
        resource "aws_efs_file_system" "shared" {
          creation_token = "shared"
          encrypted      = true
        }
        """,
    ),
    Case(
        "OPS-S010",
        failing="""
        resource "aws_ebs_snapshot_copy" "copy" { # <-
          source_snapshot_id = "snap-0123"
          source_region      = "eu-west-1"
        }
        resource "aws_ebs_volume" "data" {
          availability_zone = "eu-west-1a"
          size              = 10
        }
        resource "aws_ebs_snapshot" "nightly" {
          volume_id = aws_ebs_volume.data.id # <-
        }
        """,
        passing="""
        resource "aws_ebs_snapshot_copy" "copy" {
          source_snapshot_id = "snap-0123"
          source_region      = "eu-west-1"
          encrypted          = true
        }
        resource "aws_ebs_volume" "data" {
          availability_zone = "eu-west-1a"
          size              = 10
          encrypted         = true
        }
        resource "aws_ebs_snapshot" "nightly" {
          volume_id = aws_ebs_volume.data.id
        }
        """,
    ),
    Case(
        "OPS-S011",
        failing="""
        resource "aws_db_instance" "db" {
          engine              = "mysql"
          instance_class      = "db.t3.micro"
          allocated_storage   = 20
          publicly_accessible = true # <-
        }
        """,
        passing="""
        resource "aws_db_instance" "db" {
          engine              = "mysql"
          instance_class      = "db.t3.micro"
          allocated_storage   = 20
          publicly_accessible = false
        }
        """,
    ),
    Case(
        "OPS-S012",
        failing="""
        resource "aws_security_group" "admin" {
          ingress {
            from_port   = 22
            to_port     = 22
            protocol    = "tcp"
            cidr_blocks = ["10.0.0.0/8", "0.0.0.0/0"] # <-
          }
          ingress {
            from_port        = 0
            to_port          = 0
            protocol         = "-1"
            ipv6_cidr_blocks = ["::/0"] # <-
          }
        }
        resource "aws_security_group_rule" "db" {
          type              = "ingress"
          from_port         = 5000
          to_port           = 6000
          protocol          = "tcp"
          cidr_blocks = [
            var.office_cidr,
            "0.0.0.0/0", # <-
          ]
          security_group_id = aws_security_group.admin.id
        }
        resource "aws_vpc_security_group_ingress_rule" "rdp" {
          security_group_id = aws_security_group.admin.id
          cidr_ipv4         = "0.0.0.0/0" # <-
          from_port         = 3389
          to_port           = 3389
          ip_protocol       = "tcp"
        }
        """,
        passing="""
        resource "aws_security_group" "web" {
          ingress {
            from_port   = 443
            to_port     = 443
            protocol    = "tcp"
            cidr_blocks = ["0.0.0.0/0"]
          }
          ingress {
            from_port   = 22
            to_port     = 22
            protocol    = "tcp"
            cidr_blocks = ["10.100.0.0/16"]
          }
          egress {
            from_port   = 0
            to_port     = 0
            protocol    = "-1"
            cidr_blocks = ["0.0.0.0/0"]
          }
        }
        """,
    ),
    Case(
        "OPS-S013",
        failing="""
        provider "aws" {
          region     = "eu-west-1"
          access_key = "AKIAIOSFODNN7EXAMPLE" # <-
        }
        variable "db_password" {
          type    = string
          default = "hunter2hunter2" # <-
        }
        resource "aws_lambda_function" "fn" {
          function_name = "fn"
          role          = "arn:aws:iam::123456789012:role/fn"
          environment {
            variables = {
              LOG_LEVEL = "info"
              API_TOKEN = "tok-1234567890" # <-
            }
          }
        }
        resource "aws_instance" "web" {
          ami           = "ami-123"
          instance_type = "t3.micro"
          user_data     = <<-EOF
            #!/bin/bash
            export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY # <-
          EOF
        }
        resource "aws_iam_server_certificate" "cert" {
          name             = "cert"
          certificate_body = "cert"
          private_key      = <<-EOT
            -----BEGIN PRIVATE KEY----- # <-
            MIIEvQIBADANBgkqhkiG9w0BAQEFAASC
            -----END PRIVATE KEY-----
          EOT
        }
        """,
        passing="""
        provider "aws" {
          region = "eu-west-1"
        }
        variable "db_password" {
          type      = string
          sensitive = true
        }
        resource "aws_db_instance" "db" {
          engine                      = "postgres"
          instance_class              = "db.t3.micro"
          allocated_storage           = 20
          password                    = var.db_password
          manage_master_user_password = true
        }
        resource "aws_efs_file_system" "fs" {
          creation_token = "shared-fs"
          encrypted      = true
        }
        """,
    ),
    Case(
        "OPS-S013",
        name="scripts-urls-and-defaults",
        failing="""
        variable "db_pass" {
          type    = string
          default = "Vd-8fJ2kq9x" # <-
        }
        locals {
          alerts = "https://chat.acme.example/hooks/xmd6ms7t4pbqbcrd3ky1h5fgna" # <-
          db_url = "postgres://app:Pg-9kq2Lx7@db.internal:5432/app" # <-
        }
        resource "aws_instance" "web" {
          ami           = "ami-123"
          instance_type = "t3.micro"
          user_data     = <<-EOF
            #!/bin/bash
            export API_KEY=Zk29fjQ8xL0pW3mN7bV5cX1z # <-
            curl -H "Authorization: Bearer eyJ0b2tlbiI6IjEyMyJ9abc123" https://api.internal # <-
            mysql -h db.internal -u app -p'Rt7-q9Lm2x' app < /opt/schema.sql # <-
          EOF
        }
        """,
        passing="""
        variable "db_pass" {
          type      = string
          sensitive = true
        }
        locals {
          secret_name = "prod/app/db"
          db_url      = "postgres://app:${var.db_pass}@db.internal:5432/app"
          docs        = "https://example.com/docs?page=2"
        }
        resource "aws_iam_access_key" "ci" {
          user = "ci"
        }
        resource "aws_instance" "web" {
          ami           = "ami-123"
          instance_type = "t3.micro"
          user_data     = <<-EOF
            #!/bin/bash
            export API_KEY=$(aws ssm get-parameter --name /app/key --with-decryption --output text)
            curl -H "Authorization: Bearer $TOKEN" https://api.internal
            mkdir -p /var/lib/mysql
          EOF
          tags = {
            Secret = aws_iam_access_key.ci.secret
            Policy = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-pass-AbC123"
          }
        }
        """,
    ),
    Case(
        "OPS-S014",
        failing="""
        resource "aws_instance" "web" { # <-
          ami           = "ami-123"
          instance_type = "t3.micro"
        }
        resource "aws_launch_template" "web" {
          metadata_options {
            http_tokens = "optional" # <-
          }
        }
        """,
        passing="""
        resource "aws_instance" "web" {
          ami           = "ami-123"
          instance_type = "t3.micro"
          metadata_options {
            http_tokens = "required"
          }
        }
        resource "aws_launch_template" "batch" {
          metadata_options {
            http_endpoint = "disabled"
          }
        }
        """,
    ),
    Case(
        "OPS-S015",
        failing="""
        resource "aws_s3_bucket" "data" { # <-
          bucket = "acme-data"
        }
        """,
        passing="""
        resource "aws_s3_bucket" "data" {
          bucket = "acme-data"
        }
        resource "aws_s3_bucket" "logs" {
          bucket = "acme-logs"
        }
        resource "aws_s3_bucket_logging" "data" {
          bucket        = aws_s3_bucket.data.id
          target_bucket = aws_s3_bucket.logs.id
          target_prefix = "data/"
        }
        """,
    ),
    Case(
        "OPS-S016",
        failing="""
        resource "aws_cloudtrail" "main" { # <-
          name           = "main"
          s3_bucket_name = "acme-trail"
          enable_logging = false # <-
        }
        """,
        passing="""
        resource "aws_cloudtrail" "main" {
          name                       = "main"
          s3_bucket_name             = "acme-trail"
          enable_log_file_validation = true
        }
        """,
    ),
    Case(
        "OPS-S017",
        failing="""
        resource "aws_lb" "web" { # <-
          load_balancer_type = "application"
        }
        resource "aws_lb" "api" {
          access_logs {
            bucket  = "acme-lb-logs"
            enabled = false # <-
          }
        }
        resource "aws_elb" "legacy" {
          listener {
            instance_port     = 80
            instance_protocol = "http"
            lb_port           = 80
            lb_protocol       = "http"
          }
          access_logs {
            bucket  = "acme-lb-logs"
            enabled = false # <-
          }
        }
        """,
        passing="""
        resource "aws_lb" "web" {
          access_logs {
            bucket  = "acme-lb-logs"
            enabled = true
          }
        }
        resource "aws_lb" "inspection" {
          load_balancer_type = "gateway"
        }
        """,
    ),
    Case(
        "OPS-S018",
        failing="""
        resource "aws_db_instance" "orders" { # <-
          engine            = "postgres"
          instance_class    = "db.t3.micro"
          allocated_storage = 20
          tags = {
            Environment = "production"
          }
        }
        """,
        passing="""
        resource "aws_db_instance" "orders" {
          engine              = "postgres"
          instance_class      = "db.t3.micro"
          allocated_storage   = 20
          deletion_protection = true
          tags = {
            Environment = "production"
          }
        }
        resource "aws_db_instance" "scratch" {
          engine            = "postgres"
          instance_class    = "db.t3.micro"
          allocated_storage = 20
          tags = {
            Environment = "dev"
          }
        }
        """,
    ),
    Case(
        "OPS-S019",
        failing="""
        locals {
          environment = "prod"
        }
        resource "aws_db_instance" "orders" {
          engine                  = "postgres"
          instance_class          = "db.t3.micro"
          allocated_storage       = 20
          backup_retention_period = 0 # <-
          skip_final_snapshot     = true # <-
        }
        resource "aws_rds_cluster" "reports" {
          engine                  = "aurora-postgresql"
          backup_retention_period = 3 # <-
        }
        """,
        passing="""
        locals {
          environment = "prod"
        }
        resource "aws_db_instance" "orders" {
          engine                  = "postgres"
          instance_class          = "db.t3.micro"
          allocated_storage       = 20
          backup_retention_period = 14
        }
        """,
    ),
    # --- cost ------------------------------------------------------------------------------
    Case(
        "OPS-F001",
        failing="""
        resource "aws_instance" "bastion" {
          ami           = "ami-123"
          instance_type = "m5.2xlarge" # <-
        }
        resource "aws_db_instance" "reports" {
          engine         = "postgres"
          instance_class = "db.r6g.8xlarge" # <-
          tags = {
            env = "staging"
          }
        }
        resource "aws_eks_node_group" "ml" {
          instance_types = ["g5.xlarge"] # <-
          tags = {
            Environment = "dev"
          }
        }
        """,
        passing="""
        resource "aws_instance" "bastion" {
          ami           = "ami-123"
          instance_type = "t3.micro"
        }
        resource "aws_db_instance" "reports" {
          engine         = "postgres"
          instance_class = "db.r6g.8xlarge"
          tags = {
            env = "prod"
          }
        }
        """,
    ),
    Case(
        "OPS-F002",
        failing="""
        resource "aws_ebs_volume" "db" {
          availability_zone = "eu-west-1a"
          size              = 100
          type              = "io2" # <-
          iops              = 5000
        }
        resource "aws_db_instance" "db" {
          storage_type = "io1" # <-
          tags = {
            Environment = "test"
          }
        }
        """,
        passing="""
        resource "aws_ebs_volume" "db" {
          availability_zone = "eu-west-1a"
          size              = 1000
          type              = "io2"
          iops              = 64000
        }
        resource "aws_ebs_volume" "cache" {
          availability_zone = "eu-west-1a"
          size              = 100
          type              = "gp3"
        }
        """,
    ),
    Case(
        "OPS-F003",
        failing="""
        resource "aws_s3_bucket" "alb_logs" { # <-
          bucket = "acme-alb-logs"
        }
        resource "aws_s3_bucket" "stuff" { # <-
          bucket = "acme-audit-archive"
        }
        """,
        passing="""
        resource "aws_s3_bucket" "alb_logs" {
          bucket = "acme-alb-logs"
        }
        resource "aws_s3_bucket_lifecycle_configuration" "alb_logs" {
          bucket = aws_s3_bucket.alb_logs.id
          rule {
            id     = "expire"
            status = "Enabled"
            expiration {
              days = 90
            }
          }
        }
        resource "aws_s3_bucket" "images" {
          bucket = "acme-images"
        }
        """,
    ),
    Case(
        "OPS-F004",
        failing="""
        variable "environment" {
          default = "dev"
        }
        resource "aws_nat_gateway" "main" {
          count         = length(var.azs) # <-
          allocation_id = "eipalloc-123"
          subnet_id     = "subnet-123"
        }
        module "vpc" {
          source                 = "terraform-aws-modules/vpc/aws"
          enable_nat_gateway     = true
          one_nat_gateway_per_az = true # <-
        }
        """,
        passing="""
        variable "environment" {
          default = "dev"
        }
        resource "aws_nat_gateway" "main" {
          allocation_id = "eipalloc-123"
          subnet_id     = "subnet-123"
        }
        module "vpc" {
          source             = "terraform-aws-modules/vpc/aws"
          enable_nat_gateway = true
          single_nat_gateway = true
        }
        """,
    ),
    Case(
        "OPS-F004",
        name="production-is-fine",
        failing="""
        resource "aws_nat_gateway" "a" {
          subnet_id = "subnet-a"
          tags      = { Environment = "sandbox" }
        }
        resource "aws_nat_gateway" "b" { # <-
          subnet_id = "subnet-b"
          tags      = { Environment = "sandbox" }
        }
        """,
        passing="""
        resource "aws_nat_gateway" "main" {
          count     = 3
          subnet_id = "subnet-a"
          tags      = { Environment = "prod" }
        }
        """,
    ),
    Case(
        "OPS-F005",
        failing="""
        resource "aws_eip" "spare" { # <-
          domain = "vpc"
        }
        resource "aws_ebs_volume" "old" { # <-
          availability_zone = "eu-west-1a"
          size              = 50
        }
        """,
        passing="""
        resource "aws_eip" "nat" {
          domain = "vpc"
        }
        resource "aws_nat_gateway" "main" {
          allocation_id = aws_eip.nat.id
          subnet_id     = "subnet-1"
        }
        resource "aws_eip" "web" {
          instance = "i-0123"
        }
        resource "aws_ebs_volume" "data" {
          availability_zone = "eu-west-1a"
          size              = 50
        }
        resource "aws_volume_attachment" "data" {
          device_name = "/dev/sdf"
          volume_id   = aws_ebs_volume.data.id
          instance_id = "i-0123"
        }
        """,
    ),
    Case(
        "OPS-F006",
        failing="""
        locals {
          env = "dev"
        }
        resource "aws_instance" "worker" { # <-
          ami           = "ami-123"
          instance_type = "t3.large"
        }
        resource "aws_autoscaling_group" "workers" { # <-
          min_size = 1
          max_size = 4
        }
        resource "aws_eks_node_group" "apps" {
          capacity_type = "ON_DEMAND" # <-
        }
        """,
        passing="""
        locals {
          env = "dev"
        }
        resource "aws_instance" "worker" {
          ami           = "ami-123"
          instance_type = "t3.large"
          instance_market_options {
            market_type = "spot"
          }
        }
        resource "aws_autoscaling_group" "workers" {
          min_size = 1
          max_size = 4
          mixed_instances_policy {
            instances_distribution {
              on_demand_percentage_above_base_capacity = 0
            }
          }
        }
        resource "aws_eks_node_group" "apps" {
          capacity_type = "SPOT"
        }
        """,
    ),
    # --- correctness -----------------------------------------------------------------------
    Case(
        "OPS-C000",
        failing="""
        resource "aws_sqs_queue" "q" {
          name = "q"
          delay_seconds = # <-
        }
        """,
        passing="""
        resource "aws_sqs_queue" "q" {
          name          = "q"
          delay_seconds = 5
        }
        """,
    ),
    Case(
        "OPS-C001",
        failing="""
        locals {
          name = "${var.project}-web" # <-
        }
        resource "aws_instance" "web" {
          ami           = data.aws_ami.base.id # <-
          instance_type = local.size # <-
          subnet_id     = aws_subnet.main.id # <-
          tags          = { Name = local.name }
        }
        output "vpc" {
          value = module.network.vpc_id # <-
        }
        """,
        passing="""
        variable "project" {
          type = string
        }
        locals {
          name = "${var.project}-web"
          size = "t3.micro"
          ids  = [for s in aws_subnet.main : s.id]
        }
        data "aws_ami" "base" {
          most_recent = true
        }
        resource "aws_subnet" "main" {
          vpc_id     = "vpc-1"
          cidr_block = "10.0.0.0/24"
        }
        resource "aws_instance" "web" {
          count         = 2
          ami           = data.aws_ami.base.id
          instance_type = local.size
          subnet_id     = aws_subnet.main.id
          tags          = { Name = "${local.name}-${count.index}", Path = path.module }
          dynamic "ebs_block_device" {
            for_each = toset(["/dev/sdf"])
            content {
              device_name = ebs_block_device.value
            }
          }
          lifecycle {
            ignore_changes = [tags]
          }
        }
        module "network" {
          source = "./network"
        }
        output "vpc" {
          value = module.network.vpc_id
        }
        moved {
          from = aws_instance.old
          to   = aws_instance.web
        }
        """,
    ),
    Case(
        "OPS-C002",
        failing="""
        resource "aws_instance" "web" {
          ami           = "ami-123"
          instance_type = "t3.micro"
          depends_on    = [aws_iam_role.missing] # <-
        }
        resource "aws_instance" "worker" {
          ami           = "ami-123"
          instance_type = "t3.micro"
          depends_on = [
            "aws_instance.web", # <-
          ]
        }
        """,
        passing="""
        resource "aws_iam_role" "web" {
          assume_role_policy = "{}"
        }
        resource "aws_instance" "web" {
          ami           = "ami-123"
          instance_type = "t3.micro"
          depends_on    = [aws_iam_role.web, module.net]
        }
        module "net" {
          source = "./net"
        }
        """,
    ),
    Case(
        "OPS-C003",
        failing="""
        resource "aws_sqs_queue" "jobs" {
          name = "jobs"
        }
        resource "aws_sqs_queue" "jobs" { # <-
          name = "jobs-v2"
          delay_seconds = 1
          delay_seconds = 2 # <-
        }
        variable "region" {}
        variable "region" {} # <-
        """,
        passing="""
        resource "aws_sqs_queue" "jobs" {
          name = "jobs"
        }
        resource "aws_sns_topic" "jobs" {
          name = "jobs"
        }
        variable "region" {}
        """,
    ),
    Case(
        "OPS-C004",
        failing="""
        resource "aws_instance" "web" { # <-
          ami = "ami-123"
        }
        resource "aws_security_group_rule" "in" { # <-
          type      = "ingress"
          from_port = 443
          to_port   = 443
          protocol  = "tcp"
        }
        module "net" { # <-
          cidr = "10.0.0.0/16"
        }
        """,
        passing="""
        resource "aws_instance" "web" {
          ami           = "ami-123"
          instance_type = "t3.micro"
        }
        resource "aws_instance" "from_template" {
          launch_template {
            id = "lt-123"
          }
        }
        resource "aws_db_instance" "restored" {
          instance_class      = "db.t3.micro"
          snapshot_identifier = "orders-final"
        }
        module "net" {
          source = "./net"
          cidr   = "10.0.0.0/16"
        }
        """,
    ),
    Case(
        "OPS-C005",
        failing="""
        resource "aws_vpc" "main" {
          cidr_block = "10.0.0.0/33" # <-
        }
        resource "aws_subnet" "a" {
          vpc_id     = aws_vpc.main.id
          cidr_block = "10.0.256.0/24" # <-
        }
        resource "aws_subnet" "b" {
          vpc_id     = aws_vpc.main.id
          cidr_block = cidrsubnet("10.1.0.0/40", 8, 1) # <-
        }
        resource "aws_security_group" "sg" {
          ingress {
            from_port   = 443
            to_port     = 443
            protocol    = "tcp"
            cidr_blocks = ["192.168.1.10/16"] # <-
          }
        }
        """,
        passing="""
        resource "aws_vpc" "main" {
          cidr_block = "10.0.0.0/16"
        }
        resource "aws_vpc_ipv6_cidr_block_association" "v6" {
          vpc_id          = aws_vpc.main.id
          ipv6_cidr_block = "2001:db8::/56"
        }
        resource "aws_subnet" "a" {
          vpc_id     = aws_vpc.main.id
          cidr_block = cidrsubnet(aws_vpc.main.cidr_block, 8, 1)
        }
        resource "aws_security_group" "sg" {
          ingress {
            from_port   = 443
            to_port     = 443
            protocol    = "tcp"
            cidr_blocks = ["192.168.0.0/16", "10.1.2.3/32"]
          }
        }
        """,
    ),
    Case(
        "OPS-C006",
        failing="""
        variable "replicas" {
          type    = number
          default = "three" # <-
        }
        variable "zones" {
          type    = list(string)
          default = "eu-west-1a" # <-
        }
        variable "sizes" {
          type    = map(number)
          default = { small = 1, large = "big" } # <-
        }
        variable "db" {
          type = object({
            engine = string
            port   = number
          })
          default = { engine = "postgres" } # <-
        }
        variable "debug" {
          type    = bool
          default = 1 # <-
        }
        """,
        passing="""
        variable "replicas" {
          type    = number
          default = "3"
        }
        variable "zones" {
          type    = list(string)
          default = ["eu-west-1a", "eu-west-1b"]
        }
        variable "name" {
          type    = string
          default = 42
        }
        variable "db" {
          type = object({
            engine = string
            port   = optional(number, 5432)
          })
          default = { engine = "postgres" }
        }
        variable "debug" {
          type    = bool
          default = "false"
        }
        variable "anything" {
          type    = any
          default = [1, "a"]
        }
        """,
    ),
]
