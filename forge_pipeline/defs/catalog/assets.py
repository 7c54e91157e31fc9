"""Catalog: the curated examples frozen as an immutable, versioned train/validation dataset."""

from pathlib import Path

import dagster as dg
import polars as pl

from forge_pipeline.catalog.versions import create_dataset_version
from forge_pipeline.defs.common import markdown_preview
from forge_pipeline.defs.curate.metadata import dataset_version_metadata
from forge_pipeline.defs.resources import ForgeSettingsResource


def _upstream_source(context: dg.AssetExecutionContext, key: str, rows: int) -> dict:
    """What this version was built from: the upstream's latest Dagster materialization (its data version and
    run, when Dagster has one) and its row count."""
    records = context.instance.fetch_materializations(dg.AssetKey(key), limit=1, ascending=False).records
    record = records[0] if records else None
    tags = (record.asset_materialization.tags or {}) if record and record.asset_materialization else {}
    return {"rows": rows, "data_version": tags.get("dagster/data_version"),
            "run_id": record.run_id if record else None, "storage_id": record.storage_id if record else None}


def _token_stats_md(stats: dict) -> str:
    lines = ["| split | count | min | mean | p50 | p95 | max |", "| --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {name} | {s['count']} | {s['min']} | {s['mean']} | {s['p50']} | {s['p95']} | {s['max']} |"
              for name, s in stats.items()]
    return "\n".join(lines)


@dg.asset(group_name="catalog", kinds={"huggingface", "json"})
def dataset_version(context: dg.AssetExecutionContext, forge: ForgeSettingsResource,
                    curated_examples: pl.DataFrame) -> dg.MaterializeResult:
    """A catalog version of the curated examples: a deterministic, disjoint train/validation split saved as
    an HF DatasetDict plus JSONL, listed in catalog.json with its parent version. Same input, same version."""
    settings = forge.get()
    sources = {"curated_examples": _upstream_source(context, "curated_examples", curated_examples.height)}
    entry = create_dataset_version(curated_examples, settings, sources)
    preview = curated_examples.select("example_id", "source", "source_path").sort("example_id")
    return dg.MaterializeResult(value={**entry, "version": entry["version_id"]}, metadata={
        "version_id": entry["version_id"], "parent": str(entry["parent"]),
        "train": entry["counts"]["train"], "validation": entry["counts"]["validation"],
        "by_source": dg.MetadataValue.json(entry["counts"]["by_source"]),
        "approx_token_stats": dg.MetadataValue.md(_token_stats_md(entry["token_stats"])),
        "path": dg.MetadataValue.path(entry["path"]),
        "preview": dg.MetadataValue.md(markdown_preview(preview)),
        # Token-length histogram, per-tag counts and the training-time estimate, so a person can judge the
        # version in the UI before spending GPU time on it.
        **dataset_version_metadata(Path(entry["path"]), settings),
    })
