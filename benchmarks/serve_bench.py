"""Serving under hot-swaps: N concurrent chat requests while the manifest is switched between two adapter
versions several times, against bare llama-cpp-python on the same GGUFs in the same run.

Loopback only, bounded by --requests and --timeout. Reports failed requests (target 0), adapter swap time
as measured inside the server (target < 50 ms), and latency p50/p95/p99 for both.

    .venv/bin/python benchmarks/serve_bench.py [--requests 400] [--concurrency 4] [--swaps 20] [--models DIR]
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
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "FORGE_DATA_ROOT": str(root),
        "FORGE_SERVE__N_CTX": "512",
        "FORGE_SERVE__MANIFEST_POLL_S": "0.05",
    }
    log = open(root / "server.log", "wb")
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
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=timeout)
    try:
        deadline = time.time() + 60
        while True:
            try:
                if client.get("/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.time() > deadline:
                raise RuntimeError((root / "server.log").read_text()[-2000:])
            time.sleep(0.2)
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
        log.close()


def main() -> None:
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
