"""Asset checks of the prepare stage."""

from collections import Counter

import dagster as dg
import polars as pl

from forge_pipeline.defs.check_verdicts import SCRUB_CHECK, record_check_verdict
from forge_pipeline.defs.prepare.resources import PiiAnalyzerResource
from forge_pipeline.defs.resources import ForgeSettingsResource


@dg.asset_check(
    asset="scrubbed_examples",
    blocking=True,
    additional_ins={"training_examples": dg.AssetIn("training_examples"), "vault_notes": dg.AssetIn("vault_notes")},
)
def no_residual_pii(
    context: dg.AssetCheckExecutionContext,
    forge: ForgeSettingsResource,
    pii_analyzer: PiiAnalyzerResource,
    scrubbed_examples: pl.DataFrame,
    training_examples: pl.DataFrame,
    vault_notes: pl.DataFrame,
) -> dg.AssetCheckResult:
    """No structured value (e-mail, phone, card, IBAN, IP, address, deny-list term) outside the placeholders,
    and no name the scrubber knows from the unscrubbed table left in any message or tag, in any letter case.
    A failure blocks everything downstream, and dataset_version refuses to build from the table later too; it
    lists each value masked (`t***` x11: "... some t*** for ..."), the setting that changes it and the rerun.
    The verdict is also recorded where dataset_version reads it (defs/check_verdicts.py)."""
    from forge_pipeline.prepare.pii_display import lines, mask, residual_report
    from forge_pipeline.prepare.pii_flags import residual_values

    settings = forge.get()
    scrub = settings.prepare.scrub
    flags = residual_values(
        scrubbed_examples,
        scrub,
        pii_analyzer.get(scrub, settings.runtime),
        original=training_examples,
        cache_dir=settings.paths.cache,
        notes=vault_notes,
    )
    record_check_verdict(context, SCRUB_CHECK, passed=not flags)
    by_type: Counter[str] = Counter()
    for flag in flags:
        by_type[flag.entity_type] += flag.count
    # Values only masked: the event log is stored and shown in the UI, the values are the person's PII.
    return dg.AssetCheckResult(
        passed=not flags,
        description=residual_report(flags) if flags else "no personal data found outside the placeholders",
        metadata={
            "residual_entities": sum(f.count for f in flags),
            "distinct_values": len(flags),
            "by_type": dg.MetadataValue.json(dict(by_type)),
            "flagged_values": dg.MetadataValue.md("\n".join(f"- {line}" for line in lines(flags)) or "none"),
            "flagged": dg.MetadataValue.json(
                [
                    {"masked": mask(f.value), "type": f.entity_type, "count": f.count, "example_ids": f.example_ids[:5]}
                    for f in sorted(flags, key=lambda f: -f.count)[:20]
                ]
            ),
        },
    )
