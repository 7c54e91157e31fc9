"""Asset checks of the prepare stage."""

from __future__ import annotations

from collections import Counter

import dagster as dg
import polars as pl

from forge_pipeline.defs.prepare.resources import PiiAnalyzerResource
from forge_pipeline.defs.resources import ForgeSettingsResource


@dg.asset_check(
    asset="scrubbed_examples",
    blocking=True,
    additional_ins={"training_examples": dg.AssetIn("training_examples"), "vault_notes": dg.AssetIn("vault_notes")},
)
def no_residual_pii(
    forge: ForgeSettingsResource,
    pii_analyzer: PiiAnalyzerResource,
    scrubbed_examples: pl.DataFrame,
    training_examples: pl.DataFrame,
    vault_notes: pl.DataFrame,
) -> dg.AssetCheckResult:
    """No structured value (e-mail, phone, card, IBAN, IP, address, deny-list term) outside the placeholders,
    and no name the scrubber knows from the unscrubbed table left in any message or tag, in any letter case.
    A failure blocks everything downstream, and dataset_version refuses to build from the table later too."""
    from forge_pipeline.prepare.pii import find_residual_pii

    settings = forge.get()
    scrub = settings.prepare.scrub
    residual = find_residual_pii(
        scrubbed_examples,
        scrub,
        pii_analyzer.get(scrub, settings.runtime),
        original=training_examples,
        cache_dir=settings.paths.cache,
        notes=vault_notes,
    )
    return dg.AssetCheckResult(
        passed=not residual,
        metadata={
            "residual_entities": len(residual),
            "by_type": dg.MetadataValue.json(dict(Counter(r["entity_type"] for r in residual))),
            # ids and positions only: the values themselves would put PII into the event log
            "first_residuals": dg.MetadataValue.json(residual[:20]),
        },
    )


prepare_checks = [no_residual_pii]
