"""`forge train`: fine-tune a LoRA adapter from a dataset version folder without Dagster (same code path)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def train(
        dataset_dir: Path = typer.Argument(..., help="Dataset version folder (train.jsonl, validation.jsonl)."),
        base_model: str = typer.Option(
            None, help="smollm2-135m-instruct, tiny-demo or a local HF folder (default: settings)."
        ),
        output_dir: Path = typer.Option(None, help="Run folder (default: <data_root>/adapters/<run key>)."),
        data_root: Path = typer.Option(None, help="Data root (default: settings' data_root)."),
        set_: list[str] = typer.Option([], "--set", help="Override a train.* setting, NAME=VALUE (repeatable)."),
    ) -> None:
        """Train (or resume) a LoRA adapter; progress as JSON lines, the result as the last line."""
        from forge_pipeline.train.cli_entry import main

        argv = ["--dataset-dir", str(dataset_dir)]
        for flag, value in (("--base-model", base_model), ("--output-dir", output_dir), ("--data-root", data_root)):
            if value:
                argv += [flag, str(value)]
        for pair in set_:
            argv += ["--set", pair]
        main(argv)
