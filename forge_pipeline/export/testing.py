"""Small real models for the export tests and benchmarks: a tiny Llama + a LoRA adapter with random weights.

The training stage owns the demo model (`forge_pipeline.train.tiny_model`); this builder exists so the
export stage can be tested on its own, without training, with an adapter whose B matrices are non-zero
(peft's default init makes B zero, which would leave the outputs unchanged and hide a broken export).
"""

from __future__ import annotations

from pathlib import Path

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
# family -> (template, special tokens, bos, eos, pad)
TEMPLATE_FAMILIES = {
    "chatml": (CHATML_TEMPLATE, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], None, "<|im_end|>", "<|endoftext|>"),
    "llama3": (
        LLAMA3_TEMPLATE,
        ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|finetune_right_pad_id|>"],
        "<|begin_of_text|>",
        "<|eot_id|>",
        "<|finetune_right_pad_id|>",
    ),
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
    """A random-init Llama (widths multiple of 256 so Q4_K_M quantizes every matrix) with a BPE tokenizer and the
    chat template of `template_family` ("chatml" or "llama3", see TEMPLATE_FAMILIES).

    eager_stop: one residual dimension is made large and positive for every token and only <|im_end|>'s
    output row reads it, so the model answers <|im_end|> at once: a test that generation stops there.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    template, special_tokens, bos, eos, pad = TEMPLATE_FAMILIES[template_family]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=special_tokens, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(_CORPUS * 20, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token=bos, eos_token=eos, pad_token=pad, unk_token=None
    )
    fast.chat_template = template
    fast.save_pretrained(out_dir)

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=False,
        eos_token_id=fast.convert_tokens_to_ids(eos),
        pad_token_id=fast.pad_token_id,
        bos_token_id=fast.convert_tokens_to_ids(bos) if bos else None,
    )
    model = LlamaForCausalLM(config)
    if eager_stop:
        with torch.no_grad():
            model.model.embed_tokens.weight[:, 0] = 1.0
            model.lm_head.weight[:, 0] = 0.0
            model.lm_head.weight[config.eos_token_id, 0] = 5.0
    model.save_pretrained(out_dir)
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
