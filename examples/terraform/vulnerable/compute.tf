data "aws_ami" "al2023" {
  most_recent = true
  owners      = ["amazon"]
  filter {
    name   = "name"
    values = ["al2023-ami-*-x86_64"]
  }
}

resource "aws_instance" "bastion" {
  ami                    = data.aws_ami.al2023.id
  instance_type          = "m5.4xlarge"
  subnet_id              = aws_subnet.public[0].id
  vpc_security_group_ids = [aws_security_group.bastion.id]
  tags                   = merge(local.tags, { Role = "bastion" })
}

resource "aws_instance" "worker" {
  ami           = data.aws_ami.al2023.id
  instance_type = "c5.9xlarge"
  subnet_id     = aws_subnet.private.id

  root_block_device {
    volume_type = "io2"
    iops        = 4000
    encrypted   = false
  }

  metadata_options {
    http_tokens = "optional"
  }

  user_data = <<-EOF
    #!/bin/bash
    echo "export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY" >> /etc/profile
  EOF

  depends_on = [aws_iam_role_policy.worker]
}

resource "aws_ebs_volume" "scratch" {
  availability_zone = "${var.region}a"
  size              = 500
  type              = "gp3"
}

resource "aws_ebs_snapshot_copy" "scratch_backup" {
  source_snapshot_id = "snap-0a1b2c3d4e5f67890"
  source_region      = "eu-west-1"
}

resource "aws_efs_file_system" "shared" {
  creation_token = "${local.name}-shared"
}

resource "aws_launch_template" "ci" {
  name_prefix   = "${local.name}-ci-"
  image_id      = data.aws_ami.al2023.id
  instance_type = "c6i.xlarge"

  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      volume_size = 100
    }
  }
}

resource "aws_autoscaling_group" "ci_runners" {
  name                = "${local.name}-ci"
  min_size            = 2
  max_size            = 10
  vpc_zone_identifier = [aws_subnet.private.id]

  launch_template {
    id      = aws_launch_template.ci.id
    version = "$Latest"
  }
}

resource "aws_elasticache_cluster" "sessions" {
  cluster_id      = "${local.name}-sessions"
  engine          = "redis"
  node_type       = "cache.r6g.4xlarge"
  num_cache_nodes = 1
  subnet_group_name = var.cache_subnet_group
}
