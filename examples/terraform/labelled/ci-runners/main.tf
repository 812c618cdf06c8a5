# CI runners on EKS for the dev account, plus a build cache host.

variable "environment" {
  default = "dev"
}

module "vpc" {
  source  = "terraform-aws-modules/vpc/aws"
  version = "5.8.1"

  name            = "ci-${var.environment}"
  cidr            = "10.50.0.0/16"
  azs             = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
  private_subnets = ["10.50.1.0/24", "10.50.2.0/24", "10.50.3.0/24"]
  public_subnets  = ["10.50.101.0/24", "10.50.102.0/24", "10.50.103.0/24"]

  enable_nat_gateway     = true
  one_nat_gateway_per_az = true
}

resource "aws_iam_role" "cluster" {
  name = "ci-cluster"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Action    = "sts:AssumeRole"
      Principal = { Service = "eks.amazonaws.com" }
    }]
  })

  inline_policy {
    name = "ci-everything"
    policy = jsonencode({
      Version = "2012-10-17"
      Statement = [{
        Effect   = "Allow"
        Action   = ["*"]
        Resource = "*"
      }]
    })
  }
}

resource "aws_iam_role" "nodes" {
  name = "ci-nodes"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Action    = "sts:AssumeRole"
      Principal = { Service = "ec2.amazonaws.com" }
    }]
  })
}

resource "aws_eks_cluster" "ci" {
  name     = "ci-${var.environment}"
  role_arn = aws_iam_role.cluster.arn

  vpc_config {
    subnet_ids = module.vpc.private_subnets
  }
}

resource "aws_eks_node_group" "runners" {
  cluster_name    = aws_eks_cluster.ci.name
  node_group_name = "gpu-runners"
  node_role_arn   = aws_iam_role.nodes.arn
  subnet_ids      = module.vpc.private_subnets
  instance_types  = ["p3.2xlarge"]
  capacity_type   = "ON_DEMAND"

  scaling_config {
    desired_size = 2
    max_size     = 10
    min_size     = 0
  }
}

resource "aws_instance" "build_cache" {
  ami           = "ami-0c55b159cbfafe1f0"
  instance_type = "m5.large"
  subnet_id     = module.vpc.private_subnets[0]

  metadata_options {
    http_tokens = "required"
  }

  root_block_device {
    encrypted = true
  }

  ebs_block_device {
    device_name = "/dev/sdf"
    volume_size = 500
    volume_type = "io1"
    iops        = 8000
  }

  instance_market_options {
    market_type = "spot"
  }
}

resource "aws_ebs_volume" "artifacts" {
  availability_zone = "eu-west-1a"
  size              = 200
  encrypted         = true
}
