"""Dagster metadata describing a dataset version, for the catalog's `dataset_version` asset to attach:
`metadata |= dataset_version_metadata(version_dir, settings)`."""

import base64
from pathlib import Path

import dagster as dg

from forge_pipeline.curate.inspect import dataset_stats, format_duration, token_length_histogram_png, token_lengths
from forge_pipeline.settings import ForgeSettings


def dataset_version_metadata(version_dir: Path, settings: ForgeSettings) -> dict[str, dg.MetadataValue]:
    stats = dataset_stats(version_dir, settings)
    png = token_length_histogram_png(
        token_lengths(version_dir), settings.train.max_length, settings.curate.histogram_bins
    )
    estimate = stats["estimate"]
    lines = [
        f"**{stats['version_id']}**: train {stats['counts']['train']}, validation {stats['counts']['validation']}",
        "",
        f"![token lengths](data:image/png;base64,{base64.b64encode(png).decode()})",
        "",
        f"Training estimate ({estimate['hardware']}): {estimate['total_tokens']:,} tokens",
    ]
    if "seconds" in estimate:
        lines[-1] += (
            f" ≈ {format_duration(estimate['seconds'])} at ~{estimate['tokens_per_s']:,.0f} tok/s, "
            f"≈ {estimate['memory_gb']['total']} GB ({estimate['throughput_basis']}; an estimate)"
        )
    return {
        "by_source": dg.MetadataValue.json(stats["by_source"]),
        "by_tag": dg.MetadataValue.json(stats["by_tag"]),
        "tokens": dg.MetadataValue.json(stats["tokens"]),
        "pii_replaced": dg.MetadataValue.json(stats["pii_replaced"]),
        "duplicates_removed": dg.MetadataValue.int(stats["duplicates_removed"]),
        "training_estimate": dg.MetadataValue.json(estimate),
        "dataset_report": dg.MetadataValue.md("\n".join(lines)),
    }
