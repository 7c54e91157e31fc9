"""A real Dagster materialization of the ingest assets on the sample data, in a temporary data root."""

from pathlib import Path

import dagster as dg
import polars as pl

from forge_pipeline.definitions import group_definitions
from forge_pipeline.defs.prepare.training_examples import training_examples, training_examples_schema
from forge_pipeline.defs.resources import shared_resources


def _metadata(result, asset: str) -> dict:
    event = result.asset_materializations_for_node(asset)[0]
    return {k: v.value for k, v in event.metadata.items()}


def test_materialize_vault_notes_conversations_training_examples(tmp_path):
    ingest = group_definitions("ingest")
    assets = [*ingest.assets, training_examples]
    checks = [*ingest.asset_checks, training_examples_schema]
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(assets + checks, resources=shared_resources(str(tmp_path)), instance=instance)
        assert result.success
        notes = _metadata(result, "vault_notes")
        assert notes["notes"] == 45 and notes["dropped"] == 4 and notes["parsed"] == 49
        assert notes["dropped_by_reason"] == {"invalid_frontmatter": 2, "not_utf8": 1, "empty": 1}
        assert "| reflection | 23 |" in notes["tag_counts"] and "| journal | 13 |" in notes["tag_counts"]
        conversations = _metadata(result, "conversations")
        assert conversations["conversations"] == 37 and conversations["dropped"] == 6
        examples = _metadata(result, "training_examples")
        assert examples["examples"] == 82 and examples["by_source"] == {
            "vault": 46,
            "conversation": 24,
            "interaction": 12,
        }
        assert examples["vault_examples_by_strategy"] == {"reflection_tags": 32, "sections": 14}
        assert examples["prompt_shapes"] == {
            "decision": 9,
            "explain": 7,
            "howto": 1,
            "journal": 13,
            "list": 6,
            "reflection": 10,
        }
        assert examples["shared_prompts"] == {"level_1": 2, "dropped": 0}
        assert notes["vault_config"]["daily_format"] == "YYYY-MM-DD" and notes["templates_skipped"] == 0
        assert examples["extraction"]["strategies"] == ["reflection_tags", "journal", "sections"]
        assert examples["dropped_by_reason"] == {"no_assistant_turn": 1, "no_long_section": 5}
        checks_run = result.get_asset_check_evaluations()
        assert len(checks_run) == 3 and all(c.passed for c in checks_run)

        quarantine = pl.read_parquet(tmp_path / "quarantine" / "vault_notes.parquet")
        assert set(quarantine["file"]) == {
            "Broken/bad frontmatter.md",
            "Broken/latin1 note.md",
            "Broken/empty.md",
            "Broken/unclosed frontmatter.md",
        }
        conv_quarantine = pl.read_parquet(tmp_path / "quarantine" / "conversations.parquet")
        assert sorted(
            zip(
                conv_quarantine["file"].map_elements(lambda f: Path(f).name, return_dtype=pl.String),
                conv_quarantine["line"].fill_null(0),
                strict=True,
            )
        ) == [
            ("2026-11-20.jsonl", 4),
            ("2026-11-21.jsonl", 3),
            ("chats.jsonl", 6),
            ("chats.jsonl", 9),
            ("chats.jsonl", 15),
            ("conversations.json", 0),
        ]
        stored = pl.read_parquet(tmp_path / "tables" / "training_examples.parquet")
        assert stored.height == 82

        # A second run reads every note from the parse cache.
        again = dg.materialize(
            assets, selection="vault_notes", resources=shared_resources(str(tmp_path)), instance=instance
        )
        assert _metadata(again, "vault_notes")["from_cache"] == 49 and _metadata(again, "vault_notes")["parsed"] == 0
