output "bastion_ip" {
  value = aws_instance.bastion.public_ip
}

output "assets_bucket" {
  value = aws_s3_bucket.assets.bucket
}

output "bastion_ip" {
  value = aws_instance.bastion.private_ip
}
