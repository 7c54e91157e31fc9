"""runtime.train_on_ray: lora_adapter trains as a Ray job on the local two-node cluster (conftest.ray_cluster)
through dagster-ray's Pipes client, with the tiny model; logs, metrics and the materialization come back
through Pipes as they do from the local subprocess (test_train_dagster.py)."""

from __future__ import annotations

import json
import sys

import dagster as dg
import pytest

from forge_pipeline.atomic import write_json_atomic
from forge_pipeline.defs.resources import shared_resources
from forge_pipeline.defs.train.assets import base_model, lora_adapter
from forge_pipeline.defs.train.resources import train_resources
from forge_pipeline.settings import load_settings
from forge_pipeline.train.outputs import read_lora_adapter
from forge_pipeline_tests.model_fixtures import write_tiny_dataset_version

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_lora_adapter_trains_as_a_ray_job_through_pipes(ray_cluster, tmp_path, monkeypatch):
    from ray.job_submission import JobStatus, JobSubmissionClient

    dashboard = f"http://{ray_cluster.head_node.address_info['webui_url']}"
    monkeypatch.setenv("FORGE_TRAIN__TINY_MODEL__VOCAB_SIZE", "400")
    monkeypatch.setenv("FORGE_RUNTIME__TRAIN_ON_RAY", "true")
    monkeypatch.setenv("FORGE_RUNTIME__RAY_DASHBOARD_URL", dashboard)
    # The cluster's nodes run this same environment; on Kubernetes the image's `python`.
    monkeypatch.setenv("FORGE_RUNTIME__RAY_TRAIN_PYTHON", sys.executable)
    settings = load_settings(data_root=tmp_path)
    settings.paths.ensure()
    version = write_tiny_dataset_version(settings.paths.catalog / "v-ray", version_id="v-ray")
    write_json_atomic(settings.paths.tables / "dataset_version.json", version)
    jobs = JobSubmissionClient(dashboard)
    before = {job.submission_id for job in jobs.list_jobs()}

    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [dg.AssetSpec("dataset_version"), base_model, lora_adapter],
        resources=shared_resources(str(tmp_path)) | train_resources(),
        instance=instance,
        run_config={
            "ops": {
                "lora_adapter": {
                    "config": {"max_steps": 2, "save_steps": 2, "eval_steps": 2, "gradient_accumulation_steps": 1}
                }
            }
        },
    )
    assert result.success

    # It ran as a Ray job (one new job, the training entrypoint, succeeded) ...
    (job,) = [job for job in jobs.list_jobs() if job.submission_id not in before]
    assert "forge_pipeline.train.pipes_entry" in job.entrypoint and job.status == JobStatus.SUCCEEDED
    # ... and its Pipes messages came back from the job's logs: the progress log lines and the materialization.
    messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
    # Training progress (readable lines: "step 2/2 (100%) loss ...") arrived as Pipes log lines from the job's stdout.
    assert any(message.startswith("step 2/2 (100%) loss") for message in messages), messages[-20:]
    lora = read_lora_adapter(settings)
    assert lora.dataset_version == "v-ray" and lora.metrics["global_step"] == 2
    metadata = result.asset_materializations_for_node("lora_adapter")[-1].metadata
    assert metadata["mlflow_run_id"].value == lora.mlflow_run_id
    assert metadata["final_loss"].value == pytest.approx(lora.metrics["final_loss"])
    assert json.loads((settings.paths.tables / "lora_adapter.json").read_text())["adapter_dir"] == str(lora.adapter_dir)
