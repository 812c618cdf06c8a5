# The legacy monolith in production: one instance, MySQL, a classic ELB.

locals {
  environment = "prod"
}

resource "aws_security_group" "legacy_app" {
  name        = "legacy-app"
  description = "Legacy app servers"
}

resource "aws_instance" "app" {
  ami                    = "ami-0123456789abcdef0"
  instance_type          = "t3.large"
  vpc_security_group_ids = [aws_security_group.legacy_app.id]

  root_block_device {
    encrypted = true
  }

  user_data = <<-EOT
    #!/bin/bash
    yum install -y awscli
    aws configure set aws_access_key_id AKIAJ7Q2EXAMPLE4XYZ1
    aws s3 cp s3://legacy-artifacts/app.jar /opt/app/
  EOT
}

resource "aws_ebs_volume" "legacy_data" {
  availability_zone = "eu-west-1a"
  size              = 100
}

resource "aws_volume_attachment" "legacy_data" {
  device_name = "/dev/sdh"
  volume_id   = aws_ebs_volume.legacy_data.id
  instance_id = aws_instance.app.id
}

resource "aws_ebs_snapshot" "legacy_data_weekly" {
  volume_id = aws_ebs_volume.legacy_data.id
}

resource "aws_db_instance" "legacy" {
  identifier              = "legacy-mysql"
  engine                  = "mysql"
  engine_version          = "5.7"
  allocated_storage       = 100
  username                = "admin"
  password                = var.legacy_db_password
  storage_encrypted       = true
  deletion_protection     = false
  backup_retention_period = 3
}

resource "aws_elb" "legacy" {
  availability_zones = ["eu-west-1a"]

  listener {
    instance_port     = 8080
    instance_protocol = "http"
    lb_port           = 80
    lb_protocol       = "http"
  }

  access_logs {
    bucket  = "legacy-elb-logs"
    enabled = false
  }
}

resource "aws_cloudtrail" "legacy" {
  name                          = "legacy"
  s3_bucket_name                = "legacy-trail-logs"
  include_global_service_events = true
}

resource "aws_efs_file_system" "legacy_shared" {
  creation_token = "legacy-shared"
  encrypted      = false
}
