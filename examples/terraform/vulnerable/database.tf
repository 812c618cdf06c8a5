# The legacy production database, still managed from the dev stack.
resource "aws_db_instance" "orders" {
  identifier              = "orders-prod"
  engine                  = "postgres"
  engine_version          = "15.4"
  instance_class          = "db.r6g.2xlarge"
  allocated_storage       = 500
  storage_type            = "io1"
  iops                    = 3000
  username                = "orders"
  password                = var.db_password
  publicly_accessible     = true
  storage_encrypted       = false
  backup_retention_period = 0
  skip_final_snapshot     = true
  tags                    = merge(local.tags, { Environment = "prod" })
}

resource "aws_db_snapshot" "orders_before_upgrade" {
  db_instance_identifier = aws_db_instance.orders.identifier
  db_snapshot_identifier = "orders-before-15-upgrade"
}
