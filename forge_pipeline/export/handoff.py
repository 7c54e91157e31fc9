"""What the export stage takes and hands on: the adapter it exports (AdapterInfo), the evaluation of an adapter
and its GGUF files (the values of adapter_evaluation, gguf_model and gguf_adapter, stored as
`tables/<asset>.json`), the manifest entry it publishes and the published version (adapter_manifest's value). The fields named here are
the ones later steps read; whatever else a step recorded (timings, sizes, answers side by side) travels along
unchanged (`extra="allow"`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator, model_validator


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


class AdapterInfo(BaseModel):
    """An adapter as the export steps take it (`publish.adapter_info` checks its folders): a trained
    `lora_adapter`, a trained `preference_adapter`, or a hand-written description with the two folders."""

    model_config = ConfigDict(frozen=True)

    adapter_dir: Path
    base_model_dir: Path
    base_model_name: str
    is_demo_model: bool = False
    mlflow_run_id: str | None = None
    dataset_version: str | None = None
    metrics: dict[str, Any] = {}

    @field_validator("adapter_dir", "base_model_dir", mode="before")
    @classmethod
    def _given(cls, value: Any) -> Any:
        if not value:  # Path("") would be the working directory
            raise ValueError("empty")
        return value

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        # What older tables and hand-written descriptions leave out or set to null.
        if isinstance(data, dict) and data.get("base_model_dir"):
            data = {
                **data,
                "base_model_name": data.get("base_model_name") or Path(data["base_model_dir"]).name,
                "is_demo_model": bool(data.get("is_demo_model")),
                "metrics": data.get("metrics") or {},
            }
        return data


class ManifestEntry(BaseModel):
    """One version as `publish.publish` adds it to the manifest (serve/adapter_manifest.json; the server reads
    the JSON, serve/versions.py). `manifest.publish_version` adds version, promoted and created_at."""

    model_config = ConfigDict(frozen=True)

    dataset_version: str | None
    mlflow_run_id: str | None
    adapter_dir: str  # the peft adapter folder: what `train.continue_from` continues (train/teach.py)
    base_model: dict[str, Any]  # {"name", "is_demo_model"}
    files: dict[str, dict[str, Any]]  # role -> {"path" (relative to the manifest), "sha256", "bytes"}
    evaluation: dict[str, Any]
    quant_type: str | None
    kind: str  # "sft" or "dpo"
    trained_tokens: int | None  # what the fine-tuning job route reports as `trained_tokens`


class PublishedVersion(BaseModel):
    """What publishing an adapter returns (the `adapter_manifest` asset's value): the version, the manifest's
    current version after it, whether this version is promoted, and whether it was there already."""

    model_config = ConfigDict(frozen=True)

    version: str
    current: str | None
    promoted: bool
    already_published: bool
    manifest_path: Path
    versions: int
