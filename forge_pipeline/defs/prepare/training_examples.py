"""training_examples: notes and conversations turned into chat examples, and the contract of their table."""

from __future__ import annotations

import dagster as dg
import polars as pl

from forge_pipeline.defs.common import (
    frame_data_version,
    keep_quarantine,
    schema_check_result,
    table_metadata,
    table_preview,
)
from forge_pipeline.defs.resources import ForgeSettingsResource
from forge_pipeline.ingest.examples import TRAINING_EXAMPLES_SCHEMA, build_training_examples
from forge_pipeline.ingest.vault_config import read_vault_config


@dg.asset(kinds={"polars"}, code_version="1")
def training_examples(
    forge: ForgeSettingsResource, vault_notes: pl.DataFrame, conversations: pl.DataFrame
) -> dg.MaterializeResult:
    """Chat examples (EXAMPLE_SCHEMA): notes as prompt/reply pairs in the person's own voice (by the
    `ingest.extraction` strategies: reflection tags, date-named journal entries, heading sections),
    and conversations as multi-turn chats; conversations without a user or assistant turn are quarantined."""
    settings = forge.get()
    by_strategy: dict[str, int] = {}
    details: dict = {}
    examples, quarantine = build_training_examples(
        vault_notes, conversations, settings, by_strategy, read_vault_config(settings.vault_dir), details
    )
    by_source = dict(examples["source"].value_counts().iter_rows()) if examples.height else {}
    return dg.MaterializeResult(
        value=examples,
        data_version=frame_data_version(examples),
        metadata={
            **table_metadata(examples),
            "examples": examples.height,
            "by_source": dg.MetadataValue.json(by_source),
            # Which settings turned notes into examples, and how many each strategy made (plus notes excluded).
            "extraction": dg.MetadataValue.json(
                {
                    "strategies": list(settings.ingest.extraction),
                    "include": list(settings.ingest.include),
                    "exclude": list(settings.ingest.exclude),
                }
            ),
            "vault_examples_by_strategy": dg.MetadataValue.json(by_strategy),
            # template furniture removed before extraction (counts per rule; the texts are in the quarantine)
            "boilerplate_removed": dg.MetadataValue.json(details.get("boilerplate", {})),
            # how the vault's prompts are shaped (no shape should dominate), and prompts that two different
            # answers shared, made specific by level (1 parent heading, 2 folder, 3 path) or quarantined
            "prompt_shapes": dg.MetadataValue.json(details.get("prompt_shapes", {})),
            "shared_prompts": dg.MetadataValue.json(details.get("shared_prompts", {})),
            "preview": table_preview(
                examples.with_columns(pl.col("messages").list.len().alias("turns")),
                ["example_id", "source", "turns"],
            ),  # before the scrub: no text and no source_path (a path may hold a name)
            **keep_quarantine(settings, quarantine),
        },
    )


@dg.asset_check(asset=training_examples, blocking=True)
def training_examples_schema(training_examples: pl.DataFrame) -> dg.AssetCheckResult:
    """training_examples has exactly TRAINING_EXAMPLES_SCHEMA (EXAMPLE_SCHEMA plus the detected language)."""
    return schema_check_result(training_examples, TRAINING_EXAMPLES_SCHEMA)
