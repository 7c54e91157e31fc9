"""Dagster materializes base_model and lora_adapter (training in a Pipes subprocess) on a temporary data root."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from forge_pipeline.atomic import write_json_atomic
from forge_pipeline.defs.resources import shared_resources
from forge_pipeline.defs.train.assets import base_model, lora_adapter
from forge_pipeline.defs.train.checks import lora_adapter_loss_fell
from forge_pipeline.defs.train.resources import train_resources
from forge_pipeline.settings import load_settings
from forge_pipeline.train.outputs import read_lora_adapter
from forge_pipeline_tests.model_fixtures import write_tiny_dataset_version


@pytest.mark.slow
def test_materialize_base_model_and_lora_adapter(tmp_path, monkeypatch):
    monkeypatch.setenv("FORGE_TRAIN__TINY_MODEL__VOCAB_SIZE", "400")  # reaches the Pipes subprocess too
    settings = load_settings(data_root=tmp_path)
    settings.paths.ensure()
    version = write_tiny_dataset_version(settings.paths.catalog / "v-dagster", version_id="v-dagster")
    write_json_atomic(settings.paths.tables / "dataset_version.json", version)

    run_config = {
        "ops": {
            "lora_adapter": {
                "config": {
                    "max_steps": 4,
                    "save_steps": 2,
                    "eval_steps": 2,
                    "gradient_accumulation_steps": 1,
                    "max_length": 96,
                }
            }
        }
    }
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [dg.AssetSpec("dataset_version"), base_model, lora_adapter, lora_adapter_loss_fell],
        resources=shared_resources(str(tmp_path)) | train_resources(),
        instance=instance,
        run_config=run_config,
    )
    assert result.success

    base = json.loads((settings.paths.tables / "base_model.json").read_text())
    assert base["is_demo_model"] and base["path"].startswith(str(settings.paths.models))
    base_meta = result.asset_materializations_for_node("base_model")[-1].metadata
    assert base_meta["name"].value == base["name"] and base_meta["parameters"].value > 0
    assert base_meta["licence"].value and base_meta["source"].value

    lora = read_lora_adapter(settings)
    assert lora.dataset_version == "v-dagster" and str(lora.base_model_dir) == base["path"]
    assert lora.is_demo_model and lora.metrics["global_step"] == 4
    # The export stage's reader accepts what training wrote: the cross-stage contract holds.
    from forge_pipeline.export.publish import adapter_info

    assert adapter_info(lora.model_dump(mode="json")).adapter_dir == lora.adapter_dir

    materializations = result.asset_materializations_for_node("lora_adapter")
    metadata = materializations[-1].metadata
    assert metadata["mlflow_run_id"].value == lora.mlflow_run_id
    assert metadata["mlflow_run"].value.endswith(f"/runs/{lora.mlflow_run_id}")
    assert "data:image/png;base64," in metadata["loss_curve"].value
    assert metadata["final_loss"].value == pytest.approx(lora.metrics["final_loss"])
    assert metadata["eval_loss"].value == pytest.approx(lora.metrics["eval_loss"])
    assert metadata["tokens_per_s"].value > 0

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=settings.tracking_uri)
    run = client.get_run(lora.mlflow_run_id)
    assert run.data.params["max_steps"] == "4" and run.data.tags["dataset_version"] == "v-dagster"

    # Lineage both ways: the MLflow run names its Dagster run (tag, link in the description) and its data; the
    # Dagster run carries the dataset version, base model and hyperparameters as tags.
    assert run.data.tags["dagster.run_id"] == result.run_id
    assert run.data.tags["dagster.run_url"] == f"http://127.0.0.1:3000/runs/{result.run_id}"
    assert f"]({run.data.tags['dagster.run_url']})" in run.data.tags["mlflow.note.content"]
    assert run.data.tags["lora_r"] == str(settings.train.lora_r) and run.data.tags["max_length"] == "96"
    assert run.info.run_name.startswith(f"sft {base['name']} · v-dagster · r")
    assert sorted(d.dataset.name for d in run.inputs.dataset_inputs) == ["v-dagster/train", "v-dagster/validation"]
    assert client.get_logged_model(lora.mlflow_model_id).source_run_id == run.info.run_id
    assert run.info.artifact_uri.startswith(settings.paths.mlflow.as_uri())
    tags = instance.get_run_by_id(result.run_id).tags
    assert tags["forge/dataset_version"] == "v-dagster" and tags["forge/max_steps"] == "4"
    assert tags["forge/base_model"] == base["name"]

    # Readable metadata: the hyperparameters used, the last progress line, the run key as data version.
    assert metadata["hyperparameters"].value["max_steps"] == 4 and metadata["max_length"].value == 96
    assert metadata["progress"].value.startswith("step 4/4 (100%) loss ")
    assert materializations[-1].tags["dagster/data_version"] == lora.run_key
    # Progress reached the run log as lines a person reads, one per step.
    messages = [e.user_message for e in instance.all_logs(result.run_id) if e.user_message]
    assert any(m.startswith("step 2/4 (50%) loss ") and " ETA " in m for m in messages), messages[-20:]
    [check] = result.get_asset_check_evaluations()
    assert check.check_name == "lora_adapter_loss_fell" and check.metadata["mlflow_run"].value == (
        metadata["mlflow_run"].value
    )
