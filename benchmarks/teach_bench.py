"""From a correction to the served model: how long until what a person taught answers their questions.

On a data root where `forge demo` has run (a promoted version serving, with the sample data), this starts the
real stack on loopback: `dagster dev` (webserver + daemon, the data root's DAGSTER_HOME) and `forge serve`. Then,
as the playground does it through the same HTTP API:

1. asks a question and keeps the served answer (greedy);
2. posts a correction of that answer (`POST /v1/interactions` with `corrected_reply`);
3. presses "Train now": `POST /v1/fine_tuning/jobs` with model `current` (the serving version is taught what is
   new since its dataset version: train.continue_from, train/teach.py);
4. follows the job to its end and `/health` to the hot-swap, and asks the question again.

It reports the seconds from the correction to the new version serving (target: under 600 on a 2-core CPU), each
Dagster step's seconds, the taught run's examples, the gate's decision, and the answers before and after beside the
correction. Each round teaches one correction on top of the version the previous round served (`--rounds`). With `--compare-full` it then starts a full retrain from the base (model `forge`) on the same data in
the same run and reports the ratio.

    .venv/bin/forge demo                                     # once, on FORGE_DATA_ROOT (or the default root)
    .venv/bin/python benchmarks/teach_bench.py --data-root .forge_data [--rounds 2] [--compare-full]
        [--timeout 1800] [--out benchmarks/results_teach_bench.json]

Bounded: every wait has a deadline (--timeout), and both servers are stopped at the end, also on failure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
DAGSTER_YAML = REPO / "dagster.yaml"
# (question, the person's correction of the served answer), one per round.
TEACHINGS = [
    (
        "How often should I feed my sourdough starter?",
        "Twice a day at room temperature: discard half, then feed equal weights of flour and water.",
    ),
    (
        "What do I do before a database migration?",
        "Write the rollback step first and rehearse it on a copy of production before touching the real thing.",
    ),
]
FINAL = ("succeeded", "failed", "cancelled")
TOKEN = "teach-bench"  # the admin token the fine-tuning routes need (the playground asks a person for it)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(command: list[str], env: dict, log_path: Path) -> subprocess.Popen:
    with open(log_path, "wb") as log:
        # A session of its own, so stopping it stops `dagster dev`'s children (webserver, daemon, runs) too.
        return subprocess.Popen(
            command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, 15)
        process.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(process.pid, 9)
        process.wait(timeout=10)


def wait_for(url: str, process: subprocess.Popen, log_path: Path, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            break
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer; the end of {log_path}:\n{log_path.read_text()[-3000:]}")


def ask(client: httpx.Client, question: str) -> tuple[str, str, str]:
    """(answer, response id, version that answered) of the question, greedy as the evaluation decodes."""
    body = {"model": "forge", "messages": [{"role": "user", "content": question}], "temperature": 0, "max_tokens": 64}
    reply = client.post("/v1/chat/completions", json=body)
    reply.raise_for_status()
    data = reply.json()
    return data["choices"][0]["message"]["content"], data["id"], data["model"]


def words(text: str) -> set[str]:
    return {w.strip(".,:;!?").lower() for w in text.split() if len(w.strip(".,:;!?")) > 3}


def step_seconds(events: list[dict]) -> dict[str, float]:
    """Each Dagster step's seconds, from the job's events (STEP_START to STEP_SUCCESS/STEP_FAILURE)."""
    started, seconds = {}, {}
    for event in sorted(events, key=lambda e: e["created_at"]):
        data = event.get("data") or {}
        step, kind = data.get("step"), data.get("dagster_event")
        if kind == "STEP_START":
            started[step] = event["created_at"]
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE") and step in started:
            seconds[step] = event["created_at"] - started[step]
    return seconds


def all_events(client: httpx.Client, job_id: str) -> list[dict]:
    """Every event of the job, through OpenAI's cursor pages (at most 100 each)."""
    events, after = [], None
    for _ in range(1000):  # bounded: 100,000 events
        params = {"limit": 100, **({"after": after} if after else {})}
        page = client.get(f"/v1/fine_tuning/jobs/{job_id}/events", params=params).json()
        events += page["data"]
        if not page["has_more"]:
            break
        after = page["last_id"]
    return events


def run_job(client: httpx.Client, model: str, timeout: float) -> dict:
    """Launch a fine-tuning job and follow it to its end and, when it published a promoted version, to the swap."""
    started = time.time()
    job = client.post("/v1/fine_tuning/jobs", json={"model": model, "suffix": "teach-bench"})
    job.raise_for_status()
    job = job.json()
    deadline = started + timeout
    last_line = ""
    while job["status"] not in FINAL:
        if time.time() > deadline:
            client.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel")
            raise RuntimeError(f"job {job['id']} still {job['status']} after {timeout} s")
        time.sleep(3)
        job = client.get(f"/v1/fine_tuning/jobs/{job['id']}").json()
        events = client.get(f"/v1/fine_tuning/jobs/{job['id']}/events", params={"limit": 1}).json()["data"]
        line = events[0]["message"] if events else ""
        if line != last_line and (line.startswith("step ") or "STEP_START" in json.dumps(events[0].get("data", {}))):
            print(f"  {time.time() - started:6.0f} s  {line[:100]}", flush=True)
            last_line = line
    finished = time.time()
    events = all_events(client, job["id"])
    version, served_at = job.get("fine_tuned_model"), None
    while version and time.time() < deadline:
        if client.get("/health").json().get("model_version") == version:
            served_at = time.time()
            break
        time.sleep(0.5)
    return {
        "job": job["id"],
        "model": model,
        "status": job["status"],
        "error": job.get("error"),
        "version": version,
        "trained_tokens": job.get("trained_tokens"),
        "job_seconds": round(finished - started, 1),
        "served_seconds": round(served_at - started, 1) if served_at else None,
        "served_at": served_at,
        "steps": {k: round(v, 1) for k, v in step_seconds(events).items()},
        "training_line": next((e["message"] for e in events if e["message"].startswith("step ")), None),
    }


