"""``opsmith finetune``: validate, estimate, train, export-axolotl, merge, distill.

Each sub-command lives in its own module and registers itself on :data:`app`.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Fine-tune with LoRA: check data, estimate cost, train, export to Axolotl, merge, distil.",
    no_args_is_help=True,
)


def _register() -> None:
    import importlib

    for name in ("finetune_data", "finetune_train", "finetune_distill"):
        try:
            module = importlib.import_module(f"opsmith.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"opsmith.cli.{name}":
                raise
            continue
        module.register(app)


_register()
