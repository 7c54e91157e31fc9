"""Evaluation, GGUF export and the adapter manifest: thin assets over forge_pipeline.export (its steps.py is what
the DPO candidate runs too)."""

from __future__ import annotations

import dagster as dg
import polars as pl

from forge_pipeline.defs.common import table_preview
from forge_pipeline.defs.export.resources import LlamaCppToolchainResource
from forge_pipeline.defs.resources import ForgeSettingsResource
from forge_pipeline.export import evaluate, publish, steps


def _register_in_mlflow(settings, lora_adapter: dict, published: dict) -> dict:
    """The published adapter in MLflow's model registry, aliased `candidate` (newest) and `current` (served)."""
    from forge_pipeline.train.tracking import register_adapter

    model_id = lora_adapter.get("mlflow_model_id")
    if not model_id:  # trained before adapters were logged as MLflow models
        return {}
    name = f"{settings.mlflow_experiment}-adapter"
    version = register_adapter(
        settings.tracking_uri,
        name,
        model_id,
        published["version"],
        current=published["current"] == published["version"],
    )
    url = f"{settings.train.mlflow_ui_url.rstrip('/')}/#/models/{name}/versions/{version}"
    return {"mlflow_registered_model": f"{name} v{version}", "mlflow_model_version": dg.MetadataValue.url(url)}


def _timings_md(timings: dict, stats: dict) -> str:
    lines = ["| file | size (bytes) | params | bits/weight |", "| --- | --- | --- | --- |"]
    lines += [
        f"| {name} | {s['size_bytes']:,} | {s['n_params']:,} | {s['bits_per_weight']} |" for name, s in stats.items()
    ]
    lines += ["", "| stage | seconds |", "| --- | --- |"] + [f"| {k} | {v} |" for k, v in timings.items()]
    return "\n".join(lines)


@dg.asset(group_name="train", kinds={"pytorch", "mlflow"}, code_version="1")
def adapter_evaluation(forge: ForgeSettingsResource, lora_adapter: dict, dataset_version: dict) -> dg.MaterializeResult:
    """Base vs fine-tuned on the held-out (validation) split: loss and perplexity on assistant tokens, greedy
    answers side by side (eval prompts + held-out prompts, one table row per prompt), and the promotion gate on
    held-out loss with the eval.min_relative_improvement margin (a failed gate keeps the version unpromoted)."""
    settings = forge.get()
    info = publish.adapter_info(lora_adapter)
    result = steps.evaluation(settings, info, dataset_version)
    knowing = result["knowledge"]
    quality = {f"{side}_{k}": v for side in ("base", "tuned") for k, v in result[f"{side}_quality"].items()}
    return dg.MaterializeResult(
        value={**result, "dataset_version": info["dataset_version"] or dataset_version.get("version")},
        metadata={
            "base_loss": result["base_loss"],
            "tuned_loss": result["tuned_loss"],
            "base_perplexity": result["base_perplexity"],
            "tuned_perplexity": result["tuned_perplexity"],
            "relative_improvement": result["relative_improvement"],
            "promoted": result["promoted"],
            "gate": result["reason"],
            "loss_gate_passed": result["loss_gate_passed"],
            "quality_gate_passed": result["quality_gate_passed"],
            # Questions from the person's notes, scored on the note's key terms (export/knowledge.py).
            **{f"knowledge_{k}": v for k, v in knowing.items() if k != "rows" and v is not None},
            # What a person notices in the answers (export/answer_quality.py), base beside tuned.
            **{k: v for k, v in quality.items() if v is not None},
            "gate_margin": result["min_relative_improvement"],
            "perplexity_change": result["perplexity_change"],
            "validation_examples": result["validation_examples"],
            "dagster/row_count": result["prompts"],  # one row per prompt in the side-by-side table
            "validation_tokens": result["validation_tokens"],
            "side_by_side_prompts": result["prompts"],
            "mean_seconds_base": result["mean_seconds_base"],
            "mean_seconds_tuned": result["mean_seconds_tuned"],
            # One row per prompt, answers shortened to fit a dialog (the full table is the run's MLflow artifact
            # evaluation/side_by_side.json).
            "side_by_side": table_preview(
                pl.DataFrame(evaluate.generations_table(result["generations"])),
                ["prompt_id", "prompt", "base", "tuned", "tuned_marks", "reference"],
                rows=len(result["generations"]),
                width=100,
            ),
            "mlflow_logged": result["mlflow_logged"],
            "is_demo_model": info["is_demo_model"],
        },
    )


