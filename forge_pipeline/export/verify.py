"""Checks on exported GGUF files through llama-cpp-python: they load, generate and stop; quantization stays close.

No chat format is assumed: llama-cpp-python formats chats with the template stored in the GGUF (no
`chat_format` override) and stops at the GGUF's end-of-turn/EOS token, as the server does.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from llama_cpp.llama_types import ChatCompletionRequestMessage


@contextmanager
def open_gguf(model_path: Path, lora_path: Path | None = None, n_ctx: int = 512, logits_all: bool = False):
    from llama_cpp import Llama

    llm = Llama(
        model_path=str(model_path),
        lora_path=str(lora_path) if lora_path else None,
        n_ctx=n_ctx,
        n_threads=2,
        verbose=False,
        logits_all=logits_all,
        seed=0,
    )
    try:
        yield llm
    finally:
        llm.close()  # without it llama-cpp-python prints errors from __del__ at interpreter exit


def end_token(llm) -> str:
    """The text of the model's EOS token (its template's end of turn), as llama.cpp reads it from the GGUF."""
    return llm.detokenize([llm.token_eos()], special=True).decode("utf-8", errors="replace")


def render_prompt(llm, messages: list[dict]) -> str:
    """The chat rendered with the GGUF's own template, up to where the assistant answers (what the server sends)."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = llm.metadata.get("tokenizer.chat_template")
    if not template:
        raise ValueError("the GGUF has no tokenizer.chat_template; chat prompts cannot be rendered for it")
    bos = (
        llm.detokenize([llm.token_bos()], special=True).decode("utf-8", errors="replace")
        if llm.token_bos() >= 0
        else ""
    )
    formatter = Jinja2ChatFormatter(template, eos_token=end_token(llm), bos_token=bos)
    # Forge's chat turns ({role, content}, checked by records.ChatMessage) are llama.cpp's request messages
    return formatter(messages=cast("list[ChatCompletionRequestMessage]", messages)).prompt


def generation_check(
    model_path: Path, prompts: list[list[dict]], max_tokens: int = 24, lora_path: Path | None = None
) -> dict:
    """Generate greedily for each prompt; a reply must end at the template's end token (finish 'stop') or at
    max_tokens, without the end token's text leaking into the reply."""
    outcomes = []
    with open_gguf(model_path, lora_path) as llm:
        stop_text = end_token(llm)
        for messages in prompts:
            started = time.perf_counter()
            reply = llm.create_chat_completion(messages=messages, max_tokens=max_tokens, temperature=0.0)
            choice = reply["choices"][0]
            content = choice["message"]["content"] or ""
            outcomes.append(
                {
                    "finish_reason": choice["finish_reason"],
                    "completion_tokens": reply["usage"]["completion_tokens"],
                    "seconds": round(time.perf_counter() - started, 3),
                    "chars": len(content),
                    "leaked_stop_token": bool(stop_text) and stop_text in content,
                }
            )
    # usage.completion_tokens re-tokenizes the text (byte-level pieces can re-merge differently), so it is
    # reported, not compared with max_tokens; finish_reason says whether the stop or the limit ended it.
    ok = all(o["finish_reason"] in ("stop", "length") and not o["leaked_stop_token"] for o in outcomes)
    return {
        "ok": ok,
        "prompts": len(outcomes),
        "outcomes": outcomes,
        "end_token": stop_text,
        "stopped_at_end_token": sum(o["finish_reason"] == "stop" for o in outcomes),
    }


def next_token_logits(model_path: Path, prompts: list[list[dict]], lora_path: Path | None = None):
    """Logits after the last token of each chat prompt rendered with the GGUF's template (special tokens parsed)."""
    import numpy as np

    rows = []
    # logits_all: this llama-cpp-python keeps no logits otherwise (sampling happens inside its sampler).
    with open_gguf(model_path, lora_path, logits_all=True) as llm:
        for messages in prompts:
            tokens = llm.tokenize(render_prompt(llm, messages).encode(), add_bos=False, special=True)
            llm.reset()
            llm.eval(tokens)
            rows.append(np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32))
    return np.stack(rows)


def logit_gap(quantized: Path, reference: Path, prompts: list[list[dict]], lora_path: Path | None = None) -> dict:
    """Quantized vs f16 next-token logits on the prompt set: max/mean absolute gap and argmax agreement."""
    import numpy as np

    quant = next_token_logits(quantized, prompts, lora_path)
    ref = next_token_logits(reference, prompts, lora_path)
    gap = np.abs(quant - ref)
    return {
        "max_abs_gap": float(gap.max()),
        "mean_abs_gap": float(gap.mean()),
        "argmax_agreement": float((quant.argmax(-1) == ref.argmax(-1)).mean()),
        "prompts": len(prompts),
    }