def share_of_words(answer: str, correction: str) -> float:
    """The share of the correction's words (over 3 letters) that the answer carries."""
    return round(len(words(answer) & words(correction)) / max(len(words(correction)), 1), 3)


def teach_round(client: httpx.Client, data_root: Path, question: str, correction: str, timeout: float) -> dict:
    """Ask, correct the answer, Train now, follow it to the swap, ask again."""
    before, response_id, served_version = ask(client, question)
    print(f"{served_version} answers: {before[:120]!r}", flush=True)
    corrected_at = time.time()
    recorded = client.post(
        "/v1/interactions",
        json={
            "messages": [{"role": "user", "content": question}, {"role": "assistant", "content": before}],
            "corrected_reply": correction,
            "response_id": response_id,
        },
    )
    recorded.raise_for_status()
    print("correction recorded; Train now (model 'current')", flush=True)
    taught = run_job(client, "current", timeout)
    served_at = taught.pop("served_at")
    taught["correction_to_served_seconds"] = round(served_at - corrected_at, 1) if served_at else None
    # What the run trained on: the lora_adapter asset's value (tables/lora_adapter.json) names the version it
    # continued and the new and replayed examples.
    taught["continued_from"] = json.loads((data_root / "tables" / "lora_adapter.json").read_text()).get(
        "continued_from"
    )
    print(json.dumps(taught, indent=1), flush=True)
    after, _, after_version = ask(client, question)
    return {
        "question": question,
        "correction": correction,
        "before": {"version": served_version, "answer": before, "correction_words": share_of_words(before, correction)},
        "taught": taught,
        "after": {"version": after_version, "answer": after, "correction_words": share_of_words(after, correction)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, required=True, help="A data root where `forge demo` has run.")
    parser.add_argument("--compare-full", action="store_true", help="Also time a full retrain from the base.")
    parser.add_argument("--rounds", type=int, default=2, help="Corrections taught one after the other (at most 2).")
    parser.add_argument("--first", type=int, default=0, help="Index of the first correction (0 or 1).")
    parser.add_argument("--timeout", type=float, default=1800.0, help="Seconds any one job may take.")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results_teach_bench.json"))
    args = parser.parse_args()
    root = args.data_root.resolve()
    manifest = json.loads((root / "serve" / "adapter_manifest.json").read_text())
    if not manifest.get("current"):
        sys.exit(f"{root}: no version serves yet; run `forge demo` on this data root first")

    home = root / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").is_file():
        shutil.copy(DAGSTER_YAML, home / "dagster.yaml")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "FORGE_DATA_ROOT": str(root), "DAGSTER_HOME": str(home)}
    dagster_port, serve_port = free_port(), free_port()
    dagster_url = f"http://127.0.0.1:{dagster_port}"
    logs = root / "logs"
    logs.mkdir(exist_ok=True)
    dagster = start(
        [
            str(Path(sys.executable).with_name("dagster")),
            "dev",
            "-w",
            str(REPO / "workspace.yaml"),
            "-h",
            "127.0.0.1",
            "-p",
            str(dagster_port),
        ],
        env,
        logs / "teach-bench-dagster.log",
    )
    serve = None
    try:
        wait_for(f"{dagster_url}/server_info", dagster, logs / "teach-bench-dagster.log", 300)
        serve = start(
            [sys.executable, "-m", "forge_pipeline.cli", "serve", "--port", str(serve_port)],
            {**env, "FORGE_SERVE__DAGSTER_URL": dagster_url, "FORGE_SERVE__ADMIN_TOKEN": TOKEN},
            logs / "teach-bench-serve.log",
        )
        wait_for(f"http://127.0.0.1:{serve_port}/health", serve, logs / "teach-bench-serve.log", 300)
        client = httpx.Client(
            base_url=f"http://127.0.0.1:{serve_port}", timeout=300, headers={"authorization": f"Bearer {TOKEN}"}
        )
        result = {
            "benchmark": "teach_bench",
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
            "data_root_versions_before": sorted(manifest["versions"]),
            "rounds": [
                teach_round(client, root, *TEACHINGS[i], args.timeout)
                for i in range(args.first, args.first + args.rounds)
            ],
        }
        if args.compare_full:
            print("full retrain from the base (model 'forge') on the same data", flush=True)
            full = run_job(client, "forge", args.timeout)
            full.pop("served_at")
            result["full_retrain"] = full
            taught = result["rounds"][0]["taught"]
            if full["job_seconds"] and taught["job_seconds"]:
                result["taught_vs_full_job_time"] = round(taught["job_seconds"] / full["job_seconds"], 3)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
    finally:
        if serve is not None:
            stop(serve)
        stop(dagster)


if __name__ == "__main__":
    main()
