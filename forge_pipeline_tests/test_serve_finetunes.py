"""Files and fine-tuning routes, driven by the official openai SDK, against a real dagster-webserver subprocess
(loopback, temporary DAGSTER_HOME) serving the serve stage's real jobs over two cheap stand-in assets."""

from __future__ import annotations

import json
import time

import openai
import pytest
from fastapi.testclient import TestClient

from forge_pipeline.serve.app import create_app
from forge_pipeline.settings import load_settings
from forge_pipeline_tests.serve_fixtures import DAGSTER_LOCATION as LOCATION

pytestmark = pytest.mark.slow


@pytest.fixture
def dagster_url(serve_dagster):
    return serve_dagster  # one webserver per session, shared with test_playground_ui.py (conftest.py)


# -- OpenAI's files and fine_tuning.jobs through the official SDK ---------------------------------------------
GOOD = b"".join(
    json.dumps(
        {"messages": [{"role": "user", "content": f"Question {i}?"}, {"role": "assistant", "content": f"Answer {i}."}]}
    ).encode()
    + b"\n"
    for i in range(3)
)


def _settings(dagster_url, root, job):
    return load_settings(
        data_root=root,
        serve={
            "dagster_url": dagster_url,
            "dagster_location": LOCATION,
            "dagster_timeout_s": 60,  # a launch answers once the run process started: tens of seconds under load
            "fine_tuning_job": job,
            "admin_token": "ft-token",
        },
    )


def _http(settings) -> TestClient:
    return TestClient(create_app(settings, watch=False), client=("127.0.0.1", 50000), base_url="http://testserver")


def _openai(http: TestClient) -> openai.OpenAI:
    # The SDK's api_key is sent as 'Authorization: Bearer ...': the admin token, as any OpenAI client sends it.
    return openai.OpenAI(base_url="http://testserver/v1", api_key="ft-token", http_client=http, max_retries=0)


def _sdk(dagster_url, root, job):
    settings = _settings(dagster_url, root, job)
    return _openai(_http(settings)), settings


def _wait_job(sdk, job_id, statuses, timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = sdk.fine_tuning.jobs.retrieve(job_id)
        if job.status in statuses:
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} still {job.status}, expected one of {statuses}")


def test_files_are_validated_listed_read_and_deleted_and_feed_the_next_dataset(dagster_url, tmp_path):
    sdk, settings = _sdk(dagster_url, tmp_path, "forge_retrain_job")
    uploaded = sdk.files.create(file=("mine.jsonl", GOOD), purpose="fine-tune")
    assert uploaded.object == "file" and uploaded.status == "processed" and uploaded.bytes == len(GOOD)
    assert uploaded.filename == "mine.jsonl" and uploaded.purpose == "fine-tune"
    imported = settings.paths.imports / f"{uploaded.id}.jsonl"
    assert imported.read_bytes() == GOOD  # where ingest reads imports from for the next dataset version
    assert [f.id for f in sdk.files.list()] == [uploaded.id]
    assert sdk.files.retrieve(uploaded.id).bytes == len(GOOD)
    assert sdk.files.content(uploaded.id).read() == GOOD
    assert sdk.files.delete(uploaded.id).deleted is True
    assert not imported.exists()
    with pytest.raises(openai.NotFoundError):
        sdk.files.retrieve(uploaded.id)
    bad = GOOD + b'{"messages": [{"role": "robot", "content": "hi"}]}\n{not json\n'
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.files.create(file=("bad.jsonl", bad), purpose="fine-tune")
    message = caught.value.body["message"]
    assert caught.value.param == "file" and caught.value.code == "invalid_file"
    assert "line 4: messages[0].role is 'robot'" in message and "line 5: not valid JSON" in message
    assert list(settings.paths.imports.glob("*.jsonl")) == [] and list(sdk.files.list()) == []
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.files.create(file=("mine.jsonl", GOOD), purpose="assistants")
    assert caught.value.param == "purpose"


def _config_logged(sdk, job_id, timeout=90) -> dict:
    """The LoraAdapterConfig the run's lora_adapter step received, read back from the job's events."""
    from forge_pipeline_tests.serve_dagster_location import CONFIG_LOG_PREFIX

    deadline = time.time() + timeout
    while time.time() < deadline:
        for event in sdk.fine_tuning.jobs.list_events(job_id, limit=100).data:
            if event.message.startswith(CONFIG_LOG_PREFIX):
                return json.loads(event.message[len(CONFIG_LOG_PREFIX) :])
        time.sleep(0.5)
    raise AssertionError(f"job {job_id}'s lora_adapter step logged no config")


