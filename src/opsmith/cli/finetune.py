"""``opsmith finetune``: validate, estimate, train, export-axolotl, merge, distill.

Each group of sub-commands lives in its own module and registers itself on :data:`app`.
"""

from __future__ import annotations

import typer

from opsmith.cli import finetune_data, finetune_distill, finetune_train

app = typer.Typer(
    help="Fine-tune with LoRA: check data, estimate cost, train, export to Axolotl, merge, distil.",
    no_args_is_help=True,
)

finetune_data.register(app)
finetune_train.register(app)
finetune_distill.register(app)
