"""Shared fixtures: settings on a temporary data root, and the shipped sample data's location."""

import os
from pathlib import Path

import pytest

from forge_pipeline.settings import SAMPLE_DATA, load_settings

# The suite trains the tiny random-init Llama (seconds) instead of the default SmolLM2 (minutes); set before any
# settings are built, and inherited by the subprocesses tests start (Pipes training, `forge demo`). The one test
# on the real model (test_train_smollm2.py) selects it explicitly.
os.environ.setdefault("FORGE_TRAIN__BASE_MODEL", "tiny-demo")
# The suite's CPU work is many small torch ops (the tiny Llama's training and evaluation, DPO, MiniLM) in this
# process and the subprocesses it starts (Pipes training, `forge demo`, `dagster dev`), beside each other on two
# cores. OpenMP's default lets each waiting thread spin for a while; with more threads than free cores the spinning
# takes the cores from the thread being waited for: the demo's evaluation took 10x longer (measured: 8 prompts
# x 128 tokens, 18.6 s with the default wait, 1.5 s passive, on two busy cores). Passive threads sleep while they
# wait; what is computed is the same. Set before anything loads torch's OpenMP runtime.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture
def settings(tmp_path: Path):
    """Settings whose outputs all land in a temporary data root (inputs default to the sample data)."""
    return load_settings(data_root=tmp_path / "data_root")


@pytest.fixture
def sample_data() -> Path:
    return SAMPLE_DATA


@pytest.fixture(scope="session")
def serve_models(tmp_path_factory):
    """Tiny real GGUF base + two real LoRA adapter GGUFs and the HF folders they come from (built once per session;
    the serving, export, embedding and fault tests share them and only read them)."""
    from forge_pipeline_tests.gguf_fixtures import build_serve_models

    return build_serve_models(tmp_path_factory.mktemp("serve_models"))


@pytest.fixture(scope="session")
def stopper_models(tmp_path_factory):
    """`stopper_models("chatml" | "llama3")`: the tiny model that always answers its end-of-turn token, HF folder
    and f16 GGUF, built on first use and shared by the session (export chat-template and toolchain tests).
    Tests read these files; what they derive (a quantized copy) goes to their own tmp_path."""
    from forge_pipeline_tests.gguf_fixtures import build_stopper_model

    built: dict[str, dict] = {}

    def get(family: str) -> dict:
        if family not in built:
            built[family] = build_stopper_model(tmp_path_factory.mktemp(f"stopper_{family}"), family)
        return built[family]

    return get


@pytest.fixture(scope="session")
def serve_server(serve_models, tmp_path_factory):
    """One real server subprocess (uvicorn) for every module that drives it over HTTP. Tests that swap the
    manifest put v0001 back before they end."""
    from forge_pipeline_tests.gguf_fixtures import write_manifest
    from forge_pipeline_tests.serve_fixtures import start_server, stop
    from forge_pipeline_tests.ui_support import free_port

    root = tmp_path_factory.mktemp("serve_root")
    manifest_path = root / "serve" / "adapter_manifest.json"
    write_manifest(manifest_path, serve_models, "v0001")
    process, client, port, log_path = start_server(
        root,
        {
            "FORGE_SERVE__LOG_SERVED_CHATS": "true",
            "FORGE_SERVE__ADMIN_LOOPBACK_WITHOUT_TOKEN": "true",
            # gguf backend without a file: /v1/embeddings embeds with the served model
            "FORGE_EMBED__BACKEND": "gguf",
            # Nothing listens here: the fine-tune routes must turn that into a clear 502.
            "FORGE_SERVE__DAGSTER_URL": f"http://127.0.0.1:{free_port()}",
        },
    )
    try:
        yield {
            "client": client,
            "root": root,
            "manifest": manifest_path,
            "models": serve_models,
            "port": port,
            "log": log_path,
        }
    finally:
        client.close()
        stop(process)


@pytest.fixture(scope="session")
def serve_dagster(tmp_path_factory):
    """One dagster-webserver for the fine-tuning route tests (test_serve_finetunes.py, test_playground_ui.py):
    the serve stage's real jobs over cheap stand-in assets, location serve_fixtures.DAGSTER_LOCATION."""
    from forge_pipeline_tests.serve_fixtures import dagster_webserver

    with dagster_webserver(tmp_path_factory.mktemp("dagster_home")) as url:
        yield url


@pytest.fixture(scope="session")
def ray_cluster():
    """A real two-node Ray cluster on this machine (a head and one worker node, 1 CPU and a 200 MB object store
    each), joined by this process; shared by the Ray tests and shut down at the end of the session. Skips only
    when Ray is not installed (the optional `ray` extra); CI sets FORGE_REQUIRE_RAY=1, which makes that a failure."""
    try:
        import ray
        from ray.cluster_utils import Cluster
    except ImportError as err:
        if os.environ.get("FORGE_REQUIRE_RAY") == "1":
            raise
        pytest.skip(f"Ray is not installed ({err}): `pip install -e .[ray]` / `make ray-setup`")
    from forge_pipeline_tests.ui_support import free_port

    node = {"num_cpus": 1, "object_store_memory": 200 * 1024**2}
    # The dashboard serves Ray's job submission API (training as a Ray job); loopback only, on a free port.
    head = {**node, "include_dashboard": True, "dashboard_host": "127.0.0.1", "dashboard_port": free_port()}
    cluster = Cluster(initialize_head=True, head_node_args=head)
    try:
        cluster.add_node(**node)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False)
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()