def test_fine_tuning_job_runs_in_dagster_pages_its_events_and_cancels(dagster_url, tmp_path):
    sdk, settings = _sdk(dagster_url, tmp_path, "forge_retrain_job")
    training = sdk.files.create(file=("train.jsonl", GOOD), purpose="fine-tune")
    job = sdk.fine_tuning.jobs.create(
        model="forge",
        training_file=training.id,
        validation_file=training.id,
        hyperparameters={"n_epochs": 3, "batch_size": 2, "learning_rate_multiplier": 0.5},
        seed=7,
        suffix="notes",
    )
    assert job.object == "fine_tuning.job" and job.status in ("queued", "running")
    assert job.training_file == training.id and job.user_provided_suffix == "notes"
    # The current `method` form, launched at once so both runs start together; "auto" keeps the setting and
    # sets nothing in the run config.
    second = sdk.fine_tuning.jobs.create(
        model="forge",
        training_file=training.id,
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 1, "batch_size": "auto"}}},
    )
    shown = {"n_epochs": 3, "batch_size": 2, "learning_rate_multiplier": 0.5}
    assert job.hyperparameters.model_dump() == shown and job.seed == 7
    assert job.method.supervised.hyperparameters.model_dump() == shown
    # OpenAI's names became the real asset's run config: lr = train.learning_rate x multiplier.
    config = _config_logged(sdk, job.id)
    assert config["num_train_epochs"] == 3 and config["per_device_train_batch_size"] == 2 and config["seed"] == 7
    assert config["learning_rate"] == pytest.approx(settings.train.learning_rate * 0.5)
    assert config["max_steps"] is None and config["lora_r"] is None  # what the job did not set keeps the settings
    assert _wait_job(sdk, job.id, {"running"}).status == "running"
    first = sdk.fine_tuning.jobs.list_events(job.id, limit=2)
    assert len(first.data) == 2 and first.has_more and all(e.object == "fine_tuning.job.event" for e in first.data)
    rest = sdk.fine_tuning.jobs.list_events(job.id, after=first.data[-1].id, limit=100)
    assert {e.id for e in rest.data}.isdisjoint({e.id for e in first.data}) and rest.data
    assert list(sdk.fine_tuning.jobs.checkpoints.list(job.id)) == []
    assert second.hyperparameters.n_epochs == 1 and second.seed == settings.train.seed
    assert second.hyperparameters.batch_size == settings.train.per_device_train_batch_size
    second_config = _config_logged(sdk, second.id)
    assert second_config["num_train_epochs"] == 1
    assert second_config["per_device_train_batch_size"] is None and second_config["seed"] is None
    assert {j.id for j in sdk.fine_tuning.jobs.list()} == {second.id, job.id}
    for started in (job, second):
        assert sdk.fine_tuning.jobs.cancel(started.id).status == "cancelled"
        assert sdk.fine_tuning.jobs.retrieve(started.id).status == "cancelled"
    with pytest.raises(openai.BadRequestError):
        sdk.fine_tuning.jobs.cancel(job.id)


def test_fine_tuning_a_published_version_continues_it_as_openai_fine_tunes_a_fine_tuned_model(dagster_url, tmp_path):
    """`model` = a published version, or 'current', launches the real retrain job with the lora_adapter config of a
    taught run (train.continue_from); a version without a recorded adapter, or none at all, is refused by name."""
    from forge_pipeline.atomic import write_json_atomic
    from forge_pipeline.export.manifest import empty_manifest

    sdk, settings = _sdk(dagster_url, tmp_path, "forge_retrain_job")
    manifest = empty_manifest()
    manifest["versions"] = {
        "v0001": {"version": "v0001", "adapter_dir": str(tmp_path / "adapters" / "a" / "adapter")},
        "v0002": {"version": "v0002"},  # published before versions recorded their adapter folder
    }
    manifest["current"] = "v0001"
    write_json_atomic(settings.paths.manifest, manifest)
    training = sdk.files.create(file=("train.jsonl", GOOD), purpose="fine-tune")  # the SDK requires one
    for model in ("v0001", "current"):
        job = sdk.fine_tuning.jobs.create(model=model, training_file=training.id)
        assert job.model == model
        assert _config_logged(sdk, job.id)["continue_from"] == model
        assert _wait_job(sdk, job.id, {"succeeded", "failed", "cancelled"}).status != "cancelled"
    for model, says in (("v0002", "records no adapter folder"), ("v0009", "cannot be fine-tuned here")):
        with pytest.raises(openai.BadRequestError) as caught:
            sdk.fine_tuning.jobs.create(model=model, training_file=training.id)
        assert caught.value.param == "model" and says in caught.value.message


