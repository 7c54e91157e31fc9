"""curated_examples materialized by Dagster on a temporary data root."""

from __future__ import annotations

import dagster as dg
import polars as pl

from forge_pipeline.curate.decisions import DecisionStore
from forge_pipeline.defs.curate.assets import curated_examples
from forge_pipeline.defs.curate.checks import curated_examples_respect_decisions
from forge_pipeline.defs.resources import shared_resources
from forge_pipeline.records import examples_frame
from forge_pipeline.settings import load_settings
from forge_pipeline_tests.test_curate_decisions import example_rows


def _materialize(tmp_path, run_config=None):
    upstream = dg.AssetSpec("deduplicated_examples")
    return dg.materialize(
        [upstream, curated_examples, curated_examples_respect_decisions],
        resources=shared_resources(str(tmp_path)),
        instance=dg.DagsterInstance.ephemeral(),
        run_config=run_config,
    )


def test_curated_examples_applies_stored_decisions_and_reports_counts(tmp_path):
    settings = load_settings(data_root=tmp_path)
    settings.paths.ensure()
    rows = example_rows()
    examples_frame(rows).write_parquet(settings.paths.tables / "deduplicated_examples.parquet")
    with DecisionStore(settings.paths.curation_db) as store:
        store.decide(rows[0]["example_id"], "approved")
        store.decide(rows[1]["example_id"], "rejected", reason="private")
        store.decide(
            rows[2]["example_id"],
            "edited",
            messages=[{"role": "user", "content": "Say hi"}, {"role": "assistant", "content": "Hello!"}],
        )

    result = _materialize(tmp_path)
    assert result.success
    metadata = result.asset_materializations_for_node("curated_examples")[0].metadata
    assert {k: metadata[k].value for k in ("approved", "rejected", "edited", "unreviewed", "included")} == {
        "approved": 1,
        "rejected": 1,
        "edited": 1,
        "unreviewed": 1,
        "included": 3,
    }
    assert metadata["include_unreviewed"].value is True
    [check] = result.get_asset_check_evaluations()
    assert check.passed and check.metadata["checked"].value == 3
    stored = pl.read_parquet(settings.paths.tables / "curated_examples.parquet")
    assert sorted(stored["curation_status"].to_list()) == ["approved", "edited", "unreviewed"]
    assert "Hello!" in stored.filter(pl.col("curation_status") == "edited")["messages"][0][1]["content"]
    quarantine = pl.read_parquet(settings.paths.quarantine / "curated_examples.parquet")
    assert quarantine["reason"].to_list() == ["rejected_by_reviewer"]

    result = _materialize(tmp_path, {"ops": {"curated_examples": {"config": {"include_unreviewed": False}}}})
    metadata = result.asset_materializations_for_node("curated_examples")[0].metadata
    assert metadata["include_unreviewed"].value is False and metadata["excluded_unreviewed"].value == 1
    assert pl.read_parquet(settings.paths.tables / "curated_examples.parquet").height == 2


def test_decisions_carry_over_to_a_new_upstream_table(tmp_path):
    """New data arrives (one example gone, one new): earlier decisions still apply by example_id."""
    settings = load_settings(data_root=tmp_path)
    settings.paths.ensure()
    rows = example_rows()
    table = settings.paths.tables / "deduplicated_examples.parquet"
    examples_frame(rows[:3]).write_parquet(table)
    with DecisionStore(settings.paths.curation_db) as store:
        store.decide(rows[1]["example_id"], "rejected", reason="private")
        store.decide(rows[2]["example_id"], "approved")
    assert _materialize(tmp_path).success

    examples_frame([rows[3], rows[2], rows[1]]).write_parquet(table)
    result = _materialize(tmp_path)
    metadata = result.asset_materializations_for_node("curated_examples")[0].metadata
    assert (metadata["approved"].value, metadata["rejected"].value, metadata["unreviewed"].value) == (1, 1, 1)
    stored = pl.read_parquet(settings.paths.tables / "curated_examples.parquet")
    assert set(stored["example_id"]) == {rows[3]["example_id"], rows[2]["example_id"]}


def test_the_decisions_check_reads_curated_examples_through_the_io_manager(tmp_path):
    """With another IO manager (here in memory) nothing is written under tables/, and the check still works."""
    rows = example_rows()
    with DecisionStore(load_settings(data_root=tmp_path).paths.curation_db) as store:
        store.decide(rows[1]["example_id"], "rejected", reason="private")

    @dg.asset(name="deduplicated_examples")
    def upstream() -> pl.DataFrame:
        return examples_frame(rows)

    resources = {**shared_resources(str(tmp_path)), "io_manager": dg.InMemoryIOManager()}
    result = dg.materialize([upstream, curated_examples, curated_examples_respect_decisions], resources=resources)
    assert result.success
    assert not (tmp_path / "tables" / "curated_examples.parquet").exists()
    [check] = result.get_asset_check_evaluations()
    assert check.passed and check.metadata["checked"].value == 3
