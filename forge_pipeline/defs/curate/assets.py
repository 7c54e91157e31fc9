"""Human review applied to the deduplicated examples: a thin asset over forge_pipeline.curate."""

import dagster as dg
import polars as pl

from forge_pipeline.curate.apply import apply_decisions
from forge_pipeline.curate.decisions import DecisionStore
from forge_pipeline.defs.common import chat_columns, frame_data_version, keep_quarantine, table_metadata, table_preview
from forge_pipeline.defs.resources import ForgeSettingsResource


class CurateConfig(dg.Config):
    # No `from __future__ import annotations` here: Dagster resolves Config/resource annotations at runtime.
    include_unreviewed: bool | None = None  # None: settings.curate.include_unreviewed


@dg.asset(kinds={"polars", "sqlite"}, code_version="1")
def curated_examples(
    config: CurateConfig, forge: ForgeSettingsResource, deduplicated_examples: pl.DataFrame
) -> dg.MaterializeResult:
    """The examples a person approved or edited in `forge curate` (edits replace the content under a new
    example_id, `edited_from` keeps the original); rejected ones go to quarantine with the reviewer's reason,
    and unreviewed ones are included or left out by `curate.include_unreviewed`."""
    settings = forge.get()
    include = settings.curate.include_unreviewed if config.include_unreviewed is None else config.include_unreviewed
    with DecisionStore(settings.paths.curation_db) as store:
        decisions = store.all()
    curated, quarantine, counts = apply_decisions(deduplicated_examples, decisions, include)
    metadata: dict[str, dg.MetadataValue] = {name: dg.MetadataValue.int(n) for name, n in counts.items()}
    metadata |= keep_quarantine(settings, quarantine)
    metadata |= {
        **table_metadata(curated),
        "include_unreviewed": dg.MetadataValue.bool(include),
        "curation_db": dg.MetadataValue.path(str(settings.paths.curation_db)),
        "preview": table_preview(
            chat_columns(curated.head(10)), ["curation_status", "user", "assistant", "source", "example_id"]
        ),
    }
    return dg.MaterializeResult(value=curated, data_version=frame_data_version(curated), metadata=metadata)
