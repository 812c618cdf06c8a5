resource "aws_db_subnet_group" "orders" {
  name       = "${local.name}-orders"
  subnet_ids = aws_subnet.private[*].id
}

resource "aws_db_instance" "orders" {
  identifier                  = "${local.name}-orders"
  engine                      = "postgres"
  engine_version              = "16.3"
  instance_class              = "db.r6g.large"
  allocated_storage           = 200
  storage_type                = "gp3"
  storage_encrypted           = true
  kms_key_id                  = aws_kms_key.main.arn
  username                    = "orders"
  manage_master_user_password = true
  db_subnet_group_name        = aws_db_subnet_group.orders.name
  vpc_security_group_ids      = [aws_security_group.db.id]
  publicly_accessible         = false
  multi_az                    = true
  deletion_protection         = true
  backup_retention_period     = 14
  skip_final_snapshot         = false
  final_snapshot_identifier   = "${local.name}-orders-final"
}
