"""From a trained adapter's description and the export outputs to a manifest version (Dagster-free)."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ValidationError

from forge_pipeline.catalog.handoff import DatasetVersion
from forge_pipeline.export.handoff import (
    AdapterInfo,
    Evaluation,
    GgufAdapter,
    GgufModel,
    ManifestEntry,
    PublishedVersion,
)
from forge_pipeline.export.manifest import ManifestError, describe_file, publish_version

EVALUATION_FIELDS = (
    "base_loss",
    "tuned_loss",
    "base_perplexity",
    "tuned_perplexity",
    "relative_improvement",
    "validation_examples",
    "prompts",
    "promoted",
    "reason",
    "base_quality",
    "tuned_quality",
    "eval_prompt_quality",
    "knowledge",
)


def adapter_info(adapter: BaseModel | dict, source: str = "lora_adapter") -> AdapterInfo:
    """The adapter an export step takes (a TrainedAdapter, a trained PreferenceAdapter, or their JSON), checked:
    both folders exist and the adapter's is a peft adapter."""
    data = adapter.model_dump() if isinstance(adapter, BaseModel) else adapter
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a JSON object, got {type(data).__name__}")
    try:
        info = AdapterInfo.model_validate(data)
    except ValidationError as err:
        problems = ", ".join(f"{'.'.join(map(str, e['loc'])) or 'value'} ({e['msg']})" for e in err.errors())
        raise ValueError(f"{source}: missing field(s) or bad values: {problems}; re-materialize lora_adapter") from None
    for field in ("adapter_dir", "base_model_dir"):
        if not getattr(info, field).is_dir():
            raise ValueError(f"{source}: field {field!r} points at {getattr(info, field)}, which is not a folder")
    if not (info.adapter_dir / "adapter_config.json").is_file():
        raise ValueError(f"{source}: {info.adapter_dir} has no adapter_config.json (not a peft adapter)")
    return info


def export_key(info: AdapterInfo) -> str:
    """Export folder name: the MLflow run id ties files to the run; the adapter folder name otherwise."""
    return info.mlflow_run_id or info.adapter_dir.name


def validation_file(dataset_version: DatasetVersion) -> Path:
    target = dataset_version.validation_file
    if not target.is_file():
        raise ValueError(f"dataset_version: {target} does not exist; re-materialize dataset_version")
    return target


def publish(
    manifest_path: Path,
    info: AdapterInfo,
    evaluation: Evaluation,
    gguf_model: GgufModel,
    gguf_adapter: GgufAdapter,
    dataset_version: str | None = None,
    candidate_share: float | None = None,
    kind: str = "sft",
) -> PublishedVersion:
    """Hash the files that exist now and add a version; promote only if the evaluation gate passed.
    With `candidate_share`, a version that passed the gate becomes the A/B candidate instead of current.
    The same files for the same dataset version are the same version: a retry or re-run returns it with
    `already_published` set, and does not change an earlier promotion decision (`manifest.publish_version`)."""
    files = {}
    for role, path in (
        ("base_gguf", gguf_model.base_gguf),
        ("merged_gguf", gguf_model.merged_gguf),
        ("adapter_gguf", gguf_adapter.adapter_gguf),
    ):
        if not Path(path).is_file():
            raise ManifestError(f"{role} {path} does not exist; re-materialize the export assets before the manifest")
        files[role] = describe_file(Path(path), manifest_path)
    recorded = evaluation.model_dump()
    entry = ManifestEntry(
        dataset_version=dataset_version or info.dataset_version,
        mlflow_run_id=info.mlflow_run_id,
        adapter_dir=str(info.adapter_dir),
        base_model={"name": info.base_model_name, "is_demo_model": info.is_demo_model},
        files=files,
        evaluation={k: recorded.get(k) for k in EVALUATION_FIELDS},
        quant_type=gguf_model.quant_type,
        kind=kind,
        # trl's count of real tokens trained on
        trained_tokens=info.metrics.get("trained_tokens"),
    )
    published = publish_version(
        manifest_path, entry.model_dump(), promote=evaluation.promoted, candidate_share=candidate_share
    )
    return PublishedVersion(
        version=published.version,
        current=published.manifest["current"],
        # The version's state after publishing: a re-run keeps an earlier decision (see publish_version).
        promoted=bool(published.manifest["versions"][published.version].get("promoted")),
        already_published=published.already_published,
        manifest_path=manifest_path,
        versions=len(published.manifest["versions"]),
    )


def serving_quality(manifest_path: Path) -> dict | None:
    """The serving version's recorded answer quality on the eval prompts (`{"version", "signature", "summary"}`),
    for the gate to compare a candidate with; None when nothing is served or it was evaluated before these
    figures existed."""
    from forge_pipeline.export.manifest import read_manifest

    if not Path(manifest_path).is_file():
        return None
    manifest = read_manifest(manifest_path)
    current = manifest.get("current")
    recorded = ((manifest.get("versions") or {}).get(current) or {}).get("evaluation") or {}
    quality = recorded.get("eval_prompt_quality")
    return {"version": current, **quality} if current and quality else None


def models_table(manifest: dict) -> list[dict]:
    """One row per version, for `forge models`."""
    rows = []
    for version, entry in sorted(manifest["versions"].items()):
        evaluation = entry.get("evaluation") or {}
        rows.append(
            {
                "version": version,
                "current": version == manifest["current"],
                "promoted": entry.get("promoted", False),
                "created_at": entry.get("created_at"),
                "dataset_version": entry.get("dataset_version"),
                "tuned_loss": evaluation.get("tuned_loss"),
                "base_loss": evaluation.get("base_loss"),
                "files": {role: (f or {}).get("path") for role, f in entry.get("files", {}).items()},
            }
        )
    return rows


def dumps(payload: dict) -> str:
    return json.dumps(payload, indent=2, default=str)
