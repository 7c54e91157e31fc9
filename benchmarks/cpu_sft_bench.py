"""Forge's CPU LoRA recipe vs the plain trl SFTTrainer recipe, side by side in one run, on SmolLM2-135M-Instruct.

    PYTHONPATH=. HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/cpu_sft_bench.py [--examples 32] [--epochs 1]
        [--dataset-dir <catalog version folder>] [--recipes plain,nogc,forge,packed,packed_bf16] [--out results.json]

Every recipe trains the same LoRA (r=16, q/k/v/o, lr 2e-4, max length 512; batch per recipe) on the same pre-tokenized
examples (assistant-only labels from the model's own chat template), one epoch, each in its own process so
its peak RSS is its own. Reported per recipe: real (non-padding) tokens per second of training, peak RSS,
final training loss and the held-out loss of the adapter (same evaluation code for all).

Recipes (the levers, measured rather than assumed):
- plain:      trl defaults (padded batches, gradient checkpointing on) in fp32 (`bf16=False`)
- nogc:       plain without gradient checkpointing (isolates that lever)
- forge:      Forge's CPU defaults: batch 1 (no padding to compute, 4x the optimizer steps), no gradient
              checkpointing, fp32
- packed:     padding-free packing (bfd, position ids keep examples apart) in batches of 4, no gradient
              checkpointing, fp32
- packed_bf16: as packed, with bf16 autocast on the CPU (AVX512-BF16/AMX where the CPU has them)

Data: a catalog version folder (train.jsonl/validation.jsonl) if given, else the newest version under
<data root>/catalog, else the sample conversations (forge_pipeline/sample_data/sample_conversations/chats.jsonl), split 80/20.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DATA = REPO / "forge_pipeline" / "sample_data"
RECIPES = {
    "plain": {"packing": False, "gradient_checkpointing": True, "bf16": False, "batch": 4},
    "nogc": {"packing": False, "gradient_checkpointing": False, "bf16": False, "batch": 4},
    "forge": {"packing": False, "gradient_checkpointing": False, "bf16": False, "batch": 1},
    "packed": {"packing": True, "gradient_checkpointing": False, "bf16": False, "batch": 4},
    "packed_bf16": {"packing": True, "gradient_checkpointing": False, "bf16": True, "batch": 4},
}
HP = {
    "lora_r": 16,
    "lora_alpha": 32,
    "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "learning_rate": 2e-4,
    "gradient_accumulation_steps": 1,
    "max_length": 512,
}


def _examples(args) -> tuple[list[dict], list[dict], str]:
    from forge_pipeline.records import read_chat_jsonl

    def rows(path):
        return [
            {"messages": [{"role": t["role"], "content": t["content"]} for t in r["messages"]]}
            for r in read_chat_jsonl(path, need_assistant=True)
        ]

    folder = Path(args.dataset_dir) if args.dataset_dir else None
    if folder is None:
        catalog = Path(args.data_root) / "catalog"
        versions = sorted(
            (p for p in catalog.glob("*") if (p / "train.jsonl").is_file()), key=lambda p: p.stat().st_mtime
        )
        folder = versions[-1] if versions else None
    if folder is not None:
        train, validation = rows(folder / "train.jsonl"), rows(folder / "validation.jsonl")
        source = str(folder)
    else:
        data = rows(SAMPLE_DATA / "sample_conversations" / "chats.jsonl")
        cut = max(1, len(data) * 4 // 5)
        train, validation, source = (
            data[:cut],
            data[cut:],
            "forge_pipeline/sample_data/sample_conversations/chats.jsonl",
        )
    return train[: args.examples], validation[: args.heldout], source


def run_recipe(args) -> dict:
    """One recipe in this process (the child)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from forge_pipeline.export.evaluate import validation_loss
    from forge_pipeline.train.chat_tokens import tokenize_examples
    from forge_pipeline.train.config import TrainSettings
    from forge_pipeline.train.sft import lora_config

    recipe = RECIPES[args.recipe]
    if args.threads:
        torch.set_num_threads(args.threads)
    train, validation, source = _examples(args)
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    rows, _ = tokenize_examples(train, tokenizer, HP["max_length"])
    real_tokens = sum(len(r["input_ids"]) for r in rows) * args.epochs
    model = AutoModelForCausalLM.from_pretrained(args.model_dir, dtype=torch.float32, attn_implementation="sdpa")
    hp = TrainSettings(**HP, per_device_train_batch_size=recipe["batch"])
    config = SFTConfig(
        output_dir=str(Path(args.work_dir) / args.recipe),
        learning_rate=hp.learning_rate,
        num_train_epochs=args.epochs,
        per_device_train_batch_size=hp.per_device_train_batch_size,
        gradient_accumulation_steps=1,
        max_length=hp.max_length,
        packing=recipe["packing"],
        padding_free=recipe["packing"],
        **({"packing_strategy": "bfd"} if recipe["packing"] else {}),
        gradient_checkpointing=recipe["gradient_checkpointing"],
        bf16=recipe["bf16"],
        fp16=False,
        use_cpu=True,
        save_strategy="no",
        report_to=[],
        logging_steps=1,
        disable_tqdm=True,
        seed=42,
        data_seed=42,
        dataloader_num_workers=0,
    )
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=lora_config(hp),
    )
    started = time.perf_counter()
    out = trainer.train()
    seconds = time.perf_counter() - started
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    heldout = validation_loss(trainer.model, tokenizer, validation, max_length=hp.max_length)
    return {
        "recipe": args.recipe,
        **recipe,
        "train_seconds": round(seconds, 2),
        "real_tokens": real_tokens,
        "tokens_per_s": round(real_tokens / seconds, 1),
        "steps": trainer.state.global_step,
        "final_loss": round(losses[-1], 4) if losses else None,
        "train_loss": round(out.training_loss, 4),
        "heldout_loss": round(heldout["loss"], 4),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "examples": len(rows),
        "data": source,
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipes", default="plain,forge,packed,packed_bf16")
    parser.add_argument("--examples", type=int, default=32, help="train examples (first N of the split)")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--heldout", type=int, default=12, help="held-out examples scored after training")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--dataset-dir", default=None)
    parser.add_argument("--data-root", default=str(REPO / ".forge_data"))
    parser.add_argument(
        "--out",
        default=str(Path(__file__).with_name("results_cpu_sft_bench.json")),
        help="result JSON (the README's figures)",
    )
    parser.add_argument("--recipe", help=argparse.SUPPRESS)  # child mode
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    parser.add_argument("--work-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.recipe:  # child: one recipe, result as the last stdout line
        print(json.dumps(run_recipe(args)), flush=True)
        return

    import tempfile

    from forge_pipeline.settings import load_settings
    from forge_pipeline.train.base_models import DEFAULT_BASE_MODEL, resolve_base_model

    settings = load_settings(data_root=args.data_root, train={"base_model": DEFAULT_BASE_MODEL})
    settings.paths.ensure()
    model_dir = resolve_base_model(settings, [])["path"]
    results = []
    with tempfile.TemporaryDirectory() as work:
        for name in args.recipes.split(","):
            command = [
                sys.executable,
                __file__,
                "--recipe",
                name,
                "--model-dir",
                model_dir,
                "--work-dir",
                work,
                "--examples",
                str(args.examples),
                "--epochs",
                str(args.epochs),
                "--heldout",
                str(args.heldout),
                "--threads",
                str(args.threads),
                "--data-root",
                args.data_root,
                *(["--dataset-dir", args.dataset_dir] if args.dataset_dir else []),
            ]
            load_before = os.getloadavg()[0]
            done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
            if done.returncode != 0:
                raise SystemExit(f"recipe {name} failed:\n{done.stderr[-3000:]}")
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
            # How busy the machine was around this recipe: a ratio taken under changing load says so here.
            results[-1]["load_average_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
            print(json.dumps(results[-1]), flush=True)
    reference = next((r for r in results if r["recipe"] == "plain"), results[0])
    print(
        f"\n{'recipe':<11} {'tok/s':>7} {'x plain':>7} {'peak RSS MB':>11} {'final loss':>10} {'held-out':>9} {'s':>6}"
    )
    for r in results:
        print(
            f"{r['recipe']:<11} {r['tokens_per_s']:>7} {r['tokens_per_s'] / reference['tokens_per_s']:>7.2f} "
            f"{r['peak_rss_mb']:>11} {r['final_loss']:>10} {r['heldout_loss']:>9} {r['train_seconds']:>6}"
        )
    record = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        # Other work on the cores slows every recipe; the ratios are side by side in one run, the load says how busy.
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "model": DEFAULT_BASE_MODEL,
        "hp": HP,
        "results": results,
    }
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
