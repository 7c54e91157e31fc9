"""The export stage's steps, each written once, as every adapter goes through them: the SFT assets
(adapter_evaluation, gguf_model, gguf_adapter, adapter_manifest) and the DPO candidate
(feedback/publish.py) call the same functions, so the two paths cannot drift apart. Dagster-free.

`info` is an adapter's checked description (`publish.adapter_info`); `dataset_version` the catalog's
description of the version it trained on.
"""

from __future__ import annotations

from forge_pipeline.catalog.handoff import DatasetVersion
from forge_pipeline.export import evaluate, gguf, knowledge, publish
from forge_pipeline.export.handoff import AdapterInfo


def evaluation(settings, info: AdapterInfo, dataset_version: DatasetVersion) -> dict:
    """Base vs tuned on the dataset version's validation split (loss, perplexity, side-by-side answers, the
    knowledge questions from the person's notes) and the promotion gate."""
    validation = publish.validation_file(dataset_version)
    return evaluate.evaluate_adapter(
        info.base_model_dir,
        info.adapter_dir,
        evaluate.load_validation_examples(validation),
        settings.eval_prompts,
        settings.eval,
        max_length=settings.train.max_length,
        tracking_uri=settings.tracking_uri,
        mlflow_run_id=info.mlflow_run_id,
        decoding=settings.decoding,
        serving_quality=publish.serving_quality(settings.paths.manifest),
        cache_dir=settings.paths.cache,
        knowledge_questions=knowledge.knowledge_questions(validation.parent, settings.eval.knowledge_questions),
    )


def merged_gguf(settings, info: AdapterInfo, toolchain) -> dict:
    """The adapter merged into its base, converted and quantized (plus the base GGUF it was merged from)."""
    exports = settings.paths.exports
    return gguf.export_merged_model(
        info.base_model_dir,
        info.adapter_dir,
        exports / publish.export_key(info),
        settings.export,
        exports_dir=exports,
        toolchain=toolchain,
        demo=info.is_demo_model,
    )


def adapter_gguf(settings, info: AdapterInfo, toolchain) -> tuple[dict, dict]:
    """(the adapter alone as a GGUF adapter, the base GGUF export it applies to); the base is converted once
    per base model and shared by every adapter on it."""
    exports = settings.paths.exports
    base = gguf.export_base_model(info.base_model_dir, exports, settings.export, toolchain)
    adapter = gguf.export_adapter(
        info.adapter_dir,
        info.base_model_dir,
        exports / publish.export_key(info),
        settings.export,
        base_gguf=base["base_gguf"],
        toolchain=toolchain,
        demo=info.is_demo_model,
    )
    return {**adapter, "base_gguf": base["base_gguf"], "base_f16_gguf": base["base_f16_gguf"]}, base
