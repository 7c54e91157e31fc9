"""A DPO adapter through the same evaluation, GGUF export and manifest path as an SFT adapter, ending as the
manifest's A/B candidate (not current): preferences learned from a few people's clicks are tried on a share
of traffic first, compared with `forge compare`, and promoted with `forge promote`."""

from __future__ import annotations

from forge_pipeline.catalog.handoff import DatasetVersion
from forge_pipeline.export import evaluate, gguf, publish
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
    examples = evaluate.load_validation_examples(publish.validation_file(dataset_version))
    evaluation = evaluate.evaluate_adapter(
        info["base_model_dir"],
        info["adapter_dir"],
        examples,
        settings.eval_prompts,
        settings.eval,
        max_length=settings.train.max_length,
        tracking_uri=settings.tracking_uri,
        mlflow_run_id=info["mlflow_run_id"],
        decoding=settings.decoding,
        serving_quality=publish.serving_quality(settings.paths.manifest),
        cache_dir=settings.paths.cache,
    )
    exports = settings.paths.exports
    out_dir = exports / publish.export_key(info)
    merged = gguf.export_merged_model(
        info["base_model_dir"],
        info["adapter_dir"],
        out_dir,
        settings.export,
        exports_dir=exports,
        toolchain=toolchain,
        demo=info["is_demo_model"],
    )
    base = gguf.export_base_model(info["base_model_dir"], exports, settings.export, toolchain)
    adapter = gguf.export_adapter(
        info["adapter_dir"],
        info["base_model_dir"],
        out_dir,
        settings.export,
        base_gguf=base["base_gguf"],
        toolchain=toolchain,
        demo=info["is_demo_model"],
    )
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
