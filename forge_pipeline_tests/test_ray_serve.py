"""`forge serve --ray`: the Forge app as Ray Serve replicas on a real two-node Ray cluster (conftest.ray_cluster),
on the tiny GGUF base with two real LoRA adapters, driven by the official `openai` SDK while the manifest
switches its current version."""

from __future__ import annotations

import concurrent.futures
import threading
import time

import httpx
import openai
import pytest

from forge_pipeline_tests.ui_support import free_port

pytestmark = [pytest.mark.ray, pytest.mark.slow]
# Four version names over the two adapters: a label that is wrong for the moment shows even when the text is right.
VERSIONS = ("v0001", "v0002", "v0003", "v0004")
SWITCHES = 20
POLL_S = 0.2
# The stated bound for a new `current` to reach every replica: one manifest poll plus the adapter swap (under a
# millisecond), with 2 s of slack for a 2-core CI machine under the whole suite's load.
PROPAGATION_BOUND_S = POLL_S + 2.0
# A label is checked against the replica's own switch times; a response can finish a moment before its
# replica records the switch it was served after.
RECORD_SLACK_S = 0.5
ASK = [{"role": "user", "content": "How should I plan a migration?"}]


def write_versions(manifest_path, models, current: str) -> None:
    """VERSIONS on one base: odd versions use adapter 1, even ones adapter 2."""
    from forge_pipeline.atomic import write_json_atomic
    from forge_pipeline.export.manifest import describe_file, empty_manifest

    manifest = empty_manifest()
    for index, version in enumerate(VERSIONS):
        manifest["versions"][version] = {
            "version": version,
            "created_at": "2026-01-01T00:00:00Z",
            "promoted": True,
            "dataset_version": "test",
            "mlflow_run_id": None,
            "base_model": {"name": "tiny-test-llama", "is_demo_model": True},
            "files": {
                "base_gguf": describe_file(models.base_gguf, manifest_path),
                "adapter_gguf": describe_file(models.adapters[index % 2], manifest_path),
                "merged_gguf": None,
            },
        }
    manifest["current"] = current
    manifest["history"] = [current]
    write_json_atomic(manifest_path, manifest)


@pytest.fixture(scope="module")
def ray_forge(ray_cluster, serve_models, tmp_path_factory):
    from ray import serve

    from forge_pipeline.runtime.ray_serve import APP_NAME, drop_replica_registry, forge_application
    from forge_pipeline.settings import load_settings

    root = tmp_path_factory.mktemp("ray_serve_root")
    settings = load_settings(
        data_root=root,
        serve={"n_ctx": 512, "manifest_poll_s": POLL_S, "embeddings": False},
        # One CPU per replica on two one-CPU nodes: Ray must place the two replicas on different nodes.
        runtime={"engine": "ray", "serve_replica_cpus": 1},
    )
    settings.paths.ensure()
    write_versions(settings.paths.manifest, serve_models, "v0001")
    port = free_port()  # not Serve's default 8000, which another process on the machine may hold
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        serve.run(forge_application(settings, replicas=2), name=APP_NAME, route_prefix="/")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield {"client": client, "port": port, "manifest": settings.paths.manifest, "models": serve_models}
    finally:
        serve.shutdown()
        drop_replica_registry()


def _replicas(client) -> dict[str, dict]:
    return client.get("/health").json()["replicas"] or {}


def _wait_all_on(client, version: str, timeout: float) -> dict[str, dict]:
    """Both replicas' reports once both serve `version`; fails after `timeout`."""
    started = time.perf_counter()
    while True:
        replicas = _replicas(client)
        if len(replicas) == 2 and all(r["model_version"] == version for r in replicas.values()):
            return replicas
        if time.perf_counter() - started > timeout:
            raise AssertionError(f"replicas not all on {version} after {timeout} s: {replicas}")
        time.sleep(0.02)


def test_two_replicas_serve_and_health_reports_each_replicas_version(ray_forge):
    client = ray_forge["client"]
    _wait_all_on(client, "v0001", timeout=60)
    health = client.get("/health")
    assert health.status_code == 200
    report = health.json()
    assert report["model_version"] == "v0001" and report["replica"] == health.headers["x-forge-replica"]
    assert set(report["replicas"]) and all(r["status"] == "ok" for r in report["replicas"].values())

    # Serve's proxy prefers the replica on its own node until that one holds serve_max_ongoing_requests
    # (2): concurrent requests spill over to the other node's replica.
    def one(_):
        response = client.post("/v1/completions", json={"prompt": "The plan", "max_tokens": 4, "temperature": 0})
        assert response.status_code == 200 and response.headers["x-forge-model-version"] == "v0001"
        return response.headers["x-forge-replica"]

    seen = set()
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        for _ in range(5):
            seen |= set(pool.map(one, range(12)))
            if len(seen) == 2:
                break
    assert seen == set(report["replicas"])


