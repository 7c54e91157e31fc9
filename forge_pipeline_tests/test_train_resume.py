"""A training subprocess killed with SIGKILL resumes from its last checkpoint, in the same MLflow run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from forge_pipeline.settings import load_settings
from forge_pipeline.train.config import TinyModelSettings
from forge_pipeline.train.tiny_model import build_tiny_llama
from forge_pipeline_tests.model_fixtures import write_tiny_dataset_version

STEPS = 24


def _command(dataset: Path, base: Path, data_root: Path, out: Path) -> list[str]:
    sets = {
        "max_steps": STEPS,
        "save_steps": 2,
        "per_device_train_batch_size": 2,
        "gradient_accumulation_steps": 1,
        "max_length": 96,
        "lora_r": 4,
    }
    return [
        sys.executable,
        "-m",
        "forge_pipeline.cli",
        "--data-root",
        str(data_root),
        "train",
        str(dataset),
        "--base-model",
        str(base),
        "--output-dir",
        str(out),
    ] + [a for k, v in sets.items() for a in ("--set", f"{k}={json.dumps(v)}")]


def _json_lines(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return out


@pytest.mark.slow
def test_killed_training_resumes_from_checkpoint_in_same_mlflow_run(tmp_path):
    from mlflow.tracking import MlflowClient

    version = write_tiny_dataset_version(tmp_path / "dataset", n_validation=0, save_hf=False)
    texts = [
        m["content"]
        for line in Path(version["path"], "train.jsonl").read_text().splitlines()
        for m in json.loads(line)["messages"]
    ]
    base = build_tiny_llama(texts, tmp_path / "base", TinyModelSettings(vocab_size=400))
    out = tmp_path / "data" / "adapters" / "run"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = _command(Path(version["path"]), base, tmp_path / "data", out)

    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    # a bound against a hang, not a timing: starting torch + trl on a busy 2-core machine alone can take a minute
    deadline = time.monotonic() + 300
    try:
        while not list((out / "checkpoints").glob("checkpoint-*/trainer_state.json")):
            assert first.poll() is None, "training ended before it wrote a checkpoint"
            assert time.monotonic() < deadline, "no checkpoint within 300 s"
            time.sleep(0.1)
        first.send_signal(signal.SIGKILL)
    finally:
        first.kill()
        first_out = first.communicate()[0]
    killed_steps = [e["step"] for e in _json_lines(first_out) if "loss" in e]
    assert killed_steps and max(killed_steps) < STEPS  # it really was cut short
    state = json.loads((out / "run_state.json").read_text())
    assert state["status"] == "running"

    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=480)
    assert second.returncode == 0, second.stderr[-3000:]
    events = _json_lines(second.stdout)
    resumed = [e for e in events if e.get("event") == "resume"]
    assert resumed, "second run did not resume"
    checkpoint_step = int(Path(resumed[0]["checkpoint"]).name.split("-")[1])
    assert checkpoint_step >= 2
    steps = [e["step"] for e in events if "loss" in e]
    assert steps[0] == checkpoint_step + 1 and steps[-1] == STEPS  # the step count continues, not restarts
    result = events[-1]
    assert result["resumed_from"].endswith(f"checkpoint-{checkpoint_step}")
    assert result["mlflow_run_id"] == state["mlflow_run_id"] and result["metrics"]["global_step"] == STEPS

    settings = load_settings(data_root=tmp_path / "data")
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    assert client.get_run(state["mlflow_run_id"]).info.status == "FINISHED"
    logged = {m.step for m in client.get_metric_history(state["mlflow_run_id"], "loss")}
    assert logged >= set(range(1, min(killed_steps) + 1)) | set(range(checkpoint_step + 1, STEPS + 1))
    assert len(client.search_runs([client.get_run(state["mlflow_run_id"]).info.experiment_id])) == 1
    assert (out / "adapter" / "adapter_config.json").is_file() and not (out / "checkpoints").exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("max_steps", "--set 'max_steps': expected NAME=VALUE"),
        ("num_epochs=2", "unknown train setting(s) ['num_epochs']"),
        ("max_steps=many", "--set: max_steps: "),
    ],
)
def test_forge_train_refuses_a_bad_set_naming_it_before_training(tmp_path, override, message):
    from typer.testing import CliRunner

    from forge_pipeline.cli import app

    result = CliRunner().invoke(app, ["--data-root", str(tmp_path), "train", str(tmp_path), "--set", override])
    # a SettingsError (a ForgeError): one line naming the override, exit status 1, no trace
    assert result.exit_code == 1 and result.output.startswith("forge train: --set"), result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "adapters").exists()  # refused before anything was set up
