"""Dagster metadata describing a dataset version, for the catalog's `dataset_version` asset to attach:
`metadata |= dataset_version_metadata(version_dir, settings)`.

The training-time figure is calibrated on this machine: seconds per optimizer step of the newest finished run
of the same base model (its `run_state.json` under <data_root>/adapters), times the steps this version needs.
A reference throughput measured elsewhere was off by 4-40x here (model load, evaluation, other work sharing
the cores), so without a measured run no time is given."""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path

import dagster as dg

from forge_pipeline.curate.inspect import dataset_stats, token_length_histogram_png, token_lengths
from forge_pipeline.durations import format_duration
from forge_pipeline.settings import ForgeSettings


def _same_base(name: str, configured: str) -> bool:
    # Packaged bases keep their short name; the tiny demo model's folder is `tiny-demo-llama-<key>`; a local
    # folder is named after itself.
    return bool(name) and (name == configured or name.startswith(configured) or name == Path(configured).name)


def measured_step_seconds(settings: ForgeSettings) -> dict | None:
    """Seconds per optimizer step of the newest finished training run of this base model on this machine."""
    newest = None
    for path in Path(settings.paths.adapters).glob("*/run_state.json"):
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        result = state.get("result") or {}
        metrics = result.get("metrics") or {}
        if state.get("status") != "finished" or not metrics.get("wall_s") or not metrics.get("global_step"):
            continue
        if not _same_base(result.get("base_model_name") or "", settings.train.base_model):
            continue
        mtime = path.stat().st_mtime
        if newest is None or mtime > newest[0]:
            newest = (mtime, result, metrics)
    if newest is None:
        return None
    _, result, metrics = newest
    return {
        "seconds_per_step": metrics["wall_s"] / metrics["global_step"],
        "run_key": result.get("run_key"),
        "steps": metrics["global_step"],
        "wall_s": metrics["wall_s"],
    }


def planned_steps(train_examples: int, settings: ForgeSettings) -> int:
    train = settings.train
    if train.max_steps > 0:
        return train.max_steps
    per_step = train.per_device_train_batch_size * train.gradient_accumulation_steps
    return math.ceil(math.ceil(train_examples / per_step) * train.num_train_epochs)


def calibrated_estimate(train_examples: int, settings: ForgeSettings) -> dict:
    steps = planned_steps(train_examples, settings)
    measured = measured_step_seconds(settings)
    if measured is None:
        return {
            "steps": steps,
            "basis": f"no finished training of {settings.train.base_model} on this machine yet; "
            "the first run calibrates this estimate",
        }
    return {
        "steps": steps,
        "seconds": round(steps * measured["seconds_per_step"], 1),
        "seconds_per_step": round(measured["seconds_per_step"], 3),
        "basis": f"measured on this machine: {measured['wall_s']:.1f} s for {measured['steps']} steps "
        f"(run {str(measured['run_key'])[:8]}); excludes start-up and the final evaluation",
    }


def dataset_version_metadata(version_dir: Path, settings: ForgeSettings) -> dict[str, dg.MetadataValue]:
    stats = dataset_stats(version_dir, settings)
    png = token_length_histogram_png(
        token_lengths(version_dir), settings.train.max_length, settings.curate.histogram_bins
    )
    estimate = stats["estimate"]
    timing = calibrated_estimate(stats["counts"]["train"], settings)
    line = f"Training estimate ({estimate['hardware']}): {estimate['total_tokens']:,} tokens, {timing['steps']} steps"
    if "seconds" in timing:
        line += f" ≈ {format_duration(timing['seconds'])} ({timing['basis']})"
    else:
        line += f"; time: {timing['basis']}"
    if "memory_gb" in estimate:
        line += f"; memory ≈ {estimate['memory_gb']['total']} GB (an estimate)"
    lines = [
        f"**{stats['version_id']}**: train {stats['counts']['train']}, validation {stats['counts']['validation']}",
        "",
        f"![token lengths](data:image/png;base64,{base64.b64encode(png).decode()})",
        "",
        line,
    ]
    # The reference-throughput time of the core estimate is left out: it was not measured here.
    reference_free = {k: v for k, v in estimate.items() if k not in ("seconds", "tokens_per_s", "throughput_basis")}
    return {
        "by_source": dg.MetadataValue.json(stats["by_source"]),
        "by_tag": dg.MetadataValue.json(stats["by_tag"]),
        "tokens": dg.MetadataValue.json(stats["tokens"]),
        "pii_replaced": dg.MetadataValue.json(stats["pii_replaced"]),
        "duplicates_removed": dg.MetadataValue.int(stats["duplicates_removed"]),
        "training_estimate": dg.MetadataValue.json({**reference_free, "time": timing}),
        "dataset_report": dg.MetadataValue.md("\n".join(lines)),
    }
