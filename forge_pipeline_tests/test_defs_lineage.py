"""Lineage and launchpad behaviour of the definitions, without training: code versions, data versions that stay
the same for the same rows, the adapter checks, and run config refused before anything is trained."""

from __future__ import annotations

import dagster as dg
import pytest

from forge_pipeline.atomic import write_json_atomic
from forge_pipeline.definitions import defs
from forge_pipeline.defs.resources import shared_resources
from forge_pipeline.defs.train.assets import LoraAdapterConfig, lora_adapter
from forge_pipeline.defs.train.resources import train_resources


def test_every_asset_has_a_code_version():
    """Without one, Dagster marks everything downstream of a re-run asset unsynced, whatever it produced."""
    graph = defs.resolve_asset_graph()
    missing = [k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).code_version is None]
    assert missing == []


def test_the_adapter_and_its_evaluation_have_checks():
    checked = {key.asset_key.to_user_string() for key in defs.resolve_asset_graph().asset_check_keys}
    assert {"lora_adapter", "adapter_evaluation"} <= checked


def test_ingest_data_versions_are_content_hashes(tmp_path):
    """The same notes and conversations read twice: the same data versions, so nothing downstream goes stale;
    tables carry Dagster's row count and column schema."""
    from forge_pipeline.definitions import group_definitions
    from forge_pipeline.defs.prepare.training_examples import training_examples

    versions = []
    with dg.instance_for_test() as instance:
        for _ in range(2):
            result = dg.materialize(
                [*group_definitions("ingest").assets, training_examples],
                resources=shared_resources(str(tmp_path)),
                instance=instance,
            )
            assert result.success
            versions.append(
                {
                    m.asset_key.to_user_string(): m.tags["dagster/data_version"]
                    for m in result.get_asset_materialization_events()
                    for m in [m.step_materialization_data.materialization]
                }
            )
        assert versions[0] == versions[1] and len(set(versions[0].values())) == 3
        metadata = result.asset_materializations_for_node("conversations")[0].metadata
        assert metadata["dagster/row_count"].value == metadata["conversations"].value > 0
        assert "messages" in {c.name for c in metadata["dagster/column_schema"].schema.columns}
        # Nothing was marked stale by the second run.
        status = instance.get_latest_materialization_event(dg.AssetKey("training_examples"))
        assert status.asset_materialization.tags["dagster/data_version"] == versions[0]["training_examples"]


def _launch_lora_adapter(tmp_path, config: dict):
    (tmp_path / "tables").mkdir(parents=True, exist_ok=True)
    write_json_atomic(tmp_path / "tables" / "base_model.json", {"path": str(tmp_path / "none"), "name": "x"})
    write_json_atomic(tmp_path / "tables" / "dataset_version.json", {"path": str(tmp_path / "none")})
    return dg.materialize(
        [dg.AssetSpec("base_model"), dg.AssetSpec("dataset_version"), lora_adapter],
        resources=shared_resources(str(tmp_path)) | train_resources(),
        instance=dg.DagsterInstance.ephemeral(),
        run_config={"ops": {"lora_adapter": {"config": config}}},
        raise_on_error=False,
    )


def test_launchpad_refuses_an_unknown_quantization_before_launch(tmp_path):
    with pytest.raises(dg.DagsterInvalidConfigError, match="quantization"):
        _launch_lora_adapter(tmp_path, {"quantization": "bogus"})
    assert not (tmp_path / "adapters").exists() or not any((tmp_path / "adapters").iterdir())


def test_out_of_range_hyperparameters_fail_at_start_naming_the_field(tmp_path):
    result = _launch_lora_adapter(tmp_path, {"learning_rate": -1.0})
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "learning_rate" in str(failure.step_failure_data.error) and "greater than 0" in str(
        failure.step_failure_data.error
    )
    assert not any(e.event_type_value == "ASSET_MATERIALIZATION" for e in result.all_events)
    # A wrong value is not retried like a training crash (two retries with a 30 s+ backoff).
    assert not any(e.event_type_value == "STEP_UP_FOR_RETRY" for e in result.all_events)


def test_launchpad_fields_describe_the_setting_and_its_default():
    from forge_pipeline.train.config import TrainSettings

    fields = LoraAdapterConfig.model_fields
    default = TrainSettings.model_fields["learning_rate"].default
    assert f"train.learning_rate (default {default!r})" in fields["learning_rate"].description
    assert all(f.description and "default" in f.description for f in fields.values())


def test_ui_addresses_come_from_the_environment(tmp_path, monkeypatch):
    """Links between the two UIs follow where they are served (`mlflow ui -p 5111`, `dagster dev -p 3111`)."""
    from forge_pipeline.defs.resources import ForgeSettingsResource
    from forge_pipeline.defs.train.checks import mlflow_link
    from forge_pipeline.train.plan import dagster_run_url

    monkeypatch.setenv("FORGE_TRAIN__MLFLOW_UI_URL", "http://127.0.0.1:5111/")
    monkeypatch.setenv("FORGE_DAGSTER_UI_URL", "http://127.0.0.1:3111")
    forge = ForgeSettingsResource(data_root=str(tmp_path))
    link = mlflow_link(forge, "r1", "7")["mlflow_run"].value
    assert link == "http://127.0.0.1:5111/#/experiments/7/runs/r1"
    assert dagster_run_url(forge.get().dagster_ui_url, "abc") == "http://127.0.0.1:3111/runs/abc"
