"""Forge's MLflow conventions without training: where artifacts go, telemetry, the training view, progress lines,
metrics once per step, and the adapter in the model registry."""

from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from forge_pipeline.train.config import TrainSettings
from forge_pipeline.train.tracking import (
    EXPERIMENT_KIND_TAG,
    TRAINING_EXPERIMENT_KIND,
    StepMetrics,
    format_progress,
    register_adapter,
    run_name,
    training_experiment,
)


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    """One MLflow store for the module: creating a SQLite store runs MLflow's migrations (~10 s on 2 cores)."""
    from forge_pipeline.settings import load_settings

    settings = load_settings(data_root=tmp_path_factory.mktemp("mlflow_root"))
    settings.paths.ensure()
    return settings


def test_artifacts_land_under_the_data_root_whatever_the_working_directory(settings, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    elsewhere = tmp_path / "started_here"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # Dagster, a test or `forge demo` may start anywhere
    experiment_id = training_experiment(settings.tracking_uri, "forge")
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    run = client.create_run(experiment_id)
    client.log_text(run.info.run_id, "hello", "note.txt")

    assert run.info.artifact_uri.startswith((settings.paths.mlflow / "artifacts").as_uri())
    assert (settings.paths.mlflow / "artifacts" / "forge" / run.info.run_id / "artifacts" / "note.txt").is_file()
    assert list(elsewhere.iterdir()) == []  # no ./mlruns where the process happened to start
    # The experiment opens in MLflow's model-training view, not the GenAI one; asking again keeps the same one.
    assert client.get_experiment(experiment_id).tags[EXPERIMENT_KIND_TAG] == TRAINING_EXPERIMENT_KIND
    assert training_experiment(settings.tracking_uri, "forge") == experiment_id


def test_an_existing_experiment_gets_the_training_view(settings):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=settings.tracking_uri)
    made_elsewhere = client.create_experiment("older", artifact_location=str(settings.paths.mlflow / "older"))
    assert training_experiment(settings.tracking_uri, "older") == made_elsewhere
    assert client.get_experiment(made_elsewhere).tags[EXPERIMENT_KIND_TAG] == TRAINING_EXPERIMENT_KIND


CI_VARIABLES = ("PYTEST_CURRENT_TEST", "GITHUB_ACTIONS", "CI", "CIRCLECI", "GITLAB_CI", "JENKINS_URL", "TRAVIS")


