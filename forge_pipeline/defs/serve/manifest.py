"""adapter_manifest: the evaluated exports published as a manifest version that serving watches."""

from __future__ import annotations

import dagster as dg

from forge_pipeline.defs.resources import ForgeSettingsResource
from forge_pipeline.export import publish
from forge_pipeline.export.handoff import Evaluation, GgufAdapter, GgufModel, PublishedVersion
from forge_pipeline.export.manifest import ManifestError, newest_version, read_manifest, verify_version
from forge_pipeline.train.outputs import TrainedAdapter


def _register_in_mlflow(settings, model_id: str | None, published: PublishedVersion) -> dict:
    """The published adapter (its MLflow model id) in MLflow's model registry, aliased `candidate` (newest) and
    `current` (served)."""
    from forge_pipeline.train.tracking import register_adapter

    if not model_id:  # trained before adapters were logged as MLflow models
        return {}
    name = f"{settings.mlflow_experiment}-adapter"
    version = register_adapter(
        settings.tracking_uri,
        name,
        model_id,
        published.version,
        current=published.current == published.version,
    )
    url = f"{settings.train.mlflow_ui_url.rstrip('/')}/#/models/{name}/versions/{version}"
    return {"mlflow_registered_model": f"{name} v{version}", "mlflow_model_version": dg.MetadataValue.url(url)}


@dg.asset(kinds={"json", "mlflow"}, code_version="1")
def adapter_manifest(
    forge: ForgeSettingsResource,
    lora_adapter: TrainedAdapter,
    adapter_evaluation: Evaluation,
    gguf_model: GgufModel,
    gguf_adapter: GgufAdapter,
) -> dg.MaterializeResult:
    """The manifest serving watches: a new version with its files' sha256, evaluation and lineage; it
    becomes current only if the evaluation gate promoted it. Re-materializing with the same files and dataset
    version adds nothing: it reports the existing version (`already_published`); a gate that now passes
    promotes a version that was never promoted, and a stricter gate never demotes one that was."""
    settings = forge.get()
    result = publish.publish(
        settings.paths.manifest,
        publish.adapter_info(lora_adapter),
        adapter_evaluation,
        gguf_model,
        gguf_adapter,
        dataset_version=adapter_evaluation.dataset_version,
    )
    registry = _register_in_mlflow(settings, lora_adapter.mlflow_model_id, result)
    return dg.MaterializeResult(
        value=result,
        metadata={
            **registry,
            "version": result.version,
            "current": str(result.current),
            "promoted": result.promoted,
            "already_published": result.already_published,
            "gate": adapter_evaluation.reason,
            "versions": result.versions,
            "manifest_path": dg.MetadataValue.path(result.manifest_path),
        },
    )


@dg.asset_check(asset=adapter_manifest, blocking=True)
def manifest_files_match(forge: ForgeSettingsResource) -> dg.AssetCheckResult:
    """Every file of the current version and of the newest version exists and matches its sha256."""
    path = forge.get().paths.manifest
    manifest = read_manifest(path)
    newest = newest_version(manifest)
    problems, checked = [], []
    for version in {manifest["current"], newest} - {None}:
        try:
            verify_version(manifest, version, path)
            checked.append(version)
        except ManifestError as err:
            problems.append(str(err))
    return dg.AssetCheckResult(
        passed=not problems and bool(checked),
        metadata={
            "verified_versions": ", ".join(sorted(checked)),
            "problems": dg.MetadataValue.json(problems),
            "current": str(manifest["current"]),
        },
    )
