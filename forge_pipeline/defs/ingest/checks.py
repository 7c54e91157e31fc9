"""Contracts of the ingest tables: each has exactly the schema downstream code relies on."""

from __future__ import annotations

import dagster as dg
import polars as pl

from forge_pipeline.defs.common import schema_check_result
from forge_pipeline.ingest.conversations import CONVERSATIONS_SCHEMA
from forge_pipeline.ingest.vault import NOTES_SCHEMA


@dg.asset_check(asset="vault_notes", blocking=True)
def vault_notes_schema(vault_notes: pl.DataFrame) -> dg.AssetCheckResult:
    """vault_notes has exactly NOTES_SCHEMA."""
    return schema_check_result(vault_notes, NOTES_SCHEMA)


@dg.asset_check(asset="conversations", blocking=True)
def conversations_schema(conversations: pl.DataFrame) -> dg.AssetCheckResult:
    """conversations has exactly CONVERSATIONS_SCHEMA."""
    return schema_check_result(conversations, CONVERSATIONS_SCHEMA)
