"""OpenMP's wait policy on the suite's kind of CPU work: default (spin, then sleep) vs OMP_WAIT_POLICY=PASSIVE.

Each side runs in its own child process (the policy is read when torch's OpenMP runtime loads), alternately, on the
same tiny Llama + random LoRA that the tests use: transformers `generate` through the evaluation's own
`generate_batch` (8 chat prompts x 128 new tokens, adapter off and on), and, with --gguf, llama-cpp-python through
`verify.generation_check`. Reported: wall and CPU seconds per side and the default/passive ratio. The effect depends
on how busy the cores are: run it beside the work you care about (the suite runs several processes at once).

    PYTHONPATH=. HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/omp_wait_bench.py --gguf path/to/model.gguf
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROMPTS = [
    [{"role": "user", "content": f"How did week {i} go? What is on your mind about the migration?"}] for i in range(8)
]


def child(model_dir: str, adapter_dir: str, gguf: str | None) -> dict:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from forge_pipeline.export.evaluate import generate_batch

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, adapter_dir).eval()
    figures = {"torch_threads": torch.get_num_threads()}

    def timed(name, fn):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        figures[name] = {"wall_s": round(time.perf_counter() - wall, 2), "cpu_s": round(time.process_time() - cpu, 2)}

    def base_side():
        with model.disable_adapter():
            generate_batch(model, tokenizer, PROMPTS, 128)

    timed("generate_base", base_side)
    timed("generate_tuned", lambda: generate_batch(model, tokenizer, PROMPTS, 128))
    if gguf:
        from forge_pipeline.export import verify

        timed("llama_cpp_generation_check", lambda: verify.generation_check(Path(gguf), PROMPTS[:6], max_tokens=64))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gguf", help="a GGUF to time llama-cpp-python on (e.g. a `forge demo` merged-q4_k_m.gguf)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=str(HERE / "results_omp_wait.json"))
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child[:2], args.child[2] or None)))
        return

    from forge_pipeline_tests.model_fixtures import build_random_lora_adapter, build_tiny_llama_for_tests

    with tempfile.TemporaryDirectory() as work:
        model_dir = build_tiny_llama_for_tests(Path(work) / "base")
        adapter_dir = build_random_lora_adapter(model_dir, Path(work) / "adapter")
        runs: dict[str, list[dict]] = {"default": [], "passive": []}
        for _ in range(args.repeats):
            for side in runs:  # alternately, so both sides see the same load
                env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
                if side == "passive":
                    env["OMP_WAIT_POLICY"] = "PASSIVE"
                command = [sys.executable, __file__, "--child", str(model_dir), str(adapter_dir), args.gguf or ""]
                done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
                runs[side].append(json.loads(done.stdout.strip().splitlines()[-1]))
    steps = [k for k in runs["default"][0] if k != "torch_threads"]
    summary = {
        step: {
            side: {m: round(sum(r[step][m] for r in runs[side]) / len(runs[side]), 2) for m in ("wall_s", "cpu_s")}
            for side in runs
        }
        for step in steps
    }
    for figures in summary.values():
        figures["default_over_passive_wall"] = round(figures["default"]["wall_s"] / figures["passive"]["wall_s"], 1)
    result = {
        "machine": {"cpus": os.cpu_count(), "load_average_at_end": os.getloadavg()},
        "summary": summary,
        "runs": runs,
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
