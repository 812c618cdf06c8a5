output "load_balancer_dns" {
  description = "Public DNS name of the load balancer."
  value       = aws_lb.app.dns_name
}

output "orders_endpoint" {
  description = "Private endpoint of the orders database."
  value       = aws_db_instance.orders.address
}
