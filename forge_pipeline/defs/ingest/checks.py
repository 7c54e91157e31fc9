"""Contracts of the ingest tables: each has exactly the schema downstream code relies on."""

from __future__ import annotations

import dagster as dg
import polars as pl

from forge_pipeline.defs.ingest.assets import conversations, training_examples, vault_notes
from forge_pipeline.ingest.conversations import CONVERSATIONS_SCHEMA
from forge_pipeline.ingest.examples import TRAINING_EXAMPLES_SCHEMA
from forge_pipeline.ingest.vault import NOTES_SCHEMA
from forge_pipeline.records import check_schema


def _schema_result(frame: pl.DataFrame, schema: dict) -> dg.AssetCheckResult:
    problems = check_schema(frame, schema)
    return dg.AssetCheckResult(
        passed=not problems, metadata={"problems": dg.MetadataValue.json(problems), "rows": frame.height}
    )


@dg.asset_check(asset=vault_notes, blocking=True)
def vault_notes_schema(vault_notes: pl.DataFrame) -> dg.AssetCheckResult:
    """vault_notes has exactly NOTES_SCHEMA."""
    return _schema_result(vault_notes, NOTES_SCHEMA)


@dg.asset_check(asset=conversations, blocking=True)
def conversations_schema(conversations: pl.DataFrame) -> dg.AssetCheckResult:
    """conversations has exactly CONVERSATIONS_SCHEMA."""
    return _schema_result(conversations, CONVERSATIONS_SCHEMA)


@dg.asset_check(asset=training_examples, blocking=True)
def training_examples_schema(training_examples: pl.DataFrame) -> dg.AssetCheckResult:
    """training_examples has exactly TRAINING_EXAMPLES_SCHEMA (EXAMPLE_SCHEMA plus the detected language)."""
    return _schema_result(training_examples, TRAINING_EXAMPLES_SCHEMA)
