# Staging web tier: load balancer, launch template and auto scaling group.

variable "environment" {
  type    = string
  default = "staging"
}

variable "instance_count" {
  type    = number
  default = 2
}

variable "subnet_ids" {
  type    = list(string)
  default = ["subnet-0a1b2c3d", "subnet-4e5f6a7b"]
}

variable "allowed_admin_cidrs" {
  type    = list(string)
  default = "10.0.0.0/8"
}

resource "aws_security_group" "web" {
  name   = "web-${var.environment}"
  vpc_id = var.vpc_id

  ingress {
    description = "HTTPS"
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }

  ingress {
    description      = "temporary debugging"
    from_port        = 0
    to_port          = 0
    protocol         = "-1"
    ipv6_cidr_blocks = ["::/0"]
  }
}

resource "aws_vpc_security_group_ingress_rule" "rdp" {
  security_group_id = aws_security_group.web.id
  cidr_ipv4         = "0.0.0.0/0"
  from_port         = 3389
  to_port           = 3389
  ip_protocol       = "tcp"
}

resource "aws_launch_template" "web" {
  name_prefix   = "web-${var.environment}-"
  image_id      = "ami-0c55b159cbfafe1f0"
  instance_type = "r5.12xlarge"

  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      volume_size = 50
      encrypted   = false
    }
  }
}

resource "aws_autoscaling_group" "web" {
  name                = "web-${var.environment}"
  min_size            = var.instance_count
  max_size            = 6
  vpc_zone_identifier = var.subnet_ids

  launch_template {
    id      = aws_launch_template.web.id
    version = "$Latest"
  }
}

resource "aws_lb" "web" {
  name               = "web-${var.environment}"
  load_balancer_type = "application"
  subnets            = var.subnet_ids
  security_groups    = [aws_security_group.web.id]

  access_logs {
    bucket  = "acme-lb-logs"
    enabled = false
  }
}

resource "aws_eip" "web_static" {
  domain = "vpc"
}
