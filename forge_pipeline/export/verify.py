"""Checks on exported GGUF files through llama-cpp-python: they load, generate and stop; quantization stays close."""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path

STOP = "<|im_end|>"


@contextmanager
def open_gguf(model_path: Path, lora_path: Path | None = None, n_ctx: int = 512, logits_all: bool = False):
    from llama_cpp import Llama

    llm = Llama(model_path=str(model_path), lora_path=str(lora_path) if lora_path else None, n_ctx=n_ctx,
                n_threads=2, verbose=False, logits_all=logits_all, seed=0, chat_format="chatml")
    try:
        yield llm
    finally:
        llm.close()  # without it llama-cpp-python prints errors from __del__ at interpreter exit


def generation_check(model_path: Path, prompts: list[list[dict]], max_tokens: int = 24,
                     lora_path: Path | None = None) -> dict:
    """Generate greedily for each prompt; generation must end at <|im_end|> (finish 'stop') or at max_tokens."""
    outcomes = []
    with open_gguf(model_path, lora_path) as llm:
        for messages in prompts:
            started = time.perf_counter()
            reply = llm.create_chat_completion(messages=messages, max_tokens=max_tokens, temperature=0.0,
                                               stop=[STOP])
            choice = reply["choices"][0]
            outcomes.append({"finish_reason": choice["finish_reason"], "completion_tokens": reply["usage"]["completion_tokens"],
                             "seconds": round(time.perf_counter() - started, 3),
                             "leaked_stop_token": STOP in (choice["message"]["content"] or "")})
    # usage.completion_tokens re-tokenizes the text (byte-level pieces can re-merge differently), so it is
    # reported, not compared with max_tokens; finish_reason says whether the stop or the limit ended it.
    ok = all(o["finish_reason"] in ("stop", "length") and not o["leaked_stop_token"] for o in outcomes)
    return {"ok": ok, "prompts": len(outcomes), "outcomes": outcomes,
            "stopped_at_im_end": sum(o["finish_reason"] == "stop" for o in outcomes)}


def next_token_logits(model_path: Path, texts: list[str], lora_path: Path | None = None):
    """Logits after the last token of each rendered prompt (special tokens parsed, as the server does)."""
    import numpy as np

    rows = []
    # logits_all: this llama-cpp-python keeps no logits otherwise (sampling happens inside its sampler).
    with open_gguf(model_path, lora_path, logits_all=True) as llm:
        for text in texts:
            tokens = llm.tokenize(text.encode(), add_bos=False, special=True)
            llm.reset()
            llm.eval(tokens)
            rows.append(np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32))
    return np.stack(rows)


def render_chatml(messages: list[dict]) -> str:
    return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages) + "<|im_start|>assistant\n"


def logit_gap(quantized: Path, reference: Path, prompts: list[list[dict]], lora_path: Path | None = None) -> dict:
    """Quantized vs f16 next-token logits on the prompt set: max/mean absolute gap and argmax agreement."""
    import numpy as np

    texts = [render_chatml(m) for m in prompts]
    quant = next_token_logits(quantized, texts, lora_path)
    ref = next_token_logits(reference, texts, lora_path)
    gap = np.abs(quant - ref)
    return {"max_abs_gap": float(gap.max()), "mean_abs_gap": float(gap.mean()),
            "argmax_agreement": float((quant.argmax(-1) == ref.argmax(-1)).mean()), "prompts": len(texts)}
