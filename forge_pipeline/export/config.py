from pathlib import Path

from pydantic import Field

from forge_pipeline.section import Section


class QualityGateSettings(Section):
    """How much worse than the baseline (base model, and the serving version when there is one) the tuned model's
    answers may be on each answer-quality figure (export/answer_quality.py). Each figure is a rate over the
    side-by-side replies; 0 means "not one reply more than the baseline"."""

    enabled: bool = Field(default=True, description="Gate on answer quality beside held-out loss.")
    repeated_sentence_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    repeated_ngram_rate: float = Field(
        default=0.02, ge=0.0, le=1.0, description="Mean share of repeated word 4-grams per reply."
    )
    empty_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    cut_rate: float = Field(
        default=0.1,
        ge=0.0,
        le=1.0,
        description="Replies that hit the token limit; some slack because the person's own notes are long.",
    )
    placeholder_rate: float = Field(default=0.0, ge=0.0, le=1.0)


class EvalSettings(Section):
    """Base vs tuned evaluation and the promotion gate."""

    max_new_tokens: int | None = Field(
        default=128,
        gt=0,
        description="Answer length limit in the evaluation. None: decoding.max_tokens, the limit the server answers "
        "with; 128 by default keeps the CPU demo's evaluation (about 60 answers from base and tuned) within minutes, "
        "and a reply still running at 128 tokens counts as cut for both sides alike.",
    )
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
    knowledge_questions: int = Field(
        default=8,
        ge=0,
        description="Questions from the dataset version's vault examples, scored on the note's key terms "
        "(export/knowledge.py); held-out ones first.",
    )
    quality: QualityGateSettings = QualityGateSettings()


class ExportSettings(Section):
    quant_type: str = Field(default="Q4_K_M", description="llama.cpp quantization type, e.g. Q4_K_M, Q8_0, Q5_K_M.")
    keep_f16: bool = Field(default=False, description="Keep the unquantized f16 GGUF beside the quantized one.")
    max_logit_gap: float = Field(default=1.0, gt=0.0, description="Asset-check bound on quantized vs f16 logits.")
    converter_dir: Path | None = Field(
        default=None,
        description="Folder with llama.cpp's convert_hf_to_gguf.py, convert_lora_to_gguf.py, conversion/ and gguf-py/ "
        "matching the installed llama-cpp-python; None means the source checkout's .cache/llama_cpp_convert "
        "(scripts/setup.sh) when there is one, else ~/.cache/forge/llama_cpp_convert.",
    )
    converter_timeout_s: float = Field(
        default=1800.0, gt=0.0, description="A converter run longer than this is killed."
    )
