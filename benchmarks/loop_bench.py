"""Where do the "I'm not sure. I'm not sure." loops come from? Base vs tuned answers to the eval prompts,
side by side in one run, under the decodings and prompt framings that could cause them.

For a data root where `forge demo` trained an adapter (tables/lora_adapter.json), every eval prompt is answered
greedily by the base model and by the tuned one (same weights, adapter off/on), in four settings:

- `rp1.0`: no repetition penalty (what the evaluation and llama.cpp's chat completions did before);
- `rp<p>`: the shared default, `decoding.repeat_penalty`;
- each with the prompt as the eval set has it (no system message: SmolLM2's template then writes its own
  default system prompt) and with the system prompt every training example carries (`ingest.system_prompt`).

Reported per setting and side: the answer-quality figures (export/answer_quality.py), so a rise from base to
tuned shows what training changed and a change across settings shows what decoding or framing changes.

    FORGE_DATA_ROOT=<root of a finished forge demo> PYTHONPATH=$PWD nice .venv/bin/python benchmarks/loop_bench.py \
        [--out benchmarks/results_loop_bench.json] [--max-new-tokens 256]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results_loop_bench.json")
    parser.add_argument("--max-new-tokens", type=int, default=None)
    args = parser.parse_args()

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from forge_pipeline.export.answer_quality import reply_quality, summarize
    from forge_pipeline.export.evaluate import generate_batch, load_eval_prompts
    from forge_pipeline.settings import load_settings

    settings = load_settings()
    lora = json.loads((settings.paths.tables / "lora_adapter.json").read_text())
    limit = args.max_new_tokens or settings.eval.max_new_tokens or settings.decoding.max_tokens
    prompts = load_eval_prompts(settings.eval_prompts)
    system = {"role": "system", "content": settings.ingest.system_prompt}
    framings = {
        "no_system": [p["messages"] for p in prompts],
        "training_system": [[system, *p["messages"]] for p in prompts],
    }
    tokenizer = AutoTokenizer.from_pretrained(lora["base_model_dir"])
    model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(lora["base_model_dir"], dtype=torch.float32), lora["adapter_dir"]
    ).eval()
    results = {
        "data_root": "<FORGE_DATA_ROOT>",
        "base_model": lora.get("base_model_name"),
        "train_metrics": lora.get("metrics"),
        "prompts": len(prompts),
        "max_new_tokens": limit,
        "settings": {},
    }
    for penalty in sorted({1.0, settings.decoding.repeat_penalty}):
        for framing, messages in framings.items():
            name = f"rp{penalty}_{framing}"
            row = {}
            for side in ("base", "tuned"):
                started = time.perf_counter()
                if side == "base":
                    with model.disable_adapter():
                        outputs = generate_batch(model, tokenizer, messages, limit, repetition_penalty=penalty)
                else:
                    outputs = generate_batch(model, tokenizer, messages, limit, repetition_penalty=penalty)
                qualities = [reply_quality(o["text"], o["stopped"]) for o in outputs]
                row[side] = {
                    **summarize(qualities),
                    "seconds": round(time.perf_counter() - started, 1),
                    "looping_examples": [
                        o["text"][:200] for o, q in zip(outputs, qualities) if q["repeated_sentences"]
                    ][:3],
                }
            results["settings"][name] = row
            print(
                f"{name:28s} repeated-sentence rate base {row['base']['repeated_sentence_rate']:.2f} "
                f"tuned {row['tuned']['repeated_sentence_rate']:.2f} | cut base {row['base']['cut_rate']:.2f} "
                f"tuned {row['tuned']['cut_rate']:.2f}",
                flush=True,
            )
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