def test_importing_forge_disables_mlflow_telemetry():
    """MLflow also stays quiet under CI/pytest by itself, so the child gets none of those variables: only Forge's
    own setting can disable the client there."""
    env = {k: v for k, v in os.environ.items() if k not in CI_VARIABLES and k not in ("MLFLOW_DISABLE_TELEMETRY",)}
    code = (
        "import forge_pipeline, mlflow, os\n"
        "from mlflow.telemetry.client import get_telemetry_client\n"
        "print(os.environ['MLFLOW_DISABLE_TELEMETRY'], get_telemetry_client() is None)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["true", "True"]


class _Recorder:
    def __init__(self):
        self.calls: list[tuple[dict, int]] = []

    def log_metrics(self, metrics, step):
        self.calls.append((dict(metrics), step))


def _state(step: int, total: int):
    return SimpleNamespace(is_world_process_zero=True, global_step=step, max_steps=total)


def test_each_metric_is_logged_once_per_step_and_progress_reads_like_a_sentence():
    mlflow, seen = _Recorder(), []
    metrics = StepMetrics(mlflow, seen.append, cuda=False)
    metrics.on_train_begin(None, _state(0, 4), None)
    for step in (1, 2, 3, 4):
        metrics.on_log(None, _state(step, 4), None, logs={"loss": 3.0 - step * 0.2, "num_tokens": 100.0 * step})
    metrics.on_log(None, _state(4, 4), None, logs={"eval_loss": 2.5})
    # The final trainer.evaluate() reports the same step's eval metrics again: no second point in the chart.
    metrics.on_log(None, _state(4, 4), None, logs={"eval_loss": 2.5, "eval_runtime": 0.1})

    logged = [(name, step) for values, step in mlflow.calls for name in values]
    assert len(logged) == len(set(logged))
    assert ("eval_loss", 4) in logged and ("eval_runtime", 4) in logged

    line = format_progress(seen[1])
    assert line.startswith("step 2/4 (50%) loss 2.6 ") and " tok/s ETA " in line, line
    assert format_progress(seen[3]).startswith("step 4/4 (100%) loss 2.2") and "done in" in format_progress(seen[3])
    assert seen[1]["total_steps"] == 4 and seen[1]["eta_s"] >= 0


def test_format_progress_example():
    entry = {"step": 4, "total_steps": 28, "loss": 2.3149, "tokens_per_s": 312.4, "eta_s": 80.0, "elapsed_s": 13.0}
    assert format_progress(entry) == "step 4/28 (14%) loss 2.315 312 tok/s ETA 1m20s"


def test_run_names_say_what_was_trained():
    hp = TrainSettings(lora_r=8, learning_rate=5e-3)
    assert (
        run_name("sft", "smollm2-135m-instruct", "v0003-ab12", hp)
        == "sft smollm2-135m-instruct · v0003-ab12 · r8 lr0.005"
    )


def test_register_adapter_sets_candidate_and_current_aliases(settings, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from forge_pipeline.train.tracking import log_adapter_model

    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")  # nothing may fall back to MLflow's default store (./mlflow.db, ./mlruns)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    experiment_id = training_experiment(settings.tracking_uri, "adapters")
    models = []
    for _ in range(2):
        run = client.create_run(experiment_id)
        models.append(log_adapter_model(settings.tracking_uri, run, adapter, {"lora_r": 8}, "peft-lora"))
        client.set_terminated(run.info.run_id)
    first = register_adapter(settings.tracking_uri, "forge-adapter", models[0], "v1", current=True)
    second = register_adapter(settings.tracking_uri, "forge-adapter", models[1], "v2", current=False)
    assert register_adapter(settings.tracking_uri, "forge-adapter", models[1], "v2", current=False) == second

    assert client.get_model_version_by_alias("forge-adapter", "current").version == int(first)
    assert client.get_model_version_by_alias("forge-adapter", "candidate").version == int(second)
    assert client.get_model_version("forge-adapter", second).tags["forge.manifest_version"] == "v2"
    assert len(client.search_model_versions("name='forge-adapter'")) == 2
    assert list((tmp_path / "cwd").iterdir()) == []

    # adapter_manifest's step: the published version, served, gets `current` and a registry link in Dagster.
    from forge_pipeline.defs.serve.manifest import _register_in_mlflow
    from forge_pipeline.export.handoff import PublishedVersion

    def published(version: str, current: str) -> PublishedVersion:
        return PublishedVersion(
            version=version,
            current=current,
            promoted=version == current,
            already_published=False,
            manifest_path=tmp_path / "manifest.json",
            versions=1,
        )

    third_run = client.create_run(experiment_id)
    third = log_adapter_model(settings.tracking_uri, third_run, adapter, {"lora_r": 8}, "peft-lora")
    metadata = _register_in_mlflow(settings, third, published("v3", "v3"))
    registered = client.get_model_version_by_alias(f"{settings.mlflow_experiment}-adapter", "current")
    assert registered.tags["forge.model_id"] == third and registered.tags["forge.manifest_version"] == "v3"
    assert metadata["mlflow_model_version"].value.endswith(f"/#/models/forge-adapter/versions/{registered.version}")
    assert _register_in_mlflow(settings, None, published("v4", "v3")) == {}  # trained before models
    assert str(client.get_logged_model(models[0]).status).endswith("READY")
    assert {f.path for f in client.list_logged_model_artifacts(models[0])} == {"adapter_config.json"}


@pytest.mark.parametrize("name", ["forge", "my experiment/1"])
def test_artifact_location_is_beside_the_sqlite_store(tmp_path, name):
    from forge_pipeline.train.tracking import artifact_location

    location = artifact_location(f"sqlite:///{tmp_path / 'mlflow.db'}", name)
    assert location.startswith((tmp_path / "artifacts").as_uri()) and "/" not in location.rsplit("artifacts/", 1)[1]
    assert artifact_location("http://tracking.example:5000", name) is None
