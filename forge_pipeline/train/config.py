from typing import Literal

from pydantic import Field

from forge_pipeline.section import Section


class TinyModelSettings(Section):
    """The demo/test base model: a tiny random-init Llama with a tokenizer trained on the corpus."""

    vocab_size: int = Field(default=2048, ge=300)
    hidden_size: int = Field(default=256, ge=64)
    intermediate_size: int = Field(default=512, ge=64)
    num_hidden_layers: int = Field(default=2, ge=1)
    num_attention_heads: int = Field(default=4, ge=1)
    num_key_value_heads: int = Field(default=2, ge=1)
    max_position_embeddings: int = Field(default=2048, ge=128)
    seed: int = 0


class TrainSettings(Section):
    """LoRA/QLoRA supervised fine-tuning hyperparameters (defaults from the project plan)."""

    base_model: str = Field(
        default="smollm2-135m-instruct",
        description="smollm2-135m-instruct (packaged SmolLM2, Apache-2.0), tiny-demo (random-init test Llama), a local "
        "HF model folder or a hub id already in the local HF cache (see forge_pipeline.train.base_models).",
    )
    lora_r: int = Field(default=16, gt=0)
    lora_alpha: int = Field(default=32, gt=0)
    lora_dropout: float = Field(default=0.05, ge=0.0, lt=1.0)
    target_modules: list[str] = Field(default=["q_proj", "k_proj", "v_proj", "o_proj"])
    learning_rate: float = Field(default=2e-4, gt=0.0)
    # Defaults sized for the default base (SmolLM2-135M) on the sample data on a 2-core CPU (docs/training.md):
    # one epoch of batch 1 at a constant learning rate gives ~64 optimizer steps (batch 4 gave 16 that a linear
    # decay halved: held-out perplexity -7%, vs -31% with these) and no padding to compute on the CPU.
    # On a GPU, batch 4 with packing is faster (the GPU settings in docs/training.md).
    num_train_epochs: float = Field(default=1.0, gt=0.0)
    per_device_train_batch_size: int = Field(default=1, gt=0)
    gradient_accumulation_steps: int = Field(default=1, gt=0)
    save_steps: int = Field(default=500, gt=0)
    eval_steps: int | None = Field(default=None, description="None evaluates once per epoch.")
    logging_steps: int = Field(default=1, gt=0)
    max_length: int = Field(default=512, gt=16)
    quantization: Literal["auto", "nf4", "none"] = Field(
        default="auto", description="auto: NF4 on CUDA, plain LoRA on CPU (faster there)."
    )
    packing: bool = Field(
        default=False,
        description="Padding-free packing (bfd); position ids keep examples apart (flash-attention or sdpa/eager/flex).",
    )
    pad_to_multiple_of: int | None = Field(
        default=None,
        gt=0,
        description="Pad each (packed) batch to a multiple of this many tokens. With packing and flex attention, "
        "per_device_train_batch_size * max_length gives every batch one shape, so the kernels compile once.",
    )
    gradient_checkpointing: bool | None = Field(default=None, description="None: on for CUDA, off on CPU.")
    seed: int = 42
    max_steps: int = Field(default=-1, description="-1: train for num_train_epochs; > 0 stops after that many steps.")
    warmup_steps: float = Field(default=0.0, ge=0.0, description="Below 1: a fraction of all steps; else a count.")
    lr_scheduler_type: str = Field(
        default="constant", description="constant: few steps on small data; a decay to 0 wastes half of them."
    )
    optim: str | None = Field(default=None, description="None: adamw_torch on CPU, paged_adamw_8bit with NF4 on CUDA.")
    attn_implementation: str | None = Field(
        default=None, description="None: sdpa, or flash_attention_2 when packing on CUDA with flash-attn installed."
    )
    text_mode: Literal["off", "beside", "instead"] = Field(
        default="off",
        description="Vault notes as plain text (no invented prompt; forge_pipeline.train.text_mode): off = chat "
        "pairs only; beside = vault examples as chat pairs and their replies as text too; instead = vault examples "
        "as text only (conversations stay chat). Evaluated on the held-out notes' text (text_eval_perplexity).",
    )
    continue_from: str | None = Field(
        default=None,
        description="A published version (v0003) or 'current' (the serving one): continue its LoRA adapter on the "
        "examples new since its dataset version, beside a replay of older ones (forge_pipeline.train.teach); minutes "
        "instead of a full run. Unset, or 'current' while nothing serves: train from the base model.",
    )
    # 8: on SmolLM2 and the sample data, one correction trained 3 times left the greedy answer as it was, 8 times
    # moved it toward the correction, 16 times gave the correction's fact in a clipped sentence (teach_bench notes).
    teach_repeats: int = Field(
        default=8, gt=0, description="With continue_from: how many times each new example is trained on."
    )
    teach_replay_examples: int = Field(
        default=8, ge=0, description="With continue_from: examples trained on before, replayed beside the new ones."
    )
    use_liger_kernel: bool = Field(default=False, description="Liger fused kernels (CUDA, needs liger-kernel).")
    mlflow_ui_url: str = Field(
        default="http://127.0.0.1:5000",
        description="Where `mlflow ui --backend-store-uri <tracking uri>` serves runs (used for asset links).",
    )
    tiny_model: TinyModelSettings = TinyModelSettings()
