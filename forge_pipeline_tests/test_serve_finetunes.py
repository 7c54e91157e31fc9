"""Fine-tune routes against a real dagster-webserver subprocess (loopback, temporary DAGSTER_HOME)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from forge_pipeline.serve.app import create_app
from forge_pipeline.settings import load_settings

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
LOCATION = "serve_test_location"


@pytest.fixture(scope="module")
def dagster_url(tmp_path_factory):
    home = tmp_path_factory.mktemp("dagster_home")
    # Runs start at once in a subprocess (no daemon needed to dequeue them).
    (home / "dagster.yaml").write_text(
        "run_coordinator:\n  module: dagster._core.run_coordinator\n  class: DefaultRunCoordinator\n"
        "telemetry:\n  enabled: false\n")
    (home / "workspace.yaml").write_text(
        f"load_from:\n  - python_module:\n      module_name: forge_pipeline_tests.serve_dagster_location\n"
        f"      location_name: {LOCATION}\n")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    log = open(home / "webserver.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "dagster_webserver", "-h", "127.0.0.1", "-p", str(port),
         "-w", str(home / "workspace.yaml")],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                if httpx.get(f"{url}/server_info", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.time() > deadline:
                raise RuntimeError((home / "webserver.log").read_text()[-3000:])
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@pytest.fixture
def client(dagster_url, tmp_path):
    settings = load_settings(data_root=tmp_path, serve={"dagster_url": dagster_url, "dagster_location": LOCATION,
                                                        "dagster_timeout_s": 30})
    return TestClient(create_app(settings, watch=False), client=("127.0.0.1", 50000))


def _wait_status(client, run_id, statuses, timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = client.get(f"/v1/fine-tunes/{run_id}").json()["status"]
        if status in statuses:
            return status
        time.sleep(0.5)
    raise AssertionError(f"run {run_id} still {status}, expected one of {statuses}")


def test_launch_status_events_of_a_data_job(client):
    launched = client.post("/v1/fine-tunes", json={"job": "forge_data_job"})
    assert launched.status_code == 200, launched.text
    run_id = launched.json()["id"]
    assert _wait_status(client, run_id, {"SUCCESS", "FAILURE"}) == "SUCCESS"
    events = client.get(f"/v1/fine-tunes/{run_id}/events").json()["data"]
    kinds = {e["type"] for e in events}
    assert "RUN_SUCCESS" in kinds and "ASSET_MATERIALIZATION" in kinds
    assert any(e["step"] == "quick_notes" for e in events)


def test_cancel_a_running_retrain(client):
    launched = client.post("/v1/fine-tunes", json={"job": "forge_retrain_job"})
    assert launched.status_code == 200, launched.text
    run_id = launched.json()["id"]
    _wait_status(client, run_id, {"STARTED"})
    cancelled = client.post(f"/v1/fine-tunes/{run_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert _wait_status(client, run_id, {"CANCELED"}) == "CANCELED"


def test_dagster_refusals_become_4xx(client):
    unknown_job = client.post("/v1/fine-tunes", json={"job": "no_such_job"})
    assert unknown_job.status_code == 400 and "no_such_job" in unknown_job.json()["error"]["message"]
    assert client.get("/v1/fine-tunes/00000000-0000-0000-0000-000000000000").status_code == 404
    assert client.post("/v1/fine-tunes", json={"job": "forge_data_job", "unknown": 1}).status_code == 400
