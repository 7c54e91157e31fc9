"""Prepare assets: scrub PII, filter by quality, remove duplicates. Logic lives in forge_pipeline.prepare."""

from __future__ import annotations

import dagster as dg
import polars as pl

from forge_pipeline.defs.common import chat_columns, frame_data_version, keep_quarantine, table_metadata, table_preview
from forge_pipeline.defs.prepare.resources import EmbedderResource, PiiAnalyzerResource
from forge_pipeline.defs.resources import ForgeSettingsResource


def _preview(frame: pl.DataFrame):
    """What a person reads: the user and assistant text (the system prompt is the same in every row) and the
    placeholders the scrub put in."""
    return table_preview(chat_columns(frame.head(10)), ["placeholders", "user", "assistant", "source", "example_id"])


@dg.asset(kinds={"presidio", "polars"}, code_version="1")
def scrubbed_examples(
    forge: ForgeSettingsResource,
    pii_analyzer: PiiAnalyzerResource,
    training_examples: pl.DataFrame,
    vault_notes: pl.DataFrame,
) -> dg.MaterializeResult:
    """Training examples with personal data replaced by consistent placeholders (<EMAIL_ADDRESS_1>, ...) in
    messages, tags and source paths; examples in a language outside prepare.filter.languages are held back
    before the scrub (quarantine/scrubbed_examples, reason `language`, no text kept). The vault's notes say
    which names are people and which are concepts (titles, headings, links, tags: never replaced as names)."""
    from forge_pipeline.prepare.pii import scrub_examples

    settings = forge.get()
    scrub = settings.prepare.scrub
    frame, report = scrub_examples(
        training_examples,
        scrub,
        pii_analyzer.get(scrub, settings.runtime),
        cache_dir=settings.paths.cache,
        languages=settings.prepare.filter.languages,
        notes=vault_notes,
    )
    assert report.quarantine is not None  # set whenever `languages` is given
    return dg.MaterializeResult(
        value=frame,
        data_version=frame_data_version(frame),
        metadata={
            **table_metadata(frame),
            **keep_quarantine(settings, report.quarantine),
            "examples_changed": report.examples_changed,
            "tags_changed": report.tags_changed,
            "names_propagated": report.names_propagated,
            # PERSON spans of the NER kept by the decision, per reason (counts only: values would be PII)
            "names_kept": dg.MetadataValue.json(dict(sorted(report.names_kept.items()))),
            "messages": report.messages,
            "messages_analyzed": report.messages_analyzed,  # the rest reused cached detections
            "distinct_values_replaced": report.distinct_values,
            "entity_counts": dg.MetadataValue.json(dict(sorted(report.entity_counts.items()))),
            "preview": _preview(frame.filter(pl.col("pii_replacements").list.len() > 0)),
        },
    )


@dg.asset(kinds={"polars"}, code_version="1")
def filtered_examples(forge: ForgeSettingsResource, scrubbed_examples: pl.DataFrame) -> dg.MaterializeResult:
    """Scrubbed examples that pass the quality heuristics (length, non-text share, language, repetition)."""
    from forge_pipeline.prepare.quality import filter_examples

    settings = forge.get()
    kept, quarantine = filter_examples(scrubbed_examples, settings.prepare.filter, cache_dir=settings.paths.cache)
    return dg.MaterializeResult(
        value=kept,
        data_version=frame_data_version(kept),
        metadata={
            **table_metadata(kept),
            "input": scrubbed_examples.height,
            **keep_quarantine(settings, quarantine),
            "preview": _preview(kept),
        },
    )


@dg.asset(kinds={"faiss", "polars"}, code_version="1")
def deduplicated_examples(
    forge: ForgeSettingsResource, embedder: EmbedderResource, filtered_examples: pl.DataFrame
) -> dg.MaterializeResult:
    """Filtered examples without exact or near duplicates (the newest member of each cluster is kept), each with
    its quality score and the reasons for it (`quality_score`, `quality_reasons`: forge_pipeline.prepare.scoring),
    which `forge curate` reviews worst first."""
    from forge_pipeline.prepare.dedup import deduplicate
    from forge_pipeline.prepare.questions import generate_questions
    from forge_pipeline.prepare.scoring import score_examples, score_summary

    settings = forge.get()
    dedup = settings.prepare.dedup
    kept, quarantine, report = deduplicate(
        filtered_examples, dedup, embedder.get(dedup, settings.runtime), settings.paths.cache
    )
    # Optional model-written questions for vault sections (prepare.questions, off by default), then the score.
    kept, questions = generate_questions(kept, settings.prepare.questions, settings.paths.cache)
    kept = score_examples(kept)
    pairs = pl.DataFrame(report.pairs, schema={"kept_id": pl.String, "dropped_id": pl.String, "similarity": pl.Float64})
    # The user's words of each pair side by side (the system prompt, the same everywhere, would hide them).
    chats = chat_columns(filtered_examples.select("example_id", "messages"))
    texts = dict(zip(chats["example_id"], chats["user"]))
    pairs = (
        pairs.sort("similarity", descending=True)
        .head(10)
        .with_columns(
            pl.col("kept_id").replace_strict(texts, default="").alias("kept_user"),
            pl.col("dropped_id").replace_strict(texts, default="").alias("dropped_user"),
            pl.col("similarity").round(4),
        )
    )
    return dg.MaterializeResult(
        value=kept,
        data_version=frame_data_version(kept),
        metadata={
            **table_metadata(kept),
            **{k: v for k, v in report.as_dict().items() if isinstance(v, int)},
            **keep_quarantine(settings, quarantine),
            "duplicate_pairs": table_preview(pairs, ["similarity", "kept_user", "dropped_user"], width=120),
            "quality": dg.MetadataValue.json(score_summary(kept)),
            **(
                {"generated_questions": dg.MetadataValue.json(vars(questions))}
                if settings.prepare.questions.base_url
                else {}
            ),
        },
    )
