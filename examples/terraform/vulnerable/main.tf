# A deliberately vulnerable stack: a dev environment for the "shop" service that also
# manages a legacy production database. Every opsmith review rule fires somewhere here.
# Never apply this.

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
  region     = var.region
  access_key = "AKIAIOSFODNN7EXAMPLE"
  secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
}

locals {
  environment = "dev"
  name        = "shop-${local.environment}"
  tags = {
    Environment = local.environment
    Team        = "payments"
  }
}

variable "region" {
  type    = string
  default = "eu-west-1"
}

variable "az_count" {
  type    = number
  default = "three"
}

variable "enable_monitoring" {
  type    = bool
  default = "yes"
}

variable "db_password" {
  type      = string
  default   = "Sup3rS3cret!"
  sensitive = true
}
