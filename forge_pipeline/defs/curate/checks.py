import dagster as dg
import polars as pl

from forge_pipeline.curate.decisions import DecisionStore
from forge_pipeline.defs.resources import ForgeSettingsResource


@dg.asset_check(
    asset="curated_examples",
    description="No example a reviewer rejected (or replaced by an edit) "
    "is in the curated table under its original id.",
)
def curated_examples_respect_decisions(
    forge: ForgeSettingsResource, curated_examples: pl.DataFrame
) -> dg.AssetCheckResult:
    # curated_examples is loaded by the asset's IO manager, like any downstream input.
    settings = forge.get()
    with DecisionStore(settings.paths.curation_db) as store:
        decisions = store.all()
    excluded = {i for i, d in decisions.items() if d.status in ("rejected", "edited")}
    # Edited rows are skipped: an edit saved unchanged hashes back to its original id, legitimately.
    unedited = curated_examples.filter(pl.col("curation_status") != "edited")["example_id"].to_list()
    leaked = sorted(set(unedited) & excluded)
    return dg.AssetCheckResult(
        passed=not leaked, metadata={"leaked": dg.MetadataValue.json(leaked[:20]), "checked": curated_examples.height}
    )
