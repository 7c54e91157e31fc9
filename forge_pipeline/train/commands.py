"""`forge train`: fine-tune a LoRA adapter from a dataset version folder without Dagster (same code path).

    forge [--data-root DIR] train <data_root>/catalog/<version> [--base-model DIR] [--output-dir DIR] [--set ...]
    accelerate launch --num_processes 2 -m forge_pipeline.cli [--data-root DIR] train <data_root>/catalog/<version>

Without --base-model, the base model comes from settings (train.base_model: smollm2-135m-instruct by default,
tiny-demo, or a local folder; see forge_pipeline.train.base_models). Without --output-dir, the run goes to
<data_root>/adapters/<run key>, so re-running the same command after a crash resumes from the latest checkpoint.
Progress is printed as JSON lines, the result as one JSON object on the last line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from forge_pipeline.cli_root import settings_from
from forge_pipeline.train.config import TrainSettings

if TYPE_CHECKING:  # loaded when a command runs
    from forge_pipeline.settings import ForgeSettings


def parse_overrides(pairs: list[str], train_settings: TrainSettings) -> TrainSettings:
    """`NAME=VALUE` pairs (VALUE read as JSON when it parses, else as a string) applied to `train_settings` and
    validated like settings, so a bad override fails here naming the field, not inside the trainer."""
    from pydantic import ValidationError

    from forge_pipeline.settings import SettingsError

    overrides: dict[str, object] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep:
            raise SettingsError(f"--set {pair!r}: expected NAME=VALUE (e.g. learning_rate=1e-4)")
        try:
            overrides[name] = json.loads(raw)
        except json.JSONDecodeError:
            overrides[name] = raw
    known = type(train_settings).model_fields
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise SettingsError(f"--set: unknown train setting(s) {unknown}; known: {sorted(known)}")
    try:
        return type(train_settings).model_validate({**train_settings.model_dump(), **overrides})
    except ValidationError as err:
        raise SettingsError(
            "--set: " + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        ) from None


def train_from_folder(
    dataset_dir: Path,
    base_model: str | None = None,
    output_dir: Path | None = None,
    settings: ForgeSettings | None = None,
    overrides: Sequence[str] = (),
    dataset_version: str | None = None,
) -> dict:
    """Train (or resume) a LoRA adapter on a dataset version folder; print progress and the result as JSON lines.
    `settings` default: load_settings(). Returns the result ({} on the non-main ranks of a multi-process
    `accelerate launch`)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from forge_pipeline.settings import SettingsError, load_settings
    from forge_pipeline.train.base_models import resolve_base_model
    from forge_pipeline.train.sft import corpus_texts, dataset_content_hash, run_key, train_lora

    dataset_dir = Path(dataset_dir)
    settings = settings or load_settings()
    hp = parse_overrides(list(overrides), settings.train)
    settings.paths.ensure()
    if base_model:
        hp = hp.model_copy(update={"base_model": base_model})
    if hp.continue_from:
        raise SettingsError(
            f"train.continue_from={hp.continue_from!r}: `forge train` trains a dataset folder from the base model; "
            "a taught run continues a published version through the lora_adapter asset (a fine-tuning job with "
            "model 'current', or `forge demo --select lora_adapter*` with the setting)"
        )
    base = resolve_base_model(settings.model_copy(update={"train": hp}), corpus_texts(dataset_dir))
    output_dir = output_dir or settings.paths.adapters / run_key(dataset_content_hash(dataset_dir), hp, base["path"])

    def progress(entry: dict) -> None:
        print(json.dumps(entry, default=str), flush=True)

    result = train_lora(
        dataset_dir,
        base["path"],
        output_dir,
        hp,
        settings.tracking_uri,
        settings.mlflow_experiment,
        progress=progress,
        dataset_version=dataset_version or dataset_dir.name,
        base_model_name=base["name"],
        is_demo_model=base["is_demo_model"],
    )
    if result:  # non-main ranks under accelerate return {}
        print(json.dumps(result, default=str), flush=True)
    return result


def register(app: typer.Typer) -> None:
    @app.command()
    def train(
        ctx: typer.Context,
        dataset_dir: Path = typer.Argument(..., help="Dataset version folder (train.jsonl, validation.jsonl)."),
        base_model: str | None = typer.Option(
            None, help="smollm2-135m-instruct, tiny-demo or a local HF folder (default: settings)."
        ),
        output_dir: Path | None = typer.Option(None, help="Run folder (default: <data_root>/adapters/<run key>)."),
        dataset_version: str | None = typer.Option(
            None, help="Version id recorded in MLflow (default: the folder name)."
        ),
        set_: list[str] = typer.Option([], "--set", help="Override a train.* setting, NAME=VALUE (repeatable)."),
    ) -> None:
        """Train (or resume) a LoRA adapter; progress as JSON lines, the result as the last line."""
        train_from_folder(dataset_dir, base_model, output_dir, settings_from(ctx), set_, dataset_version)
