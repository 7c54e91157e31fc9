"""The demo/test base model: a tiny random-init Llama with a byte-level BPE tokenizer trained on the corpus.

It exists so the whole chain (training, GGUF conversion, serving) runs on a laptop CPU in minutes with no
model hub. Its weights are random: it is labelled a DEMO model in its model card, its folder name and the
`is_demo_model` flag that flows to the manifest.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from forge_pipeline.atomic import atomic_directory
from forge_pipeline.train.config import TinyModelSettings

IM_START, IM_END, PAD = "<|im_start|>", "<|im_end|>", "<|endoftext|>"
SPECIAL_TOKENS = [PAD, IM_START, IM_END]

# ChatML. `{% generation %}` marks the assistant reply (content + <|im_end|>) so that
# `apply_chat_template(return_assistant_tokens_mask=True)` — what trl's `assistant_only_loss=True` uses —
# can tell which tokens to train on. <|im_end|> is inside the mark: the model must learn to stop.
CHATML_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- generation -%}{{- message['content'] + '<|im_end|>' -}}{%- endgeneration -%}"
    "{{- '\\n' -}}"
    "{%- else -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

MODEL_CARD = """---
tags: [forge, demo, random-init]
---
# DEMO MODEL (random initialisation): not a language model

This is Forge's tiny demo base model: a {layers}-layer Llama (hidden {hidden}, intermediate {intermediate},
{heads} heads, {kv_heads} KV heads, vocabulary {vocab}) with **random weights** and a byte-level BPE tokenizer
trained on the local corpus ({n_texts} texts). It lets the pipeline (training, GGUF export, serving) run on a
CPU in minutes. Its outputs are meaningless until fine-tuned, and even then it only parrots the corpus.
Set `train.base_model` to a real local model for real use.

Build key: `{key}`
"""


def tiny_model_key(texts: list[str], cfg: TinyModelSettings) -> str:
    """A content hash of everything the tiny model depends on (same texts + settings -> same model)."""
    digest = hashlib.sha256(json.dumps(cfg.model_dump(), sort_keys=True).encode())
    for text in texts:
        digest.update(hashlib.sha256(text.encode("utf-8")).digest())
    return digest.hexdigest()[:16]


def _train_tokenizer(texts: list[str], cfg: TinyModelSettings):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.vocab_size,
        special_tokens=SPECIAL_TOKENS,
        # Every byte is in the vocabulary, so any text (emoji, other scripts) still tokenizes.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=None,
        eos_token=IM_END,
        pad_token=PAD,
        unk_token=None,
        model_max_length=cfg.max_position_embeddings,
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast


def build_tiny_llama(texts: list[str], out_dir: Path, cfg: TinyModelSettings) -> Path:
    """Build the demo model into `out_dir` (atomically, replacing an older one) and return the path."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    texts = [t for t in texts if t and t.strip()]
    if not texts:
        raise ValueError("build_tiny_llama: no non-empty texts to train the tokenizer on (is the train split empty?)")
    out_dir = Path(out_dir)
    tokenizer = _train_tokenizer(texts, cfg)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads,
        max_position_embeddings=cfg.max_position_embeddings,
        # Untied: llama.cpp's converter and LoRA export then treat lm_head like any real Llama.
        tie_word_embeddings=False,
        eos_token_id=tokenizer.convert_tokens_to_ids(IM_END),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    # A private generator keeps the weights a function of the seed alone, whatever else ran before.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.pad_token_id = config.pad_token_id
    key = tiny_model_key(texts, cfg)
    with atomic_directory(out_dir) as staging:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / "README.md").write_text(
            MODEL_CARD.format(
                layers=cfg.num_hidden_layers,
                hidden=cfg.hidden_size,
                intermediate=cfg.intermediate_size,
                heads=cfg.num_attention_heads,
                kv_heads=cfg.num_key_value_heads,
                vocab=len(tokenizer),
                n_texts=len(texts),
                key=key,
            )
        )
        (staging / "forge_demo_model.json").write_text(
            json.dumps(
                {"is_demo_model": True, "build_key": key, "settings": cfg.model_dump(), "n_texts": len(texts)}, indent=2
            )
        )
    return out_dir
