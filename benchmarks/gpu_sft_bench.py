"""QLoRA SFT throughput, side by side in one run: the plain peft+trl recipe vs Forge's trainer (`train_lora`).

Same model (Llama-3.1-8B shape, random init: throughput does not depend on weight values), same data (chats
whose templated length is spread over 128-2048 tokens), same loss (assistant tokens only), NF4 + LoRA r=16
on q/k/v/o, lr 2e-4, paged 8-bit AdamW, one epoch. Each recipe runs in its own subprocess so peak memory
is its own. Reported: real (non-padding) tokens per second over the whole train() call and in steady state
(log intervals after the first), peak GPU memory, and the loss curve against tokens seen.

Recipes:
  plain            padded batches of 4, gradient checkpointing, SDPA (the pre-project baseline, benchmarks/README.md)
  forge_*          train_lora with padding-free packing (positions restart per example: no cross-example
                   attention), optionally Liger kernels, with/without gradient checkpointing, batch sizes below

Run on the device machine (torch with CUDA is there; carry wheels for bitsandbytes, trl, datasets, dill,
multiprocess, liger-kernel, mlflow and this project as wheels when the machine's image lacks them):
    SHAPE=8b NEX=128 python benchmarks/gpu_sft_bench.py            # JSON to $OUT/gpu_sft_bench_8b.json
    RECIPES=plain,forge_packed_liger_gc_bs4 python benchmarks/gpu_sft_bench.py
CPU smoke test of the script itself (tiny shape, a few examples; numbers meaningless):
    SHAPE=tiny NEX=8 python benchmarks/gpu_sft_bench.py
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

OUT = Path(os.environ.get("OUT", tempfile.gettempdir()))
SHAPE = os.environ.get("SHAPE", "8b")
NEX = int(os.environ.get("NEX", "128"))
MAX_LEN = 2048 if SHAPE != "tiny" else 256
WORK = Path(os.environ.get("BENCH_WORK", tempfile.gettempdir())) / f"forge_sft_bench_{SHAPE}"

# name -> TrainSettings overrides for Forge's trainer
FORGE_RECIPES = {
    "forge_packed_gc_bs4": {"packing": True, "per_device_train_batch_size": 4, "gradient_checkpointing": True},
    "forge_packed_liger_gc_bs2": {
        "packing": True,
        "use_liger_kernel": True,
        "per_device_train_batch_size": 2,
        "gradient_checkpointing": True,
    },
    "forge_packed_liger_gc_bs4": {
        "packing": True,
        "use_liger_kernel": True,
        "per_device_train_batch_size": 4,
        "gradient_checkpointing": True,
    },
    "forge_packed_liger_gc_bs8": {
        "packing": True,
        "use_liger_kernel": True,
        "per_device_train_batch_size": 8,
        "gradient_checkpointing": True,
    },
    # flex attention turns the packed batch's block-diagonal mask into a sparse block mask: no O(L^2) work
    # across examples, which sdpa's dense mask over the flattened batch pays for
    "forge_packed_liger_flex_gc_bs4": {
        "packing": True,
        "use_liger_kernel": True,
        "per_device_train_batch_size": 4,
        "gradient_checkpointing": True,
        "attn_implementation": "flex_attention",
    },
    "forge_packed_liger_flex_gc_bs8": {
        "packing": True,
        "use_liger_kernel": True,
        "per_device_train_batch_size": 8,
        "gradient_checkpointing": True,
        "attn_implementation": "flex_attention",
    },
    # the same with every batch padded to one shape (bs * max_length): flex kernels compile once, not per length
    "forge_packed_liger_flex_fixed_gc_bs4": {
        "packing": True,
        "use_liger_kernel": True,
        "per_device_train_batch_size": 4,
        "gradient_checkpointing": True,
        "attn_implementation": "flex_attention",
        "pad_to_multiple_of": 4 * MAX_LEN,
    },
    "forge_packed_liger_flex_fixed_gc_bs8": {
        "packing": True,
        "use_liger_kernel": True,
        "per_device_train_batch_size": 8,
        "gradient_checkpointing": True,
        "attn_implementation": "flex_attention",
        "pad_to_multiple_of": 8 * MAX_LEN,
    },
    "forge_packed_liger_gc_bs16": {
        "packing": True,
        "use_liger_kernel": True,
        "per_device_train_batch_size": 16,
        "gradient_checkpointing": True,
    },
}
DEFAULT_RECIPES = "plain,forge_packed_gc_bs4,forge_packed_liger_gc_bs4,forge_packed_liger_gc_bs8"


def model_config():
    from transformers import LlamaConfig

    if SHAPE == "8b":
        return LlamaConfig(
            hidden_size=4096,
            intermediate_size=14336,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=8,
            vocab_size=128256,
            max_position_embeddings=8192,
            rope_theta=500000.0,
            rms_norm_eps=1e-5,
            tie_word_embeddings=False,
        )
    return LlamaConfig(
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=4096,
        max_position_embeddings=1024,
        tie_word_embeddings=False,
    )


def prepare() -> dict:
    """Model folder (random weights + a word-level ChatML tokenizer) and the dataset folder, built once."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

    from forge_pipeline.train.tiny_model import CHATML_TEMPLATE, IM_END, IM_START, PAD

    cfg = model_config()
    model_dir, data_dir = WORK / "model", WORK / "dataset"
    specials = [PAD, IM_START, IM_END]
    if not (model_dir / "config.json").is_file():
        # One token per word: templated lengths are then known exactly, whatever the text.
        vocab = {tok: i for i, tok in enumerate(specials)}
        vocab.update({f"w{i}": i for i in range(len(specials), cfg.vocab_size - 3)})
        vocab.update({"system": cfg.vocab_size - 3, "user": cfg.vocab_size - 2, "assistant": cfg.vocab_size - 1})
        backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="w3"))
        backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        backend.add_special_tokens(specials)
        tok = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token=PAD, eos_token=IM_END, unk_token="w3")
        tok.chat_template = CHATML_TEMPLATE
        cfg.eos_token_id, cfg.pad_token_id, cfg.bos_token_id = 2, 0, None
        torch.manual_seed(0)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        with torch.device(device):
            model = LlamaForCausalLM(cfg).to(torch.bfloat16 if device == "cuda" else torch.float32)
        model.save_pretrained(model_dir)
        tok.save_pretrained(model_dir)
        del model
    if not (data_dir / "train.jsonl").is_file():
        random.seed(0)
        data_dir.mkdir(parents=True, exist_ok=True)
        words = lambda n: " ".join(f"w{random.randint(3, cfg.vocab_size - 4)}" for _ in range(n))  # noqa: E731
        rows = []
        for _ in range(NEX):
            total = random.randint(128, MAX_LEN) - 12  # ChatML framing adds ~12 tokens
            prompt = random.randint(total // 4, total // 2)
            rows.append(
                {
                    "messages": [
                        {"role": "user", "content": words(prompt)},
                        {"role": "assistant", "content": words(total - prompt)},
                    ]
                }
            )
        (data_dir / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {"model_dir": str(model_dir), "data_dir": str(data_dir)}


def real_tokens(paths: dict) -> int:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(paths["model_dir"])
    rows = [json.loads(line) for line in Path(paths["data_dir"], "train.jsonl").read_text().splitlines()]
    return sum(
        min(len(tok.apply_chat_template(r["messages"], tokenize=True, return_dict=True)["input_ids"]), MAX_LEN)
        for r in rows
    )


def steady_rate(history: list[dict]) -> float | None:
    rates = [h["tokens_per_s"] for h in history if "tokens_per_s" in h]
    return sum(rates) / len(rates) if rates else None


def run_plain(paths: dict) -> dict:
    """The recipe users write by hand with peft+trl (the pre-project baseline), on the same chats."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from forge_pipeline.train.sft import _ForgeCallback, _NoMlflow

    cuda = torch.cuda.is_available()
    dtype = torch.bfloat16 if cuda else torch.float32
    bnb = BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype
    )
    model = AutoModelForCausalLM.from_pretrained(
        paths["model_dir"],
        quantization_config=bnb,
        dtype=dtype,
        attn_implementation="sdpa",
        **({"device_map": {"": 0}} if cuda else {}),
    )
    model = prepare_model_for_kbit_training(
        model, use_gradient_checkpointing=True, gradient_checkpointing_kwargs={"use_reentrant": False}
    )
    model = get_peft_model(
        model,
        LoraConfig(
            r=16,
            lora_alpha=32,
            lora_dropout=0.05,
            task_type="CAUSAL_LM",
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
        ),
    )
    rows = [json.loads(line) for line in Path(paths["data_dir"], "train.jsonl").read_text().splitlines()]
    probe = _ForgeCallback(_NoMlflow(), None, cuda)
    callback = type("Probe", (TrainerCallback,), {"on_log": probe.on_log})()
    args = SFTConfig(
        output_dir=str(WORK / "out_plain"),
        per_device_train_batch_size=4,
        gradient_accumulation_steps=1,
        learning_rate=2e-4,
        num_train_epochs=1,
        bf16=cuda,
        use_cpu=not cuda,
        logging_steps=5,
        logging_first_step=True,
        save_strategy="no",
        report_to=[],
        optim="paged_adamw_8bit" if cuda else "adamw_torch",
        max_length=MAX_LEN,
        assistant_only_loss=True,
        gradient_checkpointing=True,
        gradient_checkpointing_kwargs={"use_reentrant": False},
        dataloader_num_workers=0,
        seed=42,
    )
    tok = AutoTokenizer.from_pretrained(paths["model_dir"])
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok, callbacks=[callback]
    )
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    started = time.perf_counter()
    out = trainer.train()
    if cuda:
        torch.cuda.synchronize()
    wall = time.perf_counter() - started
    return {
        "wall_s": wall,
        "steps": out.global_step,
        "train_loss": out.training_loss,
        "peak_gpu_gb": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
        "steady_tok_per_s": steady_rate(probe.history),
        "loss_curve": [(h.get("num_tokens"), h["loss"]) for h in probe.history if "loss" in h],
    }


def run_forge(paths: dict, name: str, overrides: dict) -> dict:
    import shutil

    import torch

    from forge_pipeline.train.config import TrainSettings
    from forge_pipeline.train.sft import train_lora

    cuda = torch.cuda.is_available()
    hp = TrainSettings(
        lora_r=16,
        lora_alpha=32,
        learning_rate=2e-4,
        num_train_epochs=1,
        gradient_accumulation_steps=1,
        save_steps=10**9,
        logging_steps=5,
        max_length=MAX_LEN,
        seed=42,
        optim="paged_adamw_8bit" if cuda else "adamw_torch",
        quantization="nf4",
        **{k: v for k, v in overrides.items() if not (k == "use_liger_kernel" and not cuda)},
    )
    history: list[dict] = []
    out_dir = WORK / f"out_{name}"
    shutil.rmtree(out_dir, ignore_errors=True)  # a finished run would be reused, not re-measured
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    result = train_lora(
        paths["data_dir"],
        paths["model_dir"],
        out_dir,
        hp,
        tracking_uri=f"sqlite:///{WORK / 'mlflow.db'}",
        experiment="gpu_sft_bench",
        progress=history.append,
        dataset_version="bench",
    )
    return {
        "wall_s": result["metrics"]["wall_s"],
        "steps": result["metrics"]["global_step"],
        "train_loss": result["metrics"]["train_loss"],
        "peak_gpu_gb": result["metrics"].get("peak_gpu_memory_gb"),
        "steady_tok_per_s": steady_rate(history),
        "hardware": result["hardware"],
        # trl's num_tokens counts padding in padding-free batches: with pad_to_multiple_of the steady rate
        # must be scaled by real_tokens / num_tokens_seen to count real tokens only
        "num_tokens_seen": max((h.get("num_tokens", 0) for h in history), default=None),
        "loss_curve": [(h.get("num_tokens"), h["loss"]) for h in history if "loss" in h],
    }


def child(recipe: str) -> None:
    paths = prepare()
    if recipe == "plain":
        out = run_plain(paths)
    else:
        out = run_forge(paths, recipe, FORGE_RECIPES[recipe])
    print("RESULT " + json.dumps(out), flush=True)


def tail_loss(curve: list) -> float | None:
    """Mean loss over the last fifth of the logged points: compares curves whose step counts differ."""
    losses = [loss for _, loss in curve]
    tail = losses[-max(1, len(losses) // 5) :]
    return sum(tail) / len(tail) if tail else None


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    OUT.mkdir(parents=True, exist_ok=True)
    paths = prepare()
    tokens = real_tokens(paths)
    report = {"shape": SHAPE, "examples": NEX, "max_length": MAX_LEN, "real_tokens": tokens, "recipes": {}}
    report_path = OUT / f"gpu_sft_bench_{SHAPE}.json"
    for recipe in os.environ.get("RECIPES", DEFAULT_RECIPES).split(","):
        started = time.time()
        proc = subprocess.run([sys.executable, __file__, "--child", recipe], capture_output=True, text=True)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            report["recipes"][recipe] = {"error": proc.stderr[-2000:]}
        else:
            out = json.loads(lines[-1][len("RESULT ") :])
            out["real_tok_per_s"] = tokens / out["wall_s"]
            out["tail_loss"] = tail_loss(out["loss_curve"])
            out["process_s"] = round(time.time() - started, 1)
            report["recipes"][recipe] = out
        summary = {k: v for k, v in report["recipes"][recipe].items() if k != "loss_curve"}
        print(json.dumps({recipe: summary}), flush=True)
        report_path.write_text(json.dumps(report, indent=1))
    base = report["recipes"].get("plain", {})
    for name, out in report["recipes"].items():
        if name != "plain" and "real_tok_per_s" in out and "real_tok_per_s" in base:
            out["speedup_vs_plain"] = out["real_tok_per_s"] / base["real_tok_per_s"]
    report_path.write_text(json.dumps(report, indent=1))
    print(f"wrote {report_path}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(sys.argv[2])
    else:
        main()
