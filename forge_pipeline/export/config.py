from pathlib import Path

from pydantic import Field

from forge_pipeline.section import Section


class EvalSettings(Section):
    """Base vs tuned evaluation and the promotion gate."""

    max_new_tokens: int = Field(default=48, gt=0)
    min_relative_improvement: float = Field(
        default=0.02,
        description="Promotion margin: tuned held-out loss must be below base * (1 - this), i.e. 2% lower by default, "
        "so a run that only matches the base (noise) is not promoted.",
    )
    max_eval_examples: int = Field(default=200, gt=0, description="Held-out examples scored for loss/perplexity.")
    max_eval_prompts: int = Field(default=16, ge=0, description="Prompts of eval_prompts.jsonl answered side by side.")
    max_heldout_prompts: int = Field(
        default=4, ge=0, description="Held-out examples also answered side by side (their reply is the reference)."
    )


class ExportSettings(Section):
    quant_type: str = Field(default="Q4_K_M", description="llama.cpp quantization type, e.g. Q4_K_M, Q8_0, Q5_K_M.")
    keep_f16: bool = Field(default=False, description="Keep the unquantized f16 GGUF beside the quantized one.")
    max_logit_gap: float = Field(default=1.0, gt=0.0, description="Asset-check bound on quantized vs f16 logits.")
    converter_dir: Path | None = Field(
        default=None,
        description="Folder with llama.cpp's convert_hf_to_gguf.py, convert_lora_to_gguf.py, conversion/ and gguf-py/ "
        "matching the installed llama-cpp-python; None means <repo>/.cache/llama_cpp_convert.",
    )
    converter_timeout_s: float = Field(
        default=1800.0, gt=0.0, description="A converter run longer than this is killed."
    )
