"""A real Dagster materialization of embedding_index from a dataset version, then an incremental one."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import dagster as dg  # noqa: E402

from forge_pipeline.definitions import group_definitions  # noqa: E402
from forge_pipeline.defs.catalog.embedding_index import embedding_index_covers_the_dataset_version  # noqa: E402
from forge_pipeline.defs.resources import ForgeSettingsResource, shared_resources  # noqa: E402
from forge_pipeline.embed.handoff import EmbeddingIndexVersion  # noqa: E402
from forge_pipeline.embed.store import load_current, read_versions  # noqa: E402
from forge_pipeline.records import examples_frame  # noqa: E402
from forge_pipeline_tests.embed_fixtures import records  # noqa: E402

catalog_defs = group_definitions("catalog")

curated_examples = dg.AssetSpec("curated_examples")


def _write_curated(data_root, recs) -> None:
    rows = [{**r, "created_at": datetime(2026, 1, 1, tzinfo=UTC)} for r in recs]
    (data_root / "tables").mkdir(parents=True, exist_ok=True)
    examples_frame(rows).write_parquet(data_root / "tables" / "curated_examples.parquet")


def _materialize(data_root, instance) -> dict:
    result = dg.materialize(
        [curated_examples, *catalog_defs.assets, *catalog_defs.asset_checks],
        resources=shared_resources(str(data_root)),
        instance=instance,
    )
    assert result.success
    check = next(
        e for e in result.get_asset_check_evaluations() if e.check_name == "embedding_index_covers_the_dataset_version"
    )
    assert check.passed, check.metadata
    event = result.asset_materializations_for_node("embedding_index")[0]
    return {k: v.value for k, v in event.metadata.items()}


def test_embedding_index_follows_the_dataset_version_and_updates_incrementally(tmp_path):
    recs = records()
    _write_curated(tmp_path, recs)
    with dg.DagsterInstance.ephemeral() as instance:
        first = _materialize(tmp_path, instance)
        assert first["texts_embedded"] == first["dagster/row_count"] and first["dimension"] == 384
        assert first["backend"] == "sentence-transformers" and first["examples"] == len(recs)
        version_id = read_versions(tmp_path / "embeddings")["current"]
        assert version_id == first["dataset_version"] and (tmp_path / "catalog" / version_id).is_dir()
        _write_curated(tmp_path, [r for r in recs if r["example_id"] != "postgres"])
        second = _materialize(tmp_path, instance)
    assert second["dataset_version"] != first["dataset_version"]  # a new catalog version, a new index version
    assert second["texts_embedded"] == 0 and second["removed_chunks"] == 1
    assert second["reused_from_previous"] == first["dagster/row_count"] - 1
    index = load_current(tmp_path / "embeddings")
    assert "postgres" not in set(index.chunks["example_id"])
    assert len(read_versions(tmp_path / "embeddings")["versions"]) == 2


def test_coverage_check_fails_when_a_dataset_example_is_missing_from_the_index(tmp_path):
    _write_curated(tmp_path, records())
    with dg.DagsterInstance.ephemeral() as instance:
        _materialize(tmp_path, instance)
    current = read_versions(tmp_path / "embeddings")["current"]
    meta = {**read_versions(tmp_path / "embeddings")["versions"][-1], "path": str(tmp_path / "embeddings" / current)}
    with open(tmp_path / "catalog" / current / "validation.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps({**records()[0], "example_id": "not-indexed"}) + "\n")
    result = embedding_index_covers_the_dataset_version(
        forge=ForgeSettingsResource(data_root=str(tmp_path)), embedding_index=EmbeddingIndexVersion.model_validate(meta)
    )
    assert not result.passed and result.metadata["missing_examples"].value == ["not-indexed"]
