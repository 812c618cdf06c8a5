"""``opsmith finetune train``, ``export-axolotl`` and ``merge``: LoRA training and what comes after it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from opsmith.cli._output import out, print_json, progress_bar, warn

if TYPE_CHECKING:
    from opsmith.finetune.train import TrainProgress, TrainReport

ConfigOpt = Annotated[
    Path, typer.Option("--config", "-c", help="Training config (YAML, Axolotl's keys).", show_default=False)
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object for scripts.")]


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("export-axolotl")(export_axolotl)
    app.command("merge")(merge)


def train(
    config: ConfigOpt,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the last checkpoint in output_dir.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Train a LoRA adapter (PEFT + TRL) and write it with train_report.json and loss.png."""
    from opsmith.finetune.config import load_config
    from opsmith.finetune.train import train as run_train

    settings = load_config(config)
    with progress_bar("Training", enabled=not json_output) as bar:
        task = bar.add_task("Training", total=None) if bar else None

        def on_progress(state: TrainProgress) -> None:
            if bar is not None and task is not None:
                loss = f" · loss {state.loss:.3f}" if state.loss is not None else ""
                bar.update(task, total=state.total_steps, completed=state.step, description=f"Training{loss}")

        report = run_train(settings, resume=resume, progress=on_progress)
    for path, count in report.dropped_by_dataset.items():
        if count:
            warn(f"{path}: {count} row(s) longer than sequence_len={settings.sequence_len} were dropped")
    if json_output:
        print_json(report.to_dict())
        return
    _render_report(report)


def _render_report(report: TrainReport) -> None:
    start = f" (resumed at step {report.start_step})" if report.resumed_from else ""
    out.print(
        f"[bold]Trained[/] a LoRA adapter on {escape(report.base_model)}: {report.steps} steps{start}, "
        f"{report.train_examples} train / {report.eval_examples} eval examples, {report.dropped_rows} dropped"
    )
    loss = f"loss {report.first_loss:.3f} → {report.final_loss:.3f}" if report.losses else "no loss logged"
    if report.final_eval_loss is not None:
        loss += f" · eval loss {report.final_eval_loss:.3f}"
    out.print(
        f"{loss} · {report.tokens_per_second:,.0f} tokens/s · {report.wall_seconds:.1f}s · "
        f"peak {report.peak_memory_mb:,.0f} MB · {escape(report.device)}{' bf16' if report.bf16 else ''}"
    )
    out.print(f"Wrote adapter, finetune.yaml, train_report.json and loss.png to [bold]{escape(report.output_dir)}[/]")
    out.print(
        f"[dim]Next: opsmith finetune merge --adapter {escape(report.output_dir)} -o merged/  ·  "
        f"opsmith ask --provider local_hf --model {escape(report.base_model)} --adapter {escape(report.output_dir)}[/]"
    )


def export_axolotl(
    config: ConfigOpt,
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the Axolotl YAML.")] = Path(
        "axolotl.yaml"
    ),
    json_output: JsonOpt = False,
) -> None:
    """Write the same run as an Axolotl config, for multi-GPU nodes (DeepSpeed / FSDP)."""
    from opsmith.finetune.axolotl import LAUNCH_COMMAND, export_axolotl, to_axolotl
    from opsmith.finetune.config import load_config

    settings = load_config(config)
    path = export_axolotl(settings, output)
    launch = LAUNCH_COMMAND.format(path=path)
    if json_output:
        print_json({"output": str(path), "launch": launch, "config": to_axolotl(settings)})
        return
    out.print(f"Wrote [bold]{escape(str(path))}[/]. Launch it on a GPU node with:")
    out.print(f"  {escape(launch)}", markup=True)


def merge(
    adapter: Annotated[Path, typer.Option("--adapter", help="Adapter folder (output_dir of `finetune train`).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="New folder for the merged model.")],
    base_model: Annotated[
        str | None, typer.Option("--base-model", help="Base model path or id (default: the adapter's record).")
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Merge a LoRA adapter into its base weights (safetensors), ready for vLLM or TGI."""
    from opsmith.finetune.merge import merge as run_merge

    report = run_merge(adapter, output, base_model=base_model)
    if json_output:
        print_json(report.to_dict())
        return
    out.print(
        f"Merged {escape(report.adapter_dir)} into {escape(report.base_model)}: "
        f"{report.parameters:,} parameters → [bold]{escape(report.output_dir)}[/] in {report.seconds:.1f}s"
    )
    out.print(f"[dim]Serve it: vllm serve {escape(report.output_dir)}[/]")