def test_fine_tuning_job_refusals_name_the_parameter(dagster_url, tmp_path):
    sdk, _ = _sdk(dagster_url, tmp_path, "forge_retrain_job")
    training = sdk.files.create(file=("train.jsonl", GOOD), purpose="fine-tune")
    supervised = "method.supervised.hyperparameters"
    cases = [
        ({"model": "forge", "training_file": "file-000000000000000000000000"}, "training_file"),
        ({"model": "gpt-4o-mini", "training_file": training.id}, "model"),
        ({"hyperparameters": {"n_epochs": 0}}, "hyperparameters.n_epochs"),
        ({"hyperparameters": {"n_epochs": 2.5}}, "hyperparameters.n_epochs"),
        ({"hyperparameters": {"batch_size": "big"}}, "hyperparameters.batch_size"),
        ({"hyperparameters": {"batch_size": 257}}, "hyperparameters.batch_size"),
        ({"hyperparameters": {"learning_rate_multiplier": 0}}, "hyperparameters.learning_rate_multiplier"),
        ({"hyperparameters": {"warmup": 3}}, "hyperparameters.warmup"),
        ({"method": {"type": "dpo", "dpo": {}}}, "method.type"),
        (
            {"method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": -1}}}},
            f"{supervised}.n_epochs",
        ),
        (
            {
                "hyperparameters": {"n_epochs": 2},
                "method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 3}}},
            },
            "hyperparameters",
        ),
        ({"integrations": [{"type": "wandb", "wandb": {"project": "x"}}]}, "integrations"),
    ]
    for arguments, param in cases:
        arguments = {"model": "forge", "training_file": training.id, **arguments}
        with pytest.raises(openai.BadRequestError) as caught:
            sdk.fine_tuning.jobs.create(**arguments)
        assert caught.value.param == param, arguments
        assert param.split(".")[-1] in caught.value.message, caught.value.message
    assert list(sdk.fine_tuning.jobs.list()) == []  # nothing was launched
    with pytest.raises(openai.NotFoundError):
        sdk.fine_tuning.jobs.retrieve("ftjob-nope")
    # Dagster's own refusal (a job name its code location does not have) is a 400 that names the job.
    sdk_unknown_job, _ = _sdk(dagster_url, tmp_path / "other", "no_such_job")
    training = sdk_unknown_job.files.create(file=("train.jsonl", GOOD), purpose="fine-tune")
    with pytest.raises(openai.BadRequestError) as caught:
        sdk_unknown_job.fine_tuning.jobs.create(model="forge", training_file=training.id)
    assert "no_such_job" in caught.value.message


def test_a_finished_job_names_the_version_it_published_as_fine_tuned_model_and_chat_answers_with_it(
    dagster_url, tmp_path, serve_models
):
    """forge_data_job finishes at once here; a version published after the job started (what the chain's
    adapter_manifest asset does at its end: here a real tiny GGUF adapter on the served base) becomes the job's
    fine_tuned_model and its checkpoint, and chat completions answer with it when it is named as `model`."""
    from forge_pipeline.atomic import write_json_atomic
    from forge_pipeline.export.manifest import read_manifest
    from forge_pipeline_tests.gguf_fixtures import write_manifest

    settings = _settings(dagster_url, tmp_path, "forge_data_job")
    manifest_path = settings.paths.manifest
    write_manifest(manifest_path, serve_models, "v0001")  # v0001 served; v0002's adapter not yet "published"
    manifest = read_manifest(manifest_path)
    published = manifest["versions"].pop("v0002")
    write_json_atomic(manifest_path, manifest)
    with _http(settings) as http:  # as a context manager its lifespan loads v0001, and closes the model at the end
        sdk = _openai(http)
        training = sdk.files.create(file=("train.jsonl", GOOD), purpose="fine-tune")
        job = sdk.fine_tuning.jobs.create(model="forge", training_file=training.id)
        time.sleep(1.1)  # the version's created_at (seconds) must come after the job's
        published["created_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        manifest["versions"]["v0002"] = published
        write_json_atomic(manifest_path, manifest)
        done = _wait_job(sdk, job.id, {"succeeded", "failed", "cancelled"})
        assert done.status == "succeeded" and done.fine_tuned_model == "v0002" and done.finished_at
        checkpoints = list(sdk.fine_tuning.jobs.checkpoints.list(job.id))
        assert [c.fine_tuned_model_checkpoint for c in checkpoints] == ["v0002"]
        answer = sdk.chat.completions.create(
            model=done.fine_tuned_model, messages=[{"role": "user", "content": "Hello?"}], max_tokens=2
        )
        assert answer.model == "v0002" and answer.choices[0].message.content is not None


def test_a_finished_job_that_published_nothing_is_failed_with_the_reason(dagster_url, tmp_path):
    sdk, _ = _sdk(dagster_url, tmp_path, "forge_data_job")
    training = sdk.files.create(file=("train.jsonl", GOOD), purpose="fine-tune")
    job = sdk.fine_tuning.jobs.create(model="forge", training_file=training.id)
    done = _wait_job(sdk, job.id, {"succeeded", "failed", "cancelled"})
    assert done.status == "failed" and done.error.code == "no_model_published" and done.fine_tuned_model is None