def test_sdk_requests_during_20_manifest_switches_never_fail_or_mislabel(ray_forge):
    client, manifest, models = ray_forge["client"], ray_forge["manifest"], ray_forge["models"]
    _wait_all_on(client, "v0001", timeout=60)
    sdk = openai.OpenAI(
        base_url=f"http://127.0.0.1:{ray_forge['port']}/v1", api_key="unused", max_retries=0, timeout=60
    )

    def ask(model: str):
        raw = sdk.chat.completions.with_raw_response.create(model=model, messages=ASK, max_tokens=8, temperature=0)
        return raw.headers, raw.parse()

    # The greedy reply of each adapter (versions named explicitly, so no switch is involved yet).
    expected = {version: ask(version)[1].choices[0].message.content for version in VERSIONS}
    assert expected["v0001"] == expected["v0003"] != expected["v0002"] == expected["v0004"]

    timeline = [(float("-inf"), "v0001")]  # (when the manifest was written, its current version)
    results, failures, stop = [], [], threading.Event()

    def load() -> None:
        while not stop.is_set():
            started = time.time()
            try:
                headers, completion = ask("forge")
            except Exception as err:  # every failure is counted, none retried
                failures.append(repr(err))
                continue
            results.append(
                (
                    started,
                    time.time(),
                    completion.model,
                    headers["x-forge-replica"],
                    completion.choices[0].message.content,
                )
            )

    clients = [threading.Thread(target=load) for _ in range(4)]  # more than one replica holds
    for thread in clients:
        thread.start()
    # Per replica: (when it switched, to which version), from the replica's own report.
    held = {replica: [(float("-inf"), "v0001")] for replica in _replicas(client)}
    propagation = []
    try:
        for step in range(1, SWITCHES + 1):
            version = VERSIONS[step % len(VERSIONS)]
            written = time.time()
            timeline.append((written, version))
            write_versions(manifest, models, version)
            reports = _wait_all_on(client, version, timeout=30)
            for replica, report in reports.items():
                held[replica].append((report["since"], version))
            propagation.append(max(r["since"] for r in reports.values()) - written)
            time.sleep(0.5)  # requests in the steady state after the switch
    finally:
        stop.set()
        for thread in clients:
            thread.join(timeout=120)
        sdk.close()
    print(
        f"\n{len(results)} requests, propagation to both replicas: max {max(propagation):.3f} s, "
        f"median {sorted(propagation)[len(propagation) // 2]:.3f} s"
    )
    assert not failures, failures[:5]
    assert len(results) >= SWITCHES and {r[3] for r in results} == set(_replicas(client))
    assert max(propagation) <= PROPAGATION_BOUND_S

    def during(changes: list[tuple[float, str]], start: float, end: float) -> set[str]:
        """Versions in effect at some moment in [start, end], given (since, version) changes."""
        return {
            version
            for i, (since, version) in enumerate(changes)
            if since <= end and (changes[i + 1][0] if i + 1 < len(changes) else float("inf")) >= start
        }

    # Current in the manifest at the time (allowing the stated propagation bound) ...
    mislabelled = [r for r in results if r[2] not in during(timeline, r[0] - PROPAGATION_BOUND_S, r[1])]
    assert not mislabelled, mislabelled[:5]
    # ... and, tighter, the version the answering replica itself was serving while the request ran.
    off_replica = [r for r in results if r[2] not in during(held[r[3]], r[0] - RECORD_SLACK_S, r[1] + RECORD_SLACK_S)]
    assert not off_replica, off_replica[:5]
    # The label is the version that produced the text: its adapter's greedy reply.
    wrong_text = [r for r in results if r[4] != expected[r[2]]]
    assert not wrong_text, wrong_text[:5]
    assert {r[2] for r in results} == set(VERSIONS)
    write_versions(manifest, models, "v0001")
    _wait_all_on(client, "v0001", timeout=30)
