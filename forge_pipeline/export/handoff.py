"""What the export stage hands on: the evaluation of an adapter and its GGUF files (the values of
adapter_evaluation, gguf_model and gguf_adapter, stored as `tables/<asset>.json`). The fields named here are
the ones later steps read; whatever else a step recorded (timings, sizes, answers side by side) travels along
unchanged (`extra="allow"`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict


class Evaluation(BaseModel):
    """Base vs tuned on the held-out split and the promotion gate's decision (export/evaluate.py)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    base_loss: float
    tuned_loss: float
    relative_improvement: float
    min_relative_improvement: float
    promoted: bool
    reason: str
    dataset_version: str | None = None


class GgufModel(BaseModel):
    """The adapter merged and quantized, and the unmerged base GGUF the server applies adapters to."""

    model_config = ConfigDict(frozen=True, extra="allow")

    merged_gguf: Path
    merged_f16_gguf: Path | None = None  # kept only with export.keep_f16
    base_gguf: Path
    base_f16_gguf: Path
    quant_type: str
    is_demo_model: bool = False


class GgufAdapter(BaseModel):
    """The LoRA adapter alone as a GGUF adapter, and the base GGUFs it applies to."""

    model_config = ConfigDict(frozen=True, extra="allow")

    adapter_gguf: Path
    base_gguf: Path
    base_f16_gguf: Path
