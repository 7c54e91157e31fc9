"""Catalog: the curated examples frozen as an immutable, versioned train/validation dataset."""

import dagster as dg
import polars as pl

from forge_pipeline.catalog.handoff import DatasetVersion
from forge_pipeline.catalog.versions import create_dataset_version
from forge_pipeline.defs.check_verdicts import SCRUB_CHECK, latest_verdict
from forge_pipeline.defs.common import relative_path, table_preview
from forge_pipeline.defs.curate.metadata import dataset_version_metadata
from forge_pipeline.defs.resources import ForgeSettingsResource


def _upstream_source(context: dg.AssetExecutionContext, key: str, rows: int) -> dict:
    """What this version was built from: the upstream's latest Dagster materialization (its data version and
    run, when Dagster has one) and its row count."""
    records = context.instance.fetch_materializations(dg.AssetKey(key), limit=1, ascending=False).records
    record = records[0] if records else None
    tags = (record.asset_materialization.tags or {}) if record and record.asset_materialization else {}
    return {
        "rows": rows,
        "data_version": tags.get("dagster/data_version"),
        "run_id": record.run_id if record else None,
        "storage_id": record.storage_id if record else None,
    }


def _token_stats_md(stats: dict) -> str:
    lines = ["| split | count | min | mean | p50 | p95 | max |", "| --- | --- | --- | --- | --- | --- | --- |"]
    lines += [
        f"| {name} | {s['count']} | {s['min']} | {s['mean']} | {s['p50']} | {s['p95']} | {s['max']} |"
        for name, s in stats.items()
    ]
    return "\n".join(lines)


def _quality_md(quality: dict) -> str:
    """The version's quality-score distribution per split (prepare.scoring) and why examples lost points."""
    if not quality:
        return "no quality summary (a version written before quality scores)"
    bands = list(next(iter(quality.values()))["bands"])
    lines = [
        "| split | examples | mean | p10 | median | " + " | ".join(bands) + " |",
        "| --- " * (5 + len(bands)) + "|",
    ]
    for name, q in quality.items():
        lines.append(
            f"| {name} | {q['examples']} | {q['mean']} | {q['p10']} | {q['median']} | "
            + " | ".join(str(q["bands"][b]) for b in bands)
            + " |"
        )
    reasons = quality.get("all", {}).get("reasons", {})
    lines.append("")
    lines.append("Reasons (examples): " + (", ".join(f"{k} {v}" for k, v in reasons.items()) or "none"))
    return "\n".join(lines)


def require_passed_scrub_check(context: dg.AssetExecutionContext) -> None:
    """Refuse to build a version when the latest scrubbed_examples has not passed its blocking PII check.

    Dagster skips downstream assets in the run where a blocking check fails, but a later run that selects
    only the downstream assets (`--select 'filtered_examples+++'`) would read the failing table. So the
    check's verdict on the latest materialization, which the check records as an observation of the table
    (defs/check_verdicts.py), is looked up in the instance, whatever the selection. An instance that never
    materialized scrubbed_examples (tables built outside Dagster) has nothing to check."""
    latest, verdict = latest_verdict(context.instance, SCRUB_CHECK)
    if latest is None:
        return
    if verdict is None:
        raise dg.Failure(
            "dataset_version: the check no_residual_pii has not run on the latest scrubbed_examples "
            f"(run {latest.run_id}); materialize scrubbed_examples with its checks first."
        )
    if not verdict.passed:
        raise dg.Failure(
            "dataset_version: the latest scrubbed_examples failed its blocking check no_residual_pii "
            f"(run {verdict.check_run_id}): personal data may remain (the check's report lists each value masked, "
            "with the setting that changes it). Decide with `forge pii review --list` (or prepare.scrub.allow_list"
            " / deny_list), re-materialize scrubbed_examples with its check (forge demo --select "
            "scrubbed_examples), then dataset_version; no version was built."
        )


@dg.asset(kinds={"huggingface", "json"}, code_version="1")
def dataset_version(
    context: dg.AssetExecutionContext, forge: ForgeSettingsResource, curated_examples: pl.DataFrame
) -> dg.MaterializeResult:
    """A catalog version of the curated examples: a deterministic, disjoint train/validation split saved as
    an HF DatasetDict plus JSONL, listed in catalog.json with its parent version. Same input, same version."""
    require_passed_scrub_check(context)
    settings = forge.get()
    sources = {"curated_examples": _upstream_source(context, "curated_examples", curated_examples.height)}
    version = DatasetVersion.model_validate(create_dataset_version(curated_examples, settings, sources))
    preview = (
        curated_examples.select("example_id", "source", "source_path")
        .sort("example_id")
        .head(10)
        .with_columns(pl.col("source_path").map_elements(lambda p: relative_path(p, settings), return_dtype=pl.String))
    )
    # The data version is the catalog's version id (a content hash): Dagster and the catalog name a version alike,
    # and the same curated rows again leave training and everything after it in sync.
    return dg.MaterializeResult(
        value=version,
        data_version=dg.DataVersion(version.version_id),
        metadata={
            "dagster/row_count": version.counts["train"] + version.counts["validation"],
            "version_id": version.version_id,
            "parent": str(version.parent),
            "train": version.counts["train"],
            "validation": version.counts["validation"],
            "by_source": dg.MetadataValue.json(version.counts["by_source"]),
            "approx_token_stats": dg.MetadataValue.md(_token_stats_md(version.token_stats)),
            "quality": dg.MetadataValue.md(_quality_md(version.quality)),
            "path": dg.MetadataValue.path(str(version.path)),
            # the allow/deny lists (reviewed decisions included) the examples were scrubbed with: hash and counts
            "pii_lists": dg.MetadataValue.json(version.pii_lists),
            "preview": table_preview(preview),
            # Token-length histogram, per-tag counts and the training-time estimate, so a person can judge the
            # version in the UI before spending GPU time on it.
            **dataset_version_metadata(version.path, settings),
        },
    )
