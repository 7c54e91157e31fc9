"""Ray engine, ratios side by side in one run on a local two-node Ray cluster (head + one worker node):

1. Serving: the same load (N concurrent chat requests) on `forge serve --ray` with 1 and with 2 replicas:
   requests/s, p50/p99; then the swap propagation time (manifest written -> every replica reports the new
   version, from the replicas' own switch times) over --switches switches.
2. Data preparation: presidio analysis of the same messages through Ray Data with 1 and with 2 actors (with
   the actor pool's start-up timed apart), and a paper estimate from the measured steady per-worker rate for a
   10M-message corpus on a 32-worker cluster.

Loopback only, bounded by --requests, --messages and --switches; the cluster is shut down at the end.

    PYTHONPATH=. .venv/bin/python benchmarks/ray_bench.py [--requests 120] [--concurrency 4] [--switches 10]
        [--messages 600] [--cpus-per-node 1] [--json benchmarks/results_ray_bench.json]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DATA = REPO / "forge_pipeline" / "sample_data"
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import httpx  # noqa: E402

MESSAGES = [{"role": "user", "content": "How should I plan a database migration?"}]


def percentiles(values: list[float]) -> dict:
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]  # noqa: E731
    return {"p50_ms": round(pick(0.50) * 1000, 1), "p99_ms": round(pick(0.99) * 1000, 1)}


def serve_load(port: int, requests: int, concurrency: int, max_tokens: int) -> dict:
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
        body = {"messages": MESSAGES, "max_tokens": max_tokens, "temperature": 0}
        client.post("/v1/chat/completions", json=body)  # warm-up

        def one(_):
            started = time.perf_counter()
            response = client.post("/v1/chat/completions", json=body)
            return response.status_code, time.perf_counter() - started, response.headers.get("x-forge-replica")

        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
            results = list(pool.map(one, range(requests)))
        wall = time.perf_counter() - started
    ok = [r for r in results if r[0] == 200]
    return {
        "requests": requests,
        "failed": requests - len(ok),
        "requests_per_s": round(len(ok) / wall, 2),
        **percentiles([r[1] for r in ok]),
        "replicas_answering": len({r[2] for r in ok}),
    }


def bench_serving(args, models, work: Path) -> dict:
    from ray import serve

    from forge_pipeline.runtime.ray_serve import APP_NAME, drop_replica_registry, forge_application
    from forge_pipeline.settings import load_settings
    from forge_pipeline_tests.test_ray_serve import VERSIONS, write_versions
    from forge_pipeline_tests.ui_support import free_port

    settings = load_settings(
        data_root=work / "serve_root",
        serve={"n_ctx": 512, "manifest_poll_s": args.poll_s, "embeddings": False},
        runtime={"engine": "ray", "serve_replica_cpus": args.cpus_per_node},
    )
    settings.paths.ensure()
    write_versions(settings.paths.manifest, models, "v0001")
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    out: dict = {}
    try:
        for replicas in (1, 2):
            serve.run(forge_application(settings, replicas=replicas), name=APP_NAME, route_prefix="/")
            out[f"{replicas}_replica"] = serve_load(port, args.requests, args.concurrency, args.max_tokens)
            print(f"{replicas} replica(s): {out[f'{replicas}_replica']}", flush=True)
        propagation = []
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            for step in range(1, args.switches + 1):
                version = VERSIONS[step % len(VERSIONS)]
                written = time.time()
                write_versions(settings.paths.manifest, models, version)
                while True:
                    replicas = client.get("/health").json()["replicas"] or {}
                    if len(replicas) == 2 and all(r["model_version"] == version for r in replicas.values()):
                        break
                    if time.time() - written > 30:
                        raise RuntimeError(f"replicas not on {version} after 30 s: {replicas}")
                    time.sleep(0.02)
                propagation.append(max(r["since"] for r in replicas.values()) - written)
        out["swap_propagation_s"] = {
            "switches": len(propagation),
            "median": round(statistics.median(propagation), 3),
            "max": round(max(propagation), 3),
            "manifest_poll_s": args.poll_s,
        }
        out["ratio_2_vs_1_replica_rps"] = round(
            out["2_replica"]["requests_per_s"] / out["1_replica"]["requests_per_s"], 2
        )
        print(f"swap propagation: {out['swap_propagation_s']}", flush=True)
    finally:
        serve.shutdown()
        drop_replica_registry()
    return out


def bench_prepare(args) -> dict:
    from forge_pipeline.prepare.config import ScrubSettings
    from forge_pipeline.runtime.config import RuntimeSettings
    from forge_pipeline.runtime.ray_prepare import RayPiiAnalyzer

    texts = []
    for path in sorted((SAMPLE_DATA / "sample_conversations").rglob("*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                texts.extend(m.get("content") or "" for m in json.loads(line).get("messages", []))
            except (json.JSONDecodeError, AttributeError):
                continue
    texts = [t for t in texts if t.strip()]
    # Distinct texts (a number suffix), so no stage can reuse an earlier result.
    corpus = [f"{texts[i % len(texts)]} ({i})" for i in range(args.messages)]
    scrub = ScrubSettings()
    # Each run starts its actor pool (one analyzer load per actor), as every prepare run does. The start-up is
    # timed on its own (a run of one small batch per actor) so the steady per-worker rate, which is what a
    # 10M-message corpus would see, can be told apart from it.
    out: dict = {"messages": len(corpus)}
    for workers in (1, 2):
        runtime = RuntimeSettings(
            engine="ray", ray_workers=workers, ray_worker_cpus=args.cpus_per_node * 0.5, ray_batch_size=32
        )
        analyzer = RayPiiAnalyzer(runtime, scrub.spacy_model, scrub.phone_regions, scrub.address_patterns)
        started = time.perf_counter()
        analyzer.analyze_raw(corpus[: 32 * workers], scrub, True)
        startup = time.perf_counter() - started
        started = time.perf_counter()
        found = analyzer.analyze_raw(corpus, scrub, True)
        wall = time.perf_counter() - started
        steady = len(corpus) / max(wall - startup, 1e-6)
        out[f"{workers}_worker"] = {
            "seconds": round(wall, 2),
            "messages_per_s": round(len(corpus) / wall, 1),
            "pool_startup_s": round(startup, 2),
            "steady_messages_per_s": round(steady, 1),
            "detections": sum(len(d) for d in found),
        }
        print(f"{workers} Ray Data worker(s): {out[f'{workers}_worker']}", flush=True)
    out["ratio_2_vs_1_workers"] = round(out["2_worker"]["messages_per_s"] / out["1_worker"]["messages_per_s"], 2)
    out["ratio_2_vs_1_workers_steady"] = round(
        out["2_worker"]["steady_messages_per_s"] / out["1_worker"]["steady_messages_per_s"], 2
    )
    per_worker = out["1_worker"]["steady_messages_per_s"]  # one actor alone: no sharing of this machine's cores
    out["estimate_10M_messages_32_workers_h"] = round(10_000_000 / (32 * per_worker) / 3600, 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=120)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--switches", type=int, default=10)
    parser.add_argument("--poll-s", type=float, default=0.2)
    parser.add_argument("--messages", type=int, default=600)
    parser.add_argument("--cpus-per-node", type=float, default=1.0)
    parser.add_argument("--skip", choices=["serve", "prepare"], default=None)
    parser.add_argument("--json", type=Path, default=Path(__file__).with_name("results_ray_bench.json"))
    args = parser.parse_args()

    import ray
    from ray.cluster_utils import Cluster

    node = {"num_cpus": args.cpus_per_node, "object_store_memory": 200 * 1024**2}
    cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    results: dict = {"cluster": {"nodes": 2, "cpus_per_node": args.cpus_per_node}, "load_average": os.getloadavg()}
    try:
        cluster.add_node(**node)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False)
        with tempfile.TemporaryDirectory(prefix="forge-ray-bench-") as tmp:
            work = Path(tmp)
            if args.skip != "serve":
                from forge_pipeline_tests.gguf_fixtures import build_serve_models

                results["serving"] = bench_serving(args, build_serve_models(work / "models"), work)
            if args.skip != "prepare":
                results["prepare"] = bench_prepare(args)
    finally:
        ray.shutdown()
        cluster.shutdown()
    results["load_average_after"] = os.getloadavg()
    print(json.dumps(results, indent=2))
    args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
