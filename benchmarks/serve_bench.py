"""Serving benchmarks, loopback only, bounded by request counts / durations and --timeout.

`swaps` (default): N concurrent chat requests while the manifest is switched between two adapter versions
several times, against bare llama-cpp-python on the same GGUFs in the same run. Reports failed requests
(target 0), adapter swap time as measured inside the server (target < 50 ms), and latency p50/p95/p99.

    .venv/bin/python benchmarks/serve_bench.py [--requests 400] [--concurrency 4] [--swaps 20] [--models DIR]

`parallel`: 1, 4 and 16 concurrent clients, each sending chat requests back to back for --duration seconds,
against servers with different `serve.parallel_requests`, all started at once and measured in turns (rounds
interleaved, so machine load hits every variant alike). Reports per variant and client count: total
completion tokens/s, request latency p50/p95, and the server's memory (RSS, and PSS, which counts pages shared
between contexts, such as the mmap'd GGUF, once).

    nice -n 10 .venv/bin/python benchmarks/serve_bench.py parallel [--model smollm2|tiny] [--variants 1 2]
        [--clients 1 4 16] [--duration 20] [--rounds 2] [--max-tokens 32] [--out benchmarks/results_serve_parallel.json]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from forge_pipeline_tests.gguf_fixtures import ServeModels, build_serve_models, write_manifest  # noqa: E402

MESSAGES = [{"role": "user", "content": "How should I plan a database migration?"}]


def percentiles(values: list[float]) -> dict:
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]  # noqa: E731
    return {
        "p50_ms": round(pick(0.50) * 1000, 1),
        "p95_ms": round(pick(0.95) * 1000, 1),
        "p99_ms": round(pick(0.99) * 1000, 1),
        "mean_ms": round(statistics.mean(ordered) * 1000, 1),
    }


def bare(models: ServeModels, requests: int, concurrency: int, max_tokens: int) -> dict:
    """The same requests on bare llama-cpp-python: one Llama per adapter (loaded with lora_path), requests
    alternating between them, serialized by one lock as a single CPU-bound server would be."""
    from llama_cpp import Llama

    llms = {
        version: Llama(model_path=str(models.base_gguf), lora_path=str(adapter), n_ctx=512, verbose=False)
        for version, adapter in zip(("v0001", "v0002"), models.adapters)
    }
    lock = threading.Lock()
    by_version: dict[str, list[float]] = {"v0001": [], "v0002": []}
    for llm in llms.values():  # warm-up, as the server has served /health and loaded before timing starts
        llm.create_chat_completion(messages=MESSAGES, max_tokens=max_tokens, temperature=0.7, seed=1)

    def one(i):
        version = ("v0001", "v0002")[i % 2]
        started = time.perf_counter()
        with lock:
            llms[version].create_chat_completion(messages=MESSAGES, max_tokens=max_tokens, temperature=0.7, seed=1)
        latency = time.perf_counter() - started
        by_version[version].append(latency)
        return latency

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        latencies = list(pool.map(one, range(requests)))
    wall = time.perf_counter() - started
    for llm in llms.values():
        llm.close()
    return {
        "requests": requests,
        "failed": 0,
        "wall_s": round(wall, 2),
        "req_per_s": round(requests / wall, 1),
        **percentiles(latencies),
        "by_version": {v: percentiles(lat) for v, lat in by_version.items() if lat},
    }


def served(
    models: ServeModels,
    root: Path,
    requests: int,
    concurrency: int,
    swaps: int,
    max_tokens: int,
    timeout: float,
    swap_every_s: float,
) -> dict:
    manifest = root / "serve" / "adapter_manifest.json"
    write_manifest(manifest, models, "v0001")
    process, client = _start_server(
        root, {"FORGE_SERVE__N_CTX": "512", "FORGE_SERVE__MANIFEST_POLL_S": "0.05"}, timeout=timeout
    )
    try:
        client.post("/v1/chat/completions", json={"messages": MESSAGES, "max_tokens": max_tokens})  # warm-up
        failures: list[str] = []
        versions: dict[str, int] = {}
        by_version: dict[str, list[float]] = {}

        def one(_):
            started = time.perf_counter()
            try:
                response = client.post(
                    "/v1/chat/completions",
                    json={"messages": MESSAGES, "max_tokens": max_tokens, "temperature": 0.7, "seed": 1},
                )
                if response.status_code != 200:
                    failures.append(f"HTTP {response.status_code}: {response.text[:200]}")
                else:
                    version = response.headers["x-forge-model-version"]
                    versions[version] = versions.get(version, 0) + 1
                    by_version.setdefault(version, []).append(time.perf_counter() - started)
            except httpx.HTTPError as err:
                failures.append(f"{type(err).__name__}: {err}")
            finished.append(time.perf_counter())
            return time.perf_counter() - started

        finished: list[float] = []
        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
            futures = [pool.submit(one, i) for i in range(requests)]
            switches = 0
            # Switch while traffic flows (at most --swaps times), not on a fixed clock that may outlast it.
            while switches < swaps and not all(f.done() for f in futures):
                time.sleep(swap_every_s)
                write_manifest(manifest, models, ("v0002", "v0001")[switches % 2])
                switches += 1
            latencies = [f.result() for f in futures]
        wall = max(finished) - started  # not the swap loop's length
        time.sleep(0.5)  # let the watcher pick up the last switch
        health = client.get("/health").json()
        swap_ms = health["adapter_swap_ms"]
        return {
            "requests": requests,
            "failed": len(failures),
            "failures": failures[:5],
            "wall_s": round(wall, 2),
            "req_per_s": round(requests / wall, 1),
            "responses_by_version": versions,
            "manifest_switches": switches,
            "adapter_swaps_seen": len(swap_ms),
            "swap_ms_max": max(swap_ms) if swap_ms else None,
            "swap_ms_median": statistics.median(swap_ms) if swap_ms else None,
            "swap_ms_p95": swap_ms[min(len(swap_ms) - 1, int(0.95 * len(swap_ms)))] if swap_ms else None,
            "swap_wait_for_inflight_ms_max": max(health["swap_waited_for_requests_ms"], default=None),
            **percentiles(latencies),
            "by_version": {v: percentiles(lat) for v, lat in sorted(by_version.items())},
        }
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=20)


PROMPTS = [
    "How should I plan a database migration?",
    "Summarize what a weekly review should cover.",
    "What is a good way to name notes in a vault?",
    "Explain read replicas to a new team lead.",
]


def _start_server(
    root: Path, manifest_env: dict[str, str], timeout: float = 300
) -> tuple[subprocess.Popen, httpx.Client]:
    """A uvicorn server on the Forge app over `root` (a free loopback port), once /health answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "FORGE_DATA_ROOT": str(root), **manifest_env}
    log = open(root / f"server-{port}.log", "wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "forge_pipeline.serve.app:app_from_env",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=timeout)
    deadline = time.time() + 120
    while True:
        try:
            if client.get("/health").status_code == 200:
                return process, client
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.time() > deadline:
            process.kill()
            raise RuntimeError((root / f"server-{port}.log").read_text()[-2000:])
        time.sleep(0.3)


def _memory_mb(pid: int) -> dict:
    import psutil

    info = psutil.Process(pid).memory_full_info()
    return {"rss_mb": round(info.rss / 2**20, 1), "pss_mb": round(info.pss / 2**20, 1)}


def _load(client: httpx.Client, pid: int, clients: int, duration: float, max_tokens: int) -> dict:
    """`clients` threads sending chat requests back to back for `duration` s; memory sampled meanwhile."""
    latencies: list[float] = []
    tokens, failures = [0], []
    peak = {"rss_mb": 0.0, "pss_mb": 0.0}
    stop_at = time.perf_counter() + duration
    sampling = threading.Event()

    def sample_memory():
        while not sampling.wait(0.5):
            now = _memory_mb(pid)
            for key in peak:
                peak[key] = max(peak[key], now[key])

    def one_client(index: int):
        count = 0
        while time.perf_counter() < stop_at:
            count += 1
            body = {
                "messages": [{"role": "user", "content": PROMPTS[(index + count) % len(PROMPTS)]}],
                "max_tokens": max_tokens,
                "temperature": 0.7,
                "seed": index * 1000 + count,
            }
            started = time.perf_counter()
            try:
                response = client.post("/v1/chat/completions", json=body)
            except httpx.HTTPError as err:
                failures.append(f"{type(err).__name__}: {err}")
                continue
            if response.status_code != 200:
                failures.append(f"HTTP {response.status_code}: {response.text[:200]}")
                continue
            latencies.append(time.perf_counter() - started)
            tokens[0] += response.json()["usage"]["completion_tokens"]

    sampler = threading.Thread(target=sample_memory, daemon=True)
    sampler.start()
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        list(pool.map(one_client, range(clients)))
    wall = time.perf_counter() - started
    sampling.set()
    sampler.join()
    return {
        "clients": clients,
        "requests": len(latencies),
        "failed": len(failures),
        "failures": failures[:3],
        "wall_s": round(wall, 2),
        "completion_tokens": tokens[0],
        "tokens_per_s": round(tokens[0] / wall, 1),
        **(percentiles(latencies) if latencies else {}),
        "peak_memory": peak,
    }


def parallel_bench(args) -> dict:
    """Servers with each `--variants` value of serve.parallel_requests, measured in interleaved rounds."""
    import multiprocessing

    from forge_pipeline.atomic import write_json_atomic
    from forge_pipeline.export.manifest import describe_file, empty_manifest

    with tempfile.TemporaryDirectory(prefix="forge_serve_parallel_") as tmp:
        if args.model == "smollm2":
            from forge_pipeline.train.base_models import DEFAULT_BASE_MODEL, PACKAGED, packaged_gguf_path

            gguf = packaged_gguf_path(PACKAGED[DEFAULT_BASE_MODEL])
            model_name = PACKAGED[DEFAULT_BASE_MODEL].filename
        else:
            gguf = build_serve_models(Path(tmp) / "models").base_gguf
            model_name = "tiny random Llama (tests' fixture), f16"
        servers = {}
        try:
            for variant in args.variants:
                root = Path(tmp) / f"root-{variant}"
                manifest_path = root / "serve" / "adapter_manifest.json"
                manifest = empty_manifest()
                manifest["versions"]["v0001"] = {
                    "version": "v0001",
                    "files": {
                        "merged_gguf": describe_file(gguf, manifest_path),
                        "base_gguf": None,
                        "adapter_gguf": None,
                    },
                }
                manifest["current"] = "v0001"
                write_json_atomic(manifest_path, manifest)
                process, client = _start_server(
                    root,
                    {
                        "FORGE_SERVE__N_CTX": str(args.n_ctx),
                        "FORGE_SERVE__EMBEDDINGS": "false",
                        "FORGE_SERVE__PARALLEL_REQUESTS": str(variant),
                    },
                )
                client.post(
                    "/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
                )
                servers[variant] = (process, client, _memory_mb(process.pid))
            runs: dict[str, list[dict]] = {}
            for round_index in range(args.rounds):
                for clients in args.clients:
                    for variant in args.variants:
                        process, client, _ = servers[variant]
                        result = _load(client, process.pid, clients, args.duration, args.max_tokens)
                        result["round"] = round_index
                        runs.setdefault(f"parallel_requests={variant}", []).append(result)
                        print(
                            f"round {round_index} parallel={variant} clients={clients}: {result['tokens_per_s']} tok/s",
                            file=sys.stderr,
                        )
            summary = {}
            for variant in args.variants:
                key = f"parallel_requests={variant}"
                per_clients = {}
                for clients in args.clients:
                    rows = [r for r in runs[key] if r["clients"] == clients]
                    per_clients[str(clients)] = {
                        "tokens_per_s_median": statistics.median(r["tokens_per_s"] for r in rows),
                        "tokens_per_s_rounds": [r["tokens_per_s"] for r in rows],
                        "p50_ms_median": statistics.median(r.get("p50_ms", 0) for r in rows),
                        "p95_ms_median": statistics.median(r.get("p95_ms", 0) for r in rows),
                        "failed": sum(r["failed"] for r in rows),
                        "peak_rss_mb": max(r["peak_memory"]["rss_mb"] for r in rows),
                        "peak_pss_mb": max(r["peak_memory"]["pss_mb"] for r in rows),
                    }
                one = per_clients[str(args.clients[0])]["tokens_per_s_median"]
                for row in per_clients.values():
                    row["tokens_per_s_vs_fewest_clients"] = round(row["tokens_per_s_median"] / one, 2) if one else None
                summary[key] = {"idle_memory": servers[variant][2], "by_clients": per_clients}
        finally:
            for process, client, _ in servers.values():
                client.close()
                process.terminate()
                process.wait(timeout=30)
    with open("/proc/loadavg") as handle:
        load = handle.read().split()[:3]
    return {
        "what": "chat completions back to back from N concurrent loopback clients for a fixed duration",
        "model": model_name,
        "max_tokens": args.max_tokens,
        "n_ctx": args.n_ctx,
        "duration_s": args.duration,
        "rounds": args.rounds,
        "cpu_count": multiprocessing.cpu_count(),
        "load_average_at_end": load,
        "summary": summary,
        "runs": runs,
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "parallel":
        parser = argparse.ArgumentParser(description="parallel decoding: 1 vs 4 vs 16 clients")
        parser.add_argument("mode")
        parser.add_argument("--model", choices=("smollm2", "tiny"), default="smollm2")
        parser.add_argument("--variants", type=int, nargs="+", default=[1, 2])
        parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
        parser.add_argument("--duration", type=float, default=20.0)
        parser.add_argument("--rounds", type=int, default=2)
        parser.add_argument("--max-tokens", type=int, default=32)
        parser.add_argument("--n-ctx", type=int, default=1024)
        parser.add_argument("--out", type=Path, default=None)
        args = parser.parse_args()
        report = parallel_bench(args)
        text = json.dumps(report, indent=2)
        if args.out:
            args.out.write_text(text + "\n")
        print(json.dumps(report["summary"], indent=2))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--swaps", type=int, default=20, help="At most this many manifest switches.")
    parser.add_argument("--swap-every", type=float, default=0.1, help="Seconds between manifest switches.")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--models", type=Path, default=None, help="Reuse a folder made by an earlier run.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="forge_serve_bench_") as tmp:
        work = args.models or Path(tmp) / "models"
        ready = (work / "base-f16.gguf").exists() and (work / "adapter2.gguf").exists()
        models = (
            ServeModels(work / "base-f16.gguf", (work / "adapter1.gguf", work / "adapter2.gguf"))
            if ready
            else build_serve_models(work)
        )
        root = Path(tmp) / "root"
        report = {
            "bare_llama_cpp": bare(models, args.requests, args.concurrency, args.max_tokens),
            "forge_serve_with_swaps": served(
                models,
                root,
                args.requests,
                args.concurrency,
                args.swaps,
                args.max_tokens,
                args.timeout,
                args.swap_every,
            ),
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
