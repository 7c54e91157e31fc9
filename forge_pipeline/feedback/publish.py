"""A DPO adapter through the same evaluation, GGUF export and manifest path as an SFT adapter, ending as the
manifest's A/B candidate (not current): preferences learned from a few people's clicks are tried on a share
of traffic first, compared with `forge compare`, and promoted with `forge promote`."""

from __future__ import annotations

from forge_pipeline.catalog.handoff import DatasetVersion
from forge_pipeline.export import publish, steps
from forge_pipeline.export.manifest import read_manifest


def publish_preference_candidate(
    settings, preference_adapter: dict, dataset_version: DatasetVersion, toolchain
) -> dict:
    """Evaluate (base vs DPO on the validation split, the gate), export both GGUFs, add the manifest version
    and name it the candidate with feedback.candidate_traffic_share. Skips when DPO did not train."""
    if not preference_adapter.get("trained"):
        return {"published": False, "reason": preference_adapter.get("reason") or "preference_adapter did not train"}
    info = publish.adapter_info(preference_adapter, source="preference_adapter")
    # The sensor may request the same pairs again; a DPO run already in the manifest is not exported twice.
    published = [
        v
        for v, e in read_manifest(settings.paths.manifest)["versions"].items()
        if info["mlflow_run_id"] and e.get("mlflow_run_id") == info["mlflow_run_id"]
    ]
    if published:
        return {"published": False, "reason": f"DPO run {info['mlflow_run_id']} is already version {published[0]}"}
    # The SFT assets' own steps (export/steps.py): the same evaluation and gate, the same GGUF exports.
    evaluation = steps.evaluation(settings, info, dataset_version)
    merged = steps.merged_gguf(settings, info, toolchain)
    adapter, _ = steps.adapter_gguf(settings, info, toolchain)
    result = publish.publish(
        settings.paths.manifest,
        info,
        evaluation,
        merged,
        adapter,
        dataset_version=info.get("dataset_version"),
        candidate_share=settings.feedback.candidate_traffic_share,
        kind="dpo",
    )
    return {
        "published": True,
        **result,
        "candidate": read_manifest(settings.paths.manifest).get("candidate"),
        "gate": evaluation["reason"],
        "tuned_loss": evaluation["tuned_loss"],
        "base_loss": evaluation["base_loss"],
        "mlflow_run_id": info["mlflow_run_id"],
    }
