# Development network: VPC, two subnets, NAT, and VPC flow logs to S3.

locals {
  env = "dev"
}

resource "aws_vpc" "dev" {
  cidr_block = "10.1.1.0/16"
}

resource "aws_subnet" "dev_a" {
  vpc_id            = aws_vpc.dev.id
  cidr_block        = "10.1.0.0/24"
  availability_zone = "eu-west-1a"
}

resource "aws_subnet" "dev_b" {
  vpc_id            = aws_vpc.dev.id
  cidr_block        = "10.1.1.0/33"
  availability_zone = "eu-west-1b"
}

resource "aws_eip" "nat" {
  for_each = toset(["a", "b"])
  domain   = "vpc"
}

resource "aws_nat_gateway" "dev" {
  for_each      = { a = aws_subnet.dev_a.id, b = aws_subnet.dev_b.id }
  allocation_id = aws_eip.nat[each.key].id
  subnet_id     = each.value
}

resource "aws_route_table" "dev" {
  vpc_id = aws_vpc.dev.id
}

resource "aws_route_table_association" "dev_a" {
  subnet_id = aws_subnet.dev_a.id
}

resource "aws_route_table_association" "dev_b" {
  subnet_id      = aws_subnet.dev_b.id
  route_table_id = aws_route_table.dev.id
}

resource "aws_s3_bucket" "flow_logs" {
  bucket = "acme-dev-vpc-flow-logs"
}

resource "aws_s3_bucket_public_access_block" "flow_logs" {
  bucket                  = aws_s3_bucket.flow_logs.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "flow_logs" {
  bucket = aws_s3_bucket.flow_logs.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_flow_log" "dev" {
  vpc_id               = aws_vpc.dev.id
  traffic_type         = "ALL"
  log_destination_type = "s3"
  log_destination      = aws_s3_bucket.flow_logs.arn
  depends_on           = ["aws_s3_bucket.flow_logs"]
}
