"""Fine-tuning: data validation, cost estimates, LoRA training, Axolotl export, distillation."""
