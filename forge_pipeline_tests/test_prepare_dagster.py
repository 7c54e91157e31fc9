"""Real Dagster materialization of the three prepare assets (and the residual-PII check) on a small table."""

from __future__ import annotations

import os

import dagster as dg
import polars as pl

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from forge_pipeline.defs.prepare.assets import (  # noqa: E402
    deduplicated_examples,
    filtered_examples,
    scrubbed_examples,
)
from forge_pipeline.defs.prepare.checks import no_residual_pii  # noqa: E402
from forge_pipeline.defs.prepare.resources import prepare_resources  # noqa: E402
from forge_pipeline.defs.resources import shared_resources  # noqa: E402
from forge_pipeline.ingest.vault import notes_frame  # noqa: E402
from forge_pipeline_tests.test_prepare_core import make_examples  # noqa: E402


def test_materialize_prepare_chain(tmp_path):
    answer = "Sure, I will send the slides and the meeting notes before the review on Friday afternoon."
    frame = make_examples(
        [
            [("user", "Please email the slides to karin.holm@example.com, she asked twice."), ("assistant", answer)],
            [("user", "Please email the slides to karin.holm@example.com, she asked twice!"), ("assistant", answer)],
            [
                ("user", "Call John Miller on 070-123 45 67 about the garden party next weekend."),
                ("assistant", "I will remind you to call him tomorrow morning before you leave for work."),
            ],
            [("user", "ok"), ("assistant", "")],
            [
                ("user", "What does a Bloom filter trade away for its small memory footprint?"),
                ("assistant", "It accepts false positives: membership tests can say yes wrongly, never no wrongly."),
            ],
        ]
    )
    tables = tmp_path / "tables"
    tables.mkdir()
    frame.write_parquet(tables / "training_examples.parquet")
    notes_frame([]).write_parquet(tables / "vault_notes.parquet")  # no vault: no people or concepts from it
    result = dg.materialize(
        [
            dg.AssetSpec("training_examples"),
            dg.AssetSpec("vault_notes"),
            scrubbed_examples,
            filtered_examples,
            deduplicated_examples,
            no_residual_pii,
        ],
        resources=shared_resources(str(tmp_path)) | prepare_resources(),
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    scrubbed = pl.read_parquet(tables / "scrubbed_examples.parquet")
    text = str(scrubbed["messages"].to_list())
    assert "karin.holm@example.com" not in text and "John Miller" not in text and "070-123 45 67" not in text
    deduped = pl.read_parquet(tables / "deduplicated_examples.parquet")
    assert deduped.height == 3
    quarantine = {p.stem: pl.read_parquet(p) for p in (tmp_path / "quarantine").glob("*.parquet")}
    assert quarantine["filtered_examples"]["reason"].to_list() == ["empty_assistant_turn"]
    assert quarantine["deduplicated_examples"]["reason"].to_list() in (["exact_duplicate"], ["near_duplicate"])

    meta = {
        e.asset_key.path[-1]: e.step_materialization_data.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    assert meta["scrubbed_examples"]["examples_changed"].value == 3
    assert meta["scrubbed_examples"]["entity_counts"].value["EMAIL_ADDRESS"] == 2
    assert meta["deduplicated_examples"]["clusters"].value + meta["deduplicated_examples"]["exact_dropped"].value >= 1
    pairs = meta["deduplicated_examples"]["duplicate_pairs"]
    assert [c.name for c in pairs.schema.columns] == ["similarity", "kept_user", "dropped_user"]
    # The user's words, not the system prompt, and the scrub's placeholder instead of the address.
    [pair] = [r.data for r in pairs.records]
    assert pair["kept_user"].startswith("Please email the slides to <EMAIL_ADDRESS_1>"), pair
    preview = meta["scrubbed_examples"]["preview"]
    assert [c.name for c in preview.schema.columns][:3] == ["placeholders", "user", "assistant"]
    assert any("<EMAIL_ADDRESS_1>" in r.data["placeholders"] for r in preview.records)
    assert meta["deduplicated_examples"]["dagster/row_count"].value == 3
    assert "messages" in {c.name for c in meta["deduplicated_examples"]["dagster/column_schema"].schema.columns}
    [check] = result.get_asset_check_evaluations()
    assert check.passed and check.metadata["residual_entities"].value == 0
