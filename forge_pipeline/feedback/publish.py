"""A DPO adapter through the same evaluation, GGUF export and manifest path as an SFT adapter, ending as the
manifest's A/B candidate (not current): preferences learned from a few people's clicks are tried on a share
of traffic first, compared with `forge compare`, and promoted with `forge promote`."""

from __future__ import annotations

from forge_pipeline.catalog.handoff import DatasetVersion
from forge_pipeline.export import publish, steps
from forge_pipeline.export.handoff import Evaluation, GgufAdapter, GgufModel
from forge_pipeline.export.manifest import read_manifest
from forge_pipeline.feedback.outputs import PreferenceAdapter, PreferenceCandidate


def publish_preference_candidate(
    settings, preference_adapter: PreferenceAdapter, dataset_version: DatasetVersion, toolchain
) -> PreferenceCandidate:
    """Evaluate (base vs DPO on the validation split, the gate), export both GGUFs, add the manifest version
    and name it the candidate with feedback.candidate_traffic_share. Skips when DPO did not train."""
    if not preference_adapter.trained:
        return PreferenceCandidate(
            published=False, reason=preference_adapter.reason or "preference_adapter did not train"
        )
    info = publish.adapter_info(preference_adapter, source="preference_adapter")
    # The sensor may request the same pairs again; a DPO run already in the manifest is not exported twice.
    published = [
        v
        for v, e in read_manifest(settings.paths.manifest)["versions"].items()
        if info.mlflow_run_id and e.get("mlflow_run_id") == info.mlflow_run_id
    ]
    if published:
        return PreferenceCandidate(
            published=False, reason=f"DPO run {info.mlflow_run_id} is already version {published[0]}"
        )
    # The SFT assets' own steps (export/steps.py): the same evaluation and gate, the same GGUF exports.
    evaluation = Evaluation.model_validate(steps.evaluation(settings, info, dataset_version))
    merged = GgufModel.model_validate(
        {**steps.merged_gguf(settings, info, toolchain), "is_demo_model": info.is_demo_model}
    )
    adapter = GgufAdapter.model_validate(steps.adapter_gguf(settings, info, toolchain)[0])
    result = publish.publish(
        settings.paths.manifest,
        info,
        evaluation,
        merged,
        adapter,
        dataset_version=info.dataset_version,
        candidate_share=settings.feedback.candidate_traffic_share,
        kind="dpo",
    )
    return PreferenceCandidate(
        published=True,
        **result.model_dump(mode="json"),
        candidate=read_manifest(settings.paths.manifest).get("candidate"),
        gate=evaluation.reason,
        tuned_loss=evaluation.tuned_loss,
        base_loss=evaluation.base_loss,
        mlflow_run_id=info.mlflow_run_id,
    )
