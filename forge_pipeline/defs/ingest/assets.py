"""Ingest: notes and conversations read from disk."""

from __future__ import annotations

from collections import Counter

import dagster as dg
import polars as pl

from forge_pipeline.defs.common import frame_data_version, keep_quarantine, table_metadata, table_preview
from forge_pipeline.defs.resources import ForgeSettingsResource
from forge_pipeline.ingest.conversations import read_conversations
from forge_pipeline.ingest.vault import VaultReadStats, read_vault


def _counts_md(counts: dict, label: str) -> str:
    rows = [f"| {k} | {v} |" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    return "\n".join([f"| {label} | count |", "| --- | --- |", *rows]) if rows else "_(none)_"


@dg.asset(kinds={"obsidian", "polars"}, code_version="1")
def vault_notes(forge: ForgeSettingsResource) -> dg.MaterializeResult:
    """One row per readable note of the Obsidian vault: clean text, tags, links, headings, dates.
    Unreadable notes (broken frontmatter, not UTF-8, empty, too large) are kept in quarantine/vault_notes."""
    settings = forge.get()
    stats = VaultReadStats()
    notes, quarantine = read_vault(settings.vault_dir, settings.ingest, settings.paths.cache, stats)
    # Tags are the person's own words (a `people/<name>` tag is a name) and this runs before the scrub: count
    # only the configured reflection tags; the scrubbed tags are counted per version (dataset_version.by_tag).
    reflection = set(settings.ingest.reflection_tags)
    all_tags = [tag for tags in notes["tags"].to_list() for tag in tags]
    tag_counts = Counter(tag for tag in all_tags if tag in reflection)
    return dg.MaterializeResult(
        value=notes,
        data_version=frame_data_version(notes),
        metadata={
            **table_metadata(notes),
            "notes": notes.height,
            "files_seen": stats.files_seen,
            "parsed": stats.parsed,
            "from_cache": stats.cached,
            "templates_skipped": stats.templates_skipped,
            # what the vault's .obsidian/ settings said, and any settings file that could not be used
            "vault_config": dg.MetadataValue.json(stats.config.summary() if stats.config else {}),
            "vault_dir": dg.MetadataValue.path(str(settings.vault_dir)),
            "tag_counts": dg.MetadataValue.md(_counts_md(dict(tag_counts), "reflection tag")),
            "distinct_tags": len(set(all_tags)),
            # Before scrubbing, previews show structure only: note text, paths and tags may hold PII, and Dagster's
            # event log keeps metadata forever. The scrubbed text is previewed by scrubbed_examples.
            "preview": table_preview(
                notes.select(
                    "created",
                    pl.col("tags").list.len().alias("tags"),
                    pl.col("links").list.len().alias("links"),
                    pl.col("headings").list.len().alias("headings"),
                    pl.col("body").str.len_chars().alias("chars"),
                )
            ),
            **keep_quarantine(settings, quarantine),
        },
    )


@dg.asset(kinds={"polars"}, code_version="1")
def conversations(forge: ForgeSettingsResource) -> dg.MaterializeResult:
    """One row per conversation from messages JSONL, ChatGPT exports and the server's interaction logs,
    roles normalized; bad lines and broken conversation trees are kept in quarantine/conversations."""
    settings = forge.get()
    frame, quarantine = read_conversations(
        settings.conversations_dir,
        settings.paths.interactions,
        settings.ingest.max_jsonl_line_bytes,
        settings.paths.imports,
    )
    by_format = dict(frame["source_format"].value_counts().iter_rows()) if frame.height else {}
    return dg.MaterializeResult(
        value=frame,
        data_version=frame_data_version(frame),
        metadata={
            **table_metadata(frame),
            "conversations": frame.height,
            "by_format": dg.MetadataValue.json(by_format),
            "messages": int(frame["messages"].list.len().sum() or 0),
            "preview": table_preview(
                frame.with_columns(pl.col("messages").list.len().alias("turns")),
                ["conversation_id", "source_format", "line", "turns", "rating"],
            ),
            **keep_quarantine(settings, quarantine),
        },
    )
