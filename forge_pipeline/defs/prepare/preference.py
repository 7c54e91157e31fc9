"""preference_pairs: chosen/rejected pairs from the server's feedback. Logic in forge_pipeline.feedback.pairs."""

from __future__ import annotations

import dagster as dg
import polars as pl

from forge_pipeline.defs.common import keep_quarantine, markdown_preview
from forge_pipeline.defs.prepare.resources import EmbedderResource, PiiAnalyzerResource
from forge_pipeline.defs.resources import ForgeSettingsResource


@dg.asset(kinds={"presidio", "faiss", "polars"}, code_version="1")
def preference_pairs(
    forge: ForgeSettingsResource, pii_analyzer: PiiAnalyzerResource, embedder: EmbedderResource
) -> dg.MaterializeResult:
    """Preference pairs (prompt, chosen, rejected) from corrected replies, choices between two replies and
    up/down ratings of the same prompt, scrubbed and deduplicated with the same code as training examples."""
    from forge_pipeline.feedback.pairs import build_preference_pairs

    settings = forge.get()
    prepare = settings.prepare
    # presidio loads only when there is feedback to pair (the encoder loads lazily by itself).
    pairs, quarantine, report = build_preference_pairs(
        settings.interaction_dirs,
        settings,
        _Lazy(lambda: pii_analyzer.get(prepare.scrub, settings.runtime)),
        embedder.get(prepare.dedup, settings.runtime),
        cache_dir=settings.paths.cache,
    )
    preview = pairs.head(10).with_columns(pl.col("prompt").list.last().struct.field("content").alias("last_user_turn"))
    return dg.MaterializeResult(
        value=pairs,
        metadata={
            "dagster/row_count": pairs.height,
            "interactions_read": report["interactions"],
            "pairs_before_dedup": report["raw_pairs"],
            "by_kind": dg.MetadataValue.json(report["by_kind"]),
            "feedback_without_pair": dg.MetadataValue.json(report["unpaired"]),
            "pii_pairs_changed": report["pii_examples_changed"],
            "min_pairs_for_dpo": settings.feedback.min_pairs,
            **keep_quarantine(settings, quarantine),
            "preview": dg.MetadataValue.md(
                markdown_preview(preview, ["kind", "last_user_turn", "chosen", "rejected"], width=50)
            ),
        },
    )


class _Lazy:
    """Builds the wrapped object on first attribute access (presidio takes seconds to load)."""

    def __init__(self, build):
        self._build, self._object = build, None

    def __getattr__(self, name):
        if self._object is None:
            self._object = self._build()
        return getattr(self._object, name)
