"""A real Dagster materialization of dataset_version (and its checks) from a curated_examples table on disk."""

from datetime import UTC, datetime

import dagster as dg

from forge_pipeline.catalog.versions import list_versions
from forge_pipeline.definitions import group_definitions
from forge_pipeline.defs.resources import shared_resources
from forge_pipeline.records import example_id_for, examples_frame
from forge_pipeline.settings import load_settings

catalog_defs = group_definitions("catalog")

curated_examples = dg.AssetSpec("curated_examples")


def _write_curated(tmp_path, n: int) -> None:
    rows = []
    for i in range(n):
        messages = [
            {"role": "system", "content": "s"},
            {"role": "user", "content": f"q{i}"},
            {"role": "assistant", "content": f"a{i} with several words."},
        ]
        rows.append(
            {
                "example_id": example_id_for(messages),
                "messages": messages,
                "source": "conversation",
                "source_path": "chats.jsonl",
                "conversation_id": f"c{i}",
                "created_at": datetime(2026, 4, 1, tzinfo=UTC),
                "tags": [],
            }
        )
    (tmp_path / "tables").mkdir(parents=True, exist_ok=True)
    examples_frame(rows).write_parquet(tmp_path / "tables" / "curated_examples.parquet")


def _run(tmp_path, instance):
    result = dg.materialize(
        [curated_examples, *catalog_defs.assets, *catalog_defs.asset_checks],
        resources=shared_resources(str(tmp_path)),
        instance=instance,
    )
    assert result.success
    event = result.asset_materializations_for_node("dataset_version")[0]
    return {k: v.value for k, v in event.metadata.items()}, result


def test_materialize_dataset_version_twice_then_with_new_data(tmp_path):
    _write_curated(tmp_path, 50)
    with dg.DagsterInstance.ephemeral() as instance:
        first, result = _run(tmp_path, instance)
        assert first["train"] + first["validation"] == 50 and first["validation"] >= 1
        assert first["parent"] == "None" and "| train |" in first["approx_token_stats"]
        # the quality-score distribution of the version (prepare.scoring): four-word replies are short
        assert "| all | 50 |" in first["quality"] and "short_reply 50" in first["quality"]
        evaluations = result.get_asset_check_evaluations()
        assert {e.check_name for e in evaluations} == {
            "dataset_version_no_split_leakage",
            "dataset_version_has_user_and_assistant_turns",
            "embedding_index_covers_the_dataset_version",
        }
        assert all(e.passed for e in evaluations)
        same, _ = _run(tmp_path, instance)
        assert same["version_id"] == first["version_id"]
        _write_curated(tmp_path, 55)
        grown, _ = _run(tmp_path, instance)
        assert grown["version_id"] != first["version_id"] and grown["parent"] == first["version_id"]
    versions = list_versions(load_settings(data_root=tmp_path))
    assert [v["version_id"] for v in versions] == [first["version_id"], grown["version_id"]]
    assert versions[0]["sources"]["curated_examples"]["rows"] == 50


def test_leakage_check_fails_when_an_example_is_in_both_splits(tmp_path):
    _write_curated(tmp_path, 20)
    with dg.DagsterInstance.ephemeral() as instance:
        first, _ = _run(tmp_path, instance)
        folder = tmp_path / "catalog" / first["version_id"]
        train_line = (folder / "train.jsonl").read_text().splitlines()[0]
        with open(folder / "validation.jsonl", "a") as handle:
            handle.write(train_line + "\n")
        check = dg.materialize(
            [curated_examples, *catalog_defs.assets, *catalog_defs.asset_checks],
            resources=shared_resources(str(tmp_path)),
            instance=instance,
            selection=dg.AssetSelection.checks_for_assets("dataset_version"),
            raise_on_error=False,
        )
        evaluations = {e.check_name: e for e in check.get_asset_check_evaluations()}
        assert not evaluations["dataset_version_no_split_leakage"].passed
        assert evaluations["dataset_version_no_split_leakage"].metadata["leaked"].value == 1
        assert evaluations["dataset_version_has_user_and_assistant_turns"].passed


def test_leakage_check_fails_when_a_conversation_is_on_both_sides(tmp_path):
    """Distinct example ids, but one conversation with turns in train and in validation: still a leak."""
    import json

    _write_curated(tmp_path, 20)
    with dg.DagsterInstance.ephemeral() as instance:
        first, _ = _run(tmp_path, instance)
        folder = tmp_path / "catalog" / first["version_id"]
        trained = json.loads((folder / "train.jsonl").read_text().splitlines()[0])
        held = [json.loads(line) for line in (folder / "validation.jsonl").read_text().splitlines()]
        held[0]["conversation_id"] = trained["conversation_id"]
        (folder / "validation.jsonl").write_text("".join(json.dumps(row) + "\n" for row in held))
        check = dg.materialize(
            [curated_examples, *catalog_defs.assets, *catalog_defs.asset_checks],
            resources=shared_resources(str(tmp_path)),
            instance=instance,
            selection=dg.AssetSelection.checks_for_assets("dataset_version"),
            raise_on_error=False,
        )
        evaluation = {e.check_name: e for e in check.get_asset_check_evaluations()}["dataset_version_no_split_leakage"]
        assert not evaluation.passed
        assert evaluation.metadata["leaked"].value == 0 and evaluation.metadata["groups_on_both_sides"].value == 1


def test_source_data_version_of_a_materialized_upstream_is_recorded(tmp_path):
    _write_curated(tmp_path, 12)
    import polars as pl

    frame = pl.read_parquet(tmp_path / "tables" / "curated_examples.parquet")

    @dg.asset(name="curated_examples")
    def upstream() -> pl.DataFrame:
        return frame

    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [upstream, *catalog_defs.assets], resources=shared_resources(str(tmp_path)), instance=instance
        )
        assert result.success
        version = instance.get_latest_materialization_event(dg.AssetKey("curated_examples")).dagster_event
        data_version = version.step_materialization_data.materialization.tags["dagster/data_version"]
    entry = list_versions(load_settings(data_root=tmp_path))[0]
    assert entry["sources"]["curated_examples"]["data_version"] == data_version
    assert entry["sources"]["curated_examples"]["run_id"] == result.run_id