@dg.asset(group_name="export", kinds={"gguf", "llamacpp"}, code_version="1")
def gguf_model(
    forge: ForgeSettingsResource,
    llama_cpp_toolchain: LlamaCppToolchainResource,
    lora_adapter: dict,
    adapter_evaluation: dict,
) -> dg.MaterializeResult:
    """The adapter merged into its full-precision base, converted by llama.cpp and quantized (Q4_K_M by
    default), with an Ollama Modelfile; also the unmerged base GGUF the server hot-swaps adapters on."""
    settings = forge.get()
    info = publish.adapter_info(lora_adapter)
    result = steps.merged_gguf(settings, info, llama_cpp_toolchain.get(settings.export))
    stats = result["stats"]
    result = {**result, "is_demo_model": info["is_demo_model"]}
    return dg.MaterializeResult(
        value=result,
        metadata={
            "pre_tokenizer": str(result["pre_tokenizer"]),
            "pre_tokenizer_fallback": result["declared_gpt2_pre_tokenizer"],
            "merged_gguf": dg.MetadataValue.path(result["merged_gguf"]),
            "base_gguf": dg.MetadataValue.path(result["base_gguf"]),
            "quant_type": result["quant_type"],
            "merged_size_bytes": stats["merged"]["size_bytes"],
            "merged_bits_per_weight": stats["merged"]["bits_per_weight"],
            "n_params": stats["merged"]["n_params"],
            "seconds_by_stage": dg.MetadataValue.json(result["timings"]),
            "sizes": dg.MetadataValue.md(_timings_md(result["timings"], stats)),
        },
    )


@dg.asset(group_name="export", kinds={"gguf", "llamacpp"}, code_version="1")
def gguf_adapter(
    forge: ForgeSettingsResource,
    llama_cpp_toolchain: LlamaCppToolchainResource,
    lora_adapter: dict,
    adapter_evaluation: dict,
) -> dg.MaterializeResult:
    """The LoRA adapter alone as a GGUF adapter, applied at serve time to the unchanged base GGUF."""
    settings = forge.get()
    info = publish.adapter_info(lora_adapter)
    result, base = steps.adapter_gguf(settings, info, llama_cpp_toolchain.get(settings.export))
    return dg.MaterializeResult(
        value=result,
        metadata={
            "adapter_gguf": dg.MetadataValue.path(result["adapter_gguf"]),
            "adapter_size_bytes": result["stats"]["adapter"]["size_bytes"],
            "adapter_params": result["stats"]["adapter"]["n_params"],
            "seconds_by_stage": dg.MetadataValue.json({**result["timings"], **base["timings"]}),
        },
    )


@dg.asset(group_name="serve", kinds={"json", "mlflow"}, code_version="1")
def adapter_manifest(
    forge: ForgeSettingsResource, lora_adapter: dict, adapter_evaluation: dict, gguf_model: dict, gguf_adapter: dict
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
        dataset_version=adapter_evaluation.get("dataset_version"),
    )
    registry = _register_in_mlflow(settings, lora_adapter, result)
    return dg.MaterializeResult(
        value=result,
        metadata={
            **registry,
            "version": result["version"],
            "current": str(result["current"]),
            "promoted": result["promoted"],
            "already_published": result["already_published"],
            "gate": adapter_evaluation.get("reason", ""),
            "versions": result["versions"],
            "manifest_path": dg.MetadataValue.path(result["manifest_path"]),
        },
    )
