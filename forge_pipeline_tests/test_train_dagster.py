"""Dagster materializes base_model and lora_adapter (training in a Pipes subprocess) on a temporary data root."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from forge_pipeline.atomic import write_json_atomic
from forge_pipeline.defs.resources import shared_resources
from forge_pipeline.defs.train.assets import base_model, lora_adapter
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
    result = dg.materialize(
        [dg.AssetSpec("dataset_version"), base_model, lora_adapter],
        resources=shared_resources(str(tmp_path)) | train_resources(),
        instance=dg.DagsterInstance.ephemeral(),
        run_config=run_config,
    )
    assert result.success

    base = json.loads((settings.paths.tables / "base_model.json").read_text())
    assert base["is_demo_model"] and base["path"].startswith(str(settings.paths.models))
    base_meta = result.asset_materializations_for_node("base_model")[-1].metadata
    assert base_meta["name"].value == base["name"] and base_meta["parameters"].value > 0
    assert base_meta["licence"].value and base_meta["source"].value

    lora = read_lora_adapter(settings)
    assert lora["dataset_version"] == "v-dagster" and lora["base_model_dir"] == base["path"]
    assert lora["is_demo_model"] and lora["metrics"]["global_step"] == 4
    # The export stage's reader accepts what training wrote: the cross-stage contract holds.
    from forge_pipeline.export.publish import adapter_info

    assert adapter_info(lora)["adapter_dir"] == lora["adapter_dir"]

    materializations = result.asset_materializations_for_node("lora_adapter")
    metadata = materializations[-1].metadata
    assert metadata["mlflow_run_id"].value == lora["mlflow_run_id"]
    assert metadata["mlflow_run"].value.endswith(f"/runs/{lora['mlflow_run_id']}")
    assert "data:image/png;base64," in metadata["loss_curve"].value
    assert metadata["final_loss"].value == pytest.approx(lora["metrics"]["final_loss"])
    assert metadata["eval_loss"].value == pytest.approx(lora["metrics"]["eval_loss"])
    assert metadata["tokens_per_s"].value > 0

    from mlflow.tracking import MlflowClient

    run = MlflowClient(tracking_uri=settings.tracking_uri).get_run(lora["mlflow_run_id"])
    assert run.data.params["max_steps"] == "4" and run.data.tags["dataset_version"] == "v-dagster"
