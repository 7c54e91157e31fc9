"""Small real models and datasets for the tests and benchmarks: the demo Llama of `forge_pipeline.train.tiny_model`
(under a plain chat template of a chosen family), a LoRA adapter with random weights, and a tiny dataset version.

The adapter's B matrices are non-zero: peft's default init makes B zero, which would leave the outputs unchanged
and hide a broken export.
"""

from __future__ import annotations

import json
from pathlib import Path

# Plain templates, as real models ship them: no `{% generation %}` marks (the demo model's own template has them),
# so the tests see the general path where assistant tokens are found without the marks.
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# The Llama 3 layout: BOS written by the template, header tokens around the role, <|eot_id|> ends each turn.
LLAMA3_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    " + message['content'] + '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
# The Llama 3 special tokens, added to the demo tokenizer (which already has the ChatML ones).
LLAMA3_TOKENS = {
    "bos_token": "<|begin_of_text|>",
    "eos_token": "<|eot_id|>",
    "pad_token": "<|finetune_right_pad_id|>",
    "additional_special_tokens": ["<|start_header_id|>", "<|end_header_id|>"],
}

_CORPUS = [
    "I weigh decisions by writing down what I would regret most.",
    "The migration plan needs a rollback step before we touch production.",
    "Reflect on what went well this week and what drained your energy.",
    "Read replicas help analytics queries but add replication lag.",
    "A team lead role trades deep work for helping others do theirs.",
    "Short notes, linked often, beat long notes nobody reads again.",
]


def build_tiny_llama_for_tests(
    out_dir: Path,
    hidden_size: int = 256,
    vocab_size: int = 512,
    seed: int = 0,
    eager_stop: bool = False,
    template_family: str = "chatml",
) -> Path:
    """The demo model (`train.tiny_model.build_tiny_llama`; widths multiple of 256 so Q4_K_M quantizes every
    matrix) with the plain chat template of `template_family`: "chatml" or "llama3" (whose special tokens are
    added to the tokenizer and the embeddings resized).

    eager_stop: one residual dimension is made large and positive for every token and only the end-of-turn
    token's output row reads it, so the model answers its end-of-turn token at once: a test that generation
    stops there.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from forge_pipeline.train.config import TinyModelSettings
    from forge_pipeline.train.tiny_model import build_tiny_llama

    if template_family not in ("chatml", "llama3"):
        raise ValueError(f"template_family {template_family!r}: expected 'chatml' or 'llama3'")
    cfg = TinyModelSettings(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        max_position_embeddings=512,
        seed=seed,
    )
    out_dir = build_tiny_llama(_CORPUS * 20, Path(out_dir), cfg)
    tokenizer = AutoTokenizer.from_pretrained(out_dir)
    model = AutoModelForCausalLM.from_pretrained(out_dir, dtype=torch.float32)
    tokenizer.chat_template = CHATML_TEMPLATE
    if template_family == "llama3":
        tokenizer.add_special_tokens(LLAMA3_TOKENS)
        tokenizer.chat_template = LLAMA3_TEMPLATE
        with torch.random.fork_rng(devices=[]):  # the new embedding rows are drawn at random: keep them seeded
            torch.manual_seed(seed)
            model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        for name in ("bos", "eos", "pad"):
            token_id = tokenizer.convert_tokens_to_ids(LLAMA3_TOKENS[f"{name}_token"])
            setattr(model.config, f"{name}_token_id", token_id)
            setattr(model.generation_config, f"{name}_token_id", token_id)
    if eager_stop:
        with torch.no_grad():
            model.model.embed_tokens.weight[:, 0] = 1.0
            model.lm_head.weight[:, 0] = 0.0
            model.lm_head.weight[model.config.eos_token_id, 0] = 5.0
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def build_random_lora_adapter(base_dir: Path, out_dir: Path, r: int = 8, seed: int = 1) -> Path:
    """A LoRA adapter on q/k/v/o with random (non-zero) B, saved like a trained one."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    peft_model = get_peft_model(
        model,
        LoraConfig(
            r=r,
            lora_alpha=2 * r,
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
            init_lora_weights=False,
            task_type="CAUSAL_LM",
        ),
    )
    peft_model.save_pretrained(out_dir)
    return Path(out_dir)


_REPLIES = [
    "Write the rollback step before touching production.",
    "Short linked notes beat long notes nobody reads.",
    "Decide by writing down what you would regret most.",
]


def tiny_examples(n: int = 24) -> list[dict]:
    """A tiny, repetitive chat dataset: learnable in a few training steps."""
    return [
        {
            "messages": [
                {"role": "system", "content": "You answer like the vault's author."},
                {"role": "user", "content": f"Question {i}: what is rule {i % len(_REPLIES)}?"},
                {"role": "assistant", "content": _REPLIES[i % len(_REPLIES)]},
            ]
        }
        for i in range(n)
    ]


def write_tiny_dataset_version(
    folder: Path, n: int = 24, n_validation: int = 4, version_id: str = "v-test", save_hf: bool = True
) -> dict:
    """train.jsonl / validation.jsonl (+ the HF DatasetDict, like the catalog writes) and the asset-style dict."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = tiny_examples(n)
    splits = {"train": rows[: n - n_validation], "validation": rows[n - n_validation :]}
    for split, split_rows in splits.items():
        if split_rows:
            (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in split_rows))
    if save_hf:
        from datasets import Dataset, DatasetDict

        DatasetDict({k: Dataset.from_list(v) for k, v in splits.items() if v}).save_to_disk(str(folder / "hf"))
    return {
        "version_id": version_id,
        "path": str(folder),
        "train_examples": len(splits["train"]),
        "validation_examples": len(splits["validation"]),
    }
